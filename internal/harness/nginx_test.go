//go:build linux

package harness_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hearthcdn/hearth/internal/harness"
	"github.com/hearthcdn/hearth/js/inject"
	"github.com/hearthcdn/hearth/node/gateway"
)

// README markers around the nginx snippet.
const (
	snippetBegin = "<!-- begin " + harness.NginxSnippet + " (TestNginxSnippetInREADME keeps it equal to the file) -->\n"
	snippetEnd   = "<!-- end " + harness.NginxSnippet + " -->\n"
)

// The README shows the very server block that TestNginx runs.
func TestNginxSnippetInREADME(t *testing.T) {
	readme, err := os.ReadFile(harness.RepoFile(t, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	conf, err := os.ReadFile(harness.RepoFile(t, harness.NginxSnippet))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := bytes.Cut(readme, []byte(snippetBegin))
	if !ok {
		t.Fatalf("README.md lacks the line %q", snippetBegin)
	}
	block, _, ok := bytes.Cut(rest, []byte(snippetEnd))
	if !ok {
		t.Fatalf("README.md lacks the line %q", snippetEnd)
	}
	want := "```nginx\n" + string(conf) + "```\n"
	if string(block) != want {
		t.Errorf("README.md's nginx block differs from %s; paste the file between the markers:\n%s", harness.NginxSnippet, want)
	}
}

// An origin and a seeder, each behind nginx with TLS as the README
// configures it: the site comes through byte for byte (pages with the
// loader), with the headers visitors' browsers and caches rely on; the
// seeder follows the origin's record events through both proxies and
// serves each new root; a client of the event stream through nginx gets
// each new record as it is signed.
func TestNginx(t *testing.T) {
	harness.NeedNginx(t)
	ca := harness.NewTestCA(t)
	t.Setenv("SSL_CERT_FILE", ca.CAFile) // the seeder reaches the origin through nginx
	src := filepath.Join(t.TempDir(), "site")
	if _, err := os.Stat(pyDocs); err == nil {
		harness.CopyTree(t, pyDocs, src)
	} else {
		t.Logf("python3-doc is not installed (%v): a small site instead", err)
		writeSmallSite(t, src)
	}
	key := harness.NewKey(t)
	origin := harness.StartOrigin(t, key, src, "--watch", "--debounce", "200ms")
	originProxy := harness.StartNginx(t, ca, origin.Addr)
	// Records come only from the event stream: polling is an hour away.
	seeder := harness.StartSeeder(t, "seeder", key.Site, originProxy.URL(), "--poll", "1h")
	seeder.WaitMetric("hearth_pinned_sequence", 2*time.Minute, func(v float64) bool { return v == 1 })
	seederProxy := harness.StartNginx(t, ca, seeder.Addr)
	client := ca.Client(30 * time.Second)
	// The nodes add the loader to pages only when they serve the browser
	// client, which the binary embeds once `make wasm` has built it.
	withClient := headers(t, http.DefaultClient, origin.URL()+"/.hearth/sw.js", "gzip").Get("Service-Worker-Allowed") != ""
	if !withClient {
		t.Log("the hearth binary has no browser client (make wasm builds js/dist): pages are served as published")
	}

	t.Run("FilesByteForByte", func(t *testing.T) {
		for _, proxy := range []*harness.Nginx{originProxy, seederProxy} {
			sameFiles(t, client, proxy.URL(), src, withClient)
		}
	})

	t.Run("Headers", func(t *testing.T) {
		page := "index.html"
		direct := headers(t, http.DefaultClient, origin.URL()+"/"+page, "identity")
		for _, proxy := range []*harness.Nginx{originProxy, seederProxy} {
			got := headers(t, client, proxy.URL()+"/"+page, "identity")
			for _, h := range []string{"Etag", "Cache-Control", "Content-Type", "Content-Length"} {
				if got.Get(h) != direct.Get(h) {
					t.Errorf("%s/%s: %s %q through nginx, %q from the origin", proxy.URL(), page, h, got.Get(h), direct.Get(h))
				}
			}
			if withClient && !strings.HasSuffix(got.Get("Etag"), inject.ETagSuffix+`"`) {
				t.Errorf("%s/%s: ETag %q is not the tagged page's", proxy.URL(), page, got.Get("Etag"))
			}
			// Debian's nginx gzips text/html and marks the ETag weak: a
			// conditional request still matches it (weak comparison).
			gz := headers(t, client, proxy.URL()+"/"+page, "gzip")
			if tag := strings.TrimPrefix(gz.Get("Etag"), "W/"); tag != direct.Get("Etag") {
				t.Errorf("%s/%s gzipped: ETag %q, want %q or its weak form", proxy.URL(), page, gz.Get("Etag"), direct.Get("Etag"))
			}
			req, _ := http.NewRequest("GET", proxy.URL()+"/"+page, nil)
			req.Header.Set("If-None-Match", gz.Get("Etag"))
			if resp, err := client.Do(req); err != nil || resp.StatusCode != http.StatusNotModified {
				t.Errorf("%s/%s If-None-Match %s: %v %v, want 304", proxy.URL(), page, gz.Get("Etag"), status(resp), err)
			} else {
				resp.Body.Close()
			}
		}
	})

	t.Run("ServiceWorkerHeaders", func(t *testing.T) {
		if !withClient {
			t.Skip("the hearth binary has no browser client (make wasm builds js/dist)")
		}
		direct := headers(t, http.DefaultClient, origin.URL()+"/.hearth/sw.js", "gzip")
		for _, proxy := range []*harness.Nginx{originProxy, seederProxy} {
			got := headers(t, client, proxy.URL()+"/.hearth/sw.js", "gzip")
			for _, h := range []string{"Etag", "Cache-Control", "Service-Worker-Allowed", "Content-Type"} {
				if got.Get(h) != direct.Get(h) {
					t.Errorf("%s/.hearth/sw.js: %s %q through nginx, %q from the origin", proxy.URL(), h, got.Get(h), direct.Get(h))
				}
			}
		}
	})

	t.Run("Range", func(t *testing.T) {
		name, body := largestFile(t, src)
		from, to := len(body)/3, len(body)/3+99_999
		if to >= len(body) {
			to = len(body) - 1
		}
		for _, proxy := range []*harness.Nginx{originProxy, seederProxy} {
			req, _ := http.NewRequest("GET", proxy.URL()+"/"+escapePath(name), nil)
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", from, to))
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusPartialContent || !bytes.Equal(got, body[from:to+1]) {
				t.Errorf("%s/%s bytes %d-%d: %s, %d bytes, %v", proxy.URL(), name, from, to, resp.Status, len(got), err)
			}
		}
	})

	t.Run("EventsUnbuffered", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		events := subscribe(t, ctx, client, originProxy.URL()+gateway.EventsPath(key.Site))
		first := nextRecord(t, events, 30*time.Second)
		if first != 1 {
			t.Fatalf("first event through nginx: record %d, want 1", first)
		}
		const marker = "<!-- republished behind nginx -->"
		index := filepath.Join(src, "index.html")
		b, err := os.ReadFile(index)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(index, append(b, marker...), 0o644); err != nil {
			t.Fatal(err)
		}
		// A buffering proxy would hold the event (a few hundred bytes)
		// until its buffer filled or the stream ended.
		if seq := nextRecord(t, events, 30*time.Second); seq != 2 {
			t.Fatalf("next event through nginx: record %d, want 2", seq)
		}
		// The seeder, which polls hourly, heard of it through the same
		// stream, replicated it and serves it through its own nginx.
		seeder.WaitMetric("hearth_pinned_sequence", time.Minute, func(v float64) bool { return v == 2 })
		code, body := get(t, client, seederProxy.URL()+"/index.html", "")
		if code != 200 || !bytes.Contains(body, []byte(marker)) {
			t.Fatalf("the seeder's nginx after the republish: %d, %d bytes without the change", code, len(body))
		}
	})
}

// writeSmallSite writes a site of a few pages, a stylesheet and a file of
// several chunks.
func writeSmallSite(t *testing.T, dir string) {
	t.Helper()
	big := make([]byte, 1<<20+12345)
	for i := range big {
		big[i] = byte(i * 7 / 3)
	}
	files := map[string][]byte{
		"index.html":         []byte("<!doctype html><html><head><title>home</title><link rel=stylesheet href=s.css></head><body><a href=docs/a.html>a</a></body></html>"),
		"docs/a.html":        []byte("<html><head><title>a</title></head><body>a</body></html>"),
		"s.css":              []byte("body { color: #333 }"),
		"media/big file.bin": big,
	}
	for name, b := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// sameFiles fetches every file under dir from base and fails t unless
// each is the file's bytes (with tagged, an HTML page with the loader
// added, as the node adds it).
func sameFiles(t *testing.T, client *http.Client, base, dir string, tagged bool) {
	t.Helper()
	var names []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		names = append(names, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	work := make(chan string)
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		failed []string
	)
	for range 8 {
		wg.Go(func() {
			for name := range work {
				if msg := sameFile(client, base, dir, name, tagged); msg != "" {
					mu.Lock()
					failed = append(failed, msg)
					mu.Unlock()
				}
			}
		})
	}
	for _, n := range names {
		work <- n
	}
	close(work)
	wg.Wait()
	if n := len(failed); n > 0 {
		if n > 10 {
			failed = append(failed[:10], fmt.Sprintf("and %d more", n-10))
		}
		t.Errorf("%s: %d of %d files differ:\n%s", base, n, len(names), strings.Join(failed, "\n"))
	} else {
		t.Logf("%s: %d files, each as published", base, len(names))
	}
}

// sameFile compares one file; it returns what differs, or "".
func sameFile(client *http.Client, base, dir, name string, tagged bool) string {
	want, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
	if err != nil {
		return err.Error()
	}
	isHTML := inject.IsHTML(mime.TypeByExtension(filepath.Ext(name)))
	if tagged && isHTML && len(want) <= inject.MaxPage {
		want, _ = inject.HTML(want)
	}
	resp, err := client.Get(base + "/" + escapePath(name))
	if err != nil {
		return fmt.Sprintf("%s: %v", name, err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	switch {
	case err != nil:
		return fmt.Sprintf("%s: reading: %v", name, err)
	case resp.StatusCode != http.StatusOK:
		return fmt.Sprintf("%s: %s", name, resp.Status)
	case !bytes.Equal(got, want):
		return fmt.Sprintf("%s: %d bytes, want %d", name, len(got), len(want))
	case isHTML && !inject.IsHTML(resp.Header.Get("Content-Type")):
		return fmt.Sprintf("%s: Content-Type %q", name, resp.Header.Get("Content-Type"))
	}
	return ""
}

func escapePath(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

// headers GETs u with Accept-Encoding enc and returns the response's
// headers (the body is read and dropped).
func headers(t *testing.T, client *http.Client, u, enc string) http.Header {
	t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	req.Header.Set("Accept-Encoding", enc)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatal(err)
	}
	return resp.Header
}

func get(t *testing.T, client *http.Client, u, enc string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	if enc != "" {
		req.Header.Set("Accept-Encoding", enc)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

func status(resp *http.Response) string {
	if resp == nil {
		return "no response"
	}
	resp.Body.Close()
	return resp.Status
}

// largestFile returns the name (slash-separated, relative) and bytes of
// the largest file under dir.
func largestFile(t *testing.T, dir string) (string, []byte) {
	t.Helper()
	var name string
	var size int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if fi.Size() > size && !inject.IsHTML(mime.TypeByExtension(filepath.Ext(p))) {
			rel, _ := filepath.Rel(dir, p)
			name, size = filepath.ToSlash(rel), fi.Size()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
	if err != nil {
		t.Fatal(err)
	}
	return name, b
}

// subscribe opens the event stream at u and returns the sequence numbers
// of the records it delivers, in order; the stream ends with ctx.
func subscribe(t *testing.T, ctx context.Context, client *http.Client, u string) <-chan uint64 {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		t.Fatal(err)
	}
	// No client timeout: the stream stays open until ctx ends.
	c := *client
	c.Timeout = 0
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		resp.Body.Close()
		t.Fatalf("events through nginx: %s, %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	out := make(chan uint64, 16)
	var wg sync.WaitGroup
	t.Cleanup(func() { resp.Body.Close(); wg.Wait() })
	wg.Go(func() { // owned by the test: the cleanup closes the body and waits
		defer close(out)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 4096), 64<<10)
		for sc.Scan() {
			var seq uint64
			if _, err := fmt.Sscanf(sc.Text(), "id: %d", &seq); err == nil {
				select {
				case out <- seq:
				case <-ctx.Done():
					return
				}
			}
		}
	})
	return out
}

// nextRecord waits up to timeout for the next record on events.
func nextRecord(t *testing.T, events <-chan uint64, timeout time.Duration) uint64 {
	t.Helper()
	select {
	case seq, ok := <-events:
		if !ok {
			t.Fatal("the event stream ended")
		}
		return seq
	case <-time.After(timeout):
		t.Fatalf("no record on the event stream within %s", timeout)
	}
	return 0
}
