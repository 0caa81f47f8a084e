package serve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/js/inject"
	"github.com/hearthcdn/hearth/node"
)

// DefaultWindow is how many bytes of verified blocks a response holds ahead
// of its reader by default.
const DefaultWindow = 8 << 20

// Server answers requests from a Cache and Sources. Its zero value is not
// usable; set Cache.
type Server struct {
	Cache Cache
	// Window bounds the bytes a response buffers ahead of its reader; 0
	// means DefaultWindow.
	Window int
	// InjectLoader adds the browser client's page loader to text/html
	// files of at most inject.MaxPage bytes (package js/inject), served
	// then as their own representation (the ETag gets inject.ETagSuffix),
	// as the origin serves them.
	InjectLoader bool

	nodes    nodeCache
	flightMu sync.Mutex
	flights  map[string]*flight // interior nodes being read, by CID key
}

// Header is the subset of request headers Serve reads (Range, If-Range,
// If-None-Match); canonical names. http.Header satisfies it.
type Header interface{ Get(name string) string }

// Request is a GET or HEAD of a site path under a verified root.
type Request struct {
	Method string // "GET" or "HEAD"
	Root   cid.Cid
	// Path is the URL's escaped path relative to the site root ("/",
	// "/a/b.css", "/dir/"); Query its raw query, kept on redirects.
	Path, Query string
	Header      Header
	// Sources are tried in order when the cache lacks a block.
	Sources []Source
	// Stats, if set, receives the response's counters (also on failure);
	// nil: Serve makes one (Response.Stats).
	Stats *Stats
}

// Response is the answer's status, headers and body.
type Response struct {
	Status int
	// Header lists header names and values in order.
	Header [][2]string
	// Length is the body's length in bytes (the Content-Length), -1 with no body.
	Length int64
	// Stats counts the bytes used, final once Body or Close returned.
	Stats *Stats

	body func(ctx context.Context, w io.Writer) error
	sess *session
}

// HasBody reports whether WriteBody has bytes to write.
func (r *Response) HasBody() bool { return r.body != nil }

// WriteBody writes the body to w, verified block by block, retrying with
// the next source when one fails, and then releases the response. It
// returns w's error, or an error wrapping ErrNoSource when no source could
// supply the rest: the caller must then abort the response (the bytes
// written so far are correct, but incomplete). Write is called with
// slices of at most 256 KiB that are valid only during the call.
func (r *Response) WriteBody(ctx context.Context, w io.Writer) error {
	defer r.Close()
	if r.body == nil {
		return nil
	}
	err := r.body(ctx, &firstByteWriter{w: w, s: r.Stats})
	if err == nil {
		r.Stats.mark(&r.Stats.bodyEnd)
	}
	return err
}

// Close releases the response without writing its body. Safe to call twice.
func (r *Response) Close() {
	if r.sess != nil {
		r.sess.close()
		r.sess = nil
	}
}

// Serve resolves req and returns the response, whose body (if any) the
// caller writes with WriteBody, or releases with Close. ctx bounds the
// whole response, body included.
//
// Errors wrap ErrPassThrough when the request should go to the network
// untouched: a path the root does not hold (the origin may serve it
// anyway), a symlink, or no source able to supply the blocks; or they
// are ctx's error.
func (s *Server) Serve(ctx context.Context, req Request) (*Response, error) {
	if req.Method != "GET" && req.Method != "HEAD" {
		return nil, fmt.Errorf("method %s: %w", req.Method, ErrPassThrough)
	}
	segs, err := node.SplitEscapedPath(req.Path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPassThrough, err)
	}
	window := s.Window
	if window <= 0 {
		window = DefaultWindow
	}
	stats := req.Stats
	if stats == nil {
		stats = &Stats{}
	}
	stats.mu.Lock()
	stats.start = time.Now()
	stats.mu.Unlock()
	sess := newSession(ctx, s.Cache, req.Sources, window, stats)
	resp, err := s.serve(ctx, sess, req, segs)
	if err != nil {
		sess.close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: %w", ErrPassThrough, err)
	}
	resp.Stats = stats
	stats.mark(&stats.headers)
	if resp.body == nil {
		sess.close()
	} else {
		resp.sess = sess
	}
	return resp, nil
}

func (s *Server) serve(ctx context.Context, sess *session, req Request, segs []string) (*Response, error) {
	trailing := strings.HasSuffix(req.Path, "/")
	hint := rangeHint(req.Header.Get("Range"))
	if req.Method == "HEAD" {
		hint = &node.ByteRange{From: 0, To: sniffLen - 1}
	}
	// One request brings the path, and when the path ends in "/" the
	// index.html it probably names, with the bytes wanted.
	var tail []string
	if trailing {
		tail = []string{"index.html"}
	}
	var n *node.Node
	if err := sess.do(ctx, func() (err error) {
		n, err = s.resolve(ctx, sess, req.Root, segs, tail, hint)
		return err
	}); err != nil {
		return nil, err
	}
	name := ""
	if len(segs) > 0 {
		name = segs[len(segs)-1]
	}
	ipfsPath := "/ipfs/" + req.Root.String() + "/" + strings.Join(escapeAll(segs), "/")
	if n.IsDir() {
		if !trailing {
			loc := req.Path + "/"
			if req.Query != "" {
				loc += "?" + req.Query
			}
			return &Response{Status: 301, Length: -1, Header: [][2]string{
				{"Location", loc}, {"Cache-Control", "public, no-cache"},
			}}, nil
		}
		dir := n
		if err := sess.do(ctx, func() (err error) {
			n, err = s.resolve(ctx, sess, dir.Cid, []string{"index.html"}, nil, hint)
			return err
		}); err != nil {
			return nil, err
		}
		name = "index.html"
		ipfsPath = strings.TrimSuffix(ipfsPath, "/") + "/index.html"
	}
	if !n.IsFile() {
		return nil, fmt.Errorf("/%s is a %s: %w", strings.Join(segs, "/"), n.Kind, node.ErrNoSuchPath)
	}
	file := n
	size := file.FileSize
	ctype := typeByExtension(path.Ext(name))
	if ctype == "" {
		var buf sliceWriter
		end := min(size, sniffLen)
		sess.setWant(func() node.Request {
			return node.Request{Root: file.Cid, Scope: node.ScopeEntity, Bytes: &node.ByteRange{From: 0, To: int64(end) - 1}}
		})
		if err := sess.do(ctx, func() error {
			buf.b = buf.b[:0]
			return node.WriteFile(ctx, sess, file, 0, end, &buf)
		}); err != nil {
			return nil, err
		}
		ctype = detectContentType(buf.b)
	}
	etag := `"` + file.Cid.String() + `"`
	var page []byte // the whole file, held to add the loader
	if s.InjectLoader && inject.IsHTML(ctype) && size <= inject.MaxPage {
		tagged := inject.ETag(etag)
		if inm := req.Header.Get("If-None-Match"); inm != "" && etagMatch(inm, tagged) {
			return &Response{Status: 304, Length: -1, Header: [][2]string{
				{"Etag", tagged}, {"Cache-Control", "public, no-cache"}, {"X-Ipfs-Path", ipfsPath},
			}}, nil
		}
		var buf sliceWriter
		sess.setWant(func() node.Request {
			return node.Request{Root: file.Cid, Scope: node.ScopeEntity}
		})
		if err := sess.do(ctx, func() error {
			buf.b = buf.b[:0]
			return node.WriteFile(ctx, sess, file, 0, size, &buf)
		}); err != nil {
			return nil, err
		}
		page = buf.b
		if out, ok := inject.HTML(page); ok {
			page, etag = out, tagged
		}
		size = uint64(len(page))
	}
	hdr := [][2]string{
		{"Content-Type", ctype},
		{"Etag", etag},
		{"Cache-Control", "public, no-cache"},
		{"X-Ipfs-Path", ipfsPath},
		{"X-Content-Type-Options", "nosniff"},
		{"Accept-Ranges", "bytes"},
	}
	if inm := req.Header.Get("If-None-Match"); inm != "" && etagMatch(inm, etag) {
		return &Response{Status: 304, Header: hdr[1:4], Length: -1}, nil
	}
	start, end, status := uint64(0), size, 200
	if rh := req.Header.Get("Range"); rh != "" && ifRangeOK(req.Header.Get("If-Range"), etag) {
		s, e, ok, err := parseRange(rh, size)
		switch {
		case err != nil:
			return &Response{Status: 416, Length: -1, Header: append(hdr[1:4],
				[2]string{"Content-Range", "bytes */" + strconv.FormatUint(size, 10)})}, nil
		case ok:
			start, end, status = s, e, 206
			hdr = append(hdr, [2]string{"Content-Range", fmt.Sprintf("bytes %d-%d/%d", s, e-1, size)})
		}
	}
	length := int64(end - start)
	hdr = append(hdr, [2]string{"Content-Length", strconv.FormatInt(length, 10)})
	resp := &Response{Status: status, Header: hdr, Length: length}
	if req.Method == "HEAD" || length == 0 {
		return resp, nil
	}
	if page != nil {
		resp.body = func(ctx context.Context, w io.Writer) error {
			for b := page[start:end]; len(b) > 0; {
				n := min(len(b), 256<<10)
				if _, err := w.Write(b[:n]); err != nil {
					return err
				}
				b = b[n:]
			}
			return nil
		}
		return resp, nil
	}
	resp.body = func(ctx context.Context, w io.Writer) error {
		cw := &countingWriter{w: w}
		sess.setWant(func() node.Request {
			from := start + uint64(cw.n)
			return node.Request{Root: file.Cid, Scope: node.ScopeEntity,
				Bytes: &node.ByteRange{From: int64(from), To: int64(end) - 1}}
		})
		return sess.do(ctx, func() error {
			return node.WriteFile(ctx, sess, file, start+uint64(cw.n), end, cw)
		})
	}
	return resp, nil
}

// rangeHint turns a Range header into the entity-bytes to ask sources for,
// before the file's size is known; nil for the whole file.
func rangeHint(h string) *node.ByteRange {
	spec, ok := strings.CutPrefix(h, "bytes=")
	if !ok || strings.Contains(spec, ",") {
		return nil
	}
	a, b, ok := strings.Cut(strings.TrimSpace(spec), "-")
	if !ok {
		return nil
	}
	if a == "" {
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n <= 0 {
			return nil
		}
		return &node.ByteRange{From: -n, ToEnd: true}
	}
	from, err := strconv.ParseInt(a, 10, 64)
	if err != nil || from < 0 {
		return nil
	}
	if b == "" {
		return &node.ByteRange{From: from, ToEnd: true}
	}
	to, err := strconv.ParseInt(b, 10, 64)
	if err != nil || to < from {
		return nil
	}
	return &node.ByteRange{From: from, To: to}
}

// errUnsatisfiable: a Range that selects no byte of the file.
var errUnsatisfiable = errors.New("range not satisfiable")

// parseRange parses a Range header against a file of size bytes (RFC 9110
// §14.1.2) and returns the half-open interval [start, end). ok is false
// when the header is to be ignored (malformed, another unit, several
// ranges); err is errUnsatisfiable when no range overlaps the file.
func parseRange(h string, size uint64) (start, end uint64, ok bool, err error) {
	spec, found := strings.CutPrefix(h, "bytes=")
	if !found || strings.Contains(spec, ",") {
		return 0, 0, false, nil
	}
	a, b, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return 0, 0, false, nil
	}
	if a == "" { // suffix: the last b bytes
		n, perr := strconv.ParseUint(b, 10, 64)
		if perr != nil {
			return 0, 0, false, nil
		}
		if n == 0 || size == 0 {
			return 0, 0, false, errUnsatisfiable
		}
		return size - min(n, size), size, true, nil
	}
	from, perr := strconv.ParseUint(a, 10, 64)
	if perr != nil {
		return 0, 0, false, nil
	}
	to := size - 1
	if b != "" {
		t, perr := strconv.ParseUint(b, 10, 64)
		if perr != nil || t < from {
			return 0, 0, false, nil
		}
		to = min(t, size-1)
	}
	if from >= size {
		return 0, 0, false, errUnsatisfiable
	}
	return from, to + 1, true, nil
}

// etagMatch reports whether an If-None-Match list names etag (weak comparison).
func etagMatch(list, etag string) bool {
	for _, t := range strings.Split(list, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == etag {
			return true
		}
	}
	return false
}

// ifRangeOK reports whether a Range may be honoured given If-Range: absent,
// or the same strong ETag. A date never matches (the file has none).
func ifRangeOK(ifRange, etag string) bool {
	return ifRange == "" || strings.TrimSpace(ifRange) == etag
}

func escapeAll(segs []string) []string {
	out := make([]string, len(segs))
	for i, s := range segs {
		out[i] = url.PathEscape(s)
	}
	return out
}

// firstByteWriter marks the first write in Stats.
type firstByteWriter struct {
	w    io.Writer
	s    *Stats
	seen bool
}

func (f *firstByteWriter) Write(p []byte) (int, error) {
	if !f.seen && len(p) > 0 {
		f.seen = true
		f.s.mark(&f.s.firstByte)
	}
	return f.w.Write(p)
}

type sliceWriter struct{ b []byte }

func (w *sliceWriter) Write(p []byte) (int, error) { w.b = append(w.b, p...); return len(p), nil }

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
