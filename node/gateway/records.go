package gateway

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/hearthcdn/hearth/node"
)

// Records serves the well-known record endpoints (see the package
// documentation) for the sites whose feeds it holds.
type Records struct {
	feeds     map[node.SiteID]*RecordFeed
	log       *slog.Logger
	obs       Observer
	keepAlive time.Duration
	streams   *streamLimiter
	mux       *http.ServeMux

	closeOnce sync.Once
	closed    chan struct{}
}

// RecordsOptions tune a Records handler. The zero value is usable.
type RecordsOptions struct {
	Logger   *slog.Logger // nil: slog.Default()
	Observer Observer     // nil: none
	// KeepAlive is the interval of comment lines on event streams; 0 means 15 s.
	KeepAlive time.Duration
	// Streams bound the open event streams, per client and in all; the
	// zero value means DefaultStreamsPerIP and DefaultStreams.
	Streams StreamLimits
}

// NewRecords returns a handler for the feeds' sites.
func NewRecords(opts RecordsOptions, feeds ...*RecordFeed) *Records {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Observer == nil {
		opts.Observer = nopObserver{}
	}
	if opts.KeepAlive <= 0 {
		opts.KeepAlive = 15 * time.Second
	}
	h := &Records{
		feeds:     make(map[node.SiteID]*RecordFeed, len(feeds)),
		log:       opts.Logger,
		obs:       opts.Observer,
		keepAlive: opts.KeepAlive,
		streams:   newStreamLimiter(opts.Streams),
		mux:       http.NewServeMux(),
		closed:    make(chan struct{}),
	}
	if so, ok := opts.Observer.(StreamObserver); ok {
		h.streams.onChange = so.Streams
	}
	for _, f := range feeds {
		h.feeds[f.Site()] = f
	}
	h.mux.Handle("GET "+WellKnownPrefix+"{site}/record", h.wrap(KindRecord, h.serveRecord))
	h.mux.Handle("GET "+WellKnownPrefix+"{site}/records", h.wrap(KindHistory, h.serveHistory))
	h.mux.Handle("GET "+WellKnownPrefix+"{site}/events", h.wrap(KindEvents, h.serveEvents))
	return h
}

// ServeHTTP implements http.Handler.
func (h *Records) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// Close ends every open event stream (their clients reconnect elsewhere or
// later); call it when the server shuts down, since http.Server.Shutdown
// waits for streams that never go idle. Requests after Close get 503.
func (h *Records) Close() { h.closeOnce.Do(func() { close(h.closed) }) }

func (h *Records) wrap(kind ServeKind, serve func(*respWriter, *http.Request, *RecordFeed) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rw := newRespWriter(w)
		allowCORS(rw.Header())
		err := h.feed(r)
		if err == nil {
			err = serve(rw, r, h.feeds[mustSite(r)])
		}
		if err != nil && rw.code == 0 {
			writeError(rw, r, h.log, err)
		}
		h.obs.Served(kind, rw.status(), rw.n)
	})
}

func (h *Records) feed(r *http.Request) error {
	site, err := node.ParseSiteID(r.PathValue("site"))
	if err != nil {
		return err
	}
	if _, ok := h.feeds[site]; !ok {
		return fmt.Errorf("site %s: %w", site, ErrUnknownSite)
	}
	return nil
}

func mustSite(r *http.Request) node.SiteID {
	s, _ := node.ParseSiteID(r.PathValue("site"))
	return s
}

func (h *Records) serveRecord(w *respWriter, r *http.Request, f *RecordFeed) error {
	rec := f.Latest()
	if rec == nil {
		return fmt.Errorf("no root record for %s: %w", f.Site(), node.ErrNotFound)
	}
	b := rec.Bytes()
	etag := fmt.Sprintf(`"%s.%d"`, rec.Site, rec.Seq)
	hd := w.Header()
	hd.Set("Content-Type", MediaRecord)
	hd.Set("Cache-Control", "no-cache")
	hd.Set("Etag", etag)
	hd.Set("X-Hearth-Seq", strconv.FormatUint(rec.Seq, 10))
	hd.Set("X-Content-Type-Options", "nosniff")
	if etagMatch(r.Header.Get("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	hd.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	_, err := w.Write(b)
	return err
}

func parseSince(r *http.Request, header string) (uint64, error) {
	s := r.URL.Query().Get("since")
	if s == "" && header != "" {
		s = r.Header.Get(header)
	}
	if s == "" {
		return 0, nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, badRequest("since %q: want a sequence number", s)
	}
	return v, nil
}

func (h *Records) serveHistory(w *respWriter, r *http.Request, f *RecordFeed) error {
	since, err := parseSince(r, "")
	if err != nil {
		return err
	}
	var body []byte
	for _, rec := range f.History() {
		if rec.Seq <= since {
			continue
		}
		b := rec.Bytes()
		body = binary.BigEndian.AppendUint16(body, uint16(len(b)))
		body = append(body, b...)
	}
	hd := w.Header()
	hd.Set("Content-Type", MediaRecords)
	hd.Set("Cache-Control", "no-cache")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(body)
	return err
}

// serveEvents streams records as server-sent events until the client
// leaves or the handler is closed. Streams over the handler's
// StreamLimits are refused (ErrBusy, with Retry-After).
func (h *Records) serveEvents(w *respWriter, r *http.Request, f *RecordFeed) error {
	select {
	case <-h.closed:
		return fmt.Errorf("event stream: %w", ErrClosed)
	default:
	}
	last, err := parseSince(r, "Last-Event-ID")
	if err != nil {
		return err
	}
	release, err := h.streams.acquire(r.RemoteAddr)
	if err != nil {
		w.Header().Set("Retry-After", retryAfter(StreamRetryAfter))
		return err
	}
	defer release()
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-cache")
	hd.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	if _, err := fmt.Fprintf(w, "retry: 1000\n\n"); err != nil {
		return nil
	}
	w.Flush()
	tick := time.NewTicker(h.keepAlive)
	defer tick.Stop()
	for {
		changed := f.Changed()
		if rec := f.Latest(); rec != nil && rec.Seq > last {
			data := base64.StdEncoding.EncodeToString(rec.Bytes())
			if _, err := fmt.Fprintf(w, "event: record\nid: %d\ndata: %s\n\n", rec.Seq, data); err != nil {
				return nil // the client left
			}
			w.Flush()
			last = rec.Seq
		}
		select {
		case <-changed:
		case <-tick.C:
			if _, err := fmt.Fprintf(w, ": keep-alive\n\n"); err != nil {
				return nil
			}
			w.Flush()
		case <-r.Context().Done():
			return nil
		case <-h.closed:
			return nil
		}
	}
}
