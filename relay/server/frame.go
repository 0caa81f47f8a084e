package relayserver

import (
	"encoding/binary"
	"errors"
	"unicode/utf8"
)

// The relay reads and writes WebSocket frames itself (RFC 6455 §5) once
// coder/websocket has accepted the connection: its event loops must know
// whether a whole message is buffered before they touch it, and a relay
// that only ever sends small unfragmented text frames gains from building
// them in place. This file is the server side of the framing: parse
// client frames (always masked), build server frames (never masked).

// Opcodes.
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xa
)

// Close codes (RFC 6455 §7.4.1).
const (
	closeNormal        = 1000
	closeGoingAway     = 1001
	closeProtocolError = 1002
	closePolicy        = 1008
	closeTooBig        = 1009
)

var (
	errProtocol = errors.New("websocket protocol error")
	errTooBig   = errors.New("websocket message too big")
)

// frameEvent is what one parsed frame means to the connection.
type frameEvent struct {
	kind    int    // evFragment, evMessage, evPing, evPong, evClose
	op      byte   // evMessage: opText or opBinary
	payload []byte // evMessage: the whole message; evPing: ping data; evClose: close body
}

const (
	evFragment = iota // part of a fragmented message, held by the parser
	evMessage
	evPing
	evPong
	evClose
)

// frameParser parses client frames, reassembling fragmented messages of at
// most max bytes.
type frameParser struct {
	max    int
	frag   []byte // the fragmented message so far; nil when none
	fragOp byte
}

// next parses the first frame of b, unmasking its payload in place. It
// returns how many bytes the frame takes (0 when b holds no whole frame, in
// which case need says how many bytes the frame needs in all, when known)
// and what the frame means. A payload in the event aliases b (or the
// parser's fragment buffer) and is valid until the next call. Errors:
// errProtocol, errTooBig.
func (p *frameParser) next(b []byte) (used, need int, ev frameEvent, err error) {
	if len(b) < 2 {
		return 0, 2, ev, nil
	}
	fin := b[0]&0x80 != 0
	if b[0]&0x70 != 0 { // RSV1-3: no extension was negotiated
		return 0, 0, ev, errProtocol
	}
	op := b[0] & 0x0f
	if b[1]&0x80 == 0 { // a client must mask
		return 0, 0, ev, errProtocol
	}
	n := uint64(b[1] & 0x7f)
	hdr := 2
	switch n {
	case 126:
		hdr = 4
		if len(b) < hdr {
			return 0, hdr + 4, ev, nil
		}
		n = uint64(binary.BigEndian.Uint16(b[2:4]))
	case 127:
		hdr = 10
		if len(b) < hdr {
			return 0, hdr + 4, ev, nil
		}
		n = binary.BigEndian.Uint64(b[2:10])
	}
	hdr += 4 // masking key
	control := op&0x8 != 0
	if control && (!fin || n > 125) {
		return 0, 0, ev, errProtocol
	}
	if n > uint64(p.max) || !control && uint64(len(p.frag))+n > uint64(p.max) {
		return 0, 0, ev, errTooBig
	}
	total := hdr + int(n)
	if len(b) < total {
		return 0, total, ev, nil
	}
	payload := b[hdr:total]
	maskBytes(payload, [4]byte(b[hdr-4:hdr]))

	switch op {
	case opClose:
		if n == 1 {
			return 0, 0, ev, errProtocol
		}
		if n >= 2 && !utf8.Valid(payload[2:]) {
			return 0, 0, ev, errProtocol
		}
		return total, 0, frameEvent{kind: evClose, payload: payload}, nil
	case opPing:
		return total, 0, frameEvent{kind: evPing, payload: payload}, nil
	case opPong:
		return total, 0, frameEvent{kind: evPong}, nil
	case opText, opBinary:
		if p.frag != nil {
			return 0, 0, ev, errProtocol // a new message inside a fragmented one
		}
		if fin {
			return total, 0, frameEvent{kind: evMessage, op: op, payload: payload}, nil
		}
		p.frag, p.fragOp = append(make([]byte, 0, len(payload)), payload...), op
		return total, 0, frameEvent{kind: evFragment}, nil
	case opContinuation:
		if p.frag == nil {
			return 0, 0, ev, errProtocol
		}
		p.frag = append(p.frag, payload...)
		if !fin {
			return total, 0, frameEvent{kind: evFragment}, nil
		}
		msg := p.frag
		p.frag = nil
		return total, 0, frameEvent{kind: evMessage, op: p.fragOp, payload: msg}, nil
	default:
		return 0, 0, ev, errProtocol
	}
}

func maskBytes(b []byte, key [4]byte) {
	k := binary.LittleEndian.Uint32(key[:])
	k64 := uint64(k) | uint64(k)<<32
	for len(b) >= 8 {
		v := binary.LittleEndian.Uint64(b)
		binary.LittleEndian.PutUint64(b, v^k64)
		b = b[8:]
	}
	for i := range b {
		b[i] ^= key[i&3]
	}
}

// appendFrame appends a final, unmasked frame of opcode op holding p.
func appendFrame(b []byte, op byte, p []byte) []byte {
	switch n := len(p); {
	case n < 126:
		b = append(b, 0x80|op, byte(n))
	case n < 1<<16:
		b = append(b, 0x80|op, 126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|op, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return append(b, p...)
}

// appendClose appends a close frame with code and reason (cut to fit the
// 125-byte control frame limit on a rune boundary).
func appendClose(b []byte, code int, reason string) []byte {
	for len(reason) > 123 {
		_, size := utf8.DecodeLastRuneInString(reason)
		reason = reason[:len(reason)-size]
	}
	body := make([]byte, 2, 2+len(reason))
	binary.BigEndian.PutUint16(body, uint16(code))
	body = append(body, reason...)
	return appendFrame(b, opClose, body)
}

// closeCode returns the status code of a close frame body, or
// closeNormal when it has none.
func closeCode(body []byte) int {
	if len(body) < 2 {
		return closeNormal
	}
	return int(binary.BigEndian.Uint16(body))
}

// validCloseCode reports whether code may be sent in a close frame (RFC
// 6455 §7.4: not 1004-1006 or 1015, which are reserved, nor unassigned
// ones below 3000).
func validCloseCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}
