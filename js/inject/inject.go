// Package inject adds Hearth's page loader to a site's HTML as it is
// served, so a site published unmodified (as `hearth publish` or `ipfs add`
// gives it) still registers the service worker: the origin and seeders do
// it to the text/html they answer, and the service worker to the HTML it
// assembles from verified blocks. The DAG is never changed; only the bytes
// sent are.
//
// The loader is one element, Tag. A page that already names the loader's
// path (LoaderPath) anywhere is left as it is, so a page carrying the tag by
// hand is never tagged twice. Otherwise Tag goes right after the <head>
// start tag, else after the <html> start tag, else after the doctype, else
// first: a deferred classic script is valid in any of those places (HTML
// Living Standard, "the script element"), and runs after parsing, in
// document order, wherever it sits.
//
// A response that carries the loader is another representation of the
// file: its entity tag is the file's with ETagSuffix appended (ETag), so
// caches and conditional requests never mix the two.
package inject

import (
	"bytes"
	"strings"
)

// LoaderPath is the URL path of the page loader the browser client serves.
const LoaderPath = "/.hearth/hearth.js"

// Tag is the element inserted into pages that lack the loader.
const Tag = `<script src="` + LoaderPath + `" defer></script>`

// MaxPage bounds the HTML documents tagged, in bytes: a larger one is
// served as published (its bytes are streamed, never held whole).
const MaxPage = 8 << 20

// scan bounds how far into a page the <head>, <html> and doctype are
// looked for, in bytes.
const scan = 64 << 10

// ETagSuffix marks the entity tag of a tagged response.
const ETagSuffix = ".hearth"

// HTML returns page with Tag inserted and true, or page itself and false
// when it already names LoaderPath. It never modifies page.
func HTML(page []byte) ([]byte, bool) {
	if bytes.Contains(page, []byte(LoaderPath)) {
		return page, false
	}
	at := Offset(page)
	out := make([]byte, 0, len(page)+len(Tag))
	out = append(out, page[:at]...)
	out = append(out, Tag...)
	out = append(out, page[at:]...)
	return out, true
}

// Offset returns where HTML inserts Tag into page: the byte after the
// first <head> start tag, else after <html>, else after <!doctype>, else 0
// (after a UTF-8 byte order mark, if any). Only the first 64 KiB are
// searched, and never inside a comment.
func Offset(page []byte) int {
	head := page[:min(len(page), scan)]
	for _, name := range []string{"head", "html", "!doctype"} {
		if end := startTagEnd(head, name); end >= 0 {
			return end
		}
	}
	if bytes.HasPrefix(page, []byte("\xef\xbb\xbf")) {
		return 3
	}
	return 0
}

// startTagEnd returns the offset just past the first start tag called name
// (ASCII case-insensitive) outside comments, or -1.
func startTagEnd(b []byte, name string) int {
	for i := 0; i < len(b); {
		j := bytes.IndexByte(b[i:], '<')
		if j < 0 {
			return -1
		}
		i += j
		if bytes.HasPrefix(b[i:], []byte("<!--")) {
			k := bytes.Index(b[i+4:], []byte("-->"))
			if k < 0 {
				return -1
			}
			i += 4 + k + 3
			continue
		}
		rest := b[i+1:]
		if len(rest) > len(name) && strings.EqualFold(string(rest[:len(name)]), name) {
			switch c := rest[len(name)]; c {
			case '>', ' ', '\t', '\n', '\r', '\f', '/':
				k := bytes.IndexByte(rest, '>')
				if k < 0 {
					return -1
				}
				return i + 1 + k + 1
			}
		}
		i++
	}
	return -1
}

// ETag returns the entity tag of the tagged representation of a response
// whose entity tag is etag (a quoted string, optionally W/-prefixed).
func ETag(etag string) string {
	if len(etag) < 2 || etag[len(etag)-1] != '"' {
		return etag
	}
	return etag[:len(etag)-1] + ETagSuffix + `"`
}

// IsHTML reports whether a Content-Type value names text/html.
func IsHTML(ctype string) bool {
	mt, _, _ := strings.Cut(ctype, ";")
	return strings.EqualFold(strings.TrimSpace(mt), "text/html")
}
