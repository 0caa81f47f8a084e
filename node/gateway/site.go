package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/js/inject"
	"github.com/hearthcdn/hearth/node"
)

// Site serves a site's files from its current root, as a web server would
// serve the published directory:
//
//   - the file at the request path; a directory answers with its
//     index.html, and a directory path without a trailing slash is
//     redirected (301) to the path with one, so relative links resolve;
//   - Content-Type from the name's extension, else sniffed from the first
//     512 bytes (http.DetectContentType), as IPFS gateways do;
//   - ETag is the file's CID (strong: the bytes are fixed by it);
//     Cache-Control "public, no-cache": caches keep the file but revalidate
//     on every use, which costs a 304 and never serves a stale page after
//     a new root is published;
//   - Range, If-Range, If-None-Match, If-Match and HEAD with
//     http.ServeContent over a FileReader, so only the leaves a range
//     touches are read. A Range header of more than MaxRanges ranges is
//     ignored and the whole file answered with 200, as RFC 9110 §14.2
//     allows; so are ranges whose lengths add up to more than the file
//     (net/http's rule), which bounds what overlapping ranges cost.
//     Ranges are not coalesced or reordered: unsorted ranges are served in
//     the order asked, and a leaf they come back to is read once (the
//     FileReader keeps the last ones read).
//
// X-Ipfs-Path names the immutable /ipfs/ path of the file served.
type Site struct {
	g      node.Getter
	root   func(context.Context) (cid.Cid, error)
	log    *slog.Logger
	obs    Observer
	inject bool
}

// SiteOptions tune a Site handler. The zero value is usable.
type SiteOptions struct {
	Logger   *slog.Logger // nil: slog.Default()
	Observer Observer     // nil: none
	// InjectLoader adds the browser client's page loader to the text/html
	// files served (package inject): a site published unmodified still
	// gets the service worker. Only set it where /.hearth/ is served.
	InjectLoader bool
}

// NewSite returns a handler serving files under the root that root returns
// for each request (an error wrapping ErrNoRoot before there is one),
// reading blocks through g, which should verify them.
func NewSite(g node.Getter, root func(context.Context) (cid.Cid, error), opts SiteOptions) *Site {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Observer == nil {
		opts.Observer = nopObserver{}
	}
	return &Site{g: g, root: root, log: opts.Logger, obs: opts.Observer, inject: opts.InjectLoader}
}

// ServeHTTP implements http.Handler.
func (s *Site) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rw := newRespWriter(w)
	if err := s.serve(rw, r); err != nil {
		if rw.code == 0 {
			writeError(rw, r, s.log, err)
		} else if !errors.Is(err, context.Canceled) {
			s.log.Warn("aborting response", "path", r.URL.Path, "err", err)
			rw.abort()
		}
	}
	s.obs.Served(KindFile, rw.status(), rw.n)
}

func (s *Site) serve(w *respWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return fmt.Errorf("%s: %w", r.Method, ErrMethod)
	}
	ctx := r.Context()
	root, err := s.root(ctx)
	if err != nil {
		return err
	}
	segs, err := splitEscapedPath(r.URL.EscapedPath())
	if err != nil {
		return err
	}
	n, err := node.Resolve(ctx, s.g, root, segs)
	if err != nil {
		return err
	}
	name := ""
	if len(segs) > 0 {
		name = segs[len(segs)-1]
	}
	if n.IsDir() {
		if !strings.HasSuffix(r.URL.Path, "/") {
			target := r.URL.EscapedPath() + "/"
			if r.URL.RawQuery != "" {
				target += "?" + r.URL.RawQuery
			}
			w.Header().Set("Cache-Control", "public, no-cache")
			http.Redirect(w, r, target, http.StatusMovedPermanently)
			return nil
		}
		idx, err := node.Resolve(ctx, s.g, n.Cid, []string{"index.html"})
		if err != nil {
			if errors.Is(err, node.ErrNoSuchPath) {
				return fmt.Errorf("/%s: directory without index.html: %w", strings.Join(segs, "/"), node.ErrNoSuchPath)
			}
			return err
		}
		n, name, segs = idx, "index.html", append(segs, "index.html")
	}
	if !n.IsFile() {
		return fmt.Errorf("/%s is a %s: %w", strings.Join(segs, "/"), n.Kind, node.ErrNoSuchPath)
	}
	fr, err := NewFileReader(ctx, s.g, n)
	if err != nil {
		return err
	}
	ctype, err := contentType(name, fr)
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", ctype)
	h.Set("Etag", `"`+n.Cid.String()+`"`)
	h.Set("Cache-Control", "public, no-cache")
	h.Set("X-Ipfs-Path", ipfsPath(root, segs))
	h.Set("X-Content-Type-Options", "nosniff")
	if s.inject && inject.IsHTML(ctype) && n.FileSize <= inject.MaxPage {
		return serveTagged(w, withoutManyRanges(r), name, fr)
	}
	http.ServeContent(w, withoutManyRanges(r), name, time.Time{}, fr)
	return nil
}

// MaxRanges is the most byte ranges a Range header may ask of a site file;
// a header with more is ignored (the whole file is answered with 200).
// Each range may cost a leaf read and hash (256 KiB), so without a bound
// one 64 KiB header of thousands of tiny ranges costs seconds of CPU.
const MaxRanges = 16

// withoutManyRanges returns r, or a copy of r without its Range header
// when that header lists more than MaxRanges ranges. Like net/http it
// reads only the first Range field line, and skips empty list elements.
func withoutManyRanges(r *http.Request) *http.Request {
	if countRanges(r.Header.Get("Range")) <= MaxRanges {
		return r
	}
	r2 := *r
	r2.Header = r.Header.Clone()
	r2.Header.Del("Range")
	return &r2
}

// countRanges returns the number of non-empty elements of a Range header's
// comma-separated list, stopping early past MaxRanges.
func countRanges(v string) int {
	n := 0
	for v != "" && n <= MaxRanges {
		var elem string
		elem, v, _ = strings.Cut(v, ",")
		if strings.TrimSpace(elem) != "" {
			n++
		}
	}
	return n
}

// contentType returns the media type for a file named name: from its
// extension, else sniffed from its first 512 bytes (rewinding fr).
func contentType(name string, fr *FileReader) (string, error) {
	if ct := mime.TypeByExtension(path.Ext(name)); ct != "" {
		return ct, nil
	}
	var buf [512]byte
	n, err := io.ReadFull(fr, buf[:])
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return "", err
	}
	if _, err := fr.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	return http.DetectContentType(buf[:n]), nil
}
