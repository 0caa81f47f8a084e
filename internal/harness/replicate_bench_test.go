//go:build linux

package harness_test

import (
	"context"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	chunker "github.com/ipfs/boxo/chunker"
	"github.com/ipfs/boxo/ipld/unixfs/importer/balanced"
	"github.com/ipfs/boxo/ipld/unixfs/importer/helpers"
	cid "github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"

	"github.com/hearthcdn/hearth/internal/harness"
	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/pebblestore"
)

// tinyLeafBytes is the length of each raw leaf of the tiny-block DAG.
const tinyLeafBytes = 48

// BenchmarkReplicateTinyBlocks replicates a DAG of many tiny blocks (a
// file of 48-byte raw leaves, 174 links per node: about 1,000,000 blocks,
// or HEARTH_BENCH_BLOCKS) from an origin process to a seeder process on
// loopback. Metrics: blocks/s (from the seeder's start to its first pin)
// and seeder-peak-RSS-MiB (its VmHWM).
func BenchmarkReplicateTinyBlocks(b *testing.B) {
	leaves := 1_000_000 - 1_000_000/node.MaxLinks - 40
	if v := os.Getenv("HEARTH_BENCH_BLOCKS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 2 {
			b.Fatalf("HEARTH_BENCH_BLOCKS=%q: want a count of blocks", v)
		}
		leaves = n - n/node.MaxLinks - 1
	}
	key := harness.NewKey(b)
	odir := b.TempDir()
	blocks := buildTinyLeafSite(b, filepath.Join(odir, "store"), key.Path, leaves)
	origin := harness.Start(b, "origin", odir, "origin", "--store", filepath.Join(odir, "store"), "--key", key.Path)

	b.ResetTimer()
	var rate, peak float64
	for range b.N {
		start := time.Now()
		s := harness.StartSeeder(b, "seeder", key.Site, origin.URL())
		s.WaitMetric("hearth_pinned_sequence", 30*time.Minute, func(v float64) bool { return v == 1 })
		elapsed := time.Since(start)
		_, hwm, err := s.MemStatus()
		if err != nil {
			b.Fatal(err)
		}
		s.Stop()
		rate = float64(blocks) / elapsed.Seconds()
		peak = float64(hwm) / (1 << 20)
	}
	b.StopTimer()
	b.ReportMetric(float64(blocks), "blocks")
	b.ReportMetric(rate, "blocks/s")
	b.ReportMetric(peak, "seeder-peak-RSS-MiB")
}

// buildTinyLeafSite writes into a new store at dir a file of n raw leaves
// of tinyLeafBytes distinct bytes each, balanced, signs it as the site's
// first root with the key at keyPath, and returns the DAG's block count.
func buildTinyLeafSite(tb testing.TB, dir, keyPath string, n int) int {
	tb.Helper()
	ctx := context.Background()
	st, err := pebblestore.Open(dir, pebblestore.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	defer st.Close()
	ds := &countingDAG{w: node.NewBatchWriter(st, 0)}
	params := helpers.DagBuilderParams{Dagserv: ds, Maxlinks: node.MaxLinks, RawLeaves: true, CidBuilder: cid.V1Builder{Codec: cid.DagProtobuf, MhType: 0x12}}
	db, err := params.New(chunker.NewSizeSplitter(&counterReader{left: int64(n) * tinyLeafBytes}, tinyLeafBytes))
	if err != nil {
		tb.Fatal(err)
	}
	nd, err := balanced.Layout(db)
	if err != nil {
		tb.Fatal(err)
	}
	if err := ds.w.Flush(ctx); err != nil {
		tb.Fatal(err)
	}
	key, err := node.ReadKeyFile(keyPath)
	if err != nil {
		tb.Fatal(err)
	}
	rec, err := node.NewRecordLog(st).SignNext(key, nd.Cid(), time.Now())
	if err != nil {
		tb.Fatal(err)
	}
	if err := node.PutPin(st, rec.Site, node.Pin{Seq: rec.Seq, Root: rec.Root}); err != nil {
		tb.Fatal(err)
	}
	return int(ds.blocks.Load())
}

// counterReader yields left bytes: consecutive big-endian counters, so
// that every tinyLeafBytes chunk is distinct.
type counterReader struct {
	left int64
	i    uint64
	buf  []byte
}

func (r *counterReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, io.EOF
	}
	if len(r.buf) == 0 {
		r.buf = make([]byte, tinyLeafBytes)
		binary.BigEndian.PutUint64(r.buf, r.i)
		r.i++
	}
	n := copy(p, r.buf)
	if int64(n) > r.left {
		n = int(r.left)
	}
	r.buf = r.buf[n:]
	r.left -= int64(n)
	return n, nil
}

// countingDAG is an ipld.DAGService writing into a node.BatchWriter.
type countingDAG struct {
	w      *node.BatchWriter
	blocks atomic.Int64
}

func (d *countingDAG) Get(ctx context.Context, c cid.Cid) (ipld.Node, error) {
	return nil, ipld.ErrNotFound{Cid: c}
}

func (d *countingDAG) GetMany(ctx context.Context, cs []cid.Cid) <-chan *ipld.NodeOption {
	out := make(chan *ipld.NodeOption, len(cs))
	for _, c := range cs {
		out <- &ipld.NodeOption{Err: ipld.ErrNotFound{Cid: c}}
	}
	close(out)
	return out
}

func (d *countingDAG) Add(ctx context.Context, nd ipld.Node) error {
	d.blocks.Add(1)
	return d.w.Put(ctx, node.Block{Cid: nd.Cid(), Data: nd.RawData()})
}

func (d *countingDAG) AddMany(ctx context.Context, nds []ipld.Node) error {
	for _, nd := range nds {
		if err := d.Add(ctx, nd); err != nil {
			return err
		}
	}
	return nil
}

func (d *countingDAG) Remove(context.Context, cid.Cid) error       { return nil }
func (d *countingDAG) RemoveMany(context.Context, []cid.Cid) error { return nil }
