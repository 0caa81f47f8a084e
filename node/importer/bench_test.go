package importer_test

import (
	"context"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"
	"github.com/zeebo/blake3"

	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/importer"
	"github.com/hearthcdn/hearth/node/pebblestore"
)

// discardStore counts blocks and drops them: it isolates the importer's
// own cost from the store's.
type discardStore struct {
	node.MemStore
	n int
}

func (d *discardStore) PutMany(_ context.Context, bs []node.Block) error { d.n += len(bs); return nil }
func (d *discardStore) Put(context.Context, cid.Cid, []byte) error       { d.n++; return nil }

// patternReader yields n bytes of a pattern that differs in every chunk.
type patternReader struct {
	left, off int64
	buf       []byte
}

func newPatternReader(n int64) *patternReader {
	buf := randBytes(4<<20, 42)
	return &patternReader{left: n, buf: buf}
}

func (p *patternReader) Read(b []byte) (int, error) {
	if p.left == 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > p.left {
		b = b[:p.left]
	}
	n := copy(b, p.buf[p.off%int64(len(p.buf)):])
	// Stamp the offset so no two chunks are equal.
	if n >= 8 {
		for i := 0; i < 8; i++ {
			b[i] = byte(p.off >> (8 * i))
		}
	}
	p.off += int64(n)
	p.left -= int64(n)
	return n, nil
}

// BenchmarkImportLargeFile imports 1 GiB and reports MB/s next to the raw
// BLAKE3 rate of the same bytes, chunk by chunk, measured in the same run.
func BenchmarkImportLargeFile(b *testing.B) {
	const size = 1 << 30
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		// Baseline: BLAKE3 of every 256 KiB chunk, reading from the same source.
		r := newPatternReader(size)
		buf := make([]byte, node.ChunkSize)
		start := time.Now()
		for {
			n, err := io.ReadFull(r, buf)
			if n > 0 {
				blake3.Sum256(buf[:n])
			}
			if err != nil {
				break
			}
		}
		raw := time.Since(start)

		start = time.Now()
		if _, err := importer.New(&discardStore{}, importer.Options{}).ImportReader(ctx, newPatternReader(size)); err != nil {
			b.Fatal(err)
		}
		imp := time.Since(start)

		dir := b.TempDir()
		st, err := pebblestore.Open(dir, pebblestore.Options{ReserveBytes: -1})
		if err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		if _, err := importer.New(st, importer.Options{}).ImportReader(ctx, newPatternReader(size)); err != nil {
			b.Fatal(err)
		}
		pimp := time.Since(start)
		st.Close()

		mb := float64(size) / 1e6
		b.ReportMetric(mb/raw.Seconds(), "blake3-MB/s")
		b.ReportMetric(mb/imp.Seconds(), "import-MB/s")
		b.ReportMetric(mb/pimp.Seconds(), "import-pebble-MB/s")
		b.ReportMetric(raw.Seconds()/imp.Seconds(), "import/blake3")
		b.ReportMetric(raw.Seconds()/pimp.Seconds(), "import-pebble/blake3")
	}
}

// BenchmarkImportPythonDocs imports the Python 3.11 docs (python3-doc) and
// reports files/s and MB/s into memory and into pebble, next to the raw
// BLAKE3 rate of reading and hashing the same files in the same run.
func BenchmarkImportPythonDocs(b *testing.B) {
	const src = "/usr/share/doc/python3.11/html"
	if _, err := os.Stat(src); err != nil {
		b.Skipf("python3-doc not installed: %v", err)
	}
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		files, bytes := 0, 0
		_ = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			fi, err := os.Stat(p)
			if err != nil || !fi.Mode().IsRegular() {
				return err
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			blake3.Sum256(data)
			files++
			bytes += len(data)
			return nil
		})
		raw := time.Since(start)

		start = time.Now()
		im := importer.New(&discardStore{}, importer.Options{})
		if _, err := im.ImportPath(ctx, src); err != nil {
			b.Fatal(err)
		}
		imp := time.Since(start)

		st, err := pebblestore.Open(b.TempDir(), pebblestore.Options{ReserveBytes: -1})
		if err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		if _, err := importer.New(st, importer.Options{}).ImportPath(ctx, src); err != nil {
			b.Fatal(err)
		}
		pimp := time.Since(start)
		st.Close()
		if im.Stats().Files != files {
			b.Fatalf("imported %d files, walked %d", im.Stats().Files, files)
		}
		b.ReportMetric(float64(files)/raw.Seconds(), "blake3-files/s")
		b.ReportMetric(float64(files)/imp.Seconds(), "import-files/s")
		b.ReportMetric(float64(files)/pimp.Seconds(), "import-pebble-files/s")
		b.ReportMetric(float64(bytes)/1e6/pimp.Seconds(), "import-pebble-MB/s")
		b.ReportMetric(raw.Seconds()/pimp.Seconds(), "import-pebble/blake3")
	}
}
