package exchange

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/node"
)

// Wire format (README.md has the full description). Every message is one
// data-channel message: a type byte, then fields encoded as unsigned
// varints (uvarint), signed zig-zag varints (varint), or length-prefixed
// bytes (a uvarint length, then the bytes).

// Version is the protocol version a peer announces in SETTINGS.
const Version = 1

// Protocol is the data channel's label and sub-protocol.
const Protocol = "hearth-exchange/1"

// MaxMessage is the largest message either side sends or accepts, in bytes:
// small enough for every browser (DESIGN.md, "Exchange").
const MaxMessage = 64 << 10

// Limits on what a message may carry.
const (
	maxCIDLen    = 128  // bytes of a binary CID
	maxBlockList = 1024 // CIDs in one BLOCKS request
	maxPathSegs  = 256  // segments of a request path
	maxEndText   = 256  // bytes of an END message's text
	// maxFragment is the most block data one BLOCK or MORE message carries:
	// MaxMessage minus room for the largest header (type, id, CID, size).
	maxFragment = MaxMessage - 1 - binary.MaxVarintLen64 - (binary.MaxVarintLen64 + maxCIDLen) - binary.MaxVarintLen64
)

type msgType byte

// Message types.
const (
	msgSettings msgType = 1 // both ways, first: version, max concurrent requests served
	msgRequest  msgType = 2 // requester → server: id, window, request
	msgBlock    msgType = 3 // server → requester: id, CID, size, first fragment
	msgMore     msgType = 4 // server → requester: id, next fragment of the current block
	msgMissing  msgType = 5 // server → requester: id, CID the server does not hold (BLOCKS only)
	msgEnd      msgType = 6 // server → requester: id, code, text; the request's last message
	msgCredit   msgType = 7 // requester → server: id, bytes of block data it may send more
	msgCancel   msgType = 8 // requester → server: id
	msgBatch    msgType = 9 // both ways, to a peer that accepts it: messages (batch.go)
)

// Features a peer announces in SETTINGS (a bit set; absent is none).
const (
	featureBatch = 1 << 0 // it accepts BATCH messages
)

// localFeatures is what this implementation announces.
const localFeatures = featureBatch

func (t msgType) String() string {
	switch t {
	case msgSettings:
		return "SETTINGS"
	case msgRequest:
		return "REQUEST"
	case msgBlock:
		return "BLOCK"
	case msgMore:
		return "MORE"
	case msgMissing:
		return "MISSING"
	case msgEnd:
		return "END"
	case msgCredit:
		return "CREDIT"
	case msgCancel:
		return "CANCEL"
	case msgBatch:
		return "BATCH"
	}
	return fmt.Sprintf("type(%d)", byte(t))
}

// Request kinds.
const (
	reqDAG    = 0 // a Trustless Gateway request: root, path, scope, entity-bytes
	reqBlocks = 1 // a list of block CIDs
)

// Scopes on the wire.
const (
	wireScopeBlock  = 0
	wireScopeEntity = 1
	wireScopeAll    = 2
)

// Entity-bytes forms on the wire.
const (
	rangeNone  = 0
	rangeFixed = 1 // from:to
	rangeToEnd = 2 // from:*
)

// wireRequest is what a REQUEST asks for: a DAG request, or (DAG nil) a
// list of blocks.
type wireRequest struct {
	DAG    *node.Request
	Blocks []cid.Cid
}

// message is one decoded message. Which fields are set depends on Type.
// Data aliases the buffer the message was decoded from.
type message struct {
	Type msgType
	ID   uint64

	Version     uint64 // SETTINGS
	MaxRequests uint64 // SETTINGS
	Features    uint64 // SETTINGS: feature* bits (an optional last field)

	Window uint64      // REQUEST: initial credit, bytes
	Req    wireRequest // REQUEST

	Cid  cid.Cid // BLOCK, MISSING
	Size uint64  // BLOCK: the block's total length
	Data []byte  // BLOCK, MORE: this fragment

	Code code   // END
	Text string // END

	Credit uint64 // CREDIT
}

// appendMessage appends m's encoding to b. It does not check limits; the
// callers build messages within them.
func appendMessage(b []byte, m *message) []byte {
	b = append(b, byte(m.Type))
	if m.Type == msgSettings {
		b = binary.AppendUvarint(b, m.Version)
		b = binary.AppendUvarint(b, m.MaxRequests)
		return binary.AppendUvarint(b, m.Features)
	}
	b = binary.AppendUvarint(b, m.ID)
	switch m.Type {
	case msgRequest:
		b = binary.AppendUvarint(b, m.Window)
		b = appendRequest(b, &m.Req)
	case msgBlock:
		b = appendBytes(b, m.Cid.Bytes())
		b = binary.AppendUvarint(b, m.Size)
		b = append(b, m.Data...)
	case msgMore:
		b = append(b, m.Data...)
	case msgMissing:
		b = appendBytes(b, m.Cid.Bytes())
	case msgEnd:
		b = binary.AppendUvarint(b, uint64(m.Code))
		b = appendBytes(b, []byte(m.Text))
	case msgCredit:
		b = binary.AppendUvarint(b, m.Credit)
	case msgCancel:
	}
	return b
}

// appendBlockHeader appends a BLOCK message's header; the caller appends
// the fragment's data.
func appendBlockHeader(b []byte, id uint64, c cid.Cid, size int) []byte {
	b = append(b, byte(msgBlock))
	b = binary.AppendUvarint(b, id)
	b = appendBytes(b, c.Bytes())
	return binary.AppendUvarint(b, uint64(size))
}

// appendMoreHeader appends a MORE message's header.
func appendMoreHeader(b []byte, id uint64) []byte {
	b = append(b, byte(msgMore))
	return binary.AppendUvarint(b, id)
}

func appendRequest(b []byte, r *wireRequest) []byte {
	if r.DAG == nil {
		b = append(b, reqBlocks)
		b = binary.AppendUvarint(b, uint64(len(r.Blocks)))
		for _, c := range r.Blocks {
			b = appendBytes(b, c.Bytes())
		}
		return b
	}
	d := r.DAG
	b = append(b, reqDAG)
	b = appendBytes(b, d.Root.Bytes())
	b = binary.AppendUvarint(b, uint64(len(d.Path)))
	for _, s := range d.Path {
		b = appendBytes(b, []byte(s))
	}
	switch d.Scope {
	case node.ScopeBlock:
		b = append(b, wireScopeBlock)
	case node.ScopeEntity:
		b = append(b, wireScopeEntity)
	default:
		b = append(b, wireScopeAll)
	}
	switch {
	case d.Bytes == nil:
		b = append(b, rangeNone)
	case d.Bytes.ToEnd:
		b = append(b, rangeToEnd)
		b = binary.AppendVarint(b, d.Bytes.From)
	default:
		b = append(b, rangeFixed)
		b = binary.AppendVarint(b, d.Bytes.From)
		b = binary.AppendVarint(b, d.Bytes.To)
	}
	return b
}

func appendBytes(b, p []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(p)))
	return append(b, p...)
}

// decoder reads fields from one message. The first error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf(format+": %w", append(args, ErrProtocol)...)
	}
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.fail("truncated")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad uvarint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes(limit int) []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(limit) || n > uint64(len(d.b)) {
		d.fail("length %d over limit or message", n)
		return nil
	}
	p := d.b[:n]
	d.b = d.b[n:]
	return p
}

func (d *decoder) cid() cid.Cid {
	p := d.bytes(maxCIDLen)
	if d.err != nil {
		return cid.Undef
	}
	n, c, err := cid.CidFromBytes(p)
	if err != nil || n != len(p) {
		d.fail("bad CID")
		return cid.Undef
	}
	return c
}

func (d *decoder) end() {
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
}

// decodeMessage parses one message. Errors wrap ErrProtocol. m.Data
// aliases b.
func decodeMessage(b []byte) (message, error) {
	var m message
	if len(b) > MaxMessage {
		return m, fmt.Errorf("message of %d bytes: %w", len(b), ErrProtocol)
	}
	d := &decoder{b: b}
	m.Type = msgType(d.byte())
	if d.err != nil {
		return m, d.err
	}
	if m.Type == msgSettings {
		m.Version = d.uvarint()
		m.MaxRequests = d.uvarint()
		if len(d.b) > 0 {
			m.Features = d.uvarint()
		}
		// Later versions may append fields: ignore the rest.
		return m, d.err
	}
	m.ID = d.uvarint()
	switch m.Type {
	case msgRequest:
		m.Window = d.uvarint()
		m.Req = d.request()
		d.end()
	case msgBlock:
		m.Cid = d.cid()
		m.Size = d.uvarint()
		if d.err == nil && m.Size > node.MaxBlockLen {
			d.fail("block of %d bytes", m.Size)
		}
		m.Data = d.b
		d.b = nil
		if d.err == nil && uint64(len(m.Data)) > m.Size {
			d.fail("fragment longer than its block")
		}
	case msgMore:
		m.Data = d.b
		d.b = nil
	case msgMissing:
		m.Cid = d.cid()
		d.end()
	case msgEnd:
		m.Code = code(d.uvarint())
		t := d.bytes(maxEndText)
		if d.err == nil && !utf8.Valid(t) {
			d.fail("END text is not UTF-8")
		}
		m.Text = string(t)
		d.end()
	case msgCredit:
		m.Credit = d.uvarint()
		d.end()
	case msgCancel:
		d.end()
	default:
		d.fail("unknown message type %d", byte(m.Type))
	}
	if d.err != nil {
		return message{}, fmt.Errorf("decoding %s: %w", m.Type, d.err)
	}
	return m, nil
}

func (d *decoder) request() wireRequest {
	var r wireRequest
	switch kind := d.byte(); kind {
	case reqBlocks:
		n := d.uvarint()
		if n == 0 || n > maxBlockList {
			d.fail("block list of %d", n)
			return r
		}
		r.Blocks = make([]cid.Cid, 0, min(n, uint64(len(d.b)/4+1)))
		for i := uint64(0); i < n && d.err == nil; i++ {
			r.Blocks = append(r.Blocks, d.cid())
		}
	case reqDAG:
		q := &node.Request{Root: d.cid()}
		n := d.uvarint()
		if n > maxPathSegs {
			d.fail("path of %d segments", n)
			return r
		}
		for i := uint64(0); i < n && d.err == nil; i++ {
			s := d.bytes(MaxMessage)
			if d.err == nil && (len(s) == 0 || !utf8.Valid(s)) {
				d.fail("bad path segment")
			}
			q.Path = append(q.Path, string(s))
		}
		switch sc := d.byte(); sc {
		case wireScopeBlock:
			q.Scope = node.ScopeBlock
		case wireScopeEntity:
			q.Scope = node.ScopeEntity
		case wireScopeAll:
			q.Scope = node.ScopeAll
		default:
			d.fail("scope %d", sc)
		}
		switch rf := d.byte(); rf {
		case rangeNone:
		case rangeToEnd:
			q.Bytes = &node.ByteRange{From: d.varint(), ToEnd: true}
		case rangeFixed:
			q.Bytes = &node.ByteRange{From: d.varint(), To: d.varint()}
		default:
			d.fail("range form %d", rf)
		}
		r.DAG = q
	default:
		d.fail("request kind %d", kind)
	}
	return r
}
