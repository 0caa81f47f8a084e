package relay

import (
	"encoding/base64"
	"errors"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// A hand-written decoder for Message. The relay decodes every message it
// receives, and encoding/json's reflection costs several times what the
// rest of relaying a signal does; this decoder reads the same JSON into the
// same struct with no reflection. It is stricter than encoding/json in two
// ways, both on purpose: object keys match exactly (not case-insensitively),
// and strings, the payload included, must be valid UTF-8 (a WebSocket text
// frame must be, and a relay that forwarded invalid UTF-8 would get the
// receiving browser's connection failed). It accepts any other valid JSON:
// unknown keys, whitespace, escapes, null for any field (which leaves it
// zero). FuzzDecode checks it against encoding/json.

// maxDepth bounds nesting, so that a crafted message cannot exhaust the stack.
const maxDepth = 64

var errSyntax = errors.New("invalid JSON")

type decoder struct {
	b     []byte
	i     int
	depth int
}

func (d *decoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// peek skips whitespace and returns the next byte, or 0 at the end.
func (d *decoder) peek() byte {
	d.ws()
	if d.i < len(d.b) {
		return d.b[d.i]
	}
	return 0
}

func (d *decoder) expect(c byte) error {
	if d.peek() != c {
		return errSyntax
	}
	d.i++
	return nil
}

// null consumes a null literal if one is next.
func (d *decoder) null() bool {
	if d.peek() == 'n' && len(d.b)-d.i >= 4 && string(d.b[d.i:d.i+4]) == "null" {
		d.i += 4
		return true
	}
	return false
}

func (d *decoder) literal(s string) error {
	if len(d.b)-d.i < len(s) || string(d.b[d.i:d.i+len(s)]) != s {
		return errSyntax
	}
	d.i += len(s)
	return nil
}

// object calls field for each key; field must consume the value.
func (d *decoder) object(field func(key []byte) error) error {
	if err := d.expect('{'); err != nil {
		return err
	}
	d.depth++
	if d.depth > maxDepth {
		return errSyntax
	}
	if d.peek() == '}' {
		d.i++
		d.depth--
		return nil
	}
	for {
		key, err := d.rawString()
		if err != nil {
			return err
		}
		if err := d.expect(':'); err != nil {
			return err
		}
		if err := field(key); err != nil {
			return err
		}
		switch d.peek() {
		case ',':
			d.i++
		case '}':
			d.i++
			d.depth--
			return nil
		default:
			return errSyntax
		}
	}
}

// array calls elem for each element; elem must consume it.
func (d *decoder) array(elem func() error) error {
	if err := d.expect('['); err != nil {
		return err
	}
	d.depth++
	if d.depth > maxDepth {
		return errSyntax
	}
	if d.peek() == ']' {
		d.i++
		d.depth--
		return nil
	}
	for {
		if err := elem(); err != nil {
			return err
		}
		switch d.peek() {
		case ',':
			d.i++
		case ']':
			d.i++
			d.depth--
			return nil
		default:
			return errSyntax
		}
	}
}

// rawString returns the contents of a string literal, still escaped when it
// has escapes (the common key case has none), after checking it.
func (d *decoder) rawString() ([]byte, error) {
	if err := d.expect('"'); err != nil {
		return nil, err
	}
	start := d.i
	ascii := true
	for d.i < len(d.b) {
		for d.i < len(d.b) && plain[d.b[d.i]] { // the common run of plain ASCII
			d.i++
		}
		if d.i == len(d.b) {
			break
		}
		c := d.b[d.i]
		switch {
		case c == '"':
			s := d.b[start:d.i]
			d.i++
			if !ascii && !utf8.Valid(s) {
				return nil, errSyntax
			}
			return s, nil
		case c == '\\':
			if d.i+1 >= len(d.b) {
				return nil, errSyntax
			}
			switch d.b[d.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				d.i += 2
			case 'u':
				if d.i+6 > len(d.b) {
					return nil, errSyntax
				}
				for _, h := range d.b[d.i+2 : d.i+6] {
					if !isHex(h) {
						return nil, errSyntax
					}
				}
				d.i += 6
			default:
				return nil, errSyntax
			}
		case c < 0x20:
			return nil, errSyntax
		default:
			if c >= utf8.RuneSelf {
				ascii = false
			}
			d.i++
		}
	}
	return nil, errSyntax
}

// plain marks the bytes a string can hold as they are: printable ASCII
// other than '"' and '\\'.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func hexVal(b []byte) rune {
	var r rune
	for _, c := range b {
		r <<= 4
		switch {
		case c <= '9':
			r |= rune(c - '0')
		case c >= 'a':
			r |= rune(c - 'a' + 10)
		default:
			r |= rune(c - 'A' + 10)
		}
	}
	return r
}

// str decodes a string value (unescaping as encoding/json does, lone
// surrogates becoming U+FFFD). null leaves "".
func (d *decoder) str() (string, error) {
	if d.null() {
		return "", nil
	}
	raw, err := d.rawString()
	if err != nil {
		return "", err
	}
	return unescape(raw), nil
}

func unescape(raw []byte) string {
	i := 0
	for i < len(raw) && raw[i] != '\\' {
		i++
	}
	if i == len(raw) {
		return string(raw)
	}
	out := make([]byte, i, len(raw))
	copy(out, raw[:i])
	for i < len(raw) {
		c := raw[i]
		if c != '\\' {
			out = append(out, c)
			i++
			continue
		}
		switch raw[i+1] {
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r := hexVal(raw[i+2 : i+6])
			i += 6
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if i+6 <= len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
					r2 = hexVal(raw[i+2 : i+6])
				}
				if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
					r = dec
					i += 6
				} else {
					r = utf8.RuneError
				}
			}
			out = utf8.AppendRune(out, r)
			continue
		default: // '"', '\\', '/'
			out = append(out, raw[i+1])
		}
		i += 2
	}
	return string(out)
}

// number returns the text of a number value after checking its grammar.
func (d *decoder) number() ([]byte, error) {
	d.ws()
	start := d.i
	if d.i < len(d.b) && d.b[d.i] == '-' {
		d.i++
	}
	switch {
	case d.i < len(d.b) && d.b[d.i] == '0':
		d.i++
	case d.i < len(d.b) && '1' <= d.b[d.i] && d.b[d.i] <= '9':
		for d.i < len(d.b) && '0' <= d.b[d.i] && d.b[d.i] <= '9' {
			d.i++
		}
	default:
		return nil, errSyntax
	}
	if d.i < len(d.b) && d.b[d.i] == '.' {
		d.i++
		if d.digits() == 0 {
			return nil, errSyntax
		}
	}
	if d.i < len(d.b) && (d.b[d.i] == 'e' || d.b[d.i] == 'E') {
		d.i++
		if d.i < len(d.b) && (d.b[d.i] == '+' || d.b[d.i] == '-') {
			d.i++
		}
		if d.digits() == 0 {
			return nil, errSyntax
		}
	}
	return d.b[start:d.i], nil
}

func (d *decoder) digits() int {
	n := 0
	for d.i < len(d.b) && '0' <= d.b[d.i] && d.b[d.i] <= '9' {
		d.i++
		n++
	}
	return n
}

// integer decodes a number that must be an integer fitting 64 bits, as
// encoding/json does for integer fields. null leaves 0.
func (d *decoder) integer() (int64, error) {
	if d.null() {
		return 0, nil
	}
	t, err := d.number()
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(string(t), 10, 64)
}

func (d *decoder) uinteger() (uint64, error) {
	if d.null() {
		return 0, nil
	}
	t, err := d.number()
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(string(t), 10, 64)
}

func (d *decoder) int() (int, error) {
	v, err := d.integer()
	if err != nil {
		return 0, err
	}
	if int64(int(v)) != v {
		return 0, errSyntax
	}
	return int(v), nil
}

func (d *decoder) float() (float64, error) {
	if d.null() {
		return 0, nil
	}
	t, err := d.number()
	if err != nil {
		return 0, err
	}
	return strconv.ParseFloat(string(t), 64)
}

// bytes decodes a standard base64 string, as encoding/json does for []byte.
func (d *decoder) bytes() ([]byte, error) {
	if d.null() {
		return nil, nil
	}
	raw, err := d.rawString()
	if err != nil {
		return nil, err
	}
	s := unescape(raw)
	out := make([]byte, base64.StdEncoding.DecodedLen(len(s)))
	n, err := base64.StdEncoding.Decode(out, []byte(s))
	if err != nil {
		return nil, err
	}
	return out[:n], nil
}

// skip consumes any value.
func (d *decoder) skip() error {
	switch c := d.peek(); {
	case c == '{':
		return d.object(func([]byte) error { return d.skip() })
	case c == '[':
		return d.array(d.skip)
	case c == '"':
		_, err := d.rawString()
		return err
	case c == 't':
		return d.literal("true")
	case c == 'f':
		return d.literal("false")
	case c == 'n':
		return d.literal("null")
	default:
		_, err := d.number()
		return err
	}
}

// raw consumes any value and returns its bytes (a copy).
func (d *decoder) raw() ([]byte, error) {
	d.ws()
	start := d.i
	if err := d.skip(); err != nil {
		return nil, err
	}
	return append([]byte(nil), d.b[start:d.i]...), nil
}

func (d *decoder) strings() ([]string, error) {
	if d.null() {
		return nil, nil
	}
	out := []string{}
	err := d.array(func() error {
		s, err := d.str()
		out = append(out, s)
		return err
	})
	return out, err
}

// decodeKey unescapes a key that has escapes (rare; keys are then
// compared as encoding/json compares them, but case-sensitively).
func decodeKey(raw []byte) []byte {
	for _, c := range raw {
		if c == '\\' {
			return []byte(unescape(raw))
		}
	}
	return raw
}

func (d *decoder) message(m *Message) error {
	return d.object(func(key []byte) error {
		key = decodeKey(key)
		if d.null() { // null leaves a field as it is, as in encoding/json
			if string(key) == "payload" {
				m.Payload = []byte("null") // json.RawMessage keeps the literal
			}
			return nil
		}
		var err error
		switch string(key) {
		case "v":
			m.V, err = d.int()
		case "type":
			var s string
			s, err = d.str()
			m.Type = Type(s)
		case "id":
			m.ID, err = d.uinteger()
		case "nonce":
			m.Nonce, err = d.bytes()
		case "key":
			m.Key, err = d.str()
		case "sig":
			m.Sig, err = d.bytes()
		case "peer":
			m.Peer, err = d.str()
		case "limits":
			if m.Limits == nil {
				m.Limits = &Limits{}
			}
			err = d.limits(m.Limits)
		case "role":
			var s string
			s, err = d.str()
			m.Role = Role(s)
		case "capacity":
			m.Capacity, err = d.int()
		case "sites":
			m.Sites, err = list(d, d.siteRoots)
		case "site":
			m.Site, err = d.str()
		case "n":
			m.N, err = d.int()
		case "exclude":
			m.Exclude, err = d.strings()
		case "peers":
			m.Peers, err = list(d, d.peerInfo)
		case "to":
			m.To, err = d.str()
		case "from":
			m.From, err = d.str()
		case "payload":
			m.Payload, err = d.raw()
		case "record":
			m.Record, err = d.bytes()
		case "members":
			m.Members, err = d.bytes()
		case "servers":
			m.Servers, err = list(d, d.iceServer)
		case "expires":
			m.Expires, err = d.integer()
		case "code":
			var s string
			s, err = d.str()
			m.Code = Code(s)
		case "reason":
			m.Reason, err = d.str()
		default:
			err = d.skip()
		}
		return err
	})
}

// fields decodes an object, calling field for each key (unescaped) whose
// value is not null: null leaves a field as it is, as in encoding/json.
func (d *decoder) fields(field func(key string) error) error {
	return d.object(func(key []byte) error {
		if key = decodeKey(key); d.null() {
			return nil
		}
		return field(string(key))
	})
}

// list decodes an array of objects with one; null is a nil slice.
func list[T any](d *decoder, one func(*T) error) ([]T, error) {
	if d.null() {
		return nil, nil
	}
	out := []T{}
	err := d.array(func() error {
		var v T
		err := one(&v)
		out = append(out, v)
		return err
	})
	return out, err
}

func (d *decoder) siteRoots(sr *SiteRoots) error {
	if d.null() {
		return nil
	}
	return d.fields(func(key string) (err error) {
		switch key {
		case "site":
			sr.Site, err = d.str()
		case "roots":
			sr.Roots, err = d.strings()
		default:
			err = d.skip()
		}
		return err
	})
}

func (d *decoder) peerInfo(p *PeerInfo) error {
	if d.null() {
		return nil
	}
	return d.fields(func(key string) (err error) {
		switch key {
		case "peer":
			p.Peer, err = d.str()
		case "role":
			var s string
			s, err = d.str()
			p.Role = Role(s)
		case "capacity":
			p.Capacity, err = d.int()
		case "roots":
			p.Roots, err = d.strings()
		default:
			err = d.skip()
		}
		return err
	})
}

func (d *decoder) limits(l *Limits) error {
	return d.fields(func(key string) (err error) {
		switch key {
		case "max_message":
			l.MaxMessage, err = d.int()
		case "rate":
			l.Rate, err = d.float()
		case "burst":
			l.Burst, err = d.int()
		case "max_sites":
			l.MaxSites, err = d.int()
		case "max_subscriptions":
			l.MaxSubscriptions, err = d.int()
		case "idle_timeout":
			l.IdleTimeout, err = d.int()
		default:
			err = d.skip()
		}
		return err
	})
}

func (d *decoder) iceServer(s *ICEServer) error {
	if d.null() {
		return nil
	}
	return d.fields(func(key string) (err error) {
		switch key {
		case "urls":
			s.URLs, err = d.strings()
		case "username":
			s.Username, err = d.str()
		case "credential":
			s.Credential, err = d.str()
		default:
			err = d.skip()
		}
		return err
	})
}
