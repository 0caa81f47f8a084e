package node

import (
	"errors"
	"fmt"
)

// Sentinel errors. Callers compare with errors.Is; functions wrap them with
// context using %w.
var (
	// ErrNotFound: the store does not hold the block.
	ErrNotFound = errors.New("block not found")
	// ErrCorrupt: a block's bytes do not hash to its CID.
	ErrCorrupt = errors.New("block does not match its CID")
	// ErrUnexpectedBlock: a peer sent a valid block that is not the one the
	// traversal expects next.
	ErrUnexpectedBlock = errors.New("unexpected block")
	// ErrUnsupportedHash: the CID uses a multihash Hearth does not verify.
	ErrUnsupportedHash = errors.New("unsupported multihash")
	// ErrUnsupportedCodec: the CID's codec is neither raw nor dag-pb.
	ErrUnsupportedCodec = errors.New("unsupported codec")
	// ErrBadNode: a dag-pb or UnixFS node is malformed.
	ErrBadNode = errors.New("malformed UnixFS node")
	// ErrLinkOrder: a directory's links are not in strictly increasing
	// order of their names' bytes (out of order, or a name listed twice).
	// It wraps ErrBadNode.
	ErrLinkOrder = fmt.Errorf("directory links not in strictly increasing name order: %w", ErrBadNode)
	// ErrNoSuchPath: a path segment does not exist under the root.
	ErrNoSuchPath = errors.New("no such path")
	// ErrNotDir: a path traverses a file.
	ErrNotDir = errors.New("not a directory")
	// ErrBadRange: an entity-bytes range lies outside the entity.
	ErrBadRange = errors.New("range not satisfiable")
	// ErrBadRecord: a root record is malformed.
	ErrBadRecord = errors.New("malformed root record")
	// ErrBadMemberList: a member list is malformed.
	ErrBadMemberList = errors.New("malformed member list")
	// ErrBadPin: a pin in a store's metadata is malformed.
	ErrBadPin = errors.New("malformed pin")
	// ErrBadSignature: a root record's (or member list's) signature does not
	// verify under its site key.
	ErrBadSignature = errors.New("root record signature invalid")
	// ErrWrongSite: a root record (or member list) is for another site.
	ErrWrongSite = errors.New("root record is for another site")
	// ErrStaleRecord: a root record's (or member list's) sequence is not
	// above the latest one held.
	ErrStaleRecord = errors.New("root record sequence not newer")
	// ErrBadSiteID: a site ID's text form does not parse.
	ErrBadSiteID = errors.New("malformed site ID")
	// ErrTooLarge: an input exceeds a size limit.
	ErrTooLarge = errors.New("too large")
)
