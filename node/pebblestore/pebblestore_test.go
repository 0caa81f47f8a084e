package pebblestore_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/pebblestore"
)

func block(i int, size int) node.Block {
	d := make([]byte, size)
	copy(d, fmt.Sprintf("block %d", i))
	for j := 16; j < size; j++ {
		d[j] = byte(i + j)
	}
	return node.Block{Cid: node.Sum(node.CodecRaw, d), Data: d}
}

func TestStoreOps(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := pebblestore.Open(dir, pebblestore.Options{ReserveBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	var want []node.Block
	for i := 0; i < 50; i++ {
		want = append(want, block(i, 1000+i))
	}
	if err := s.PutMany(ctx, want[:40]); err != nil {
		t.Fatal(err)
	}
	for _, b := range want[40:] {
		if err := s.Put(ctx, b.Cid, b.Data); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete(ctx, want[0].Cid); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.Has(ctx, want[0].Cid); ok {
		t.Fatal("deleted block still there")
	}
	if _, err := s.Get(ctx, want[0].Cid); !errors.Is(err, node.ErrNotFound) {
		t.Fatalf("get deleted: %v", err)
	}
	if n, err := s.GetSize(ctx, want[5].Cid); err != nil || n != 1005 {
		t.Fatalf("size %d %v", n, err)
	}
	if err := s.PutMeta("pin/x", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = pebblestore.Open(dir, pebblestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	seen := map[cid.Cid]bool{}
	for c, err := range s.AllKeys(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		seen[c] = true
	}
	if len(seen) != 49 {
		t.Fatalf("%d keys after reopen, want 49", len(seen))
	}
	for _, b := range want[1:] {
		d, err := s.Get(ctx, b.Cid)
		if err != nil || node.Verify(b.Cid, d) != nil {
			t.Fatalf("block %s: %v", b.Cid, err)
		}
	}
	if v, err := s.GetMeta("pin/x"); err != nil || string(v) != "1" {
		t.Fatalf("meta %q %v", v, err)
	}
	// A second open of the same directory fails clearly instead of corrupting it.
	if _, err := pebblestore.Open(dir, pebblestore.Options{}); err == nil {
		t.Fatal("opened a locked store twice")
	}
}

// The child half of TestKill9: write batches, print "ack N" after each
// durable batch, until killed.
func TestMain(m *testing.M) {
	if dir := os.Getenv("HEARTH_PEBBLE_CHILD"); dir != "" {
		s, err := pebblestore.Open(dir, pebblestore.Options{ReserveBytes: -1})
		if err != nil {
			fmt.Println("error", err)
			os.Exit(2)
		}
		for i := 0; i < 100000; i++ {
			batch := make([]node.Block, 8)
			for j := range batch {
				batch[j] = block(i*8+j, 4096)
			}
			if err := s.PutMany(context.Background(), batch); err != nil {
				fmt.Println("error", err)
				os.Exit(2)
			}
			fmt.Println("ack", i)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestKill9KeepsAcknowledgedBlocks(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "HEARTH_PEBBLE_CHILD="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	acked := -1
	deadline := time.Now().Add(60 * time.Second)
	for sc.Scan() && time.Now().Before(deadline) {
		f := strings.Fields(sc.Text())
		if len(f) != 2 || f[0] != "ack" {
			t.Fatalf("child: %s", sc.Text())
		}
		acked, _ = strconv.Atoi(f[1])
		if acked >= 200 {
			break
		}
	}
	// While the child has it open, the store refuses a second process.
	if s, err := pebblestore.Open(dir, pebblestore.Options{}); !errors.Is(err, pebblestore.ErrInUse) {
		if err == nil {
			s.Close()
		}
		t.Errorf("opening a store another process has open: %v, want ErrInUse", err)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if acked < 200 {
		t.Fatalf("child acknowledged only %d batches", acked)
	}
	s, err := pebblestore.Open(dir, pebblestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	for i := 0; i <= acked*8+7; i++ {
		b := block(i, 4096)
		d, err := s.Get(ctx, b.Cid)
		if err != nil {
			t.Fatalf("acknowledged block %d lost after kill -9: %v", i, err)
		}
		if err := node.Verify(b.Cid, d); err != nil {
			t.Fatalf("block %d: %v", i, err)
		}
	}
}

// A real full disk: a small tmpfs. Writes fail with ErrDiskFull before
// pebble runs out of space, and everything acknowledged stays readable.
func TestFullDisk(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=12m"); err != nil {
		t.Skipf("cannot mount a tmpfs here (needs root): %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	opts := pebblestore.Options{ReserveBytes: 2 << 20}
	s, err := pebblestore.Open(dir+"/db", opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var acked []node.Block
	var full error
	for i := 0; i < 1000; i++ {
		b := block(i, 64<<10)
		if err := s.PutMany(ctx, []node.Block{b}); err != nil {
			full = err
			break
		}
		acked = append(acked, b)
	}
	if !errors.Is(full, pebblestore.ErrDiskFull) || !errors.Is(full, syscall.ENOSPC) {
		t.Fatalf("after %d blocks: %v", len(acked), full)
	}
	if len(acked) < 10 {
		t.Fatalf("only %d blocks fit", len(acked))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = pebblestore.Open(dir+"/db", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, b := range acked {
		if _, err := s.Get(ctx, b.Cid); err != nil {
			t.Fatalf("lost %s: %v", b.Cid, err)
		}
	}
}

// TestCacheAfterBulkWrite: after a write of many memtables' worth of
// blocks, the memtables pebble charges to the block cache leave it room,
// so reading a block twice reads the table once.
func TestCacheAfterBulkWrite(t *testing.T) {
	ctx := context.Background()
	st, err := pebblestore.Open(t.TempDir(), pebblestore.Options{CacheBytes: 1 << 20, MemTableBytes: 1 << 20, ReserveBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var first node.Block
	for i := range 16 {
		var batch []node.Block
		for j := range 4096 {
			batch = append(batch, block(i*4096+j, 48))
		}
		if i == 0 {
			first = batch[0]
		}
		if err := st.PutMany(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	if err := pebblestore.Flush(st); err != nil { // the block is read from a table
		t.Fatal(err)
	}
	if _, err := st.Get(ctx, first.Cid); err != nil {
		t.Fatal(err)
	}
	before := pebblestore.BlockCacheHits(st)
	for range 3 {
		if _, err := st.Get(ctx, first.Cid); err != nil {
			t.Fatal(err)
		}
	}
	if hits := pebblestore.BlockCacheHits(st) - before; hits == 0 {
		t.Fatalf("3 reads of one stored block: no block cache hits")
	}
}
