package gateway

import (
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/node"
)

// PublishPath returns the path that accepts a new root for site:
//
//	POST /.well-known/hearth/{site}/publish
//	Hearth-Root-Record: {standard base64 of the record's wire form}
//	Content-Type: application/vnd.ipld.car
//	body: a CARv1 holding the blocks of the new root the node may lack,
//	      parents first (each block is the root or linked by one before it)
//
// The record is the authorization: it must verify under the site key and
// be newer than the latest record, which is checked before the body is
// read. The body is bounded by the DAG the record names: a block that is
// not the root or linked by a block sent before it (or is sent twice)
// ends the upload (node.ImportDAG). Every block is verified before it is
// stored; the record is accepted (and pushed to subscribers) only once the
// whole DAG under its root is present. A failed upload's new blocks are
// deleted at once, but those a pin keeps. Answers: 204 accepted; 400
// malformed, or a block outside the DAG; 403 bad signature or another
// site; 408 the body stalled (PublishOptions.BodyIdle, MinRate); 409 not
// newer than the latest; 413 body over the limit; 422 the DAG is
// incomplete after the upload (missing blocks are listed).
func PublishPath(site node.SiteID) string { return WellKnownPrefix + site.String() + "/publish" }

// HeaderRootRecord carries a record in a publish request.
const HeaderRootRecord = "Hearth-Root-Record"

// Publish defaults (PublishOptions).
const (
	DefaultMaxPublish     = 4 << 30          // bytes
	DefaultPublishIdle    = 30 * time.Second // longest wait for the next body bytes
	DefaultPublishMinRate = 1 << 10          // bytes per second, averaged
)

// PublishOptions bound a Publish handler's uploads.
type PublishOptions struct {
	// MaxBody is the largest body accepted, in bytes; a larger one is
	// refused with 413. 0: DefaultMaxPublish.
	MaxBody int64
	// BodyIdle is the longest wait for the next bytes of a body: each read
	// that brings bytes moves the connection's read deadline BodyIdle ahead,
	// past the server's ReadTimeout, so a slow but moving upload is never
	// cut while a stalled one is (408). 0: DefaultPublishIdle.
	BodyIdle time.Duration
	// MinRate is the slowest average rate, in bytes per second, a body may
	// arrive at: it may lag behind MinRate by at most BodyIdle, so bytes
	// trickled just often enough to beat BodyIdle still end (408).
	// 0: DefaultPublishMinRate; negative: no minimum.
	MinRate int64
	// Logger logs discarded uploads; nil: slog.Default().
	Logger *slog.Logger
}

// Publish is the handler behind PublishPath for one site.
type Publish struct {
	feed  *RecordFeed
	store node.Blockstore
	opts  PublishOptions
}

// NewPublish accepts new roots for feed's site into store. When store is
// a node.GCStore, a failed upload's blocks are deleted but those a pin or
// another site's newest record keeps (node.DiscardBlocks); otherwise every
// block it added is. The caller runs uploads one at a time with its own
// imports and collections (as origin.Origin does).
func NewPublish(feed *RecordFeed, store node.Blockstore, opts PublishOptions) *Publish {
	if opts.MaxBody <= 0 {
		opts.MaxBody = DefaultMaxPublish
	}
	if opts.BodyIdle <= 0 {
		opts.BodyIdle = DefaultPublishIdle
	}
	if opts.MinRate == 0 {
		opts.MinRate = DefaultPublishMinRate
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Publish{feed: feed, store: store, opts: opts}
}

func (p *Publish) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "publish takes POST", http.StatusMethodNotAllowed)
		return
	}
	raw, err := base64.StdEncoding.DecodeString(r.Header.Get(HeaderRootRecord))
	if err != nil || len(raw) == 0 {
		http.Error(w, "missing or malformed "+HeaderRootRecord+" header", http.StatusBadRequest)
		return
	}
	rec, err := node.ParseRootRecordFor(p.feed.Site(), raw)
	if err != nil {
		code := http.StatusBadRequest
		if errors.Is(err, node.ErrBadSignature) || errors.Is(err, node.ErrWrongSite) {
			code = http.StatusForbidden
		}
		http.Error(w, err.Error(), code)
		return
	}
	if err := node.CheckNewer(p.feed.Latest(), rec); err != nil {
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	if r.ContentLength > p.opts.MaxBody {
		http.Error(w, fmt.Sprintf("body of %d bytes over the limit of %d", r.ContentLength, p.opts.MaxBody), http.StatusRequestEntityTooLarge)
		return
	}
	body := newProgressBody(w, http.MaxBytesReader(w, r.Body, p.opts.MaxBody), p.opts.BodyIdle, p.opts.MinRate)
	up, err := node.ImportDAG(r.Context(), p.store, rec.Root, body, 0)
	if err != nil {
		p.discard(r, rec, up.Added)
		if body.err != nil { // the cause, whatever the CAR reader made of it
			err = body.err
		}
		var mbe *http.MaxBytesError
		code := http.StatusBadRequest
		switch {
		case errors.As(err, &mbe):
			code = http.StatusRequestEntityTooLarge
		case errors.Is(err, ErrBodyStalled):
			code = http.StatusRequestTimeout
		}
		http.Error(w, "uploading root "+rec.Root.String()+": "+err.Error(), code)
		return
	}
	if missing := missingBlocks(r.Context(), p.store, rec.Root, 10); len(missing) > 0 {
		p.discard(r, rec, up.Added)
		http.Error(w, "incomplete DAG, missing: "+strings.Join(missing, " "), http.StatusUnprocessableEntity)
		return
	}
	if err := p.feed.Accept(rec); err != nil {
		p.discard(r, rec, up.Added)
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// discard deletes the blocks a failed upload added (NewPublish says
// which). A failure is logged: the blocks go at the next full collection.
func (p *Publish) discard(r *http.Request, rec *node.RootRecord, added []cid.Cid) {
	if len(added) == 0 {
		return
	}
	ctx := context.WithoutCancel(r.Context())
	deleted, err := len(added), error(nil)
	if gs, ok := p.store.(node.GCStore); ok {
		var st node.GCStats
		st, err = node.DiscardBlocks(ctx, gs, added, nil)
		deleted = st.Deleted
	} else {
		for _, c := range added {
			if err = p.store.Delete(ctx, c); err != nil {
				break
			}
		}
	}
	if err != nil {
		p.opts.Logger.Error("deleting a failed upload's blocks", "seq", rec.Seq, "root", rec.Root.String(), "err", err)
		return
	}
	p.opts.Logger.Info("deleted a failed upload's blocks", "seq", rec.Seq, "root", rec.Root.String(), "blocks", deleted)
}

// progressBody reads a request body, pushing the connection's read
// deadline forward as bytes arrive: idle past now, but never later than
// start + idle + n/minRate for the n bytes read so far. A read cut by the
// deadline fails with ErrBodyStalled.
type progressBody struct {
	r       io.Reader
	rc      *http.ResponseController
	start   time.Time
	idle    time.Duration
	minRate int64
	n       int64
	set     time.Time // the deadline last set
	err     error     // the first failed read's error: a stall or the size limit
}

func newProgressBody(w http.ResponseWriter, r io.Reader, idle time.Duration, minRate int64) *progressBody {
	b := &progressBody{r: r, rc: http.NewResponseController(w), start: time.Now(), idle: idle, minRate: minRate}
	b.extend(b.start)
	return b
}

func (b *progressBody) deadline(now time.Time) time.Time {
	d := now.Add(b.idle)
	if b.minRate > 0 {
		due := time.Duration(float64(b.n) / float64(b.minRate) * float64(time.Second))
		if lim := b.start.Add(b.idle + due); lim.Before(d) {
			d = lim
		}
	}
	return d
}

// extend sets the read deadline when it moves by more than a 16th of
// idle (or earlier), so that a fast body costs few timer updates. Best
// effort: not every writer supports deadlines.
func (b *progressBody) extend(now time.Time) {
	d := b.deadline(now)
	if !b.set.IsZero() && d.After(b.set) && d.Sub(b.set) < b.idle/16 {
		return
	}
	_ = b.rc.SetReadDeadline(d)
	b.set = d
}

func (b *progressBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	now := time.Now()
	if n > 0 {
		b.n += int64(n)
		b.extend(now)
	}
	var mbe *http.MaxBytesError
	switch {
	case err == nil || errors.Is(err, io.EOF):
	case errors.Is(err, os.ErrDeadlineExceeded):
		err = fmt.Errorf("reading body after %d bytes in %s (at most %s without bytes, at least %d bytes/s): %w",
			b.n, now.Sub(b.start).Round(time.Millisecond), b.idle, b.minRate, ErrBodyStalled)
		b.err = cmp.Or(b.err, err)
	case errors.As(err, &mbe):
		b.err = cmp.Or(b.err, err)
	}
	return n, err
}

// missingBlocks returns up to max CIDs of the DAG under root that store
// lacks or that fail verification.
func missingBlocks(ctx context.Context, bs node.Blockstore, root cid.Cid, max int) []string {
	var missing []string
	_, err := node.CheckDAG(ctx, bs, root, func(p node.Problem) bool {
		missing = append(missing, p.Cid.String())
		return len(missing) < max
	})
	if err != nil {
		missing = append(missing, err.Error())
	}
	return missing
}

// PublishRoot sends rec and the blocks named by cids (those the node may
// lack; read from g, skipping any g no longer holds) to base's publish
// endpoint, streaming the CAR parents first, as the endpoint requires: a
// walk from rec.Root through the blocks of cids, so one that rec.Root
// does not reach through them is not sent. client nil means
// NewHTTPClient(). Errors carry the node's answer.
func PublishRoot(ctx context.Context, client *http.Client, base string, rec *node.RootRecord, g node.Getter, cids []cid.Cid) error {
	if client == nil {
		client = NewHTTPClient()
	}
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(writeCAR(ctx, pw, rec.Root, g, cids))
	}()
	defer pr.Close()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(base, "/")+PublishPath(rec.Site), pr)
	if err != nil {
		return fmt.Errorf("publishing to %s: %w", base, err)
	}
	req.Header.Set(HeaderRootRecord, base64.StdEncoding.EncodeToString(rec.Bytes()))
	req.Header.Set("Content-Type", MediaCAR)
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("publishing to %s: %w", base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("publishing seq %d to %s: %s: %s", rec.Seq, base, resp.Status, strings.TrimSpace(string(msg)))
	}
	return nil
}

// writeCAR writes the blocks of cids that root reaches through them, each
// once, parents first (depth first, links in order).
func writeCAR(ctx context.Context, w io.Writer, root cid.Cid, g node.Getter, cids []cid.Cid) error {
	cw, err := node.NewCARWriter(w, root)
	if err != nil {
		return err
	}
	send := make(map[string]struct{}, len(cids))
	for _, c := range cids {
		send[c.KeyString()] = struct{}{}
	}
	stack := []cid.Cid{root}
	for len(stack) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		c := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if _, ok := send[c.KeyString()]; !ok {
			continue // not new, or sent already
		}
		delete(send, c.KeyString())
		d, err := g.Get(ctx, c)
		if errors.Is(err, node.ErrNotFound) {
			continue // collected since: no root needs it
		}
		if err != nil {
			return err
		}
		if err := cw.Put(ctx, node.Block{Cid: c, Data: d}); err != nil {
			return err
		}
		if c.Type() != node.CodecDagPB {
			continue
		}
		nd, err := node.Decode(c, d)
		if err != nil {
			return err
		}
		for i := len(nd.Links) - 1; i >= 0; i-- {
			if _, ok := send[nd.Links[i].Cid.KeyString()]; ok {
				stack = append(stack, nd.Links[i].Cid)
			}
		}
	}
	return nil
}
