package relayserver

import (
	"context"
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // RFC 8489 long-term credentials and coturn's REST API use HMAC-SHA1
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pion/logging"
	"github.com/pion/transport/v4"
	"github.com/pion/turn/v5"

	"github.com/hearthcdn/hearth/relay"
)

// Defaults for the zero allocation limits of TURNConfig.
const (
	// DefaultMaxAllocationsPerPeer bounds concurrent TURN allocations per
	// peer key: a browser needs one per peer connection it relays.
	DefaultMaxAllocationsPerPeer = 8
	// DefaultMaxAllocationsPerIP bounds concurrent TURN allocations per
	// client address (an IPv6 /64, see IPKey), whatever keys ask: keys cost
	// nothing to make, addresses do.
	DefaultMaxAllocationsPerIP = 32
)

// ownRefresh is how often the TURN server re-reads the host's interface
// addresses, which it refuses to relay to.
const ownRefresh = time.Minute

// TURNCredentials returns short-lived TURN credentials for user (the peer's
// key text), valid until expires, in the form of coturn's "TURN REST API"
// (use-auth-secret): username "EXPIRY:USER" with EXPIRY in Unix seconds, and
// password base64(HMAC-SHA1(secret, username)). A TURN server that knows
// secret checks them statelessly with the long-term credential mechanism of
// RFC 8489 §9.2 / RFC 8656.
func TURNCredentials(secret []byte, user string, expires time.Time) (username, password string) {
	username = strconv.FormatInt(expires.Unix(), 10) + ":" + user
	return username, turnPassword(secret, username)
}

func turnPassword(secret []byte, username string) string {
	mac := hmac.New(sha1.New, secret)
	mac.Write([]byte(username))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// TURNConfig configures a TURN server.
type TURNConfig struct {
	// Conn is the UDP socket to serve STUN and TURN on. The TURN server
	// owns it from then on and closes it in Close.
	Conn net.PacketConn
	// Secret is shared with the relay (Config.TURNSecret). Empty means
	// STUN only: binding requests are answered, allocations refused.
	Secret []byte
	// Realm is the RFC 8489 realm; default "hearth".
	Realm string
	// RelayIP is the address allocations advertise to peers (the relay's
	// public IP); required with Secret.
	RelayIP net.IP
	// RelayBind is the local address relayed sockets bind; default
	// "0.0.0.0".
	RelayBind string
	// MinPort and MaxPort bound the relayed sockets' ports; 0 means any.
	MinPort, MaxPort uint16
	// Net is the network relayed sockets are opened in (pion's
	// transport.Net, such as a network namespace's in internal/netlab);
	// nil is the host's.
	Net transport.Net
	// AllowPrivatePeers lets clients relay to loopback, private, link-local
	// and CGNAT addresses. Off by default: a TURN server that relays into
	// its own network is an open door. Tests on 127.0.0.1 turn it on. The
	// relay's own addresses stay refused either way.
	AllowPrivatePeers bool
	// OwnIPs are further addresses of the relay's host that no client may
	// relay to, beside those always refused: RelayIP, the addresses Conn
	// and RelayBind are bound to, every address of the host's network
	// interfaces (re-read every minute) and the unspecified addresses. An
	// IPv6 address refuses its whole /64 (IPKey).
	OwnIPs []net.IP
	// MaxAllocationsPerPeer bounds concurrent allocations per peer key
	// (the PEER of the "EXPIRY:PEER" username), whichever of its
	// credentials ask; default DefaultMaxAllocationsPerPeer.
	MaxAllocationsPerPeer int
	// MaxAllocationsPerIP bounds concurrent allocations per client address,
	// an IPv6 address counting under its /64 (IPKey); default
	// DefaultMaxAllocationsPerIP.
	MaxAllocationsPerIP int
	// Logger receives pion's logs at debug level; nil discards them.
	Logger *slog.Logger
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// TURN serves STUN (RFC 8489 binding) and, with a secret, TURN (RFC 8656)
// with the relay's short-lived credentials, on one UDP socket.
type TURN struct {
	srv *turn.Server
	own *ownAddrs

	mu      sync.Mutex
	perPeer map[string]int       // active allocations per peer key
	perIP   map[netip.Prefix]int // active allocations per IPKey of the client
}

// NewTURN starts serving cfg.Conn. Errors wrap relay.ErrBadConfig or come
// from pion/turn.
//
// An allocation request over either limit of cfg gets the RFC 8656 error
// 486 (Allocation Quota Reached); a CreatePermission to a refused peer
// address gets 403 (Forbidden), a ChannelBind 401 (pion/turn's answer).
func NewTURN(cfg TURNConfig) (*TURN, error) {
	if cfg.Conn == nil {
		return nil, fmt.Errorf("TURN without a UDP socket: %w", relay.ErrBadConfig)
	}
	if cfg.Realm == "" {
		cfg.Realm = "hearth"
	}
	if cfg.RelayBind == "" {
		cfg.RelayBind = "0.0.0.0"
	}
	if cfg.MaxAllocationsPerPeer == 0 {
		cfg.MaxAllocationsPerPeer = DefaultMaxAllocationsPerPeer
	}
	if cfg.MaxAllocationsPerIP == 0 {
		cfg.MaxAllocationsPerIP = DefaultMaxAllocationsPerIP
	}
	if cfg.MaxAllocationsPerPeer < 0 || cfg.MaxAllocationsPerIP < 0 {
		return nil, fmt.Errorf("negative TURN allocation limit: %w", relay.ErrBadConfig)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	t := &TURN{perPeer: make(map[string]int), perIP: make(map[netip.Prefix]int)}
	pc := turn.PacketConnConfig{PacketConn: cfg.Conn}
	sc := turn.ServerConfig{
		Realm:         cfg.Realm,
		LoggerFactory: slogFactory{cfg.Logger},
	}
	if len(cfg.Secret) > 0 {
		if len(cfg.Secret) < 16 {
			return nil, fmt.Errorf("TURN secret of %d bytes: want at least 16: %w", len(cfg.Secret), relay.ErrBadConfig)
		}
		if cfg.RelayIP == nil {
			return nil, fmt.Errorf("TURN without a relay IP: %w", relay.ErrBadConfig)
		}
		if cfg.MinPort != 0 || cfg.MaxPort != 0 {
			if cfg.MinPort == 0 || cfg.MaxPort < cfg.MinPort {
				return nil, fmt.Errorf("TURN ports %d-%d: %w", cfg.MinPort, cfg.MaxPort, relay.ErrBadConfig)
			}
			pc.RelayAddressGenerator = &turn.RelayAddressGeneratorPortRange{
				RelayAddress: cfg.RelayIP, Address: cfg.RelayBind, MinPort: cfg.MinPort, MaxPort: cfg.MaxPort, Net: cfg.Net,
			}
		} else {
			pc.RelayAddressGenerator = &turn.RelayAddressGeneratorStatic{RelayAddress: cfg.RelayIP, Address: cfg.RelayBind, Net: cfg.Net}
		}
		t.own = newOwnAddrs(&cfg)
		allowPrivate := cfg.AllowPrivatePeers
		pc.PermissionHandler = func(_ net.Addr, peer net.IP) bool {
			a, ok := netip.AddrFromSlice(peer)
			if !ok {
				return false
			}
			a = a.Unmap()
			if t.own.contains(a) {
				return false
			}
			return allowPrivate || publicIP(a)
		}
		secret, now := cfg.Secret, cfg.Now
		// The user ID pion/turn keeps with an allocation is the peer key, so
		// that its limit holds across the peer's credentials.
		sc.AuthHandler = func(ra *turn.RequestAttributes) (string, []byte, bool) {
			exp, peer, ok := strings.Cut(ra.Username, ":")
			sec, err := strconv.ParseInt(exp, 10, 64)
			if !ok || peer == "" || err != nil || sec < now().Unix() {
				return "", nil, false
			}
			return peer, turn.GenerateAuthKey(ra.Username, ra.Realm, turnPassword(secret, ra.Username)), true
		}
		// pion/turn handles the datagrams of one socket in order, so no
		// allocation of that socket is created between this check and
		// OnAllocationCreated.
		maxPeer, maxIP, log := cfg.MaxAllocationsPerPeer, cfg.MaxAllocationsPerIP, cfg.Logger
		sc.QuotaHandler = func(peer, _ string, src net.Addr) bool {
			ip := ipKeyOf(src)
			t.mu.Lock()
			defer t.mu.Unlock()
			if t.perPeer[peer] >= maxPeer || t.perIP[ip] >= maxIP {
				log.Debug("TURN allocation refused: quota", "peer", peer, "ip", ip,
					"peer_allocations", t.perPeer[peer], "ip_allocations", t.perIP[ip])
				return false
			}
			return true
		}
		sc.EventHandler = turn.EventHandler{
			OnAllocationCreated: func(src, _ net.Addr, _, peer, _ string, _ net.Addr, _ int) {
				ip := ipKeyOf(src)
				t.mu.Lock()
				t.perPeer[peer]++
				t.perIP[ip]++
				t.mu.Unlock()
			},
			OnAllocationDeleted: func(src, _ net.Addr, _, peer, _ string) {
				ip := ipKeyOf(src)
				t.mu.Lock()
				decrement(t.perPeer, peer)
				decrement(t.perIP, ip)
				t.mu.Unlock()
			},
		}
	}
	sc.PacketConnConfigs = []turn.PacketConnConfig{pc}
	srv, err := turn.NewServer(sc)
	if err != nil {
		return nil, fmt.Errorf("starting TURN: %w", err)
	}
	t.srv = srv
	return t, nil
}

// decrement lowers m[k], deleting it at zero.
func decrement[K comparable](m map[K]int, k K) {
	if m[k] <= 1 {
		delete(m, k)
	} else {
		m[k]--
	}
}

// Close stops serving and closes the socket and every allocation.
func (t *TURN) Close() error {
	if err := t.srv.Close(); err != nil {
		return fmt.Errorf("closing TURN: %w", err)
	}
	return nil
}

var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// publicIP reports whether a (unmapped) is a globally routable unicast
// address.
func publicIP(a netip.Addr) bool {
	return a.IsGlobalUnicast() && !a.IsPrivate() && !cgnat.Contains(a)
}

// ownAddrs is the set of the relay host's addresses, by IPKey.
type ownAddrs struct {
	fixed []netip.Addr
	now   func() time.Time
	log   *slog.Logger

	mu   sync.Mutex
	read time.Time // when the interface addresses were last read
	set  map[netip.Prefix]struct{}
}

func newOwnAddrs(cfg *TURNConfig) *ownAddrs {
	o := &ownAddrs{now: cfg.Now, log: cfg.Logger}
	add := func(ip net.IP) {
		if a, ok := netip.AddrFromSlice(ip); ok {
			o.fixed = append(o.fixed, a.Unmap())
		}
	}
	add(cfg.RelayIP)
	add(net.ParseIP(cfg.RelayBind))
	if ua, ok := cfg.Conn.LocalAddr().(*net.UDPAddr); ok {
		add(ua.IP)
	}
	for _, ip := range cfg.OwnIPs {
		add(ip)
	}
	o.load()
	return o
}

// load rebuilds the set from the fixed addresses and the interfaces'.
// Called with mu held, or before o is shared.
func (o *ownAddrs) load() {
	o.read = o.now()
	set := make(map[netip.Prefix]struct{}, len(o.fixed)+8)
	for _, a := range o.fixed {
		set[IPKey(a)] = struct{}{}
	}
	ifas, err := net.InterfaceAddrs()
	if err != nil {
		o.log.Warn("reading interface addresses", "err", err)
		for k := range o.set { // keep what was known
			set[k] = struct{}{}
		}
	}
	for _, ifa := range ifas {
		if n, ok := ifa.(*net.IPNet); ok {
			if a, ok := netip.AddrFromSlice(n.IP); ok {
				set[IPKey(a.Unmap())] = struct{}{}
			}
		}
	}
	o.set = set
}

// contains reports whether a (unmapped) is one of the host's addresses, in
// the /64 of one of its IPv6 addresses, or unspecified (0.0.0.0 and :: reach
// the host itself).
func (o *ownAddrs) contains(a netip.Addr) bool {
	if a.IsUnspecified() {
		return true
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.now().Sub(o.read) >= ownRefresh {
		o.load()
	}
	_, ok := o.set[IPKey(a)]
	return ok
}

// slogFactory routes pion's logs to slog with a constant message.
type slogFactory struct{ log *slog.Logger }

func (f slogFactory) NewLogger(scope string) logging.LeveledLogger {
	return slogLogger{f.log.With("scope", scope)}
}

type slogLogger struct{ log *slog.Logger }

func (l slogLogger) logf(level slog.Level, format string, a []any) {
	if l.log.Enabled(context.Background(), level) {
		l.log.Log(context.Background(), level, "pion", "detail", fmt.Sprintf(format, a...))
	}
}

func (l slogLogger) Trace(string)                   {}
func (l slogLogger) Tracef(string, ...any)          {}
func (l slogLogger) Debug(msg string)               { l.logf(slog.LevelDebug, "%s", []any{msg}) }
func (l slogLogger) Debugf(format string, a ...any) { l.logf(slog.LevelDebug, format, a) }
func (l slogLogger) Info(msg string)                { l.logf(slog.LevelInfo, "%s", []any{msg}) }
func (l slogLogger) Infof(format string, a ...any)  { l.logf(slog.LevelInfo, format, a) }
func (l slogLogger) Warn(msg string)                { l.logf(slog.LevelWarn, "%s", []any{msg}) }
func (l slogLogger) Warnf(format string, a ...any)  { l.logf(slog.LevelWarn, format, a) }
func (l slogLogger) Error(msg string)               { l.logf(slog.LevelError, "%s", []any{msg}) }
func (l slogLogger) Errorf(format string, a ...any) { l.logf(slog.LevelError, format, a) }
