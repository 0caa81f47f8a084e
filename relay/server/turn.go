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
	"github.com/pion/turn/v5"

	"github.com/hearthcdn/hearth/relay"
)

// DefaultMaxAllocationsPerUser bounds concurrent TURN allocations per
// credential.
const DefaultMaxAllocationsPerUser = 8

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
	// AllowPrivatePeers lets clients relay to loopback, private, link-local
	// and CGNAT addresses. Off by default: a TURN server that relays into
	// its own network is an open door. Tests on 127.0.0.1 turn it on.
	AllowPrivatePeers bool
	// MaxAllocationsPerUser bounds concurrent allocations per credential.
	MaxAllocationsPerUser int
	// Logger receives pion's logs at debug level; nil discards them.
	Logger *slog.Logger
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// TURN serves STUN (RFC 8489 binding) and, with a secret, TURN (RFC 8656)
// with the relay's short-lived credentials, on one UDP socket.
type TURN struct {
	srv *turn.Server

	mu     sync.Mutex
	allocs map[string]int // active allocations per username
}

// NewTURN starts serving cfg.Conn. Errors wrap relay.ErrBadConfig or come
// from pion/turn.
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
	if cfg.MaxAllocationsPerUser == 0 {
		cfg.MaxAllocationsPerUser = DefaultMaxAllocationsPerUser
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	t := &TURN{allocs: make(map[string]int)}
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
				RelayAddress: cfg.RelayIP, Address: cfg.RelayBind, MinPort: cfg.MinPort, MaxPort: cfg.MaxPort,
			}
		} else {
			pc.RelayAddressGenerator = &turn.RelayAddressGeneratorStatic{RelayAddress: cfg.RelayIP, Address: cfg.RelayBind}
		}
		allowPrivate := cfg.AllowPrivatePeers
		pc.PermissionHandler = func(_ net.Addr, peer net.IP) bool {
			return allowPrivate || publicIP(peer)
		}
		secret, now, max := cfg.Secret, cfg.Now, cfg.MaxAllocationsPerUser
		sc.AuthHandler = func(ra *turn.RequestAttributes) (string, []byte, bool) {
			exp, _, ok := strings.Cut(ra.Username, ":")
			sec, err := strconv.ParseInt(exp, 10, 64)
			if !ok || err != nil || sec < now().Unix() {
				return "", nil, false
			}
			return ra.Username, turn.GenerateAuthKey(ra.Username, ra.Realm, turnPassword(secret, ra.Username)), true
		}
		sc.QuotaHandler = func(username, _ string, _ net.Addr) bool {
			t.mu.Lock()
			defer t.mu.Unlock()
			return t.allocs[username] < max
		}
		sc.EventHandler = turn.EventHandler{
			OnAllocationCreated: func(_, _ net.Addr, _, user, _ string, _ net.Addr, _ int) {
				t.mu.Lock()
				t.allocs[user]++
				t.mu.Unlock()
			},
			OnAllocationDeleted: func(_, _ net.Addr, _, user, _ string) {
				t.mu.Lock()
				if t.allocs[user] <= 1 {
					delete(t.allocs, user)
				} else {
					t.allocs[user]--
				}
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

// Close stops serving and closes the socket and every allocation.
func (t *TURN) Close() error {
	if err := t.srv.Close(); err != nil {
		return fmt.Errorf("closing TURN: %w", err)
	}
	return nil
}

var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// publicIP reports whether ip is a globally routable unicast address.
func publicIP(ip net.IP) bool {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return false
	}
	a = a.Unmap()
	return a.IsGlobalUnicast() && !a.IsPrivate() && !cgnat.Contains(a)
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
