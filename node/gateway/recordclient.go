package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hearthcdn/hearth/node"
)

// maxHistoryBytes bounds a record history response: 64 Ki records.
const maxHistoryBytes = (2 + node.MaxRecordSize) << 16

// recordTimeout bounds one record or history request.
const recordTimeout = 10 * time.Second

func getBody(ctx context.Context, client *http.Client, u, accept string, limit int, timeout time.Duration) ([]byte, error) {
	if client == nil {
		client = http.DefaultClient
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadURL, err)
	}
	req.Header.Set("Accept", accept)
	req.Header.Set("Cache-Control", "no-cache")
	resp, err := client.Do(req)
	if err != nil {
		return nil, transportErr(ctx, rctx, err)
	}
	defer closeBody(resp.Body)
	if err := checkStatus(resp); err != nil {
		return nil, err
	}
	b, err := readAtMost(resp.Body, limit, 1024)
	if err != nil && !errors.Is(err, node.ErrTooLarge) {
		return nil, transportErr(ctx, rctx, err)
	}
	return b, err
}

// FetchRecord GETs site's latest root record from the node at base and
// verifies it: well-formed, signed by the site key, for site. It does not
// check the sequence against what the caller holds (see RecordFeed.Accept).
// client nil means http.DefaultClient. Errors wrap node.ErrNotFound (no
// record there), node.ErrBadRecord (malformed or truncated),
// node.ErrBadSignature, node.ErrWrongSite, ErrBadURL, ErrSourceFailed or
// ErrTooSlow, and name the source.
func FetchRecord(ctx context.Context, client *http.Client, base string, site node.SiteID) (*node.RootRecord, error) {
	return fetchRecord(ctx, client, base, site, recordTimeout)
}

func fetchRecord(ctx context.Context, client *http.Client, base string, site node.SiteID, timeout time.Duration) (*node.RootRecord, error) {
	b, err := parseSource(base)
	if err != nil {
		return nil, err
	}
	body, err := getBody(ctx, client, b+RecordPath(site), MediaRecord, node.MaxRecordSize, timeout)
	switch {
	case errors.Is(err, node.ErrTooLarge):
		err = fmt.Errorf("%w: %w", node.ErrBadRecord, err)
	case errors.Is(err, node.ErrNotFound):
		err = fmt.Errorf("the source has no record for this site: %w", err)
	}
	if err != nil {
		return nil, fmt.Errorf("record of %s from %s: %w", site, b, err)
	}
	r, err := node.ParseRootRecordFor(site, body)
	if err != nil {
		return nil, fmt.Errorf("record of %s from %s: %w", site, b, err)
	}
	return r, nil
}

// FetchHistory GETs site's record history (records with a sequence above
// since) from the node at base and verifies every record as FetchRecord
// does; one bad record refuses the whole answer. Records come oldest first.
func FetchHistory(ctx context.Context, client *http.Client, base string, site node.SiteID, since uint64) ([]*node.RootRecord, error) {
	b, err := parseSource(base)
	if err != nil {
		return nil, err
	}
	u := b + RecordsPath(site)
	if since > 0 {
		u += "?since=" + strconv.FormatUint(since, 10)
	}
	body, err := getBody(ctx, client, u, MediaRecords, maxHistoryBytes, recordTimeout)
	if err != nil {
		return nil, fmt.Errorf("history of %s from %s: %w", site, b, err)
	}
	var out []*node.RootRecord
	for len(body) > 0 {
		if len(body) < 2 {
			return nil, fmt.Errorf("history of %s from %s: truncated length: %w", site, b, node.ErrBadRecord)
		}
		n := int(binary.BigEndian.Uint16(body))
		if len(body) < 2+n {
			return nil, fmt.Errorf("history of %s from %s: truncated record: %w", site, b, node.ErrBadRecord)
		}
		r, err := node.ParseRootRecordFor(site, body[2:2+n])
		if err != nil {
			return nil, fmt.Errorf("history of %s from %s: %w", site, b, err)
		}
		if len(out) > 0 && r.Seq <= out[len(out)-1].Seq {
			return nil, fmt.Errorf("history of %s from %s: sequence %d after %d: %w", site, b, r.Seq, out[len(out)-1].Seq, node.ErrBadRecord)
		}
		out = append(out, r)
		body = body[2+n:]
	}
	return out, nil
}

// BestRecord asks every source for site's latest record at once (each
// request bounded by RequestTimeout) and
// returns the verified one with the highest sequence, with the error of
// each source that failed or lied (nil entries for the others, in source
// order). It fails (wrapping ErrNoSources) only when no source gave a
// valid record.
func (f *Fetcher) BestRecord(ctx context.Context, site node.SiteID) (*node.RootRecord, []error, error) {
	recs := make([]*node.RootRecord, len(f.sources))
	errs := make([]error, len(f.sources))
	var wg sync.WaitGroup
	for i, s := range f.sources {
		wg.Go(func() { recs[i], errs[i] = fetchRecord(ctx, f.client, s.base, site, f.opts.RequestTimeout) })
	}
	wg.Wait()
	var best *node.RootRecord
	for _, r := range recs {
		if r != nil && (best == nil || r.Seq > best.Seq) {
			best = r
		}
	}
	if best == nil {
		if err := ctx.Err(); err != nil {
			return nil, errs, err
		}
		return nil, errs, noSources("fetching the record of "+site.String(), len(f.sources), errs)
	}
	return best, errs, nil
}

// FollowEvents reads the record event stream of site at base (see the
// package documentation) and calls fn with the wire form of each record
// event, unverified: the caller verifies and decides. It sends since as
// Last-Event-ID, so the server only sends newer records. It returns when
// ctx ends (nil), when the stream ends or breaks, or when nothing (not even
// a keep-alive) arrives for idle (0 means 45 s). Lines longer than 4 KiB are
// refused (ErrLied). The caller reconnects, with backoff.
func FollowEvents(ctx context.Context, client *http.Client, base string, site node.SiteID, since uint64, idle time.Duration, fn func([]byte)) error {
	b, err := parseSource(base)
	if err != nil {
		return err
	}
	if client == nil {
		client = http.DefaultClient
	}
	if idle <= 0 {
		idle = 45 * time.Second
	}
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	watchdog := time.AfterFunc(idle, func() { cancel(errIdle) })
	defer watchdog.Stop()
	req, err := http.NewRequestWithContext(sctx, http.MethodGet, b+EventsPath(site), nil)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadURL, err)
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	if since > 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatUint(since, 10))
	}
	fail := func(err error) error {
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(context.Cause(sctx), errIdle):
			return fmt.Errorf("events of %s from %s: %w: %v", site, b, ErrTooSlow, errIdle)
		}
		return fmt.Errorf("events of %s from %s: %w", site, b, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fail(fmt.Errorf("%w: %v", ErrSourceFailed, err))
	}
	defer resp.Body.Close()
	if err := checkStatus(resp); err != nil {
		return fail(err)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		return fail(fmt.Errorf("%w: Content-Type %q is not text/event-stream", ErrLied, ct))
	}
	br := bufio.NewReaderSize(resp.Body, 4096)
	var event string
	var data bytes.Buffer
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return fail(fmt.Errorf("%w: event line over 4 KiB", ErrLied))
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return fail(fmt.Errorf("%w: %v", ErrSourceFailed, err))
		}
		watchdog.Reset(idle)
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 { // dispatch
			if event == "record" && data.Len() > 0 {
				raw, err := base64.StdEncoding.DecodeString(data.String())
				if err != nil {
					return fail(fmt.Errorf("%w: record event is not base64: %v", ErrLied, err))
				}
				fn(raw)
			}
			event = ""
			data.Reset()
			continue
		}
		if line[0] == ':' { // comment (keep-alive)
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "event":
			event = string(value)
		case "data":
			if data.Len()+len(value) > 4096 {
				return fail(fmt.Errorf("%w: event data over 4 KiB", ErrLied))
			}
			data.Write(value)
		}
	}
}
