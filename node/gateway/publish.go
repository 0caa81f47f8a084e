package gateway

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/node"
)

// PublishPath returns the path that accepts a new root for site:
//
//	POST /.well-known/hearth/{site}/publish
//	Hearth-Root-Record: {standard base64 of the record's wire form}
//	Content-Type: application/vnd.ipld.car
//	body: a CARv1 holding the blocks of the new root the node may lack
//
// The record is the authorization: it must verify under the site key and
// be newer than the latest record, which is checked before the body is
// read. Every block is verified before it is stored; the record is accepted
// (and pushed to subscribers) only once the whole DAG under its root is
// present. Answers: 204 accepted; 400 malformed; 403 bad signature or
// another site; 409 not newer than the latest; 413 body over the limit;
// 422 the DAG is incomplete after the upload (missing blocks are listed).
func PublishPath(site node.SiteID) string { return WellKnownPrefix + site.String() + "/publish" }

// HeaderRootRecord carries a record in a publish request.
const HeaderRootRecord = "Hearth-Root-Record"

// Publish is the handler behind PublishPath for one site.
type Publish struct {
	feed    *RecordFeed
	store   node.Blockstore
	maxBody int64
}

// NewPublish accepts new roots for feed's site into store; bodies over
// maxBody bytes are refused (0 means 4 GiB).
func NewPublish(feed *RecordFeed, store node.Blockstore, maxBody int64) *Publish {
	if maxBody <= 0 {
		maxBody = 4 << 30
	}
	return &Publish{feed: feed, store: store, maxBody: maxBody}
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
	body := http.MaxBytesReader(w, r.Body, p.maxBody)
	if _, _, err := node.ImportCAR(r.Context(), p.store, body, 0); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if missing := missingBlocks(r.Context(), p.store, rec.Root, 10); len(missing) > 0 {
		http.Error(w, "incomplete DAG, missing: "+strings.Join(missing, " "), http.StatusUnprocessableEntity)
		return
	}
	if err := p.feed.Accept(rec); err != nil {
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	w.WriteHeader(http.StatusNoContent)
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
// endpoint, streaming the CAR. client nil means NewHTTPClient(). Errors
// carry the node's answer.
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

func writeCAR(ctx context.Context, w io.Writer, root cid.Cid, g node.Getter, cids []cid.Cid) error {
	cw, err := node.NewCARWriter(w, root)
	if err != nil {
		return err
	}
	for _, c := range cids {
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
	}
	return nil
}
