//go:build linux

package harness

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hearthcdn/hearth/js/inject"
	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/gateway"
)

// hearth mount: reads lazily from the origin, verified; with the site key a
// write becomes a new signed root that the origin accepts and a seeder
// replicates and serves.
func TestMountWriteReachesSeeders(t *testing.T) {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("FUSE unavailable here (/dev/fuse: %v)", err)
	}
	key := NewKey(t)
	src := t.TempDir()
	big := bytes.Repeat([]byte("0123456789abcdef"), 40000)
	WriteTree(t, src, map[string][]byte{
		"index.html":     []byte("<h1>home</h1>"),
		"media/big.bin":  big,
		"docs/page.html": []byte("page"),
	})
	origin := StartOrigin(t, key, src)
	seeder := StartSeeder(t, "seeder", key.Site, origin.URL())

	mnt, logb := startMount(t, key, "--origin", origin.URL(), "--key", key.Path, "--quiet", "200ms")
	got, err := os.ReadFile(filepath.Join(mnt, "media", "big.bin"))
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("lazy read through the mount: %v", err)
	}

	// Write: a new page and a changed one, then fsync.
	if err := os.WriteFile(filepath.Join(mnt, "docs", "new.html"), []byte("written through FUSE"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mnt, "index.html"), []byte("<h1>home v2</h1>"), 0o644); err != nil {
		t.Fatal(err)
	}
	fh, err := os.Open(mnt)
	if err != nil {
		t.Fatal(err)
	}
	if err := fh.Sync(); err != nil {
		t.Fatalf("fsync: %v\n%s", err, logb.String())
	}
	fh.Close()

	// The seeder learns of the new record and serves the new files.
	// (Pages come with the browser client's loader added, when the
	// binary carries the client.)
	page := func(b []byte) string { return strings.Replace(string(b), inject.Tag, "", 1) }
	Eventually(t, 30*time.Second, func() (bool, string) {
		code, body, err := seeder.Get("/docs/new.html")
		return err == nil && code == 200 && page(body) == "written through FUSE", "seeder has not served the new page yet"
	})
	code, body, _ := seeder.Get("/index.html")
	if code != 200 || page(body) != "<h1>home v2</h1>" {
		t.Fatalf("seeder serves %d %q", code, body)
	}
	code, body, _ = origin.Get(gateway.RecordPath(key.Site))
	if code != 200 {
		t.Fatalf("origin record: %d", code)
	}
	rec, err := node.ParseRootRecordFor(key.Site, body)
	if err != nil || rec.Seq < 2 {
		t.Fatalf("origin's latest record: %v %+v", err, rec)
	}
	if !strings.Contains(logb.String(), "published") {
		t.Fatalf("mount log does not report publishing:\n%s", logb.String())
	}
}

// syncBuffer is a bytes.Buffer safe for a child's stdout and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// hearth mount --relay with no origin: blocks come from a seeder over
// WebRTC through the relay, and the root record from the relay.
func TestMountFromRelayPeers(t *testing.T) {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("FUSE unavailable here (/dev/fuse: %v)", err)
	}
	key := NewKey(t)
	src := t.TempDir()
	big := bytes.Repeat([]byte("fedcba9876543210"), 50000)
	WriteTree(t, src, map[string][]byte{"index.html": []byte("<h1>home</h1>"), "media/big.bin": big})
	relay := Start(t, "relay", "", "relay")
	relayURL := "ws://" + relay.Addr + "/ws"
	origin := StartOrigin(t, key, src)
	seeder := StartSeeder(t, "seeder", key.Site, origin.URL(), "--relay", relayURL)
	Eventually(t, 30*time.Second, func() (bool, string) {
		code, _, err := seeder.Health()
		return err == nil && code == 200, "seeder not ready"
	})
	origin.Stop() // the mount must not need it

	mnt, _ := startMount(t, key, "--relay", relayURL)
	got, err := os.ReadFile(filepath.Join(mnt, "media", "big.bin"))
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("read through the mount from relay peers: %v", err)
	}
}

// startMount runs `hearth mount` for key's site on a fresh mount point with
// its own store, plus args, and waits until the root shows. Cleanup
// interrupts it (unmounting), and prints its log if the test failed.
func startMount(t *testing.T, key Key, args ...string) (string, *syncBuffer) {
	t.Helper()
	dir := t.TempDir()
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	logb := &syncBuffer{}
	cmd := exec.Command(Binary(t), append([]string{"mount", key.Site.String(), mnt, "--store", filepath.Join(dir, "store")}, args...)...)
	cmd.Stdout, cmd.Stderr = logb, logb
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		_ = syscall.Unmount(mnt, syscall.MNT_DETACH)
		if t.Failed() {
			t.Logf("--- mount log ---\n%s", logb.String())
		}
	})
	Eventually(t, 30*time.Second, func() (bool, string) {
		_, err := os.Stat(filepath.Join(mnt, "index.html"))
		return err == nil, "mount not ready: " + logb.String()
	})
	return mnt, logb
}
