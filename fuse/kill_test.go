package fuse_test

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/fuse"
	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/importer"
	"github.com/hearthcdn/hearth/node/pebblestore"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv("HEARTH_FUSE_CHILD"); dir != "" {
		os.Exit(killChild(dir))
	}
	os.Exit(m.Run())
}

// killChild mounts dir/mnt writable over a pebble store in dir/store,
// signing each new root into the store's record log, and serves it until
// killed. It prints "mounted", then "commit N" after each durable commit.
// The writer must be another process: a process killed while its own
// threads wait on its own FUSE mount never finishes dying.
func killChild(dir string) int {
	st, err := pebblestore.Open(filepath.Join(dir, "store"), pebblestore.Options{ReserveBytes: -1})
	if err != nil {
		fmt.Println("error", err)
		return 2
	}
	key, _ := os.ReadFile(filepath.Join(dir, "key"))
	priv := ed25519.PrivateKey(key)
	log := node.NewRecordLog(st)
	rec, err := log.Latest(node.SiteIDOf(priv.Public().(ed25519.PublicKey)))
	if err != nil {
		fmt.Println("error", err)
		return 2
	}
	n := 0
	f, err := fuse.Mount(filepath.Join(dir, "mnt"), fuse.Options{
		Getter: st, Root: rec.Root, Writable: true, Store: st,
		ScratchDir: filepath.Join(dir, "scratch"), QuietPeriod: time.Hour,
		Commit: func(ctx context.Context, root cid.Cid) error {
			if _, err := log.SignNext(priv, root, time.Now()); err != nil {
				return err
			}
			n++
			fmt.Println("commit", n)
			return nil
		},
	})
	if err != nil {
		fmt.Println("error", err)
		return 2
	}
	_ = f
	fmt.Println("mounted")
	// Serve until killed; the parent writes.
	select {}
}

// kill -9 during writes, then remount: the store is consistent and the last
// committed root is intact.
func TestKill9DuringWrites(t *testing.T) {
	needFUSE(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	writeTree(t, src, map[string][]byte{"index.html": []byte("home")})
	st, err := pebblestore.Open(filepath.Join(dir, "store"), pebblestore.Options{ReserveBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	root, err := importer.New(st, importer.Options{}).ImportPath(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	site := node.SiteIDOf(priv.Public().(ed25519.PublicKey))
	if _, err := node.NewRecordLog(st).SignNext(priv, root, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "key"), priv, 0o600); err != nil {
		t.Fatal(err)
	}
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "HEARTH_FUSE_CHILD="+dir)
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(mnt, syscall.MNT_DETACH) })
	sc := bufio.NewScanner(out)
	if !sc.Scan() || sc.Text() != "mounted" {
		_ = cmd.Process.Kill()
		t.Fatalf("child: %q", sc.Text())
	}
	lines := make(chan string, 1000)
	go func() {
		defer close(lines)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	// Write files, fsyncing every 20, until 4 commits went through; then
	// kill -9 in the middle of the next writes.
	commits := 0
	deadline := time.Now().Add(60 * time.Second)
	for i := 0; commits < 4 && time.Now().Before(deadline) && i < 100000; i++ {
		p := filepath.Join(mnt, fmt.Sprintf("d%d", i%7), fmt.Sprintf("f%d", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(strings.Repeat(fmt.Sprint(i), 1000)), 0o644); err != nil {
			t.Fatal(err)
		}
		if i%20 == 19 {
			fsync(t, p)
		}
	drain:
		for {
			select {
			case l := <-lines:
				if !strings.HasPrefix(l, "commit") {
					t.Fatalf("child: %s", l)
				}
				commits++
			default:
				break drain
			}
		}
	}
	go func() { // writes racing the kill; they fail once the mount is gone
		for i := 0; i < 200; i++ {
			if os.WriteFile(filepath.Join(mnt, fmt.Sprintf("late%d", i)), []byte("late"), 0o644) != nil {
				return
			}
		}
	}()
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	if commits < 4 {
		t.Fatalf("only %d commits before the deadline", commits)
	}
	if err := syscall.Unmount(mnt, syscall.MNT_DETACH); err != nil {
		t.Fatalf("unmounting the dead mount: %v", err)
	}

	st, err = pebblestore.Open(filepath.Join(dir, "store"), pebblestore.Options{ReserveBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rec, err := node.NewRecordLog(st).Latest(site)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Seq < uint64(commits) {
		t.Fatalf("latest record seq %d after %d commits", rec.Seq, commits)
	}
	// Every block of the last committed root is there and verifies.
	blocks := reachable(t, st, rec.Root)
	n, err := node.Resolve(context.Background(), st, rec.Root, []string{"index.html"})
	if err != nil || string(n.Data) != "home" || blocks < 20 {
		t.Fatalf("last root: %v, %d blocks", err, blocks)
	}
	// Remount it: it reads.
	f, err := fuse.Mount(mnt, fuse.Options{Getter: st, Root: rec.Root})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Unmount()
	ents, err := os.ReadDir(mnt)
	if err != nil || len(ents) < 2 {
		t.Fatalf("remounted root: %d entries, %v", len(ents), err)
	}
}
