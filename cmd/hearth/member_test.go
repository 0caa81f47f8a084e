package main

import (
	"crypto/ed25519"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/origin"
	"github.com/hearthcdn/hearth/node/pebblestore"
)

func writeTestKey(t *testing.T, path string) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := node.WriteKeyFile(path, k); err != nil {
		t.Fatal(err)
	}
	return k
}

func testNodeID(t *testing.T) string {
	_, k, _ := ed25519.GenerateKey(nil)
	return node.NodeIDOf(k.Public().(ed25519.PublicKey)).String()
}

// TestMemberCommands: add, rm, ls and policy, on the origin's store and on
// a running origin.
func TestMemberCommands(t *testing.T) {
	dir := t.TempDir()
	kf := filepath.Join(dir, "site.key")
	key := writeTestKey(t, kf)
	site := node.SiteIDOf(key.Public().(ed25519.PublicKey)).String()
	alice, bob := testNodeID(t), testNodeID(t)

	check := func(where []string, wantSeq string) {
		t.Helper()
		must := func(args ...string) (string, string) {
			t.Helper()
			out, errOut, err := run(t, append(args, where...)...)
			if err != nil {
				t.Fatalf("%v: %v\n%s", args, err, errOut)
			}
			return out, errOut
		}
		must("member", "add", alice, "--name", "alice", "--key", kf)
		must("member", "add", bob, "--key", kf)
		out, info := must("member", "ls", "--site", site)
		if !strings.Contains(out, alice+"\talice\n") || !strings.Contains(out, bob+"\n") || !strings.Contains(info, ", 2 members") {
			t.Fatalf("ls after add:\n%s%s", out, info)
		}
		must("member", "rm", bob, "--key", kf)
		must("member", "policy", "members-only", "--key", kf)
		out, info = must("member", "ls", "--key", kf)
		if out != alice+"\talice\n" || !strings.Contains(info, "seq "+wantSeq+", members-only, 1 members") {
			t.Fatalf("ls after rm:\n%s%s", out, info)
		}
		if _, _, err := run(t, append([]string{"member", "rm", bob, "--key", kf}, where...)...); err == nil {
			t.Fatal("removing a non-member succeeded")
		}
		if _, _, err := run(t, append([]string{"member", "add", "bnotakey", "--key", kf}, where...)...); err == nil {
			t.Fatal("adding a malformed node ID succeeded")
		}
	}

	store := filepath.Join(dir, "store")
	check([]string{"--store", store}, "4")

	// A running origin over that store: the commands go through it and
	// continue its sequence.
	st, err := pebblestore.Open(store, pebblestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	o, err := origin.New(origin.Config{Store: st, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(o.Handler())
	defer srv.Close()
	defer o.Close()
	check([]string{"--origin", srv.URL}, "8")
	if l := o.Members().Latest(); l == nil || l.Seq != 8 || len(l.Members) != 1 {
		t.Fatalf("origin holds %+v", l)
	}
}
