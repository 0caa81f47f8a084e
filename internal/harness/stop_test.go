//go:build linux

package harness_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

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

// stopsOnSIGTERM starts `hearth args...`, waits until busy reports that it
// is at work, sends SIGTERM and requires the process to exit within
// stopGrace, with the error the cancelled command returns (exit status 1,
// "context canceled"), not killed by the signal and not done.
func stopsOnSIGTERM(t *testing.T, dir string, stdout io.Writer, busy func() (bool, string), args ...string) {
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
		return busy()
	})
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var err error
	select {
	case err = <-done:
	case <-time.After(stopGrace):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("hearth %s still running %s after SIGTERM", strings.Join(args, " "), stopGrace)
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(stderr.String(), context.Canceled.Error()) {
		t.Fatalf("hearth %s after SIGTERM: %v, stderr:\n%s", strings.Join(args, " "), err, stderr.String())
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
		stopsOnSIGTERM(t, dir, &out, func() (bool, string) {
			return out.n.Load() > 0, "no bytes written yet"
		}, "get", "--store", store, file.Cid.String())
	})
	t.Run("tree", func(t *testing.T) {
		out := filepath.Join(dir, "tree")
		stopsOnSIGTERM(t, dir, io.Discard, func() (bool, string) {
			_, err := os.Stat(filepath.Join(out, "0", "0"))
			return err == nil, fmt.Sprint(err)
		}, "get", "--store", store, tree.Cid.String(), "-o", out)
	})
}
