package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/gateway"
)

// memberFlags are the flags every member subcommand shares: where the list
// lives (the origin's store, or a running origin) and the site key.
type memberFlags struct {
	storeDir, originURL, keyFile, site string
}

func (f *memberFlags) add(cmd *cobra.Command, needKey bool) {
	addStoreFlag(cmd, &f.storeDir)
	cmd.Flags().StringVar(&f.originURL, "origin", "", "a running origin's URL: fetch its list and post the new one there (instead of --store)")
	if needKey {
		cmd.Flags().StringVar(&f.keyFile, "key", "", "site key file (required): signs the new list")
		_ = cmd.MarkFlagRequired("key")
	} else {
		cmd.Flags().StringVar(&f.keyFile, "key", "", "site key file: names the site")
		cmd.Flags().StringVar(&f.site, "site", "", "the site ID (instead of --key)")
	}
}

func newMemberCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "member",
		Short: "Admit seeders by their node key, remove them, list them (a signed, versioned list the origin serves)",
	}
	cmd.AddCommand(newMemberAddCmd(), newMemberRmCmd(), newMemberLsCmd(), newMemberPolicyCmd())
	return cmd
}

func newMemberAddCmd() *cobra.Command {
	var f memberFlags
	var name string
	cmd := &cobra.Command{
		Use:   "add NODE-ID [--name NAME] --key FILE [--store DIR | --origin URL]",
		Short: "Admit a seeder (or rename a member)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := node.ParseNodeID(args[0])
			if err != nil {
				return err
			}
			if len(name) > node.MaxMemberName {
				return fmt.Errorf("name of %d bytes: at most %d", len(name), node.MaxMemberName)
			}
			return f.edit(cmd, func(p node.Policy, ms []node.Member) (node.Policy, []node.Member, error) {
				ms = slices.DeleteFunc(ms, func(m node.Member) bool { return m.Node == id })
				return p, append(ms, node.Member{Node: id, Name: name}), nil
			})
		},
	}
	f.add(cmd, true)
	cmd.Flags().StringVar(&name, "name", "", "a name for the member (at most 64 bytes)")
	return cmd
}

func newMemberRmCmd() *cobra.Command {
	var f memberFlags
	cmd := &cobra.Command{
		Use:   "rm NODE-ID --key FILE [--store DIR | --origin URL]",
		Short: "Remove a member: the relay stops handing it out as soon as it has the new list",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := node.ParseNodeID(args[0])
			if err != nil {
				return err
			}
			return f.edit(cmd, func(p node.Policy, ms []node.Member) (node.Policy, []node.Member, error) {
				n := len(ms)
				ms = slices.DeleteFunc(ms, func(m node.Member) bool { return m.Node == id })
				if len(ms) == n {
					return 0, nil, fmt.Errorf("%s is not a member", id)
				}
				return p, ms, nil
			})
		},
	}
	f.add(cmd, true)
	return cmd
}

func newMemberPolicyCmd() *cobra.Command {
	var f memberFlags
	cmd := &cobra.Command{
		Use:   "policy members-only|members-first --key FILE [--store DIR | --origin URL]",
		Short: "Set the site's policy: visitors get members only, or members before other seeders (the default)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := node.ParsePolicy(args[0])
			if err != nil {
				return err
			}
			return f.edit(cmd, func(_ node.Policy, ms []node.Member) (node.Policy, []node.Member, error) {
				return p, ms, nil
			})
		},
	}
	f.add(cmd, true)
	return cmd
}

func newMemberLsCmd() *cobra.Command {
	var f memberFlags
	cmd := &cobra.Command{
		Use:   "ls (--key FILE | --site SITE) [--store DIR | --origin URL]",
		Short: "List the members and the policy (the list is verified)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			site, err := f.siteID()
			if err != nil {
				return err
			}
			var l *node.MemberList
			if f.originURL != "" {
				l, err = gateway.FetchMembers(cmd.Context(), nil, f.originURL, site)
			} else {
				st, oerr := openStore(f.storeDir)
				if oerr != nil {
					return oerr
				}
				defer st.Close()
				l, err = node.NewMemberStore(st).Latest(site)
			}
			if errors.Is(err, node.ErrNotFound) {
				fmt.Fprintf(cmd.ErrOrStderr(), "no member list for %s\n", site)
				return nil
			}
			if err != nil {
				return err
			}
			printMembers(cmd.OutOrStdout(), cmd.ErrOrStderr(), l)
			return nil
		},
	}
	f.add(cmd, false)
	return cmd
}

func printMembers(out, info io.Writer, l *node.MemberList) {
	fmt.Fprintf(info, "site %s: seq %d, %s, %d members\n", l.Site, l.Seq, l.Policy, len(l.Members))
	for _, m := range l.Members {
		if m.Name != "" {
			fmt.Fprintf(out, "%s\t%s\n", m.Node, m.Name)
		} else {
			fmt.Fprintln(out, m.Node)
		}
	}
}

func (f *memberFlags) siteID() (node.SiteID, error) {
	switch {
	case f.site != "" && f.keyFile != "":
		return node.SiteID{}, errors.New("--site and --key: give one")
	case f.site != "":
		return node.ParseSiteID(f.site)
	case f.keyFile != "":
		k, err := node.ReadKeyFile(f.keyFile)
		if err != nil {
			return node.SiteID{}, err
		}
		return node.SiteIDOf(k.Public().(ed25519.PublicKey)), nil
	}
	return node.SiteID{}, errors.New("name the site: --key FILE or --site SITE")
}

// edit signs the next member list with the site key and stores it: in the
// store (--store; the origin must not be running on it) or by posting it to
// a running origin (--origin), which pushes it on to its relays.
func (f *memberFlags) edit(cmd *cobra.Command, edit func(node.Policy, []node.Member) (node.Policy, []node.Member, error)) error {
	key, err := node.ReadKeyFile(f.keyFile)
	if err != nil {
		return err
	}
	var l *node.MemberList
	if f.originURL != "" {
		l, err = postNextMembers(cmd.Context(), f.originURL, key, edit)
	} else {
		st, oerr := openStore(f.storeDir)
		if oerr != nil {
			return oerr
		}
		defer st.Close()
		l, err = node.NewMemberStore(st).Edit(key, time.Now(), edit)
	}
	if err != nil {
		return err
	}
	printMembers(cmd.OutOrStdout(), cmd.ErrOrStderr(), l)
	return nil
}

// postNextMembers fetches the origin's list, signs the next one and posts it.
func postNextMembers(ctx context.Context, base string, key ed25519.PrivateKey, edit func(node.Policy, []node.Member) (node.Policy, []node.Member, error)) (*node.MemberList, error) {
	site := node.SiteIDOf(key.Public().(ed25519.PublicKey))
	cur, err := gateway.FetchMembers(ctx, nil, base, site)
	if err != nil && !errors.Is(err, node.ErrNotFound) {
		return nil, err
	}
	policy, members, seq := node.MembersFirst, []node.Member(nil), uint64(1)
	if cur != nil {
		policy, members, seq = cur.Policy, slices.Clone(cur.Members), cur.Seq+1
	}
	policy, members, err = edit(policy, members)
	if err != nil {
		return nil, err
	}
	l, err := node.NewMemberList(key, seq, policy, members, time.Now())
	if err != nil {
		return nil, err
	}
	if err := gateway.PostMembers(ctx, nil, base, l); err != nil {
		return nil, err
	}
	return l, nil
}
