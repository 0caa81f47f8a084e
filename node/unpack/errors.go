package unpack

import "errors"

// Sentinel errors. Callers compare with errors.Is; functions wrap them with
// context using %w.
var (
	// ErrSymlinkOutside: a symlink's target is absolute or resolves outside
	// the output tree, and Options.AllowSymlinksOutside is not set.
	ErrSymlinkOutside = errors.New("symlink points outside the output tree")
	// ErrUnsupportedKind: the DAG holds a node that has no place on a
	// filesystem (UnixFS metadata).
	ErrUnsupportedKind = errors.New("cannot write this kind of node")
)
