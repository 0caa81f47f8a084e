package testbrowser

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// browser is one Chromium process with a fresh profile.
type browser struct {
	t   testing.TB
	ctx context.Context // the browser's first tab

	mu  sync.Mutex
	log []string // console messages and exceptions of every tab

	stopOnce sync.Once
	cancel   func() // stops Chromium
}

// newBrowser starts Chromium with the flags DESIGN.md lists; it is stopped
// when the test ends.
func newBrowser(t testing.TB, extra ...chromedp.ExecAllocatorOption) *browser {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("allow-loopback-in-peer-connection", true),
		chromedp.Flag("disable-features", "WebRtcHideLocalIpsWithMdns"),
		chromedp.UserDataDir(t.TempDir()),
	}
	opts = append(opts, extra...)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	b := &browser{t: t, ctx: ctx, cancel: func() { cancel(); cancelAlloc() }}
	t.Cleanup(func() {
		b.stop()
		if t.Failed() {
			b.mu.Lock()
			for _, l := range b.log {
				t.Log("browser:", l)
			}
			b.mu.Unlock()
		}
	})
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("starting chromium: %v", err)
	}
	b.listen(ctx, "tab0")
	return b
}

// stop stops Chromium before the test ends (it is stopped then anyway).
func (b *browser) stop() { b.stopOnce.Do(b.cancel) }

// listen records the console and exceptions of a tab.
func (b *browser) listen(ctx context.Context, name string) {
	_ = chromedp.Listen(ctx, func(ev any) {
		var line string
		switch e := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			var parts []string
			for _, a := range e.Args {
				parts = append(parts, strings.Trim(string(a.Value), `"`)+a.Description)
			}
			line = fmt.Sprintf("%s console.%s: %s", name, e.Type, strings.Join(parts, " "))
		case *runtime.EventExceptionThrown:
			d := e.ExceptionDetails
			desc := d.Text
			if d.Exception != nil {
				desc += " " + d.Exception.Description
			}
			line = fmt.Sprintf("%s exception at %s:%d: %s", name, d.URL, d.LineNumber, desc)
		default:
			return
		}
		b.mu.Lock()
		b.log = append(b.log, line)
		b.mu.Unlock()
	})
}

// tab opens another tab in the same browser (same profile, same service
// worker); it is closed when the test ends.
func (b *browser) tab(name string) context.Context {
	b.t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx)
	b.t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		b.t.Fatalf("opening tab: %v", err)
	}
	b.listen(ctx, name)
	return ctx
}

// navigate loads url in the tab and waits for its load event.
func navigate(t testing.TB, ctx context.Context, url string) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(tctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("navigating to %s: %v", url, err)
	}
}

// eval evaluates expr in the tab, awaiting a Promise, and decodes the result.
func eval[T any](t testing.TB, ctx context.Context, expr string) T {
	t.Helper()
	v, err := evalErr[T](ctx, expr)
	if err != nil {
		t.Fatalf("evaluating %s: %v", abbreviate(expr), err)
	}
	return v
}

func evalErr[T any](ctx context.Context, expr string) (T, error) {
	tctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	return chromedp.Run(tctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
}

// waitFor polls expr (a boolean JS expression) until true.
func waitFor(t testing.TB, ctx context.Context, what, expr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, err := evalErr[bool](ctx, expr)
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s (%s): last: %v, %v", what, abbreviate(expr), ok, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func abbreviate(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 120 {
		return s[:117] + "..."
	}
	return s
}

// Page-side helpers, evaluated in the tab.
const jsHelpers = `
window.hearthTest = window.hearthTest || {
  // sha256 of a URL's bytes through the page's fetch (the service worker).
  async digest(url, init) {
    const r = await fetch(url, init);
    const b = await r.arrayBuffer();
    const d = await crypto.subtle.digest('SHA-256', b);
    return {status: r.status, len: b.byteLength, hash: Array.from(new Uint8Array(d)).map(x => x.toString(16).padStart(2, '0')).join(''),
            type: r.headers.get('content-type'), etag: r.headers.get('etag'), range: r.headers.get('content-range')};
  },
};
true`

// debugAgents makes the page agents of every later document in the tab log
// to the console (window.hearthDebug), which failed tests print.
func debugAgents(t testing.TB, ctx context.Context) {
	t.Helper()
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument,
		page.AddScriptToEvaluateOnNewDocumentParams{Source: "window.hearthDebug = true;"}); err != nil {
		t.Fatalf("adding the debug script: %v", err)
	}
}
