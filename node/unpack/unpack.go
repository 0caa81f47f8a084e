// Package unpack writes a UnixFS file, symlink or directory tree from a DAG
// onto the local filesystem, as `hearth get -o` does, without ever writing
// outside the output path.
//
// A directory tree is written through an os.Root opened on the output
// directory, so no entry name, existing symlink or race can make a write
// land outside it. Symlinks are made last, after every file and directory,
// so no write goes through one; a symlink whose target is absolute or
// resolves outside the output tree is refused (ErrSymlinkOutside) unless
// Options.AllowSymlinksOutside is set.
package unpack

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/hearthcdn/hearth/node"
)

// Options configure Write.
type Options struct {
	// AllowSymlinksOutside writes symlinks whose target is absolute or
	// resolves outside the output tree. Off by default: such a symlink is
	// refused with ErrSymlinkOutside.
	AllowSymlinksOutside bool
}

// Write writes n (a file, symlink or directory) to dst, reading blocks
// through g. A file is written to a temporary name beside dst and renamed,
// so a failed write leaves no partial file. A directory is created if
// missing (entries already there are replaced or merged); its entries are
// written beneath it only. It stops at ctx's end between any two blocks
// and returns ctx's error.
//
// A directory listing one name twice is refused (node.ErrBadNode).
//
// Errors wrap ErrSymlinkOutside, ErrUnsupportedKind, the node package's
// sentinels (ErrNotFound, ErrCorrupt, ErrBadNode...) or the filesystem's.
func Write(ctx context.Context, g node.Getter, n *node.Node, dst string, opts Options) error {
	if n.IsDir() {
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return err
		}
		root, err := os.OpenRoot(dst)
		if err != nil {
			return err
		}
		defer root.Close()
		w := &writer{ctx: ctx, g: g, root: root, opts: opts}
		if err := w.dir(n, "."); err != nil {
			return err
		}
		return w.symlinks(dst)
	}
	// A file or symlink alone: its tree is dst itself, inside dst's parent.
	dst = filepath.Clean(dst)
	root, err := os.OpenRoot(filepath.Dir(dst))
	if err != nil {
		return err
	}
	defer root.Close()
	base := filepath.Base(dst)
	w := &writer{ctx: ctx, g: g, root: root, opts: opts, top: base}
	if err := w.entry(n, base); err != nil {
		return err
	}
	return w.symlinks(dst)
}

// writer writes one tree through root. Paths are slash-separated and
// relative to root.
type writer struct {
	ctx  context.Context
	g    node.Getter
	root *os.Root
	opts Options
	// top is the tree's only entry when writing a file or symlink alone
	// ("" for a directory: the whole root).
	top   string
	links []symlink // made last
}

type symlink struct{ path, target string }

func (w *writer) entry(n *node.Node, p string) error {
	switch {
	case n.IsDir():
		return w.dir(n, p)
	case n.IsFile():
		return w.file(n, p)
	case n.Kind == node.KindSymlink:
		target := string(n.Data)
		if !w.opts.AllowSymlinksOutside && !w.inside(p, target) {
			return fmt.Errorf("%s -> %s: %w", p, target, ErrSymlinkOutside)
		}
		w.links = append(w.links, symlink{p, target})
		return nil
	}
	return fmt.Errorf("%s is a %s: %w", p, n.Kind, ErrUnsupportedKind)
}

// dir creates directory p (keeping one already there) and writes its
// entries.
func (w *writer) dir(n *node.Node, p string) error {
	if p != "." {
		if err := w.root.Mkdir(p, 0o755); err != nil {
			fi, serr := w.root.Lstat(p)
			if !errors.Is(err, fs.ErrExist) || serr != nil || !fi.IsDir() {
				return err
			}
		}
	}
	// The decoder and the listing refuse a name listed twice; a listing
	// that still holds one (a node built by hand) is refused here too, so
	// no entry is written over another.
	seen := make(map[string]struct{})
	for e, err := range node.Entries(w.ctx, w.g, n) {
		if err != nil {
			return fmt.Errorf("listing %s: %w", p, err)
		}
		if err := w.ctx.Err(); err != nil {
			return err
		}
		cp := path.Join(p, e.Name)
		if _, dup := seen[e.Name]; dup {
			return fmt.Errorf("%s listed twice: %w", cp, node.ErrBadNode)
		}
		seen[e.Name] = struct{}{}
		child, _, err := node.GetNode(w.ctx, w.g, e.Cid)
		if err != nil {
			return fmt.Errorf("%s: %w", cp, err)
		}
		if err := w.entry(child, cp); err != nil {
			return err
		}
	}
	return nil
}

// file writes the file n to a new temporary name in p's directory, then
// renames it to p.
func (w *writer) file(n *node.Node, p string) error {
	var rnd [8]byte
	rand.Read(rnd[:])
	tmp := path.Join(path.Dir(p), ".hearth-get-"+hex.EncodeToString(rnd[:]))
	f, err := w.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	defer w.root.Remove(tmp)
	if err := node.WriteFile(w.ctx, w.g, n, 0, n.FileSize, f); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", p, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	return w.root.Rename(tmp, p)
}

// inside reports whether target, the target of a symlink at p, names a
// path inside the tree when read lexically: relative, and never climbing
// above the tree's top. A symlink written alone is its whole tree, so
// every target of it lies outside.
func (w *writer) inside(p, target string) bool {
	if w.top != "" || target == "" || path.IsAbs(target) || filepath.IsAbs(target) {
		return false
	}
	r := path.Clean(path.Join(path.Dir(p), target))
	return r != ".." && !strings.HasPrefix(r, "../")
}

// symlinks makes the symlinks collected during the walk, then checks that
// each resolves inside the tree through the symlinks now there (a target
// read lexically can climb out through another link); one that does not
// is removed and refused. dst names the output in errors.
func (w *writer) symlinks(dst string) error {
	for _, l := range w.links {
		if err := w.ctx.Err(); err != nil {
			return err
		}
		_ = w.root.Remove(l.path) // replace an older entry of that name, as a file would be
		if err := w.root.Symlink(l.target, l.path); err != nil {
			return err
		}
	}
	if w.opts.AllowSymlinksOutside {
		return nil
	}
	for _, l := range w.links {
		if err := w.ctx.Err(); err != nil {
			return err
		}
		// os.Root follows a symlink only while it stays under the root; a
		// target that is missing (a dangling link inside) is fine.
		_, err := w.root.Stat(l.path)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			_ = w.root.Remove(l.path)
			return fmt.Errorf("%s -> %s: %w (%v)", filepath.Join(dst, l.path), l.target, ErrSymlinkOutside, err)
		}
	}
	return nil
}
