package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/hearthcdn/hearth/node"
)

// MediaMembers is the media type of a member list (node.MemberList's wire
// form).
const MediaMembers = "application/vnd.hearth.member-list"

// MembersPath returns the path of site's member list.
func MembersPath(site node.SiteID) string { return WellKnownPrefix + site.String() + "/members" }

// MemberFeed is one site's member list (held in a node.MemberStore) plus a
// signal that wakes followers when a newer list is accepted. All writes to
// the site's list must go through the feed. Safe for concurrent use.
type MemberFeed struct {
	site  node.SiteID
	store *node.MemberStore

	mu      sync.Mutex
	latest  *node.MemberList
	changed chan struct{}
}

// NewMemberFeed returns the feed of site over store, loading the list held.
// Errors are the store's.
func NewMemberFeed(site node.SiteID, store *node.MemberStore) (*MemberFeed, error) {
	f := &MemberFeed{site: site, store: store, changed: make(chan struct{})}
	l, err := store.Latest(site)
	switch {
	case err == nil:
		f.latest = l
	case !errors.Is(err, node.ErrNotFound):
		return nil, fmt.Errorf("loading member list of %s: %w", site, err)
	}
	return f, nil
}

// Site returns the feed's site.
func (f *MemberFeed) Site() node.SiteID { return f.site }

// Latest returns the list held, or nil before the first.
func (f *MemberFeed) Latest() *node.MemberList {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.latest
}

// Changed returns a channel that is closed when the next list is accepted.
// Take it before reading Latest so that no list is missed.
func (f *MemberFeed) Changed() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.changed
}

// Accept stores l if it is the feed's site's and newer than the list held.
// Errors wrap node.ErrWrongSite, node.ErrStaleRecord or the store's error.
func (f *MemberFeed) Accept(l *node.MemberList) error {
	if l.Site != f.site {
		return fmt.Errorf("member list for %s, want %s: %w", l.Site, f.site, node.ErrWrongSite)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.store.Accept(l); err != nil {
		return err
	}
	f.latest = l
	close(f.changed)
	f.changed = make(chan struct{})
	return nil
}

// Members serves GET …/{site}/members, the site's latest member list, and,
// when it accepts uploads, POST …/{site}/members: a newer signed list (the
// site key's signature is the authorization).
type Members struct {
	feed   *MemberFeed
	accept bool
	log    *slog.Logger
}

// NewMembers returns the handler of feed's list; accept allows POST.
func NewMembers(feed *MemberFeed, accept bool, log *slog.Logger) *Members {
	if log == nil {
		log = slog.Default()
	}
	return &Members{feed: feed, accept: accept, log: log}
}

// ServeHTTP implements http.Handler.
func (h *Members) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	allowCORS(w.Header())
	site, err := node.ParseSiteID(r.PathValue("site"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if site != h.feed.Site() {
		http.Error(w, "unknown site", http.StatusNotFound)
		return
	}
	switch {
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
		h.serve(w, r)
	case r.Method == http.MethodPost && h.accept:
		h.post(w, r)
	default:
		allow := "GET, HEAD"
		if h.accept {
			allow += ", POST"
		}
		w.Header().Set("Allow", allow)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

func (h *Members) serve(w http.ResponseWriter, r *http.Request) {
	l := h.feed.Latest()
	if l == nil {
		http.Error(w, "no member list", http.StatusNotFound)
		return
	}
	etag := fmt.Sprintf(`"%s.m%d"`, l.Site, l.Seq)
	hd := w.Header()
	hd.Set("Content-Type", MediaMembers)
	hd.Set("Cache-Control", "no-cache")
	hd.Set("Etag", etag)
	hd.Set("X-Hearth-Seq", strconv.FormatUint(l.Seq, 10))
	hd.Set("X-Content-Type-Options", "nosniff")
	if etagMatch(r.Header.Get("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	b := l.Bytes()
	hd.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(b)
	}
}

func (h *Members) post(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(io.LimitReader(r.Body, node.MaxMembersSize+1))
	if err != nil {
		http.Error(w, "reading body", http.StatusBadRequest)
		return
	}
	l, err := node.ParseMemberListFor(h.feed.Site(), b)
	if err != nil {
		code := http.StatusBadRequest
		if errors.Is(err, node.ErrBadSignature) || errors.Is(err, node.ErrWrongSite) {
			code = http.StatusForbidden
		}
		http.Error(w, err.Error(), code)
		return
	}
	if err := h.feed.Accept(l); err != nil {
		code := http.StatusInternalServerError
		if errors.Is(err, node.ErrStaleRecord) {
			code = http.StatusConflict
		}
		http.Error(w, err.Error(), code)
		return
	}
	h.log.Info("member list accepted", "seq", l.Seq, "members", len(l.Members), "policy", l.Policy)
	w.WriteHeader(http.StatusNoContent)
}

// FetchMembers GETs site's member list from the node at base and verifies
// it (well-formed, signed by the site key, for site). client nil means
// http.DefaultClient. Errors wrap node.ErrNotFound (no list there),
// node.ErrBadMemberList, node.ErrTooLarge, node.ErrBadSignature,
// node.ErrWrongSite, ErrBadURL, ErrSourceFailed or ErrTooSlow.
func FetchMembers(ctx context.Context, client *http.Client, base string, site node.SiteID) (*node.MemberList, error) {
	b, err := parseSource(base)
	if err != nil {
		return nil, err
	}
	body, err := getBody(ctx, client, b+MembersPath(site), MediaMembers, node.MaxMembersSize, recordTimeout)
	if err != nil {
		return nil, fmt.Errorf("member list of %s from %s: %w", site, b, err)
	}
	l, err := node.ParseMemberListFor(site, body)
	if err != nil {
		return nil, fmt.Errorf("member list of %s from %s: %w", site, b, err)
	}
	return l, nil
}

// PostMembers sends l to the members endpoint of the node at base (an
// origin). client nil means NewHTTPClient(). Errors carry the node's
// answer; a list not newer than the node's wraps node.ErrStaleRecord.
func PostMembers(ctx context.Context, client *http.Client, base string, l *node.MemberList) error {
	if client == nil {
		client = NewHTTPClient()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(base, "/")+MembersPath(l.Site), bytes.NewReader(l.Bytes()))
	if err != nil {
		return fmt.Errorf("posting member list to %s: %w", base, err)
	}
	req.Header.Set("Content-Type", MediaMembers)
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("posting member list to %s: %w", base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		err := fmt.Errorf("posting member list seq %d to %s: %s: %s", l.Seq, base, resp.Status, strings.TrimSpace(string(msg)))
		if resp.StatusCode == http.StatusConflict {
			err = fmt.Errorf("%w: %w", err, node.ErrStaleRecord)
		}
		return err
	}
	return nil
}
