package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/hearthcdn/hearth/node"
)

func newKeygenCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "keygen [--out FILE]",
		Short: "Create a site key (ed25519, PKCS #8 PEM, mode 0600) and print the site ID",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pub, priv, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				return err
			}
			if err := node.WriteKeyFile(out, priv); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), node.SiteIDOf(pub))
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "site.key", "private key file to create")
	return cmd
}
