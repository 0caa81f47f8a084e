package inject

import (
	"bytes"
	"strings"
	"testing"
)

func TestHTML(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"head", "<!doctype html><html><head><title>x</title></head><body>b</body></html>",
			"<!doctype html><html><head>" + Tag + "<title>x</title></head><body>b</body></html>"},
		{"head with attributes, upper case", "<HTML lang=en><HEAD profile=x>t",
			"<HTML lang=en><HEAD profile=x>" + Tag + "t"},
		{"header is not head", "<html><body><header>h</header>", "<html>" + Tag + "<body><header>h</header>"},
		{"no head", "<!DOCTYPE html><p>x", "<!DOCTYPE html>" + Tag + "<p>x"},
		{"fragment", "<p>x</p>", Tag + "<p>x</p>"},
		{"empty", "", Tag},
		{"bom", "\xef\xbb\xbf<p>x", "\xef\xbb\xbf" + Tag + "<p>x"},
		{"comment hides a head", "<!-- <head> --><html><head>x", "<!-- <head> --><html><head>" + Tag + "x"},
		{"unterminated comment", "<!-- <head>", Tag + "<!-- <head>"},
		{"unterminated tag", "<head", Tag + "<head"},
	} {
		got, ok := HTML([]byte(tc.in))
		if !ok || string(got) != tc.want {
			t.Errorf("%s: HTML(%q) = %q, %v; want %q, true", tc.name, tc.in, got, ok, tc.want)
		}
	}
}

func TestHTMLTaggedOnce(t *testing.T) {
	for _, in := range []string{
		`<html><head><script src="/.hearth/hearth.js" defer></script></head>`,
		`<script type=module src='/.hearth/hearth.js'></script>`,
	} {
		got, ok := HTML([]byte(in))
		if ok || string(got) != in {
			t.Errorf("HTML(%q) = %q, %v; want it unchanged", in, got, ok)
		}
		again, _ := HTML(got)
		if !bytes.Equal(again, got) {
			t.Errorf("tagging twice changed %q", in)
		}
	}
	once, _ := HTML([]byte("<head>x"))
	if twice, ok := HTML(once); ok || strings.Count(string(twice), LoaderPath) != 1 {
		t.Errorf("a tagged page was tagged again: %q", twice)
	}
}

func TestHTMLScanBound(t *testing.T) {
	page := append(bytes.Repeat([]byte("a"), scan), "<head>"...)
	got, _ := HTML(page)
	if !bytes.HasPrefix(got, []byte(Tag)) {
		t.Errorf("a <head> past the first %d bytes was looked for", scan)
	}
}

func TestETags(t *testing.T) {
	if got := ETag(`"bafy"`); got != `"bafy.hearth"` {
		t.Errorf("ETag = %s", got)
	}
	if got := ETag(`W/"bafy"`); got != `W/"bafy.hearth"` {
		t.Errorf("ETag weak = %s", got)
	}
	for ctype, want := range map[string]bool{"text/html; charset=utf-8": true, "TEXT/HTML": true, "text/plain": false, "application/xhtml+xml": false} {
		if IsHTML(ctype) != want {
			t.Errorf("IsHTML(%q) != %v", ctype, want)
		}
	}
}

func FuzzHTML(f *testing.F) {
	f.Add([]byte("<!doctype html><html><head><title>x</title></head></html>"))
	f.Add([]byte("<!-- <head> -->"))
	f.Fuzz(func(t *testing.T, page []byte) {
		got, ok := HTML(page)
		if !ok {
			if !bytes.Contains(page, []byte(LoaderPath)) || !bytes.Equal(got, page) {
				t.Fatal("untagged without the loader present, or changed")
			}
			return
		}
		at := Offset(page)
		if !bytes.Equal(got[:at], page[:at]) || string(got[at:at+len(Tag)]) != Tag || !bytes.Equal(got[at+len(Tag):], page[at:]) {
			t.Fatal("tagged page is not the page with Tag inserted at Offset")
		}
		if again, ok := HTML(got); ok || !bytes.Equal(again, got) {
			t.Fatal("tagged twice")
		}
	})
}
