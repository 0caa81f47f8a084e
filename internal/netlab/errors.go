package netlab

import "errors"

// Sentinel errors. Callers compare with errors.Is; functions wrap them with
// context using %w.
var (
	// ErrUnsupported: this machine cannot run the lab (not root, no network
	// namespaces, no veth, no TUN). Tests skip on it.
	ErrUnsupported = errors.New("network lab unsupported here")
	// ErrClosed: the lab or namespace has been closed.
	ErrClosed = errors.New("network lab closed")
	// ErrBadConfig: a link, NAT or host was described wrongly (a name too
	// long or used twice, a negative delay or rate).
	ErrBadConfig = errors.New("bad network lab configuration")
)
