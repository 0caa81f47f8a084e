package hearthjs

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/hearthcdn/hearth/js/jsconfig"
	"github.com/hearthcdn/hearth/node"
)

var site = node.SiteID{9, 9, 9}.String()

func testAssets() fstest.MapFS {
	wasm := bytes.Repeat([]byte("\x00asm fake wasm "), 1000)
	return fstest.MapFS{
		"sw.wasm":         {Data: wasm},
		"sw.wasm.br":      {Data: []byte("brotli bytes")},
		"agent.wasm":      {Data: append([]byte("agent"), wasm...)},
		"wasm_exec.js":    {Data: []byte(strings.Repeat("// go wasm support\n", 100))},
		"wasm_exec.js.gz": {Data: []byte("gzip bytes")},
	}
}

func get(t *testing.T, h http.Handler, path string, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest("GET", path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestHandler(t *testing.T) {
	h, err := New(jsconfig.Config{Site: site, Relays: []string{"ws://127.0.0.1:1/ws"}}, Options{Assets: testAssets()})
	if err != nil {
		t.Fatal(err)
	}
	// The bootstrap names the hashed wasm and carries the config.
	w := get(t, h, "/.hearth/sw.js")
	body := w.Body.String()
	if w.Code != 200 || w.Header().Get("Service-Worker-Allowed") != "/" || w.Header().Get("Cache-Control") != "no-cache" {
		t.Fatalf("sw.js: %d %v", w.Code, w.Header())
	}
	m := regexp.MustCompile(`"sw":"(/\.hearth/sw\.[0-9a-f]{16}\.wasm)"`).FindStringSubmatch(body)
	if m == nil || !strings.Contains(body, `"site":"`+site+`"`) || strings.Contains(body, "HEARTH_") {
		t.Fatalf("sw.js not filled in:\n%s", body[:min(len(body), 2000)])
	}
	// The hashed name is immutable, brotli when accepted.
	w = get(t, h, m[1], "Accept-Encoding", "gzip, deflate, br")
	if w.Code != 200 || w.Header().Get("Content-Encoding") != "br" || w.Body.String() != "brotli bytes" ||
		w.Header().Get("Content-Type") != "application/wasm" || !strings.Contains(w.Header().Get("Cache-Control"), "immutable") {
		t.Fatalf("%s: %d %v %q", m[1], w.Code, w.Header(), w.Body.String())
	}
	// gzip made on the fly when there is no .gz; identity otherwise.
	w = get(t, h, m[1], "Accept-Encoding", "gzip")
	if w.Header().Get("Content-Encoding") != "gzip" {
		t.Fatalf("gzip: %v", w.Header())
	}
	zr, err := gzip.NewReader(w.Body)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(zr)
	if !bytes.Equal(raw, testAssets()["sw.wasm"].Data) {
		t.Fatal("gzip body differs")
	}
	w = get(t, h, m[1], "Accept-Encoding", "br;q=0, gzip;q=0")
	if w.Header().Get("Content-Encoding") != "" || !bytes.Equal(w.Body.Bytes(), testAssets()["sw.wasm"].Data) {
		t.Fatalf("identity: %v", w.Header())
	}
	// Conditional requests.
	etag := w.Header().Get("Etag")
	if w = get(t, h, m[1], "If-None-Match", etag, "Accept-Encoding", "identity"); w.Code != 304 {
		t.Fatalf("If-None-Match: %d", w.Code)
	}
	// Config.
	w = get(t, h, "/.hearth/config.json")
	var cfg jsconfig.Config
	if err := json.Unmarshal(w.Body.Bytes(), &cfg); err != nil || cfg.Site != site || cfg.Scope != "/" || len(cfg.Relays) != 1 {
		t.Fatalf("config.json: %v %+v", err, cfg)
	}
	// The page loader names the agent.
	if b := get(t, h, "/.hearth/hearth.js").Body.String(); !regexp.MustCompile(`"agent":"/\.hearth/agent\.[0-9a-f]{16}\.wasm"`).MatchString(b) {
		t.Fatalf("hearth.js:\n%s", b)
	}
	if w := get(t, h, "/.hearth/nope"); w.Code != 404 {
		t.Fatalf("unknown path: %d", w.Code)
	}
	r := httptest.NewRequest("POST", "/.hearth/sw.js", nil)
	rw := httptest.NewRecorder()
	h.ServeHTTP(rw, r)
	if rw.Code != 405 {
		t.Fatalf("POST: %d", rw.Code)
	}
}

func TestHandlerErrors(t *testing.T) {
	if _, err := New(jsconfig.Config{Site: site}, Options{Assets: fstest.MapFS{}}); !errors.Is(err, ErrNoAssets) {
		t.Fatalf("no assets: %v", err)
	}
	if _, err := New(jsconfig.Config{Site: "nope"}, Options{Assets: testAssets()}); !errors.Is(err, node.ErrBadSiteID) {
		t.Fatalf("bad site: %v", err)
	}
	// Without an agent, pages get the worker only.
	a := testAssets()
	delete(a, "agent.wasm")
	h, err := New(jsconfig.Config{Site: site}, Options{Assets: a})
	if err != nil {
		t.Fatal(err)
	}
	if b := get(t, h, "/.hearth/hearth.js").Body.String(); !strings.Contains(b, `"agent":""`) {
		t.Fatalf("hearth.js without agent:\n%s", b)
	}
}

// With only compressed copies (what make wasm embeds), identity is served
// decompressed.
func TestHandlerCompressedOnly(t *testing.T) {
	a := testAssets()
	raw := a["sw.wasm"].Data
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(raw)
	zw.Close()
	delete(a, "sw.wasm")
	a["sw.wasm.gz"] = &fstest.MapFile{Data: z.Bytes()}
	h, err := New(jsconfig.Config{Site: site}, Options{Assets: a})
	if err != nil {
		t.Fatal(err)
	}
	w := get(t, h, "/.hearth/sw.wasm", "Accept-Encoding", "identity")
	if w.Code != 200 || !bytes.Equal(w.Body.Bytes(), raw) || w.Header().Get("Content-Encoding") != "" {
		t.Fatalf("identity from gzip: %d %v", w.Code, w.Header())
	}
	if w := get(t, h, "/.hearth/sw.wasm", "Accept-Encoding", "br"); w.Body.String() != "brotli bytes" {
		t.Fatalf("br: %v", w.Header())
	}
}
