package relay

import "errors"

// Sentinel errors. Callers compare with errors.Is; functions wrap them with
// context using %w. Errors that travel on the wire have a Code (see codes
// below); the relay sends the code and the client turns it back into the
// same sentinel with Code.Err.
var (
	// ErrBadMessage: a frame is not a well-formed message (not JSON, a
	// binary frame, a field of the wrong shape, a missing field).
	ErrBadMessage = errors.New("malformed message")
	// ErrUnsupportedVersion: the message's "v" is not Version.
	ErrUnsupportedVersion = errors.New("unsupported protocol version")
	// ErrUnknownType: the message's "type" is not one this side knows.
	ErrUnknownType = errors.New("unknown message type")
	// ErrTooLarge: a message or one of its fields exceeds a size limit.
	ErrTooLarge = errors.New("message too large")
	// ErrHelloRequired: a message other than hello arrived before hello.
	ErrHelloRequired = errors.New("hello required first")
	// ErrBadHello: the hello's key or signature does not verify.
	ErrBadHello = errors.New("hello signature invalid")
	// ErrRateLimited: the peer sent messages faster than its rate limit.
	ErrRateLimited = errors.New("rate limited")
	// ErrTooManySites: an announce names more sites (or roots per site)
	// than the relay allows.
	ErrTooManySites = errors.New("too many sites announced")
	// ErrTooManySubscriptions: the peer holds the maximum number of
	// root-record subscriptions.
	ErrTooManySubscriptions = errors.New("too many subscriptions")
	// ErrUnknownPeer: a signal names a peer that is not connected.
	ErrUnknownPeer = errors.New("unknown peer")
	// ErrNotIntroduced: a signal names a peer that neither side found
	// through find.
	ErrNotIntroduced = errors.New("peers not introduced by find")
	// ErrBadRecord: a root record is malformed or its signature does not
	// verify.
	ErrBadRecord = errors.New("bad root record")
	// ErrStaleRecord: a root record's sequence is not above the latest one
	// the relay holds for its site.
	ErrStaleRecord = errors.New("stale root record")
	// ErrRelayFull: the relay cannot hold more state of this kind.
	ErrRelayFull = errors.New("relay full")
	// ErrReplaced: another connection authenticated with the same key.
	ErrReplaced = errors.New("connection replaced by a newer one with the same key")
	// ErrShuttingDown: the relay is shutting down.
	ErrShuttingDown = errors.New("relay shutting down")
	// ErrInternal: the relay failed in a way that is not the peer's fault.
	ErrInternal = errors.New("relay internal error")

	// ErrClosed: the client was closed.
	ErrClosed = errors.New("relay client closed")
	// ErrBadConfig: a server or client configuration is invalid.
	ErrBadConfig = errors.New("invalid relay configuration")
	// ErrDisconnected: the connection to the relay dropped before the
	// relay answered; the request may or may not have taken effect.
	ErrDisconnected = errors.New("disconnected from relay")
)

// Code is the wire form of an error, the "code" field of an error message.
type Code string

// Error codes. Each maps to one sentinel error.
const (
	CodeBadMessage           Code = "bad_message"
	CodeUnsupportedVersion   Code = "unsupported_version"
	CodeUnknownType          Code = "unknown_type"
	CodeTooLarge             Code = "too_large"
	CodeHelloRequired        Code = "hello_required"
	CodeBadHello             Code = "bad_hello"
	CodeRateLimited          Code = "rate_limited"
	CodeTooManySites         Code = "too_many_sites"
	CodeTooManySubscriptions Code = "too_many_subscriptions"
	CodeUnknownPeer          Code = "unknown_peer"
	CodeNotIntroduced        Code = "not_introduced"
	CodeBadRecord            Code = "bad_record"
	CodeStaleRecord          Code = "stale_record"
	CodeRelayFull            Code = "relay_full"
	CodeReplaced             Code = "replaced"
	CodeShuttingDown         Code = "shutting_down"
	CodeInternal             Code = "internal"
)

// codeErrs lists every code with its sentinel, in the order CodeOf tries them.
var codeErrs = [...]struct {
	code Code
	err  error
}{
	{CodeBadMessage, ErrBadMessage},
	{CodeUnsupportedVersion, ErrUnsupportedVersion},
	{CodeUnknownType, ErrUnknownType},
	{CodeTooLarge, ErrTooLarge},
	{CodeHelloRequired, ErrHelloRequired},
	{CodeBadHello, ErrBadHello},
	{CodeRateLimited, ErrRateLimited},
	{CodeTooManySites, ErrTooManySites},
	{CodeTooManySubscriptions, ErrTooManySubscriptions},
	{CodeUnknownPeer, ErrUnknownPeer},
	{CodeNotIntroduced, ErrNotIntroduced},
	{CodeBadRecord, ErrBadRecord},
	{CodeStaleRecord, ErrStaleRecord},
	{CodeRelayFull, ErrRelayFull},
	{CodeReplaced, ErrReplaced},
	{CodeShuttingDown, ErrShuttingDown},
	{CodeInternal, ErrInternal},
}

// Err returns the sentinel error for c; an unknown code (from a newer
// relay) maps to ErrInternal.
func (c Code) Err() error {
	for _, ce := range codeErrs {
		if ce.code == c {
			return ce.err
		}
	}
	return ErrInternal
}

// CodeOf returns the wire code for err: the code of the first sentinel in
// err's chain, or CodeInternal.
func CodeOf(err error) Code {
	for _, ce := range codeErrs {
		if errors.Is(err, ce.err) {
			return ce.code
		}
	}
	return CodeInternal
}
