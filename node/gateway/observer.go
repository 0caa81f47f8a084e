package gateway

import (
	"net/http"
	"time"
)

// ServeKind names what a response carried, for metrics.
type ServeKind string

// Kinds of responses.
const (
	KindRaw     ServeKind = "raw"     // one block, application/vnd.ipld.raw
	KindCAR     ServeKind = "car"     // a CAR stream
	KindFile    ServeKind = "file"    // a site file (or a part of it)
	KindRecord  ServeKind = "record"  // the latest root record
	KindHistory ServeKind = "records" // the record history
	KindEvents  ServeKind = "events"  // a record event stream
)

// Observer receives one call per finished response: its kind, status code
// and body bytes written. It must be safe for concurrent use and fast.
type Observer interface {
	Served(kind ServeKind, code int, bytes int64)
}

// StreamObserver is an optional ability of an Observer: it learns the
// number of record event streams open and of distinct clients (as
// StreamLimits counts them) whenever either changes. It is called with a
// lock held and must be fast.
type StreamObserver interface {
	Streams(open, clients int)
}

type nopObserver struct{}

func (nopObserver) Served(ServeKind, int, int64) {}

// respWriter counts body bytes and remembers the status, and pushes the
// connection's write deadline forward as the body progresses, so that a
// client that stops reading is cut off after writeIdle instead of holding a
// goroutine forever, while a long but moving stream (a large CAR, an event
// stream with its keep-alives) is never cut.
// Unwrap lets http.ResponseController reach the underlying writer.
type respWriter struct {
	http.ResponseWriter
	rc       *http.ResponseController
	code     int
	n        int64
	extended time.Time
}

// writeIdle is how long one write may block on a client that reads nothing.
const writeIdle = 30 * time.Second

// newRespWriter wraps w and gives the response writeIdle to make progress.
// The deadline is set at the start of every response because the
// connection keeps it: without that, a keep-alive connection would carry an
// expired deadline into its next request.
func newRespWriter(w http.ResponseWriter) *respWriter {
	rw := &respWriter{ResponseWriter: w, rc: http.NewResponseController(w), extended: time.Now()}
	_ = rw.rc.SetWriteDeadline(rw.extended.Add(writeIdle))
	return rw
}

func (w *respWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *respWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	if now := time.Now(); now.Sub(w.extended) > time.Second {
		// Best effort: not every writer (httptest.ResponseRecorder) supports
		// deadlines. (The read deadline needs no care: net/http clears it
		// while a request without a body is handled.)
		_ = w.rc.SetWriteDeadline(now.Add(writeIdle))
		w.extended = now
	}
	n, err := w.ResponseWriter.Write(p)
	w.n += int64(n)
	return n, err
}

// Flush sends buffered data to the client.
func (w *respWriter) Flush() { _ = w.rc.Flush() }

func (w *respWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *respWriter) status() int {
	if w.code == 0 {
		return http.StatusOK
	}
	return w.code
}

// abort ends a response that has already begun so that the client sees a
// broken stream, not a complete one: it flushes what was written and closes
// the connection (HTTP/1). Where the connection cannot be taken over the
// response simply ends; clients of this package detect the incomplete CAR
// either way, as the Trustless Gateway spec requires of them.
func (w *respWriter) abort() {
	_ = w.rc.Flush()
	if conn, _, err := w.rc.Hijack(); err == nil {
		_ = conn.Close()
	}
}
