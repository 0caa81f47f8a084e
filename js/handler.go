package hearthjs

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"strconv"
	"strings"

	"github.com/hearthcdn/hearth/js/jsconfig"
)

// Prefix is the URL path under which Handler serves.
const Prefix = "/.hearth/"

// ErrNoAssets: the wasm binaries are not built (run `make wasm`).
var ErrNoAssets = errors.New("browser assets not built (run make wasm)")

// Cache-Control values.
const (
	cacheImmutable  = "public, max-age=31536000, immutable"
	cacheRevalidate = "no-cache"
)

// Options tune New. The zero value serves the embedded assets.
type Options struct {
	// Assets holds the built files at its root (sw.wasm, agent.wasm,
	// wasm_exec.js and optional .br/.gz copies); nil: the embedded js/dist.
	Assets fs.FS
}

// Handler serves the browser client under Prefix; see the package
// documentation for the paths. It is immutable and safe for concurrent use.
type Handler struct {
	files map[string]*asset // by path
}

var _ http.Handler = (*Handler)(nil)

// asset is one file in its encodings.
type asset struct {
	ctype, cache, etag string
	extra              [][2]string
	enc                map[string][]byte // "identity", "br", "gzip"
}

// New builds the handler for cfg (normalized first). Errors wrap
// jsconfig.ErrBadConfig, node.ErrBadSiteID or ErrNoAssets.
func New(cfg jsconfig.Config, opts Options) (*Handler, error) {
	if err := cfg.Normalize(); err != nil {
		return nil, err
	}
	assets := opts.Assets
	if assets == nil {
		sub, err := fs.Sub(dist, "dist")
		if err != nil {
			return nil, fmt.Errorf("embedded assets: %w", err)
		}
		assets = sub
	}
	h := &Handler{files: make(map[string]*asset)}
	names := map[string]string{}
	for _, f := range []struct{ name, key, ctype string }{
		{"sw.wasm", "sw", "application/wasm"},
		{"agent.wasm", "agent", "application/wasm"},
		{"wasm_exec.js", "wasmExec", "text/javascript; charset=utf-8"},
	} {
		a, err := loadAsset(assets, f.name, f.ctype)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && f.key == "agent" {
				names["agent"] = "" // no agent: pages still get the worker
				continue
			}
			return nil, fmt.Errorf("%s: %w: %w", f.name, ErrNoAssets, err)
		}
		base, ext, _ := strings.Cut(f.name, ".")
		hashed := base + "." + a.etag[1:17] + "." + ext
		immutable := *a
		immutable.cache = cacheImmutable
		h.files[Prefix+hashed] = &immutable
		h.files[Prefix+f.name] = a
		names[f.key] = Prefix + hashed
	}
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("encoding config: %w", err)
	}
	h.files[Prefix+"config.json"] = newAsset(cfgJSON, "application/json", cacheRevalidate)

	swAssets, _ := json.Marshal(map[string]string{"wasmExec": names["wasmExec"], "sw": names["sw"], "agent": names["agent"]})
	pageAssets, _ := json.Marshal(map[string]string{
		"swScript": Prefix + "sw.js", "wasmExec": names["wasmExec"], "agent": names["agent"],
	})
	for _, t := range []struct {
		name   string
		assets []byte
		extra  [][2]string
	}{
		{"sw.js", swAssets, [][2]string{{"Service-Worker-Allowed", "/"}}},
		{"hearth.js", pageAssets, nil},
	} {
		tmpl, err := src.ReadFile("src/" + t.name)
		if err != nil {
			return nil, fmt.Errorf("embedded %s: %w", t.name, err)
		}
		b, err := fill(tmpl, cfgJSON, t.assets)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", t.name, err)
		}
		a := newAsset(b, "text/javascript; charset=utf-8", cacheRevalidate)
		a.extra = t.extra
		h.files[Prefix+t.name] = a
	}
	return h, nil
}

// fill replaces the template markers "/*HEARTH_CONFIG*/ {}" and
// "/*HEARTH_ASSETS*/ {...}" (to the end of that line's object literal).
func fill(tmpl, cfg, assets []byte) ([]byte, error) {
	const cfgMark, assetsMark = "/*HEARTH_CONFIG*/ {}", "/*HEARTH_ASSETS*/ "
	if bytes.Count(tmpl, []byte(cfgMark)) != 1 || bytes.Count(tmpl, []byte(assetsMark)) != 1 {
		return nil, errors.New("template markers missing")
	}
	out := bytes.Replace(tmpl, []byte(cfgMark), cfg, 1)
	i := bytes.Index(out, []byte(assetsMark))
	end := bytes.Index(out[i:], []byte("};"))
	if end < 0 {
		return nil, errors.New("assets marker not followed by an object literal")
	}
	var b bytes.Buffer
	b.Write(out[:i])
	b.Write(assets)
	b.Write(out[i+end+1:])
	return b.Bytes(), nil
}

// loadAsset reads name and its .br and .gz copies from fsys. Without the
// uncompressed file (make wasm leaves it out of js/dist to keep the binary
// small) the .gz copy stands in: its hash names the asset, and the rare
// client that accepts neither brotli nor gzip gets it decompressed.
func loadAsset(fsys fs.FS, name, ctype string) (*asset, error) {
	raw, rawErr := fs.ReadFile(fsys, name)
	gz, gzErr := fs.ReadFile(fsys, name+".gz")
	var a *asset
	switch {
	case rawErr == nil:
		a = newAsset(raw, ctype, cacheRevalidate)
	case gzErr == nil:
		a = newAsset(gz, ctype, cacheRevalidate)
		delete(a.enc, "identity")
		delete(a.enc, "gzip")
	default:
		return nil, rawErr
	}
	if gzErr == nil {
		a.enc["gzip"] = gz
	}
	if br, err := fs.ReadFile(fsys, name+".br"); err == nil {
		a.enc["br"] = br
	}
	return a, nil
}

// newAsset wraps b, gzipping it when that helps.
func newAsset(b []byte, ctype, cache string) *asset {
	sum := sha256.Sum256(b)
	a := &asset{ctype: ctype, cache: cache, etag: `"` + hex.EncodeToString(sum[:]) + `"`,
		enc: map[string][]byte{"identity": b}}
	if len(b) > 512 {
		var z bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&z, gzip.BestCompression) // level is valid
		_, _ = zw.Write(b)                                     // bytes.Buffer does not fail
		_ = zw.Close()
		if z.Len() < len(b) {
			a.enc["gzip"] = z.Bytes()
		}
	}
	return a
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a, ok := h.files[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	enc := pickEncoding(r.Header.Get("Accept-Encoding"), a.enc)
	body, ok := a.enc[enc]
	if !ok { // only compressed copies: decompress the gzip one
		zr, err := gzip.NewReader(bytes.NewReader(a.enc["gzip"]))
		if err == nil {
			body, err = io.ReadAll(zr)
		}
		if err != nil {
			http.Error(w, "asset unavailable", http.StatusInternalServerError)
			return
		}
	}
	hdr := w.Header()
	hdr.Set("Content-Type", a.ctype)
	hdr.Set("Cache-Control", a.cache)
	hdr.Set("Vary", "Accept-Encoding")
	hdr.Set("X-Content-Type-Options", "nosniff")
	// The ETag names the encoding too: the bytes differ.
	etag := a.etag
	if enc != "identity" {
		etag = etag[:len(etag)-1] + "-" + enc + `"`
		hdr.Set("Content-Encoding", enc)
	}
	hdr.Set("Etag", etag)
	for _, kv := range a.extra {
		hdr.Set(kv[0], kv[1])
	}
	if inm := r.Header.Get("If-None-Match"); inm != "" && etagListed(inm, etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(body) // a client gone away is not our error
	}
}

// pickEncoding returns the best encoding the client accepts and the asset
// has: br, then gzip, else identity.
func pickEncoding(accept string, have map[string][]byte) string {
	ok := map[string]bool{}
	for _, part := range strings.Split(accept, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		name = strings.ToLower(strings.TrimSpace(name))
		q := 1.0
		if v, found := strings.CutPrefix(strings.TrimSpace(params), "q="); found {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				q = f
			}
		}
		ok[name] = q > 0
	}
	for _, e := range []string{"br", "gzip"} {
		if _, has := have[e]; has && (ok[e] || ok["*"]) {
			return e
		}
	}
	return "identity"
}

func etagListed(list, etag string) bool {
	for _, t := range strings.Split(list, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == etag {
			return true
		}
	}
	return false
}
