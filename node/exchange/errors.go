package exchange

import (
	"context"
	"errors"
	"fmt"

	"github.com/hearthcdn/hearth/node"
)

// Sentinel errors. Callers compare with errors.Is. Errors a peer reports on
// the wire are mapped to these (and to node's sentinels) by codeErr, the one
// place where wire codes and errors meet.
var (
	// ErrBusy: the peer is at its limit of concurrent requests or request
	// rate; try later or elsewhere.
	ErrBusy = errors.New("peer busy")
	// ErrRefused: the peer will not serve this request or connection.
	ErrRefused = errors.New("refused")
	// ErrBadRequest: the peer could not parse or does not support the request.
	ErrBadRequest = errors.New("bad request")
	// ErrRemote: the peer failed while serving the request.
	ErrRemote = errors.New("peer failed")
	// ErrProtocol: a peer broke the wire protocol (malformed message, data
	// beyond its credit, a fragment out of place). The connection is closed.
	ErrProtocol = errors.New("protocol violation")
	// ErrClosed: the connection, server or fetcher is closed.
	ErrClosed = errors.New("closed")
	// ErrNoPeers: no peer could serve the request and there is no fallback.
	ErrNoPeers = errors.New("no peer could serve the request")
	// ErrStalled: a peer sent nothing for longer than the stall timeout.
	ErrStalled = errors.New("peer stalled")
	// ErrSignal: a signalling message was malformed or arrived out of place.
	ErrSignal = errors.New("bad signalling message")
	// ErrNoTURN: a relayed-only connection (TransportConfig.RelayOnly) was
	// to be made with no TURN server to relay it.
	ErrNoTURN = errors.New("relayed-only connection without a TURN server")
)

// code is a request's status on the wire (README.md, "END").
type code uint64

const (
	codeOK         code = 0
	codeNotFound   code = 1 // node.ErrNotFound: the peer lacks a block
	codeBusy       code = 2 // ErrBusy
	codeRefused    code = 3 // ErrRefused
	codeBadRequest code = 4 // ErrBadRequest
	codeInternal   code = 5 // ErrRemote
	codeCanceled   code = 6 // the requester canceled (context.Canceled)
	codeNoSuchPath code = 7 // node.ErrNoSuchPath
	codeNotDir     code = 8 // node.ErrNotDir
	codeBadRange   code = 9 // node.ErrBadRange
)

// errCode returns the wire code for a server-side error.
func errCode(err error) code {
	switch {
	case err == nil:
		return codeOK
	case errors.Is(err, node.ErrNotFound):
		return codeNotFound
	case errors.Is(err, ErrBusy):
		return codeBusy
	case errors.Is(err, ErrRefused):
		return codeRefused
	case errors.Is(err, ErrBadRequest), errors.Is(err, node.ErrUnsupportedCodec),
		errors.Is(err, node.ErrUnsupportedHash), errors.Is(err, node.ErrTooLarge):
		return codeBadRequest
	case errors.Is(err, context.Canceled):
		return codeCanceled
	case errors.Is(err, node.ErrNoSuchPath):
		return codeNoSuchPath
	case errors.Is(err, node.ErrNotDir):
		return codeNotDir
	case errors.Is(err, node.ErrBadRange):
		return codeBadRange
	}
	return codeInternal
}

// codeErr returns the error a requester sees for a wire code and the
// peer's message; nil for codeOK.
func codeErr(c code, msg string) error {
	var base error
	switch c {
	case codeOK:
		return nil
	case codeNotFound:
		base = node.ErrNotFound
	case codeBusy:
		base = ErrBusy
	case codeRefused:
		base = ErrRefused
	case codeBadRequest:
		base = ErrBadRequest
	case codeCanceled:
		base = context.Canceled
	case codeNoSuchPath:
		base = node.ErrNoSuchPath
	case codeNotDir:
		base = node.ErrNotDir
	case codeBadRange:
		base = node.ErrBadRange
	default:
		base = ErrRemote
	}
	if msg == "" {
		return fmt.Errorf("peer: %w", base)
	}
	return fmt.Errorf("peer: %s: %w", msg, base)
}

// isPeerFault reports whether err proves the peer misbehaved: a corrupt or
// unexpected block, or a protocol violation. Such a peer is banned.
func isPeerFault(err error) bool {
	return errors.Is(err, node.ErrCorrupt) || errors.Is(err, node.ErrUnexpectedBlock) ||
		errors.Is(err, ErrProtocol)
}

// isContentErr reports whether err is a fact about the content itself,
// proven by verified blocks (no such path, not a directory, a malformed
// node, an unsupported CID): asking another peer cannot help.
func isContentErr(err error) bool {
	return errors.Is(err, node.ErrNoSuchPath) || errors.Is(err, node.ErrNotDir) ||
		errors.Is(err, node.ErrBadRange) || errors.Is(err, node.ErrBadNode) ||
		errors.Is(err, node.ErrUnsupportedCodec) || errors.Is(err, node.ErrUnsupportedHash)
}
