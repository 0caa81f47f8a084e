package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/hearthcdn/hearth/node"
)

// Sentinel errors. Callers compare with errors.Is; functions wrap them with
// context using %w.
var (
	// ErrBadRequest: a request is malformed (answered with 400).
	ErrBadRequest = errors.New("bad request")
	// ErrNotAcceptable: no response type the client accepts is served (406).
	ErrNotAcceptable = errors.New("not acceptable")
	// ErrUnknownSite: the node does not serve this site (404).
	ErrUnknownSite = errors.New("unknown site")
	// ErrNoRoot: the site has no root to serve yet (503).
	ErrNoRoot = errors.New("no root published yet")
	// ErrClosed: the handler is shutting down (503).
	ErrClosed = errors.New("shutting down")
	// ErrBadURL: a source URL is not an absolute http(s) URL.
	ErrBadURL = errors.New("malformed source URL")
	// ErrSourceFailed: a source did not answer usefully (network error,
	// 5xx, unexpected status); it is retried later.
	ErrSourceFailed = errors.New("source failed")
	// ErrTooSlow: a source missed a deadline; it is retried later.
	ErrTooSlow = errors.New("source too slow")
	// ErrLied: a source sent bytes that are not what it was asked for (a
	// block that does not hash to its CID, a block other than the next one
	// the traversal expects, an oversized or malformed response). The source
	// is dropped.
	ErrLied = errors.New("source sent wrong data")
	// ErrNoSources: every source failed, lied or lacked the content.
	ErrNoSources = errors.New("no source could serve the request")
	// ErrExceedsLimit: a DAG is larger than the storage limit allows.
	ErrExceedsLimit = errors.New("DAG exceeds the storage limit")
	// ErrMethod: the method is not GET or HEAD (405).
	ErrMethod = errors.New("method not allowed")
	// ErrNotCached: Cache-Control: only-if-cached and the root block is not held (412).
	ErrNotCached = errors.New("not held here")
	// ErrBusy: a bound on concurrent long-lived responses (event streams)
	// is reached; the client may retry later (503 with Retry-After).
	ErrBusy = errors.New("too busy")
	// ErrBodyStalled: a request body stopped arriving, or came slower than
	// the handler's minimum rate (408).
	ErrBodyStalled = errors.New("request body stalled")
)

func badRequest(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrBadRequest)
}

// StatusOf maps an error to the HTTP status a handler answers with. It is
// the one place where errors become status codes:
//
//	nil                                                   200
//	ErrBadRequest, node.ErrBadSiteID, node.ErrBadRange,
//	  node.ErrUnsupportedHash, node.ErrUnsupportedCodec   400
//	node.ErrNotFound, node.ErrNoSuchPath, node.ErrNotDir,
//	  ErrUnknownSite                                      404
//	ErrMethod                                             405
//	ErrNotAcceptable                                      406
//	ErrNotCached                                          412
//	node.ErrBadNode (content is not UnixFS Hearth reads)  422
//	ErrNoRoot, ErrClosed, ErrBusy                         503
//	context.DeadlineExceeded                              504
//	anything else (storage failures, corrupt store)       500
func StatusOf(err error) int {
	switch {
	case err == nil:
		return http.StatusOK
	case errors.Is(err, ErrNotCached):
		return http.StatusPreconditionFailed
	case errors.Is(err, ErrBadRequest), errors.Is(err, node.ErrBadSiteID),
		errors.Is(err, node.ErrBadRange), errors.Is(err, node.ErrUnsupportedHash),
		errors.Is(err, node.ErrUnsupportedCodec):
		return http.StatusBadRequest
	case errors.Is(err, node.ErrNotFound), errors.Is(err, node.ErrNoSuchPath),
		errors.Is(err, node.ErrNotDir), errors.Is(err, ErrUnknownSite):
		return http.StatusNotFound
	case errors.Is(err, ErrMethod):
		return http.StatusMethodNotAllowed
	case errors.Is(err, ErrNotAcceptable):
		return http.StatusNotAcceptable
	case errors.Is(err, node.ErrBadNode):
		return http.StatusUnprocessableEntity
	case errors.Is(err, ErrNoRoot), errors.Is(err, ErrClosed), errors.Is(err, ErrBusy):
		return http.StatusServiceUnavailable
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError
}

// writeError answers err with StatusOf's code. Client errors carry the
// error text; server errors are logged and answered with the status text
// only, so that store paths and internals do not leak.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) int {
	code := StatusOf(err)
	msg := err.Error()
	if code >= 500 && code != http.StatusServiceUnavailable && code != http.StatusGatewayTimeout {
		log.Error("serving request", "method", r.Method, "path", r.URL.Path, "status", code, "err", err)
		msg = http.StatusText(code)
	}
	h := w.Header()
	for _, k := range []string{"Etag", "Cache-Control", "Content-Disposition", "X-Ipfs-Roots", "X-Ipfs-Path", "Content-Location"} {
		h.Del(k)
	}
	h.Set("Cache-Control", "no-store")
	http.Error(w, msg, code)
	return code
}

func wrapf(sentinel error, format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), sentinel)
}
