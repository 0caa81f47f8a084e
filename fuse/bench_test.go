package fuse_test

import (
	"context"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/fuse"
	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/importer"
	"github.com/hearthcdn/hearth/node/pebblestore"
)

// BenchmarkSequentialRead reads a 256 MiB file through the mount and, as the
// baseline in the same run, straight from the same store as `hearth get`
// does; it reports both rates and their ratio (goal ≥ 0.6).
func BenchmarkSequentialRead(b *testing.B) {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		b.Skip("no /dev/fuse")
	}
	ctx := context.Background()
	st, err := pebblestore.Open(b.TempDir(), pebblestore.Options{ReserveBytes: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	const size = 256 << 20
	src := filepath.Join(b.TempDir(), "big")
	f, _ := os.Create(src)
	buf := make([]byte, 1<<20)
	for i := 0; i < size>>20; i++ {
		for j := range buf {
			buf[j] = byte(i*31 + j*7 + j>>9)
		}
		f.Write(buf)
	}
	f.Close()
	dir := filepath.Dir(src)
	root, err := importer.New(st, importer.Options{}).ImportPath(ctx, dir)
	if err != nil {
		b.Fatal(err)
	}
	mnt := b.TempDir()
	m, err := fuse.Mount(mnt, fuse.Options{Getter: st, Root: root})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Unmount()
	n, err := node.Resolve(ctx, st, root, []string{"big"})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if err := node.WriteFile(ctx, node.NewVerifyingStore(st), n, 0, n.FileSize, io.Discard); err != nil {
			b.Fatal(err)
		}
		get := time.Since(start)
		start = time.Now()
		fh, err := os.Open(filepath.Join(mnt, "big"))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.CopyBuffer(io.Discard, fh, make([]byte, 1<<20)); err != nil {
			b.Fatal(err)
		}
		fh.Close()
		mount := time.Since(start)
		b.ReportMetric(size/1e6/get.Seconds(), "get-MB/s")
		b.ReportMetric(size/1e6/mount.Seconds(), "mount-MB/s")
		b.ReportMetric(get.Seconds()/mount.Seconds(), "mount/get")
	}
}

// BenchmarkUntarPythonDocs copies the Python docs into a writable mount
// (as untar would) and reports files/s, and the time to build and commit
// the new root after the last write.
func BenchmarkUntarPythonDocs(b *testing.B) {
	const src = "/usr/share/doc/python3.11/html"
	if _, err := os.Stat(src); err != nil {
		b.Skip("python3-doc not installed")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		b.Skip("no /dev/fuse")
	}
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		st, err := pebblestore.Open(b.TempDir(), pebblestore.Options{ReserveBytes: -1})
		if err != nil {
			b.Fatal(err)
		}
		empty := b.TempDir()
		root, _ := importer.New(st, importer.Options{}).ImportPath(ctx, empty)
		done := make(chan time.Time, 10)
		mnt := b.TempDir()
		m, err := fuse.Mount(mnt, fuse.Options{Getter: st, Root: root, Writable: true, Store: st,
			ScratchDir: b.TempDir(), QuietPeriod: time.Hour,
			Commit: func(context.Context, cid.Cid) error { done <- time.Now(); return nil }})
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		files := 0
		err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(src, p)
			fi, err := os.Stat(p)
			if err != nil {
				return err
			}
			if fi.IsDir() {
				return os.MkdirAll(filepath.Join(mnt, "html", rel), 0o755)
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			files++
			return os.WriteFile(filepath.Join(mnt, "html", rel), data, 0o644)
		})
		if err != nil {
			b.Fatal(err)
		}
		wrote := time.Since(start)
		start = time.Now()
		fh, _ := os.Open(mnt)
		if err := fh.Sync(); err != nil {
			b.Fatal(err)
		}
		fh.Close()
		built := time.Since(start)
		m.Unmount()
		st.Close()
		b.ReportMetric(float64(files)/wrote.Seconds(), "write-files/s")
		b.ReportMetric(built.Seconds()*1000, "build-ms")
		b.ReportMetric(float64(files)/(wrote+built).Seconds(), "files/s-to-root")
	}
}
