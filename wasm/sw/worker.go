//go:build js && wasm

package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"sync"
	"syscall/js"
	"time"
	"unicode/utf8"

	"github.com/hearthcdn/hearth/js/jsconfig"
	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/wasm/internal/jsx"
	"github.com/hearthcdn/hearth/wasm/internal/serve"
)

// Paths the worker never answers: its own assets, the record endpoints and
// the gateway it fetches from.
var ownPrefixes = []string{"/.hearth/", "/.well-known/hearth/", "/ipfs/"}

// maxClientRoots bounds how many pages' roots the worker remembers.
const maxClientRoots = 256

// recentRecord is how old a fetched root record may be to serve a page the
// worker did not see navigate.
const recentRecord = 2 * time.Second

// originRecheck: a navigation served from a record that only page agents
// confirmed (pushed from the relay) also asks the origin, in the
// background, when the origin last answered longer ago than this; so a
// relay that withholds new records holds a visitor back this long at most.
const originRecheck = 30 * time.Second

// navHoldMax bounds the navigations read whole before their headers are
// sent (while the departing page's agent can still serve them), in bytes;
// larger ones stream, and fall over to the next source when that agent
// goes.
const navHoldMax = 8 << 20

// smallBody bounds the bodies read whole before their headers are sent, in
// bytes (see fetch).
const smallBody = 256 << 10

// agentWaitMax bounds how long a request waits for a page agent when no
// agent can serve and the origin's gateway failed: long enough for a
// page's own agent to start (its wasm compiled, the relay and a seeder
// reached), short of a browser's patience.
const agentWaitMax = 10 * time.Second

// renderBlocking reports whether a request's destination (Fetch Standard,
// "request destination") can hold up the page's own scripts, the loader
// among them: a stylesheet, a script or a document.
func renderBlocking(dest string) bool {
	switch dest {
	case "style", "script", "document", "iframe", "frame", "worker", "sharedworker", "":
		return true
	}
	return false
}

// agentStartWait bounds how long a subresource of a page the worker served
// waits for that page's agent to reach peers when no agent can serve, before
// it goes to the origin.
const agentStartWait = 3 * time.Second

// worker holds the service worker's state.
//
// Roots: a navigation fetches the site's root record (records.refresh) and
// the new page (its resultingClientId) is served from that root for all its
// subresources, so a page never mixes two versions of the site. A page the
// worker does not know (it was restarted, or the page loaded before it was
// installed, or while it booted) is served from the origin's latest root,
// fetched then, since its HTML came from the origin.
//
// Sources, in order: the block cache, a page agent with peers (asked over a
// MessagePort, with a deadline), the origin's Trustless Gateway; then the
// network, untouched.
type worker struct {
	cfg    *jsconfig.Config
	site   node.SiteID
	origin string // self.location.origin
	cache  *blockCache
	recs   *records
	agents *agents
	gw     *gatewaySource
	srv    *serve.Server

	mu          sync.Mutex
	clientRoots map[string]*node.RootRecord
	clientOrder []string
	reports     map[string][]byte // by client ID: a JSON array being built; flushReports is scheduled while not empty
}

func newWorker(cfg *jsconfig.Config) *worker {
	origin := jsx.Global().Get("location").Get("origin").String()
	w := &worker{
		cfg:         cfg,
		site:        cfg.SiteID(),
		origin:      origin,
		clientRoots: make(map[string]*node.RootRecord),
	}
	w.cache = newBlockCache(origin, int64(cfg.CacheMiB)<<20, w.notifyError)
	w.recs = &records{site: w.site, url: origin + "/.well-known/hearth/" + cfg.Site + "/record", cache: w.cache,
		onError: w.notifyError, onNew: w.notifyRoot}
	w.agents = newAgents(time.Duration(cfg.AgentTimeoutMS)*time.Millisecond, w.acceptRecord)
	w.gw = &gatewaySource{base: origin}
	w.srv = &serve.Server{Cache: w.cache, InjectLoader: !cfg.NoInject}
	return w
}

// start begins background work: loading the cache index and the
// persisted root record.
func (w *worker) start() {
	w.cache.start()
	// The persisted record, so that the first navigation after a restart
	// is served from it while the record is refreshed.
	go w.recs.load(context.Background()) // owned by the worker: ends once read
}

// ours reports whether the worker answers a request at all: GET or HEAD,
// same origin, inside a configured prefix, not one of its own paths, and
// not asking to bypass caches.
func (w *worker) ours(method, origin, path, cacheMode string) bool {
	if method != "GET" && method != "HEAD" {
		return false
	}
	if origin != w.origin || cacheMode == "no-store" || cacheMode == "only-if-cached" {
		return false
	}
	for _, p := range ownPrefixes {
		if strings.HasPrefix(path, p) {
			return false
		}
	}
	for _, p := range w.cfg.Prefixes {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	return false
}

// jsFetch is goHandleFetch(request, clientId, resultingClientId, resolve):
// it resolves the bootstrap's Promise with a Response, or with null when the
// network should answer (it never rejects).
func (w *worker) jsFetch(_ js.Value, args []js.Value) any {
	if len(args) < 4 {
		return nil
	}
	req, resolve := args[0], args[3]
	clientID, resultingID := jsx.String(args[1]), jsx.String(args[2])
	go func() { // owned by the request: ends when the Promise is settled
		v, err := w.fetch(req, clientID, resultingID)
		if err != nil {
			v = js.Null() // the network answers instead
		}
		resolve.Invoke(v)
	}()
	return nil
}

// newResponse builds a Response through the bootstrap's hearthResponse,
// with the headers in one string (a value never holds a newline: serve
// writes them all, and Location is a URL).
func newResponse(body js.Value, status int, header [][2]string) js.Value {
	var b strings.Builder
	for _, kv := range header {
		if strings.ContainsAny(kv[0], "\n\r") || strings.ContainsAny(kv[1], "\n\r") {
			continue
		}
		b.WriteString(kv[0])
		b.WriteByte('\n')
		b.WriteString(kv[1])
		b.WriteByte('\n')
	}
	return jsx.Global().Call("hearthResponse", body, status, b.String())
}

// jsHeaders adapts a JS Headers object to serve.Header.
type jsHeaders struct{ h js.Value }

func (h jsHeaders) Get(name string) string { return jsx.String(h.h.Call("get", name)) }

func (w *worker) fetch(req js.Value, clientID, resultingID string) (js.Value, error) {
	u := jsx.Global().Get("URL").New(req.Get("url"))
	method := req.Get("method").String()
	path := u.Get("pathname").String()
	if !w.ours(method, u.Get("origin").String(), path, jsx.String(req.Get("cache"))) {
		return js.Null(), serve.ErrPassThrough
	}
	navigate := jsx.String(req.Get("mode")) == "navigate"
	target := clientID
	href := u.Get("href").String()
	st := &serve.Stats{}
	var rec *node.RootRecord
	var fresh <-chan *node.RootRecord // a navigation's record, being refreshed
	seenNavigate := false             // the worker served this client's page
	if navigate && w.cfg.MaxStale() > 0 && w.recs.freshWithin(w.cfg.MaxStale()) {
		// The record held was known to be the latest within the site's
		// freshness bound (fetched, or pushed by a page agent from the
		// relay): no wait on the origin.
		target = resultingID
		rec = w.recs.held()
		if w.recs.originAge() > originRecheck {
			w.recs.recheck()
		}
	} else if navigate {
		target = resultingID
		// The record is fetched while the page is served from the root
		// held; the response waits for it, and starts again from the new
		// root if the site was republished.
		t0 := time.Now()
		ch := make(chan *node.RootRecord, 1)
		first := st
		go func() { // owned by the navigation: ends with the refresh (recordTimeout)
			r := w.recs.refresh(context.Background())
			first.RecordTime = time.Since(t0) // read once ch delivers
			ch <- r
		}()
		if rec = w.recs.held(); rec == nil {
			rec = <-ch
		} else {
			fresh = ch
		}
	} else {
		rec = w.clientRoot(clientID)
		seenNavigate = rec != nil
		if rec == nil {
			// A page the worker did not see navigate (it loaded before
			// the worker was installed, or while it booted): its HTML
			// came from the origin, so serve it from the origin's latest
			// root, fetched again unless just fetched.
			rec = w.recs.recent(context.Background(), recentRecord)
			if rec != nil && clientID != "" {
				w.setClientRoot(clientID, rec)
			}
		}
	}
	if rec == nil {
		w.report(target, href, st, true, nil)
		return js.Null(), serve.ErrPassThrough
	}
	live := w.agents.live(4)
	if len(live) == 0 && seenNavigate && w.agents.everLive() && !renderBlocking(jsx.String(req.Get("destination"))) {
		// A page the worker served, whose own agent is starting (the
		// agent of the page before it left when this one committed): its
		// images, fonts and media wait a little for that agent rather
		// than go to the origin, as long as this visitor's agents have
		// reached peers before. Stylesheets and scripts do not wait: the
		// page's loader, which starts the agent, runs only after them.
		wctx, wcancel := context.WithTimeout(context.Background(), agentStartWait)
		live = w.agents.waitLive(wctx, 4)
		wcancel()
	}
	var sources []serve.Source
	for _, a := range live {
		sources = append(sources, a)
	}
	sources = append(sources, w.gw)
	var (
		resp   *serve.Response
		ctx    context.Context
		cancel context.CancelFunc
		end    func()
	)
	for {
		end = w.cache.begin()
		ctx, cancel = context.WithCancel(context.Background())
		var err error
		resp, err = w.srv.Serve(ctx, serve.Request{
			Method:  method,
			Root:    rec.Root,
			Path:    path,
			Query:   strings.TrimPrefix(u.Get("search").String(), "?"),
			Header:  jsHeaders{req.Get("headers")},
			Sources: sources,
			Stats:   st,
		})
		if fresh != nil {
			got := <-fresh
			fresh = nil
			if got != nil && !got.Root.Equals(rec.Root) {
				if err == nil {
					resp.Close()
				}
				cancel()
				end()
				rec = got
				// The report counts the attempt that answers, alone.
				st = &serve.Stats{RecordTime: st.RecordTime}
				continue
			}
		}
		if err != nil && len(sources) == 1 && errors.Is(err, serve.ErrNoSource) {
			// No agent, and the origin's gateway failed (it is down or
			// unreachable): wait for an agent, such as the page's own
			// one coming up, and try again with it before giving up. A
			// navigation waits less: only an open page's agent can come
			// (one reconnecting to a worker that started again).
			cancel()
			end()
			wait := agentWaitMax
			if navigate {
				wait = agentStartWait
			}
			wctx, wcancel := context.WithTimeout(context.Background(), wait)
			live := w.agents.waitLive(wctx, 4)
			wcancel()
			if len(live) > 0 {
				sources = nil
				for _, a := range live {
					sources = append(sources, a)
				}
				sources = append(sources, w.gw)
				st = &serve.Stats{RecordTime: st.RecordTime}
				continue
			}
			w.report(target, href, st, true, nil)
			return js.Null(), err
		}
		if err != nil {
			cancel()
			end()
			w.report(target, href, st, true, nil)
			return js.Null(), err
		}
		break
	}
	if navigate && resultingID != "" {
		w.setClientRoot(resultingID, rec)
	}
	for i, kv := range resp.Header {
		if kv[0] == "Location" {
			resp.Header[i][1] = jsx.Global().Get("URL").New(kv[1], u).Get("href").String()
		}
	}
	if !resp.HasBody() || method == "HEAD" {
		resp.Close()
		cancel()
		end()
		w.report(target, href, resp.Stats, false, nil)
		return newResponse(js.Null(), resp.Status, resp.Header), nil
	}
	// Bodies read whole before the headers go out: a navigation the
	// departing page's agent serves (that agent goes away when the new
	// page commits, which the headers start), and any small body (a
	// ReadableStream costs the worker more than the wait; and a source
	// failing midway then falls over to the network, not to a cut body).
	hold := resp.Length <= smallBody
	if navigate && resp.Status == 200 && resp.Length <= navHoldMax && len(sources) > 1 {
		hold = true
	}
	if hold {
		var buf bytes.Buffer
		buf.Grow(int(resp.Length))
		err := resp.WriteBody(ctx, &buf)
		cancel()
		end()
		w.report(target, href, resp.Stats, false, err)
		if err != nil {
			return js.Null(), err // nothing sent yet: the network answers
		}
		return newResponse(jsx.Uint8Array(buf.Bytes()), resp.Status, resp.Header), nil
	}
	body := jsx.NewReadableStream(cancel, func(wr io.Writer) error {
		return resp.WriteBody(ctx, wr)
	}, func(err error) {
		cancel()
		end()
		w.report(target, href, resp.Stats, false, err)
	})
	return newResponse(body, resp.Status, resp.Header), nil
}

func (w *worker) setClientRoot(id string, rec *node.RootRecord) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.clientRoots[id]; !ok {
		w.clientOrder = append(w.clientOrder, id)
	}
	w.clientRoots[id] = rec
	for len(w.clientOrder) > maxClientRoots {
		delete(w.clientRoots, w.clientOrder[0])
		w.clientOrder = w.clientOrder[1:]
	}
}

func (w *worker) clientRoot(id string) *node.RootRecord {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.clientRoots[id]
}

// acceptRecord takes a root record a page agent received from the relay.
func (w *worker) acceptRecord(b []byte) { w.recs.offer(context.Background(), b) }

// report queues a response's stats for the page that made the request;
// the reports of a page are posted together, reportDelay after the first
// (reportIdleDelay when no other response is in progress), as a page of 200
// files would otherwise cost the worker 200 posts:
//
//	{type: "hearth:stats-batch", reports: JSON text of [{url, cache, peer,
//	 origin, peerFailures, originFailures, sourceError, passthrough, error,
//	 recordMs, headersMs, firstByteMs, doneMs}, ...]}
//
// bytes by source (see serve.Stats); the last source failure's text;
// passthrough when the network answered;
// error when the body was cut short; the root record fetch's time (for a
// navigation), and when the headers, the first verified body byte and the
// body's end were ready, in ms after the worker started serving (0: not
// reached).
func (w *worker) report(clientID, url string, st *serve.Stats, passthrough bool, bodyErr error) {
	if clientID == "" {
		return
	}
	r := statsReport{URL: url, Passthrough: passthrough}
	if st != nil {
		s := st.Snapshot()
		r.Cache, r.Peer, r.Origin = s.Cache, s.Peer, s.Origin
		r.PeerFailures, r.OriginFailures = s.PeerFailures, s.OriginFailed
		r.SourceError = s.LastError
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		r.RecordMs, r.HeadersMs, r.FirstByteMs, r.DoneMs = ms(st.RecordTime), ms(s.Headers), ms(s.FirstByte), ms(s.Done)
	}
	if bodyErr != nil && !errors.Is(bodyErr, context.Canceled) {
		r.Error = bodyErr.Error()
	}
	b := r.appendJSON(nil)
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.reports) == 0 { // the first since the last flush: schedule one
		w.reports = make(map[string][]byte)
		d := reportDelay
		if w.cache.active.Load() == 0 {
			d = reportIdleDelay // no response in progress: little to wait for
		}
		time.AfterFunc(d, w.flushReports)
	}
	q := w.reports[clientID]
	if q == nil {
		q = append(q, '[')
	} else {
		q = append(q, ',')
	}
	w.reports[clientID] = append(q, b...)
}

// reportDelay is how long a report waits for others to the same page while
// responses are in progress, reportIdleDelay while none is.
const (
	reportDelay     = 10 * time.Millisecond
	reportIdleDelay = 2 * time.Millisecond
)

// statsReport is one response's report (see report).
type statsReport struct {
	URL                          string
	Cache, Peer, Origin          int64
	PeerFailures, OriginFailures int
	SourceError, Error           string // omitted when ""
	Passthrough                  bool
	RecordMs, HeadersMs          float64
	FirstByteMs, DoneMs          float64
}

// appendJSON appends r as a JSON object (RFC 8259). It is written out, not
// reflected, to keep encoding/json's encoder out of the worker's binary.
func (r *statsReport) appendJSON(b []byte) []byte {
	b = append(b, `{"url":`...)
	b = appendJSONString(b, r.URL)
	for _, f := range []struct {
		k string
		v int64
	}{{"cache", r.Cache}, {"peer", r.Peer}, {"origin", r.Origin},
		{"peerFailures", int64(r.PeerFailures)}, {"originFailures", int64(r.OriginFailures)}} {
		b = append(b, `,"`...)
		b = append(b, f.k...)
		b = append(b, `":`...)
		b = strconv.AppendInt(b, f.v, 10)
	}
	for _, f := range []struct{ k, v string }{{"sourceError", r.SourceError}, {"error", r.Error}} {
		if f.v != "" {
			b = append(b, `,"`...)
			b = append(b, f.k...)
			b = append(b, `":`...)
			b = appendJSONString(b, f.v)
		}
	}
	b = append(b, `,"passthrough":`...)
	b = strconv.AppendBool(b, r.Passthrough)
	for _, f := range []struct {
		k string
		v float64
	}{{"recordMs", r.RecordMs}, {"headersMs", r.HeadersMs}, {"firstByteMs", r.FirstByteMs}, {"doneMs", r.DoneMs}} {
		b = append(b, `,"`...)
		b = append(b, f.k...)
		b = append(b, `":`...)
		b = strconv.AppendFloat(b, f.v, 'f', -1, 64)
	}
	return append(b, '}')
}

// appendJSONString appends s as a JSON string: quotes, backslashes and
// control characters escaped, invalid UTF-8 replaced by U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b = append(b, '\\', byte(r))
		case r < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[r>>4], hex[r&0xf])
		default:
			b = utf8.AppendRune(b, r)
		}
	}
	return append(b, '"')
}

// flushReports posts the queued reports, one message per page.
func (w *worker) flushReports() {
	w.mu.Lock()
	queued := w.reports
	w.reports = nil
	w.mu.Unlock()
	for id, q := range queued {
		q = append(q, ']')
		msg := jsx.Object(map[string]any{"type": "hearth:stats-batch", "reports": string(q)})
		_, _ = jsx.Try(func() js.Value { return jsx.Global().Call("hearthPost", id, msg) })
	}
}

// notifyError posts {type: "hearth:error", reason, detail} to every
// controlled page: a refused root record, a full cache.
func (w *worker) notifyError(reason, detail string) {
	w.postAll(jsx.Object(map[string]any{"type": "hearth:error", "reason": reason, "detail": detail}))
}

// notifyRoot posts {type: "hearth:root", seq, root} to every controlled
// page when the worker accepts a newer root record (from the origin or
// pushed by a page agent): the site was republished, and the next
// navigation shows it.
func (w *worker) notifyRoot(rec *node.RootRecord) {
	w.postAll(jsx.Object(map[string]any{"type": "hearth:root", "seq": float64(rec.Seq), "root": rec.Root.String()}))
}

// postAll posts msg to every page of the origin.
func (w *worker) postAll(msg js.Value) {
	go func() { // owned by the message: ends when the posts are done
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		opts := jsx.Object(map[string]any{"includeUncontrolled": true})
		list, err := jsx.Await(ctx, jsx.Global().Get("clients").Call("matchAll", opts))
		if err != nil {
			return
		}
		for i := 0; i < list.Length(); i++ {
			c := list.Index(i)
			_, _ = jsx.Try(func() js.Value { return c.Call("postMessage", msg) })
		}
	}()
}

// jsMessage is goHandleMessage(data, ports, sourceClientId).
func (w *worker) jsMessage(_ js.Value, args []js.Value) any {
	if len(args) < 2 {
		return nil
	}
	data, ports := args[0], args[1]
	src := ""
	if len(args) > 2 {
		src = jsx.String(args[2])
	}
	if data.Type() != js.TypeObject || jsx.String(data.Get("type")) != "hearth:agent" {
		return nil
	}
	if ports.Type() == js.TypeObject && ports.Length() > 0 {
		w.agents.add(ports.Index(0), src)
	}
	return nil
}
