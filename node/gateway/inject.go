package gateway

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/hearthcdn/hearth/js/inject"
)

// serveTagged serves an HTML file (at most inject.MaxPage bytes, read
// through fr) with the page loader added (inject.HTML), as its own
// representation: its ETag is the file's with inject.ETagSuffix, and Range,
// conditionals and HEAD apply to the tagged bytes. A request whose
// If-None-Match already names that ETag gets its 304 without the file
// being read. The headers other than Content-Length are set by the caller.
func serveTagged(w http.ResponseWriter, r *http.Request, name string, fr io.ReadSeeker) error {
	h := w.Header()
	tagged := inject.ETag(h.Get("Etag"))
	if inm := r.Header.Get("If-None-Match"); inm != "" && etagListHas(inm, tagged) {
		h.Set("Etag", tagged)
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	page, err := io.ReadAll(io.LimitReader(fr, inject.MaxPage+1))
	if err != nil {
		return fmt.Errorf("reading %s: %w", name, err)
	}
	if out, ok := inject.HTML(page); ok {
		page = out
		h.Set("Etag", tagged)
	}
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(page))
	return nil
}

// etagListHas reports whether an If-None-Match list names etag, by the
// weak comparison RFC 9110 §13.1.2 prescribes for it.
func etagListHas(list, etag string) bool {
	want := bytes.TrimPrefix([]byte(etag), []byte("W/"))
	for _, t := range bytes.Split([]byte(list), []byte(",")) {
		t = bytes.TrimSpace(t)
		if string(t) == "*" || bytes.Equal(bytes.TrimPrefix(t, []byte("W/")), want) {
			return true
		}
	}
	return false
}
