package node_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/hearthcdn/hearth/node"
)

// TestSplitPaths: plain and escaped paths split into segments; relative
// segments, also escaped, and malformed escapes are refused with
// ErrNoSuchPath.
func TestSplitPaths(t *testing.T) {
	for _, tc := range []struct {
		in        string
		plain     []string
		escaped   []string
		escapedOK bool
	}{
		{in: "", plain: nil, escaped: nil, escapedOK: true},
		{in: "/a//b/", plain: []string{"a", "b"}, escaped: []string{"a", "b"}, escapedOK: true},
		{in: "a%20b/c%2Fd", plain: []string{"a%20b", "c%2Fd"}, escaped: []string{"a b", "c/d"}, escapedOK: true},
		{in: "a/%2e%2e/b", plain: []string{"a", "%2e%2e", "b"}, escapedOK: false},
		{in: "a/%zz", plain: []string{"a", "%zz"}, escapedOK: false},
	} {
		got, err := node.SplitPath(tc.in)
		if err != nil || !slices.Equal(got, tc.plain) {
			t.Errorf("SplitPath(%q) = %q, %v; want %q", tc.in, got, err, tc.plain)
		}
		got, err = node.SplitEscapedPath(tc.in)
		switch {
		case tc.escapedOK && (err != nil || !slices.Equal(got, tc.escaped)):
			t.Errorf("SplitEscapedPath(%q) = %q, %v; want %q", tc.in, got, err, tc.escaped)
		case !tc.escapedOK && !errors.Is(err, node.ErrNoSuchPath):
			t.Errorf("SplitEscapedPath(%q): err = %v, want ErrNoSuchPath", tc.in, err)
		}
	}
	for _, p := range []string{"a/../b", "./a"} {
		if _, err := node.SplitPath(p); !errors.Is(err, node.ErrNoSuchPath) {
			t.Errorf("SplitPath(%q): err = %v, want ErrNoSuchPath", p, err)
		}
		if _, err := node.SplitEscapedPath(p); !errors.Is(err, node.ErrNoSuchPath) {
			t.Errorf("SplitEscapedPath(%q): err = %v, want ErrNoSuchPath", p, err)
		}
	}
}
