package relay

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"

	"github.com/hearthcdn/hearth/node"
)

// Version is the protocol version, the "v" field of every message.
const Version = 1

// Type is a message's "type" field.
type Type string

// Message types. "→ relay" marks what a peer sends, "← relay" what the relay
// sends. relay/README.md has an example of each.
const (
	TypeChallenge   Type = "challenge"   // ← relay, first message: Nonce
	TypeHello       Type = "hello"       // → relay, answer to challenge: Key, Sig
	TypeWelcome     Type = "welcome"     // ← relay: Peer (your key), Limits, Servers (STUN)
	TypeAnnounce    Type = "announce"    // → relay: Role, Capacity, Sites; replaces the previous announce
	TypeFind        Type = "find"        // → relay: Site, N, Exclude
	TypePeers       Type = "peers"       // ← relay, answer to find: Site, Peers
	TypeSignal      Type = "signal"      // → relay: To, Payload; ← relay: From, Payload
	TypePublish     Type = "publish"     // → relay: Record or Members
	TypeSubscribe   Type = "subscribe"   // → relay: Site
	TypeUnsubscribe Type = "unsubscribe" // → relay: Site
	TypeRecord      Type = "record"      // ← relay: Site, Record
	TypeMembers     Type = "members"     // ← relay: Site, Members (to subscribers)
	TypeICE         Type = "ice"         // → relay: ask for ICE servers; ← relay: Servers, Expires
	TypePing        Type = "ping"        // → relay: keep-alive
	TypePong        Type = "pong"        // ← relay, answer to ping
	TypeOK          Type = "ok"          // ← relay: the request with this ID succeeded
	TypeError       Type = "error"       // ← relay: Code, Reason; ID and Peer when known
)

// Role says what kind of peer announces a site.
type Role string

// Roles.
const (
	// RoleSeeder is a member's seeder: long-lived, holds whole roots.
	RoleSeeder Role = "seeder"
	// RoleTab is a visitor's browser tab that opted in to serve the blocks
	// it holds: short-lived, partial.
	RoleTab Role = "tab"
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return r == RoleSeeder || r == RoleTab }

// NonceSize is the size of the relay's hello nonce in bytes.
const NonceSize = 32

// HelloDomain separates hello signatures from every other use of a node key:
// a peer signs HelloDomain followed by the relay's nonce.
const HelloDomain = "hearth relay hello v1\x00"

// Protocol bounds that do not depend on a relay's configuration.
const (
	// MaxRootsPerSite bounds the roots one announce may list per site.
	MaxRootsPerSite = 8
	// MaxFind bounds N in a find: a relay returns at most this many peers.
	MaxFind = 32
	// MaxExclude bounds the Exclude list of a find.
	MaxExclude = 256
	// MaxCIDText bounds the text form of a root CID in bytes.
	MaxCIDText = 128
)

// Message is the one JSON shape of every message, in both directions. Which
// fields a message carries depends on its Type (see the Type constants);
// others are omitted. Byte fields are standard base64 (RFC 4648 §4, padded),
// keys and site IDs are node.SiteID text ("b…", 56 characters), root CIDs are
// CID text.
type Message struct {
	V    int    `json:"v"`
	Type Type   `json:"type"`
	ID   uint64 `json:"id,omitempty"` // set by a peer on a request, echoed on its answer

	Nonce []byte `json:"nonce,omitempty"` // challenge: NonceSize random bytes
	Key   string `json:"key,omitempty"`   // hello: the peer's ed25519 node key
	Sig   []byte `json:"sig,omitempty"`   // hello: ed25519 signature of HelloDomain+Nonce

	Peer   string  `json:"peer,omitempty"`   // welcome: your key; error: the peer a refused signal was for
	Limits *Limits `json:"limits,omitempty"` // welcome

	Role     Role        `json:"role,omitempty"`     // announce
	Capacity int         `json:"capacity,omitempty"` // announce: how many more peers it can serve; 0 = do not hand out
	Sites    []SiteRoots `json:"sites,omitempty"`    // announce

	Site    string     `json:"site,omitempty"`    // find, peers, subscribe, unsubscribe, record
	N       int        `json:"n,omitempty"`       // find: how many peers, 1..MaxFind
	Exclude []string   `json:"exclude,omitempty"` // find: peers the asker already has
	Peers   []PeerInfo `json:"peers,omitempty"`   // peers

	To      string          `json:"to,omitempty"`      // signal → relay
	From    string          `json:"from,omitempty"`    // signal ← relay
	Payload json.RawMessage `json:"payload,omitempty"` // signal: any JSON value, opaque to the relay

	Record  []byte `json:"record,omitempty"`  // publish, record: node.RootRecord wire form
	Members []byte `json:"members,omitempty"` // publish, members: node.MemberList wire form

	Servers []ICEServer `json:"servers,omitempty"` // welcome (STUN only), ice (STUN and TURN)
	Expires int64       `json:"expires,omitempty"` // ice: TURN credentials expire, Unix seconds

	Code   Code   `json:"code,omitempty"`   // error
	Reason string `json:"reason,omitempty"` // error: human-readable detail
}

// SiteRoots is one site of an announce: the site and the root CIDs of it the
// peer holds (at most MaxRootsPerSite).
type SiteRoots struct {
	Site  string   `json:"site"`
	Roots []string `json:"roots,omitempty"`
}

// PeerInfo is one peer of a find answer.
type PeerInfo struct {
	Peer     string   `json:"peer"`
	Role     Role     `json:"role"`
	Capacity int      `json:"capacity"`
	Roots    []string `json:"roots,omitempty"`
}

// Limits tells a peer the relay's limits (in the welcome message) so that it
// can stay within them.
type Limits struct {
	MaxMessage       int     `json:"max_message"`       // bytes per message
	Rate             float64 `json:"rate"`              // messages per second, sustained
	Burst            int     `json:"burst"`             // messages, token-bucket depth
	MaxSites         int     `json:"max_sites"`         // sites per announce
	MaxSubscriptions int     `json:"max_subscriptions"` // concurrent subscriptions
	IdleTimeout      int     `json:"idle_timeout"`      // seconds without traffic before the relay drops a peer
}

// ICEServer is one STUN or TURN server, in the shape of the browser's
// RTCIceServer dictionary (and pion's webrtc.ICEServer).
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// Decode parses one message into m (which it resets first) and checks its
// version and that it has a type. It reads what encoding/json would, except
// that keys match case-sensitively and strings must be valid UTF-8 (see
// decode.go). Errors wrap ErrBadMessage or ErrUnsupportedVersion.
func Decode(b []byte, m *Message) error {
	*m = Message{}
	d := decoder{b: b}
	err := d.message(m)
	if d.ws(); err == nil && d.i != len(b) {
		err = errSyntax
	}
	if err != nil {
		return fmt.Errorf("decoding message at byte %d: %v: %w", d.i, err, ErrBadMessage)
	}
	if m.V != Version {
		return fmt.Errorf("decoding message: v=%d: %w", m.V, ErrUnsupportedVersion)
	}
	if m.Type == "" {
		return fmt.Errorf("decoding message: no type: %w", ErrBadMessage)
	}
	return nil
}

// Encode returns the JSON form of m with V set to Version.
func Encode(m *Message) ([]byte, error) {
	m.V = Version
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encoding %s message: %w", m.Type, err)
	}
	return b, nil
}

// AppendSignal appends the relay's form of a forwarded signal to dst:
// {"v":1,"type":"signal","from":FROM,"payload":PAYLOAD}. from must be a
// node.SiteID text form (it needs no escaping) and payload valid JSON, as
// Decode leaves it; the result equals what Encode would produce, byte for
// byte, for a compact payload without HTML-sensitive characters.
func AppendSignal(dst []byte, from string, payload []byte) []byte {
	dst = append(dst, `{"v":1,"type":"signal","from":"`...)
	dst = append(dst, from...)
	dst = append(dst, `","payload":`...)
	dst = append(dst, payload...)
	return append(dst, '}')
}

// HelloMessage returns the bytes a peer signs to answer a challenge:
// HelloDomain followed by nonce.
func HelloMessage(nonce []byte) []byte {
	return append([]byte(HelloDomain), nonce...)
}

// SignHello returns the hello message answering nonce with key.
func SignHello(key ed25519.PrivateKey, nonce []byte) *Message {
	return &Message{
		V:    Version,
		Type: TypeHello,
		Key:  node.SiteIDOf(key.Public().(ed25519.PublicKey)).String(),
		Sig:  ed25519.Sign(key, HelloMessage(nonce)),
	}
}

// VerifyHello checks a hello message against the nonce the relay sent and
// returns the peer's key. Errors wrap ErrBadHello.
func VerifyHello(m *Message, nonce []byte) (node.SiteID, error) {
	key, err := node.ParseSiteID(m.Key)
	if err != nil {
		return node.SiteID{}, fmt.Errorf("hello key: %v: %w", err, ErrBadHello)
	}
	if len(nonce) != NonceSize || len(m.Sig) != ed25519.SignatureSize {
		return node.SiteID{}, fmt.Errorf("hello signature of %d bytes: %w", len(m.Sig), ErrBadHello)
	}
	if !ed25519.Verify(key.PublicKey(), HelloMessage(nonce), m.Sig) {
		return node.SiteID{}, fmt.Errorf("hello from %s: %w", key, ErrBadHello)
	}
	return key, nil
}
