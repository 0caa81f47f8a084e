//go:build linux

package harness

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hearthcdn/hearth/node"
)

// Key is a site key made by `hearth keygen`.
type Key struct {
	Path string
	Site node.SiteID
}

// NewKey creates a site key in a temporary directory.
func NewKey(t testing.TB) Key {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "site.key")
	out, errOut, err := Run(t, dir, time.Minute, "keygen", "--out", path)
	if err != nil {
		t.Fatalf("keygen: %v\n%s", err, errOut)
	}
	site, err := node.ParseSiteID(strings.TrimSpace(out))
	if err != nil {
		t.Fatal(err)
	}
	return Key{Path: path, Site: site}
}

// StartOrigin starts `hearth origin` for key with its store in its own
// directory, publishing src when set, plus extra flags.
func StartOrigin(t testing.TB, key Key, src string, extra ...string) *Proc {
	t.Helper()
	dir := t.TempDir()
	args := []string{"origin", "--store", filepath.Join(dir, "store"), "--key", key.Path}
	if src != "" {
		args = append(args, "--site", src)
	}
	return Start(t, "origin", dir, append(args, extra...)...)
}

// StartSeeder starts `hearth seed` for site from originURL, with its store
// in its own directory, plus extra flags.
func StartSeeder(t testing.TB, name string, site node.SiteID, originURL string, extra ...string) *Proc {
	t.Helper()
	dir := t.TempDir()
	args := []string{"seed", site.String(), "--origin", originURL, "--store", filepath.Join(dir, "store")}
	return Start(t, name, dir, append(args, extra...)...)
}

// StorePath is the store directory of a node started by StartOrigin or StartSeeder.
func (p *Proc) StorePath() string { return filepath.Join(p.Dir, "store") }
