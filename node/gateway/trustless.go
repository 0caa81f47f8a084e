package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/node"
)

// Trustless serves the IPFS Trustless Gateway
// (https://specs.ipfs.tech/http-gateways/trustless-gateway/) at
// /ipfs/{cid}[/{path}] from a block store, for GET and HEAD:
//
//   - ?format=raw or Accept: application/vnd.ipld.raw: the block named by
//     cid (no path allowed), with Content-Disposition attachment,
//     ETag "{cid}.raw" and immutable caching.
//   - ?format=car or Accept: application/vnd.ipld.car: a CARv1 of the blocks
//     that prove the path and, per dag-scope (block|entity|all, default all)
//     and entity-bytes=from:to, carry the entity at its end; Content-Type
//     "application/vnd.ipld.car; version=1; order=dfs; dups=n", X-Ipfs-Roots
//     listing the CID of the root and of each path segment, and a weak ETag
//     unique to the path, scope and range.
//   - /ipfs/bafkqaaa, the spec's probe path: an empty block or an empty CAR.
//
// Every block is verified against its CID before a byte of it is sent. The
// path is resolved before the status is sent, so a missing root or path
// is a plain 404; a block missing further down (which a complete store never
// lacks) ends the stream abruptly, as the spec prescribes.
type Trustless struct {
	g         node.Getter
	log       *slog.Logger
	obs       Observer
	onCorrupt func(cid.Cid)
}

// TrustlessOptions tune a Trustless handler. The zero value is usable.
type TrustlessOptions struct {
	Logger   *slog.Logger // nil: slog.Default()
	Observer Observer     // nil: none
	// OnCorrupt, if set, is called (synchronously) with the CID of each
	// block the store returned corrupt, so that the owner can repair it.
	OnCorrupt func(cid.Cid)
}

// NewTrustless returns a handler serving the blocks g holds.
func NewTrustless(g node.Getter, opts TrustlessOptions) *Trustless {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Observer == nil {
		opts.Observer = nopObserver{}
	}
	return &Trustless{g: g, log: opts.Logger, obs: opts.Observer, onCorrupt: opts.OnCorrupt}
}

// probeCID is the identity CID of no bytes, the spec's probe path.
const probeCID = "bafkqaaa"

// immutableCache is the Cache-Control of content-addressed responses (as Kubo).
const immutableCache = "public, max-age=29030400, immutable"

// ServeHTTP implements http.Handler.
func (t *Trustless) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rw := newRespWriter(w)
	kind, err := t.serve(rw, r)
	if err != nil {
		if rw.code == 0 {
			writeError(rw, r, t.log, err)
		} else if !errors.Is(err, context.Canceled) {
			t.log.Warn("aborting response", "path", r.URL.Path, "err", err)
			rw.abort()
		}
	}
	t.obs.Served(kind, rw.status(), rw.n)
}

func (t *Trustless) serve(w *respWriter, r *http.Request) (ServeKind, error) {
	kind := KindRaw
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return kind, fmt.Errorf("%s: %w", r.Method, ErrMethod)
	}
	rest, ok := strings.CutPrefix(r.URL.EscapedPath(), "/ipfs/")
	if !ok {
		return kind, fmt.Errorf("%s: %w", r.URL.Path, node.ErrNoSuchPath)
	}
	allowCORS(w.Header())
	w.Header().Add("Vary", "Accept")
	f, err := negotiate(r)
	if err != nil {
		return kind, err
	}
	if f == formatCAR {
		kind = KindCAR
	}
	head, tail, _ := strings.Cut(rest, "/")
	if r.URL.Query().Get("format") == "" {
		q := r.URL.Query()
		q.Set("format", map[format]string{formatRaw: "raw", formatCAR: "car"}[f])
		w.Header().Set("Content-Location", r.URL.EscapedPath()+"?"+q.Encode())
	}
	segs, err := splitEscapedPath(tail)
	if err != nil {
		return kind, err
	}
	if head == probeCID && len(segs) == 0 {
		return kind, t.serveProbe(w, r, f)
	}
	cs, err := url.PathUnescape(head)
	if err != nil {
		return kind, badRequest("CID %q: %v", head, err)
	}
	c, err := node.ParseCID(cs)
	if err != nil {
		return kind, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	if f == formatRaw {
		return kind, t.serveRaw(w, r, c, segs)
	}
	return kind, t.serveCAR(w, r, c, segs)
}

// get reads c through the store and verifies it.
func (t *Trustless) get(ctx context.Context, c cid.Cid) ([]byte, error) {
	d, err := t.g.Get(ctx, c)
	if err == nil {
		err = node.Verify(c, d)
	}
	if errors.Is(err, node.ErrCorrupt) && t.onCorrupt != nil {
		t.onCorrupt(c)
	}
	return d, err
}

func (t *Trustless) getter() node.Getter { return node.GetterFunc(t.get) }

func contentHeaders(h http.Header, c cid.Cid, segs []string, roots []cid.Cid, contentType, filename string) {
	h.Set("Content-Type", contentType)
	h.Set("Content-Disposition", `attachment; filename="`+filename+`"`)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", immutableCache)
	h.Set("X-Ipfs-Path", ipfsPath(c, segs))
	rs := make([]string, len(roots))
	for i, r := range roots {
		rs[i] = r.String()
	}
	h.Set("X-Ipfs-Roots", strings.Join(rs, ","))
}

// allowCORS lets pages of any origin read responses: they are public and
// verifiable, as on IPFS gateways.
func allowCORS(h http.Header) {
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Expose-Headers", "Content-Length, Content-Range, Etag, X-Ipfs-Path, X-Ipfs-Roots, X-Hearth-Seq")
}

func onlyIfCached(r *http.Request) bool {
	return strings.Contains(strings.ToLower(r.Header.Get("Cache-Control")), "only-if-cached")
}

func (t *Trustless) serveRaw(w *respWriter, r *http.Request, c cid.Cid, segs []string) error {
	if len(segs) > 0 {
		return badRequest("a raw block request takes no path (Trustless Gateway spec); ask for a CAR")
	}
	data, err := t.get(r.Context(), c)
	if err != nil {
		if errors.Is(err, node.ErrNotFound) && onlyIfCached(r) {
			return fmt.Errorf("%s: %w", c, ErrNotCached)
		}
		return err
	}
	etag := `"` + c.String() + `.raw"`
	contentHeaders(w.Header(), c, nil, []cid.Cid{c}, MediaRaw, c.String()+".bin")
	w.Header().Set("Etag", etag)
	if etagMatch(r.Header.Get("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}
	_, err = w.Write(data)
	return err
}

func (t *Trustless) serveCAR(w *respWriter, r *http.Request, c cid.Cid, segs []string) error {
	ctx := r.Context()
	q := r.URL.Query()
	scope, err := node.ParseScope(q.Get("dag-scope"))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	var br *node.ByteRange
	if s := q.Get("entity-bytes"); s != "" {
		if br, err = node.ParseByteRange(s); err != nil {
			return err
		}
		scope = node.ScopeEntity // entity-bytes implies dag-scope=entity
	}
	g := t.getter()
	roots, term, err := resolveRoots(ctx, g, c, segs)
	if err != nil {
		if errors.Is(err, node.ErrNotFound) && onlyIfCached(r) {
			return fmt.Errorf("%s: %w", c, ErrNotCached)
		}
		return err
	}
	if br != nil && term.IsFile() && br.From >= 0 && term.FileSize > 0 && uint64(br.From) >= term.FileSize {
		return fmt.Errorf("entity-bytes %s: the entity has %d bytes: %w", br, term.FileSize, node.ErrBadRange)
	}
	etag := carETag(c, segs, scope, br)
	contentHeaders(w.Header(), c, segs, roots, CARContentType, c.String()+".car")
	w.Header().Set("Etag", etag)
	if etagMatch(r.Header.Get("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}
	cw, err := node.NewCARWriter(w, c)
	if err != nil {
		return err
	}
	_, err = node.Traverse(ctx, g, node.Request{Root: c, Path: segs, Scope: scope, Bytes: br}, func(b node.Block) error {
		return cw.Put(ctx, b)
	})
	if err != nil {
		return fmt.Errorf("streaming CAR %s: %w", ipfsPath(c, segs), err)
	}
	return nil
}

// serveProbe answers the spec's probe path /ipfs/bafkqaaa.
func (t *Trustless) serveProbe(w *respWriter, r *http.Request, f format) error {
	c, err := cid.Decode(probeCID)
	if err != nil {
		return err
	}
	ct := MediaRaw
	if f == formatCAR {
		ct = CARContentType
	}
	contentHeaders(w.Header(), c, nil, []cid.Cid{c}, ct, probeCID+".bin")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead || f == formatRaw {
		return nil
	}
	_, err = node.NewCARWriter(w, c)
	return err
}

// resolveRoots walks segs from root and returns the CIDs of the root and of
// every segment's target (X-Ipfs-Roots), and the node at the end.
func resolveRoots(ctx context.Context, g node.Getter, root cid.Cid, segs []string) ([]cid.Cid, *node.Node, error) {
	roots := []cid.Cid{root}
	n, err := node.Resolve(ctx, g, root, nil)
	if err != nil {
		return nil, nil, err
	}
	for i, s := range segs {
		if n, err = node.Resolve(ctx, g, n.Cid, []string{s}); err != nil {
			return nil, nil, fmt.Errorf("resolving /%s: %w", strings.Join(segs[:i+1], "/"), err)
		}
		roots = append(roots, n.Cid)
	}
	return roots, n, nil
}

// carETag is a weak ETag unique to the CAR's root, path, scope and range
// (Trustless Gateway spec: the ETag varies with dag-scope and entity-bytes).
func carETag(c cid.Cid, segs []string, scope node.Scope, br *node.ByteRange) string {
	h := sha256.New()
	for _, s := range segs {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	h.Write([]byte(scope))
	if br != nil {
		h.Write([]byte{0})
		h.Write([]byte(br.String()))
	}
	return `W/"` + c.String() + ".car." + hex.EncodeToString(h.Sum(nil)[:8]) + `"`
}

// etagMatch reports whether an If-None-Match header matches etag, with the
// weak comparison RFC 9110 §13.1.2 prescribes for it.
func etagMatch(header, etag string) bool {
	if header == "" {
		return false
	}
	want := strings.TrimPrefix(etag, "W/")
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == want {
			return true
		}
	}
	return false
}
