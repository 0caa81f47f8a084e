//go:build linux

package harness_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/internal/dagtest"
	"github.com/hearthcdn/hearth/internal/harness"
	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/pebblestore"
)

// stopGrace bounds the wait for a process to exit after SIGTERM. It is far
// above the second a command takes to stop; without a context check in the
// loop at work, the process would not exit at all.
const stopGrace = 10 * time.Second

// hugeDAGs stores, in a new store under dir, a file of 2^56 bytes made of
// one repeated 64 KiB leaf and a directory of 10^12 one-byte files made of
// twelve levels that each list the level below ten times: both are
// legitimate, and writing either never ends. It returns the store's path
// and the two roots.
func hugeDAGs(t *testing.T, dir string) (string, node.Block, node.Block) {
	t.Helper()
	blocks := []node.Block{dagtest.Raw(make([]byte, 64<<10))}
	size := uint64(64 << 10)
	for range 4 {
		blocks = append(blocks, dagtest.Repeat(blocks[len(blocks)-1], size, 1024))
		size *= 1024
	}
	file := blocks[len(blocks)-1]
	one := dagtest.Raw([]byte("x"))
	d := dagtest.Dir(dagtest.Link("f", one))
	blocks = append(blocks, one, d)
	for range 12 {
		var links []node.Link
		for i := range 10 {
			links = append(links, dagtest.Link(fmt.Sprint(i), d))
		}
		d = dagtest.Dir(links...)
		blocks = append(blocks, d)
	}
	path := filepath.Join(dir, "store")
	st, err := pebblestore.Open(path, pebblestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dagtest.Put(t, st, blocks...)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	return path, file, d
}

// signalBusy starts `hearth args...` in dir, waits until busy (given the
// process id) reports that it is at work, sends SIGTERM and waits at most
// stopGrace for the process to exit. It returns its stderr and how it
// exited.
func signalBusy(t *testing.T, dir string, stdout io.Writer, busy func(pid int) (bool, string), args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(harness.Binary(t), args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }() // owned here: every path below receives from done
	harness.Eventually(t, harness.StartTimeout, func() (bool, string) {
		select {
		case err := <-done:
			t.Fatalf("hearth %s ended before it was stopped: %v\n%s", strings.Join(args, " "), err, stderr.String())
		default:
		}
		return busy(cmd.Process.Pid)
	})
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		return stderr.String(), err
	case <-time.After(stopGrace):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("hearth %s still running %s after SIGTERM\n%s", strings.Join(args, " "), stopGrace, stderr.String())
		return "", nil
	}
}

// stopsOnSIGTERM runs a command under signalBusy and requires it to exit
// with the error the cancelled command returns (exit status 1, "context
// canceled"): not killed by the signal and not done.
func stopsOnSIGTERM(t *testing.T, dir string, stdout io.Writer, busy func(pid int) (bool, string), args ...string) {
	t.Helper()
	stderr, err := signalBusy(t, dir, stdout, busy, args...)
	if !cancelled(err, stderr) {
		t.Fatalf("hearth %s after SIGTERM: %v, stderr:\n%s", strings.Join(args, " "), err, stderr)
	}
}

// daemonStopsOnSIGTERM runs a daemon under signalBusy and requires it to
// shut down: exit status 0, or 1 with "context canceled" if the signal
// came while it was starting; not killed by the signal.
func daemonStopsOnSIGTERM(t *testing.T, dir string, busy func(pid int) (bool, string), args ...string) {
	t.Helper()
	stderr, err := signalBusy(t, dir, io.Discard, busy, args...)
	if err != nil && !cancelled(err, stderr) {
		t.Fatalf("hearth %s after SIGTERM: %v, stderr:\n%s", strings.Join(args, " "), err, stderr)
	}
}

// cancelled reports whether a process exited with status 1 and the
// cancelled context's error.
func cancelled(err error, stderr string) bool {
	var ee *exec.ExitError
	return errors.As(err, &ee) && ee.ExitCode() == 1 && strings.Contains(stderr, context.Canceled.Error())
}

// readBytes returns how many bytes process pid has read so far, by read
// system calls (rchar in /proc/PID/io).
func readBytes(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "rchar: "); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("no rchar in /proc/%d/io", pid)
}

// readMore reports, for a busy probe, whether pid has read more than n bytes.
func readMore(n int64) func(pid int) (bool, string) {
	return func(pid int) (bool, string) {
		got, err := readBytes(pid)
		if err != nil {
			return false, err.Error()
		}
		return got > n, fmt.Sprintf("%d bytes read, want more than %d", got, n)
	}
}

// countWriter counts the bytes written to it.
type countWriter struct{ n atomic.Int64 }

func (c *countWriter) Write(p []byte) (int, error) {
	c.n.Add(int64(len(p)))
	return len(p), nil
}

// `hearth get` stops within a bounded time of SIGTERM while it writes a
// huge file to stdout or a huge tree to a directory: every long loop
// checks the signal's context.
func TestGetStopsOnSIGTERM(t *testing.T) {
	dir := t.TempDir()
	store, file, tree := hugeDAGs(t, dir)

	t.Run("file", func(t *testing.T) {
		var out countWriter
		stopsOnSIGTERM(t, dir, &out, func(int) (bool, string) {
			return out.n.Load() > 0, "no bytes written yet"
		}, "get", "--store", store, file.Cid.String())
	})
	t.Run("tree", func(t *testing.T) {
		out := filepath.Join(dir, "tree")
		stopsOnSIGTERM(t, dir, io.Discard, func(int) (bool, string) {
			_, err := os.Stat(filepath.Join(out, "0", "0"))
			return err == nil, fmt.Sprint(err)
		}, "get", "--store", store, tree.Cid.String(), "-o", out)
	})
}

// manyBlocks returns a directory of subdirs directories of per distinct
// one-line files each, and all its blocks, the root first and every
// parent before its children.
func manyBlocks(subdirs, per int) (node.Block, []node.Block) {
	var dirs, leaves []node.Block
	var links []node.Link
	for d := range subdirs {
		var entries []node.Link
		for f := range per {
			leaf := dagtest.Raw([]byte(fmt.Sprintf("file %d of directory %d\n", f, d)))
			leaves = append(leaves, leaf)
			entries = append(entries, dagtest.Link(fmt.Sprintf("%06d", f), leaf))
		}
		sub := dagtest.Dir(entries...)
		dirs = append(dirs, sub)
		links = append(links, dagtest.Link(fmt.Sprintf("%06d", d), sub))
	}
	root := dagtest.Dir(links...)
	return root, append(append([]node.Block{root}, dirs...), leaves...)
}

// countingGetter counts the Get calls to g.
type countingGetter struct {
	g    node.Getter
	gets atomic.Int64
}

func (c *countingGetter) Get(ctx context.Context, id cid.Cid) ([]byte, error) {
	c.gets.Add(1)
	return c.g.Get(ctx, id)
}

// The commands and daemons that walk a whole DAG stop within a bounded
// time of SIGTERM while they walk one of 300,150 distinct blocks: `hearth
// car export`, `car import` and `verify`, and `hearth seed` replicating it.
func TestWalksStopOnSIGTERM(t *testing.T) {
	dir := t.TempDir()
	root, blocks := manyBlocks(150, 2000)
	store := filepath.Join(dir, "store")
	st, err := pebblestore.Open(store, pebblestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dagtest.Put(t, st, blocks...)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	t.Run("car export", func(t *testing.T) {
		out := t.TempDir()
		stopsOnSIGTERM(t, out, io.Discard, func(int) (bool, string) {
			tmp, _ := filepath.Glob(filepath.Join(out, ".hearth-car-*"))
			for _, p := range tmp {
				if fi, err := os.Stat(p); err == nil && fi.Size() > 1<<20 {
					return true, ""
				}
			}
			return false, fmt.Sprintf("no CAR of 1 MiB yet: %v", tmp)
		}, "car", "export", "--store", store, root.Cid.String(), filepath.Join(out, "site.car"))
	})
	t.Run("verify", func(t *testing.T) {
		stopsOnSIGTERM(t, dir, io.Discard, readMore(4<<20), "verify", "--store", store, root.Cid.String())
	})
	t.Run("car import", func(t *testing.T) {
		var buf bytes.Buffer
		cw, err := node.NewCARWriter(&buf, root.Cid)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range blocks {
			if err := cw.Put(context.Background(), b); err != nil {
				t.Fatal(err)
			}
		}
		car := filepath.Join(t.TempDir(), "site.car")
		if err := os.WriteFile(car, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		stopsOnSIGTERM(t, dir, io.Discard, readMore(1<<20), "car", "import", "--store", filepath.Join(t.TempDir(), "store"), car)
	})
	t.Run("seed", func(t *testing.T) {
		mem := node.NewMemStore()
		dagtest.Put(t, mem, blocks...)
		g := &countingGetter{g: mem}
		o := startFakeOrigin(t, g)
		key := newKey(t)
		o.set(record(t, key, 1, root.Cid))
		site := node.SiteIDOf(key.Public().(ed25519.PublicKey))
		daemonStopsOnSIGTERM(t, dir, func(int) (bool, string) {
			n := g.gets.Load()
			return n > 2000, fmt.Sprintf("%d blocks served", n)
		}, "seed", site.String(), "--origin", o.url, "--store", filepath.Join(t.TempDir(), "store"), "--listen", "127.0.0.1:0")
	})
}

// `hearth origin --site DIR` stops within a bounded time of SIGTERM while
// it imports DIR, here in the middle of a sparse file of 1 TiB.
func TestOriginStopsOnSIGTERM(t *testing.T) {
	dir := t.TempDir()
	site := filepath.Join(dir, "site")
	if err := os.Mkdir(site, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(site, "big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1 << 40); err != nil {
		t.Skipf("no sparse file of 1 TiB here: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	key := harness.NewKey(t)
	stopsOnSIGTERM(t, dir, io.Discard, readMore(256<<20),
		"origin", "--store", filepath.Join(dir, "store"), "--key", key.Path, "--site", site, "--listen", "127.0.0.1:0")
}

// `hearth origin` stops within a bounded time of SIGTERM while it sends a
// 256 MiB file to a client that does not read: requests in flight get a
// short grace, then their connections are closed.
func TestOriginStopsWhileServing(t *testing.T) {
	dir := t.TempDir()
	site := filepath.Join(dir, "site")
	if err := os.Mkdir(site, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(site, "index.html"), []byte("<h1>home</h1>"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(site, "big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(256 << 20); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	key := harness.NewKey(t)
	addrFile := filepath.Join(dir, "addr")
	var conn net.Conn
	t.Cleanup(func() {
		if conn != nil {
			conn.Close()
		}
	})
	daemonStopsOnSIGTERM(t, dir, func(int) (bool, string) {
		if conn == nil {
			addr, err := os.ReadFile(addrFile)
			if err != nil || len(addr) == 0 {
				return false, fmt.Sprint("not listening yet: ", err)
			}
			c, err := net.Dial("tcp", strings.TrimSpace(string(addr)))
			if err != nil {
				return false, err.Error()
			}
			conn = c
			// The request; of the answer, only its first bytes are read,
			// which shows the origin is sending it.
			if _, err := fmt.Fprintf(c, "GET /big.bin HTTP/1.1\r\nHost: origin\r\n\r\n"); err != nil {
				return false, err.Error()
			}
			if _, err := io.ReadFull(c, make([]byte, 12)); err != nil {
				return false, err.Error()
			}
		}
		return true, ""
	}, "origin", "--store", filepath.Join(dir, "store"), "--key", key.Path, "--site", site,
		"--listen", "127.0.0.1:0", "--addr-file", addrFile)
}
