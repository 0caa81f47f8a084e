package origin_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/internal/harness"
	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/gateway"
	"github.com/hearthcdn/hearth/node/hosting"
	"github.com/hearthcdn/hearth/node/origin"
	"github.com/hearthcdn/hearth/node/pebblestore"
)

// testReadTimeout stands for the server's ReadTimeout (hosting.NewServer):
// an upload body that arrives over longer than this must still be read.
const testReadTimeout = 100 * time.Millisecond

// uploadOrigin is an origin with nothing published, over a pebble store,
// served with a ReadTimeout of testReadTimeout; cfg sets the publish
// limits.
type uploadOrigin struct {
	o    *origin.Origin
	st   *pebblestore.Store
	key  ed25519.PrivateKey
	url  string
	recs *node.RecordLog // the publisher's
}

func newUploadOrigin(t *testing.T, cfg origin.Config) *uploadOrigin {
	t.Helper()
	st, key := pebbleAndKey(t)
	cfg.Store, cfg.Key = st, key
	o, err := origin.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(o.Close)
	srv := httptest.NewUnstartedServer(o.Handler())
	srv.Config = hosting.NewServer(o.Handler(), slog.Default()) // a node's server,
	srv.Config.ReadTimeout = testReadTimeout                    // but for this
	srv.Start()
	t.Cleanup(srv.Close)
	return &uploadOrigin{o: o, st: st, key: key, url: srv.URL, recs: node.NewRecordLog(node.NewMemMeta())}
}

func (u *uploadOrigin) blocks(t *testing.T) int {
	t.Helper()
	n := 0
	for _, err := range u.st.AllKeys(context.Background()) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	return n
}

// post sends body as the upload of root, signed as the next record.
func (u *uploadOrigin) post(t *testing.T, root cid.Cid, body io.Reader) (int, string) {
	t.Helper()
	rec, err := u.recs.SignNext(u.key, root, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, u.url+gateway.PublishPath(rec.Site), body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(gateway.HeaderRootRecord, base64.StdEncoding.EncodeToString(rec.Bytes()))
	req.Header.Set("Content-Type", gateway.MediaCAR)
	client := &http.Client{Timeout: 30 * time.Second} // a bound, not an assertion
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, string(msg)
}

// fileCAR returns the CARv1 of a file of n random bytes, in traversal
// order (parents first), and its root.
func fileCAR(t *testing.T, n int) ([]byte, cid.Cid) {
	t.Helper()
	data := make([]byte, n)
	_, _ = rand.Read(data)
	st, root := harness.BuildDAG(t, map[string][]byte{"f": data})
	var buf bytes.Buffer
	if err := node.ExportCAR(context.Background(), st, root, &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), root
}

// slowReader hands out data chunk bytes at a time, pausing before each
// read, so that the whole body takes at least len/chunk pauses. With
// stall, it then blocks until closed (as the HTTP transport closes a
// request body when the request ends) instead of ending.
type slowReader struct {
	data   []byte
	chunk  int
	pause  time.Duration
	stall  bool
	once   sync.Once
	closed chan struct{} // made by newSlowReader
}

func newSlowReader(data []byte, chunk int, pause time.Duration, stall bool) *slowReader {
	return &slowReader{data: data, chunk: chunk, pause: pause, stall: stall, closed: make(chan struct{})}
}

func (r *slowReader) Close() error {
	r.once.Do(func() { close(r.closed) })
	return nil
}

func (r *slowReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		if r.stall {
			<-r.closed
			return 0, io.ErrClosedPipe
		}
		return 0, io.EOF
	}
	time.Sleep(r.pause) // the uplink is slow; nothing is measured
	n := copy(p[:min(len(p), r.chunk)], r.data)
	r.data = r.data[n:]
	return n, nil
}

// A legitimate upload whose body trickles in over several ReadTimeouts is
// read to its end and accepted.
func TestPublishSlowBodyOutlivesReadTimeout(t *testing.T) {
	u := newUploadOrigin(t, origin.Config{PublishIdle: 5 * time.Second})
	car, root := fileCAR(t, 200<<10)
	// ≥ 26 pauses of 20 ms: over 5 times the server's ReadTimeout.
	body := newSlowReader(car, 8<<10, 20*time.Millisecond, false)
	if code, msg := u.post(t, root, body); code != http.StatusNoContent {
		t.Fatalf("slow upload: %d %s", code, msg)
	}
	if l := u.o.Feed().Latest(); l == nil || !l.Root.Equals(root) {
		t.Fatalf("latest %+v, want root %s", l, root)
	}
}

// A body that stops arriving is cut after PublishIdle (408), and what it
// brought is not kept.
func TestPublishStalledBodyIsCut(t *testing.T) {
	u := newUploadOrigin(t, origin.Config{PublishIdle: 300 * time.Millisecond})
	car, root := fileCAR(t, 600<<10)
	body := newSlowReader(car[:len(car)/2], 64<<10, 0, true)
	defer body.Close()
	code, msg := u.post(t, root, body)
	if code != http.StatusRequestTimeout || !strings.Contains(msg, gateway.ErrBodyStalled.Error()) {
		t.Fatalf("stalled upload: %d %s", code, msg)
	}
	if n := u.blocks(t); n != 0 {
		t.Fatalf("%d blocks kept from a stalled upload", n)
	}
	if u.o.Feed().Latest() != nil {
		t.Fatal("record of a stalled upload accepted")
	}
}

// Bytes trickled just often enough to beat PublishIdle, but slower than
// PublishMinRate, are cut too.
func TestPublishBelowMinRateIsCut(t *testing.T) {
	u := newUploadOrigin(t, origin.Config{PublishIdle: 500 * time.Millisecond, PublishMinRate: 1 << 20})
	// One raw block of 1 MiB as the root: the CAR reader waits for its
	// whole section, which 1 KiB every 10 ms would take over 10 s to send.
	data := make([]byte, 1<<20)
	_, _ = rand.Read(data)
	root := node.Sum(node.CodecRaw, data)
	var buf bytes.Buffer
	cw, err := node.NewCARWriter(&buf, root)
	if err != nil {
		t.Fatal(err)
	}
	if err := cw.Put(context.Background(), node.Block{Cid: root, Data: data}); err != nil {
		t.Fatal(err)
	}
	body := newSlowReader(buf.Bytes(), 1<<10, 10*time.Millisecond, false)
	code, msg := u.post(t, root, body)
	if code != http.StatusRequestTimeout || !strings.Contains(msg, gateway.ErrBodyStalled.Error()) {
		t.Fatalf("trickled upload: %d %s", code, msg)
	}
}

// endlessCAR is a CAR whose first bytes are prefix (a CAR of a valid DAG)
// and that then goes on with valid raw blocks no DAG names, up to max of
// them (a bound for the test; the origin must stop reading long before).
type endlessCAR struct {
	prefix []byte
	max    int64
	sent   atomic.Int64 // read by the test while the transport may still write
	buf    []byte
}

func (e *endlessCAR) Read(p []byte) (int, error) {
	if len(e.prefix) > 0 {
		n := copy(p, e.prefix)
		e.prefix = e.prefix[n:]
		return n, nil
	}
	if len(e.buf) == 0 {
		if e.sent.Load() == e.max {
			return 0, io.EOF
		}
		e.sent.Add(1)
		data := make([]byte, 1<<10)
		_, _ = rand.Read(data)
		c := node.Sum(node.CodecRaw, data)
		e.buf = binary.AppendUvarint(nil, uint64(len(c.Bytes())+len(data)))
		e.buf = append(append(e.buf, c.Bytes()...), data...)
	}
	n := copy(p, e.buf)
	e.buf = e.buf[n:]
	return n, nil
}

// An upload signed with the key that goes on past its DAG with blocks no
// DAG names is cut at the first such block, with a clear error; the
// blocks of the DAG it stored before (over one 8 MiB batch) are deleted,
// and the record is not accepted.
func TestPublishEndlessCARIsCut(t *testing.T) {
	u := newUploadOrigin(t, origin.Config{})
	car, root := fileCAR(t, 9<<20)
	body := &endlessCAR{prefix: car, max: 20_000}
	before := u.blocks(t)
	code, msg := u.post(t, root, body)
	if code != http.StatusBadRequest || !strings.Contains(msg, node.ErrUnexpectedBlock.Error()) {
		t.Fatalf("endless upload: %d %s", code, msg)
	}
	if body.sent.Load() == body.max {
		t.Fatal("the whole endless CAR was read")
	}
	if n := u.blocks(t); n != before {
		t.Fatalf("%d blocks in the store after a refused upload, %d before", n, before)
	}
	if u.o.Feed().Latest() != nil {
		t.Fatal("record of a refused upload accepted")
	}
}

// A block sent before any block that links it (children first) is
// refused: the order is what bounds an upload by its DAG.
func TestPublishChildrenFirstRefused(t *testing.T) {
	u := newUploadOrigin(t, origin.Config{})
	st, root := harness.BuildDAG(t, map[string][]byte{"a": []byte("a"), "b": []byte("b")})
	blocks := harness.DAGBlocks(t, st, root)
	var buf bytes.Buffer
	cw, err := node.NewCARWriter(&buf, root)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range blocks {
		if !b.Cid.Equals(root) {
			if err := cw.Put(context.Background(), b); err != nil {
				t.Fatal(err)
			}
		}
	}
	code, msg := u.post(t, root, &buf)
	if code != http.StatusBadRequest || !strings.Contains(msg, node.ErrUnexpectedBlock.Error()) {
		t.Fatalf("children first: %d %s", code, msg)
	}
}

// An upload over MaxPublish is refused with 413, whether its length is
// announced or streamed, and keeps nothing, even past a stored batch.
func TestPublishOverMaxPublish(t *testing.T) {
	u := newUploadOrigin(t, origin.Config{MaxPublish: 10 << 20})
	car, root := fileCAR(t, 11<<20)
	// Announced: refused before the body is read.
	if code, msg := u.post(t, root, bytes.NewReader(car)); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("announced oversized upload: %d %s", code, msg)
	}
	// Streamed (no Content-Length): cut at the limit.
	if code, msg := u.post(t, root, io.MultiReader(bytes.NewReader(car))); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("streamed oversized upload: %d %s", code, msg)
	}
	if n := u.blocks(t); n != 0 {
		t.Fatalf("%d blocks kept from oversized uploads", n)
	}
	if u.o.Feed().Latest() != nil {
		t.Fatal("record of an oversized upload accepted")
	}
}

// Publishing as a writable mount does: the new blocks in no particular
// order, then only the blocks a second root adds. Both
// are accepted and whole, and the first root's blocks are kept.
func TestPublishRootSendsParentsFirst(t *testing.T) {
	u := newUploadOrigin(t, origin.Config{})
	ctx := context.Background()
	big := make([]byte, 1<<20)
	_, _ = rand.Read(big)
	st1, root1 := harness.BuildDAG(t, map[string][]byte{"big": big, "a.txt": []byte("one")})
	st2, root2 := harness.BuildDAG(t, map[string][]byte{"big": big, "a.txt": []byte("two"), "new/b.txt": []byte("b")})
	b1, b2 := harness.DAGBlocks(t, st1, root1), harness.DAGBlocks(t, st2, root2)
	var all1, new2 []cid.Cid
	for _, b := range b1 {
		all1 = append(all1, b.Cid)
	}
	for k, b := range b2 {
		if _, ok := b1[k]; !ok {
			new2 = append(new2, b.Cid)
		}
	}
	for i, step := range []struct {
		root cid.Cid
		g    node.Getter
		cids []cid.Cid
	}{{root1, st1, all1}, {root2, st2, new2}} {
		rec, err := u.recs.SignNext(u.key, step.root, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if err := gateway.PublishRoot(ctx, nil, u.url, rec, step.g, step.cids); err != nil {
			t.Fatalf("publish %d: %v", i+1, err)
		}
		if l := u.o.Feed().Latest(); l == nil || !l.Root.Equals(step.root) {
			t.Fatalf("publish %d: latest %+v", i+1, l)
		}
		u.whole(t, step.root)
	}
	u.whole(t, root1)
}

// whole fails t unless the DAG under root is whole and valid in the store.
func (u *uploadOrigin) whole(t *testing.T, root cid.Cid) {
	t.Helper()
	_, err := node.CheckDAG(context.Background(), u.st, root, func(p node.Problem) bool {
		t.Errorf("DAG %s: %+v", root, p)
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
}
