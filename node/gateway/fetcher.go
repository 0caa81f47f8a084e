package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"time"

	cid "github.com/ipfs/go-cid"
	"golang.org/x/time/rate"

	"github.com/hearthcdn/hearth/node"
)

// Fetcher reads blocks from a list of Trustless Gateways and trusts none of
// them: every block is verified against its CID, and every CAR block must
// be exactly the next block node.Traverse expects, before anyone uses it.
//
// Sources are tried in the order given. One that fails (network error,
// 5xx, a truncated stream) or is too slow (RequestTimeout, IdleTimeout)
// cools down for 250 ms, doubling per consecutive failure up to 30 s, and is
// tried after the healthy ones. One that lies (a corrupt or unexpected
// block, an oversized or malformed response) is dropped for DropFor. One
// that answers 404 simply lacks the content. Memory per request is bounded
// by node.MaxBlockLen for a raw block and by the store batch for a CAR.
// Safe for concurrent use.
type Fetcher struct {
	sources []*source
	client  *http.Client
	opts    FetcherOptions
	log     *slog.Logger
}

// FetcherOptions tune a Fetcher. The zero value gives the defaults.
type FetcherOptions struct {
	// Client makes the requests; nil means a client whose transport keeps
	// up to 64 idle connections per host and does not ask for compression
	// (blocks do not compress, and it keeps gzip bombs out).
	Client *http.Client
	// RequestTimeout bounds one raw block request, from sending it to the
	// last byte; 0 means 30 s. A slow drip of bytes ends here.
	RequestTimeout time.Duration
	// IdleTimeout bounds the wait for the response headers and then for
	// each next block of a CAR; 0 means 15 s.
	IdleTimeout time.Duration
	// MaxCARBytes bounds the bytes read from one CAR response; 0 means 1 GiB.
	MaxCARBytes int64
	// DropFor is how long a source that lied stays out of rotation; 0 means
	// for the Fetcher's life.
	DropFor time.Duration
	// Limiter, if set, caps the download rate in bytes per second; its
	// burst must be at least node.MaxBlockLen.
	Limiter *rate.Limiter
	// OnStored, if set, is called after blocks this Fetcher downloaded are
	// durably stored (by CAR or a Replicator), with their count and bytes.
	// It may be called from several goroutines at once.
	OnStored func(blocks int, bytes int64)
	// OnDrop, if set, is called when a source is dropped for lying.
	OnDrop func(url string, err error)
	// Logger receives warnings about failing and dropped sources; nil
	// means slog.Default().
	Logger *slog.Logger
}

// NewFetcher returns a Fetcher over the gateways at urls (absolute http or
// https base URLs; see ParseSources). Errors wrap ErrBadURL.
func NewFetcher(urls []string, opts FetcherOptions) (*Fetcher, error) {
	if len(urls) == 0 {
		return nil, fmt.Errorf("no sources: %w", ErrBadURL)
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 30 * time.Second
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = 15 * time.Second
	}
	if opts.MaxCARBytes <= 0 {
		opts.MaxCARBytes = 1 << 30
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Limiter != nil && opts.Limiter.Burst() < node.MaxBlockLen {
		return nil, fmt.Errorf("rate limiter burst %d is below the largest block (%d bytes)", opts.Limiter.Burst(), node.MaxBlockLen)
	}
	f := &Fetcher{client: opts.Client, opts: opts, log: opts.Logger}
	if f.client == nil {
		f.client = NewHTTPClient()
	}
	seen := map[string]bool{}
	for _, u := range urls {
		b, err := parseSource(u)
		if err != nil {
			return nil, err
		}
		if !seen[b] {
			seen[b] = true
			f.sources = append(f.sources, &source{base: b})
		}
	}
	return f, nil
}

// NewHTTPClient returns the client Fetchers use by default: no overall
// timeout (requests carry deadlines), up to 64 idle connections per host,
// no transparent compression.
func NewHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 256
	t.MaxIdleConnsPerHost = 64
	t.DisableCompression = true
	return &http.Client{Transport: t}
}

// Sources returns the sources' health, in the order given.
func (f *Fetcher) Sources() []SourceStatus {
	out := make([]SourceStatus, len(f.sources))
	for i, s := range f.sources {
		out[i] = s.status()
	}
	return out
}

// order returns the sources to try now: healthy ones first, in the order
// given, then those cooling down.
func (f *Fetcher) order() []*source {
	now := time.Now()
	var healthy, cooling []*source
	for _, s := range f.sources {
		ok, cool := s.usable(now, f.opts.DropFor)
		switch {
		case !ok:
		case cool:
			cooling = append(cooling, s)
		default:
			healthy = append(healthy, s)
		}
	}
	return append(healthy, cooling...)
}

// judge records the outcome of a failed attempt on s and reports whether
// the error is fatal (no other source can help).
func (f *Fetcher) judge(s *source, err error) bool {
	lied, notHere, fatal := classify(err)
	switch {
	case fatal:
		return true
	case lied:
		if s.drop(time.Now(), err) {
			f.log.Warn("dropping source", "source", s.base, "err", err)
			if f.opts.OnDrop != nil {
				f.opts.OnDrop(s.base, err)
			}
		}
	case notHere:
	default:
		s.failed(time.Now(), err)
		f.log.Debug("source failed", "source", s.base, "err", err)
	}
	return false
}

func noSources(what string, n int, errs []error) error {
	if len(errs) == 0 {
		return fmt.Errorf("%s: all %d sources dropped: %w", what, n, ErrNoSources)
	}
	return fmt.Errorf("%s: %w: %w", what, ErrNoSources, errors.Join(errs...))
}

// Block fetches the block c, verified. Errors wrap ErrNoSources and, when
// every source lacked it, node.ErrNotFound; or the context's error.
func (f *Fetcher) Block(ctx context.Context, c cid.Cid) ([]byte, error) {
	var errs []error
	for _, s := range f.order() {
		data, err := f.blockFrom(ctx, s, c)
		if err == nil {
			s.succeeded(len(data))
			return data, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("fetching block %s: %w", c, ctx.Err())
		}
		if f.judge(s, err) {
			return nil, err
		}
		errs = append(errs, err)
	}
	return nil, noSources("fetching block "+c.String(), len(f.sources), errs)
}

func (f *Fetcher) blockFrom(ctx context.Context, s *source, c cid.Cid) ([]byte, error) {
	rctx, cancel := context.WithTimeout(ctx, f.opts.RequestTimeout)
	defer cancel()
	wrap := func(err error) error { return fmt.Errorf("block %s from %s: %w", c, s.base, err) }
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, s.base+"/ipfs/"+c.String()+"?format=raw", nil)
	if err != nil {
		return nil, wrap(fmt.Errorf("%w: %v", ErrBadURL, err))
	}
	req.Header.Set("Accept", MediaRaw)
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, wrap(transportErr(ctx, rctx, err))
	}
	defer closeBody(resp.Body)
	if err := checkStatus(resp); err != nil {
		return nil, wrap(err)
	}
	if resp.ContentLength > node.MaxBlockLen {
		return nil, wrap(fmt.Errorf("%w: Content-Length %d exceeds the largest block: %w", ErrLied, resp.ContentLength, node.ErrTooLarge))
	}
	capHint := 64 << 10
	if resp.ContentLength > 0 {
		capHint = int(resp.ContentLength)
	}
	data, err := readAtMost(resp.Body, node.MaxBlockLen, capHint)
	if err != nil {
		if errors.Is(err, node.ErrTooLarge) {
			return nil, wrap(fmt.Errorf("%w: %w", ErrLied, err))
		}
		return nil, wrap(transportErr(ctx, rctx, err))
	}
	if err := node.Verify(c, data); err != nil {
		return nil, wrap(fmt.Errorf("%w: %w", ErrLied, err))
	}
	if err := f.wait(ctx, len(data)); err != nil {
		return nil, err
	}
	return data, nil
}

// wait debits n bytes from the rate limiter, if any.
func (f *Fetcher) wait(ctx context.Context, n int) error {
	if f.opts.Limiter == nil {
		return nil
	}
	return f.opts.Limiter.WaitN(ctx, n)
}

// readAtMost reads r to EOF into a buffer of initial capacity capHint; more
// than limit bytes is an error wrapping node.ErrTooLarge.
func readAtMost(r io.Reader, limit, capHint int) ([]byte, error) {
	buf := make([]byte, 0, min(capHint, limit)+1)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if len(buf) > limit {
			return nil, fmt.Errorf("response exceeds %d bytes: %w", limit, node.ErrTooLarge)
		}
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// transportErr wraps a request error: ErrTooSlow when the request's own
// deadline passed, the parent's error when it ended, else ErrSourceFailed.
func transportErr(parent, rctx context.Context, err error) error {
	switch {
	case parent.Err() != nil:
		return parent.Err()
	case rctx.Err() != nil:
		return fmt.Errorf("%w: %v", ErrTooSlow, err)
	}
	return fmt.Errorf("%w: %v", ErrSourceFailed, err)
}

// checkStatus maps a response status: 200 is fine; 404, 410 and 412
// (only-if-cached) mean the source lacks the content; anything else is a
// failure of the source.
func checkStatus(resp *http.Response) error {
	switch resp.StatusCode {
	case http.StatusOK:
		return nil
	case http.StatusNotFound, http.StatusGone, http.StatusPreconditionFailed:
		return notFoundError{status: resp.Status}
	}
	return fmt.Errorf("status %s: %w", resp.Status, ErrSourceFailed)
}

// notFoundError is a source's "not here" answer. It matches
// node.ErrNotFound (errors.Is), but says only what the source said, since
// it may be about a record as well as a block.
type notFoundError struct{ status string }

func (e notFoundError) Error() string { return "not found (status " + e.status + ")" }

func (e notFoundError) Is(target error) bool { return target == node.ErrNotFound }

// closeBody drains a little of a body, so that the connection can be
// reused, and closes it. It never reads more than 64 KiB: a hostile
// endless body is just closed.
func closeBody(b io.ReadCloser) {
	_, _ = io.CopyN(io.Discard, b, 64<<10)
	_ = b.Close()
}

// carURL returns the CAR request URL for req at base.
func carURL(base string, req node.Request) string {
	q := url.Values{}
	q.Set("format", "car")
	scope := req.Scope
	if scope == "" {
		scope = node.ScopeAll
	}
	q.Set("dag-scope", string(scope))
	if req.Bytes != nil {
		q.Set("entity-bytes", req.Bytes.String())
	}
	return base + ipfsPath(req.Root, req.Path) + "?" + q.Encode()
}

// checkCARType checks a CAR response's Content-Type: a CARv1. Anything
// else means the source is not speaking the protocol.
func checkCARType(resp *http.Response) error {
	mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || mt != MediaCAR {
		return fmt.Errorf("%w: Content-Type %q is not %s", ErrLied, resp.Header.Get("Content-Type"), MediaCAR)
	}
	if v, ok := params["version"]; ok && v != "1" {
		return fmt.Errorf("%w: CAR version %q", ErrLied, v)
	}
	return nil
}
