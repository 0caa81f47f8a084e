package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/hearthcdn/hearth/node/hosting"
	"github.com/hearthcdn/hearth/relay"
	relayserver "github.com/hearthcdn/hearth/relay/server"
)

// relayEnv maps each `hearth relay` flag to the environment variable that
// sets it when the flag is not given.
var relayEnv = map[string]string{
	"listen":               "HEARTH_RELAY_LISTEN",
	"addr-file":            "HEARTH_RELAY_ADDR_FILE",
	"tls-cert":             "HEARTH_RELAY_TLS_CERT",
	"tls-key":              "HEARTH_RELAY_TLS_KEY",
	"origin":               "HEARTH_RELAY_ORIGINS",
	"trust-proxy":          "HEARTH_RELAY_TRUST_PROXY",
	"stun":                 "HEARTH_RELAY_STUN",
	"public-host":          "HEARTH_RELAY_PUBLIC_HOST",
	"turn-secret-file":     "HEARTH_RELAY_TURN_SECRET_FILE",
	"turn-relay-ip":        "HEARTH_RELAY_TURN_RELAY_IP",
	"turn-ports":           "HEARTH_RELAY_TURN_PORTS",
	"turn-ttl":             "HEARTH_RELAY_TURN_TTL",
	"turn-realm":           "HEARTH_RELAY_TURN_REALM",
	"turn-allocs-per-peer": "HEARTH_RELAY_TURN_ALLOCS_PER_PEER",
	"turn-allocs-per-ip":   "HEARTH_RELAY_TURN_ALLOCS_PER_IP",
	"max-message":          "HEARTH_RELAY_MAX_MESSAGE",
	"max-sites":            "HEARTH_RELAY_MAX_SITES",
	"max-subscriptions":    "HEARTH_RELAY_MAX_SUBSCRIPTIONS",
	"max-conns-per-ip":     "HEARTH_RELAY_MAX_CONNS_PER_IP",
	"rate":                 "HEARTH_RELAY_RATE",
	"burst":                "HEARTH_RELAY_BURST",
	"max-strikes":          "HEARTH_RELAY_MAX_STRIKES",
	"idle-timeout":         "HEARTH_RELAY_IDLE_TIMEOUT",
	"hello-timeout":        "HEARTH_RELAY_HELLO_TIMEOUT",
	"send-queue":           "HEARTH_RELAY_SEND_QUEUE",
	"write-timeout":        "HEARTH_RELAY_WRITE_TIMEOUT",
	"coalesce":             "HEARTH_RELAY_COALESCE",
	"max-records":          "HEARTH_RELAY_MAX_RECORDS",
	"loops":                "HEARTH_RELAY_LOOPS",
}

// relayTURNSecretEnv holds the TURN secret itself (an environment variable
// does not show in ps, a flag would).
const relayTURNSecretEnv = "HEARTH_RELAY_TURN_SECRET"

type relayOptions struct {
	listen, addrFile, tlsCert, tlsKey string
	origins                           []string
	stun, publicHost                  string
	turnSecretFile, turnRelayIP       string
	turnPorts, turnRealm              string
	turnTTL                           time.Duration
	turnPerPeer, turnPerIP            int
	cfg                               relayserver.Config
}

func newRelayCmd() *cobra.Command {
	var o relayOptions
	cmd := &cobra.Command{
		Use:   "relay --listen ADDR [--stun ADDR [--public-host HOST] [--turn-secret-file FILE]] [limits]",
		Short: "Run a relay: signalling, tracker, root-record push, STUN and TURN",
		Long: `Run a Hearth relay. Peers connect over WebSocket at /ws, prove their node
key, announce the sites they serve, find peers and exchange WebRTC offers,
answers and ICE candidates, and subscribe to root records. /healthz and
/metrics (Prometheus) are served on the same address.

With --stun, STUN is served on that UDP address; with a TURN secret too
($HEARTH_RELAY_TURN_SECRET or --turn-secret-file), TURN as well, with
short-lived credentials handed to peers over the WebSocket.

Every flag can also be set through the environment variable named in its
help; a flag given on the command line wins.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := relayApplyEnv(cmd); err != nil {
				return err
			}
			return runRelay(cmd.Context(), &o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.listen, "listen", "127.0.0.1:8081", "TCP address for the WebSocket endpoint, /healthz and /metrics (port 0: any free port)")
	f.StringVar(&o.addrFile, "addr-file", "", "write the bound address to this file once listening")
	f.StringVar(&o.tlsCert, "tls-cert", "", "serve TLS with this certificate file (PEM); browsers on HTTPS pages need wss://")
	f.StringVar(&o.tlsKey, "tls-key", "", "the private key of --tls-cert (PEM)")
	f.BoolVar(&o.cfg.TrustProxy, "trust-proxy", false, "take client addresses from X-Forwarded-For (only behind a reverse proxy that sets it)")
	f.StringSliceVar(&o.origins, "origin", nil, "allow only browser pages from these origin host patterns (default: any origin)")
	f.StringVar(&o.stun, "stun", "", "UDP address to serve STUN (and TURN, with a secret) on, e.g. :3478")
	f.StringVar(&o.publicHost, "public-host", "", "host name or IP that peers reach --stun at (default: --stun's host)")
	f.StringVar(&o.turnSecretFile, "turn-secret-file", "", "file holding the TURN secret (at least 16 bytes); or set "+relayTURNSecretEnv)
	f.StringVar(&o.turnRelayIP, "turn-relay-ip", "", "public IP that TURN allocations advertise (default: --public-host when it is an IP)")
	f.StringVar(&o.turnPorts, "turn-ports", "49152-65535", "UDP port range for TURN allocations, MIN-MAX")
	f.DurationVar(&o.turnTTL, "turn-ttl", relayserver.DefaultTURNTTL, "lifetime of TURN credentials; one per connection, renewed when half of it is left; a relayed WebRTC connection lasts at most that long")
	f.IntVar(&o.turnPerPeer, "turn-allocs-per-peer", relayserver.DefaultMaxAllocationsPerPeer, "concurrent TURN allocations per peer key")
	f.IntVar(&o.turnPerIP, "turn-allocs-per-ip", relayserver.DefaultMaxAllocationsPerIP, "concurrent TURN allocations per client IP address (IPv6: per /64)")
	f.StringVar(&o.turnRealm, "turn-realm", "hearth", "TURN realm")
	c := &o.cfg
	f.IntVar(&c.MaxMessageSize, "max-message", relayserver.DefaultMaxMessageSize, "largest message from a peer, bytes")
	f.IntVar(&c.MaxSites, "max-sites", relayserver.DefaultMaxSites, "sites one peer may announce")
	f.IntVar(&c.MaxSubscriptions, "max-subscriptions", relayserver.DefaultMaxSubscriptions, "root-record subscriptions per peer")
	f.IntVar(&c.MaxConnsPerIP, "max-conns-per-ip", relayserver.DefaultMaxConnsPerIP, "concurrent connections per IP address (IPv6: per /64)")
	f.Float64Var(&c.MessageRate, "rate", relayserver.DefaultMessageRate, "messages per second per peer, sustained (token bucket)")
	f.IntVar(&c.MessageBurst, "burst", relayserver.DefaultMessageBurst, "messages per peer in a burst (token bucket depth)")
	f.IntVar(&c.MaxStrikes, "max-strikes", relayserver.DefaultMaxStrikes, "refused messages in a row before a peer is dropped")
	f.DurationVar(&c.IdleTimeout, "idle-timeout", relayserver.DefaultIdleTimeout, "drop a peer silent this long (pinged after a third of it)")
	f.DurationVar(&c.HelloTimeout, "hello-timeout", relayserver.DefaultHelloTimeout, "drop a connection that has not said hello by then")
	f.IntVar(&c.SendQueue, "send-queue", relayserver.DefaultSendQueue, "bytes queued to a peer beyond its socket before it is dropped as too slow")
	f.DurationVar(&c.WriteTimeout, "write-timeout", relayserver.DefaultWriteTimeout, "drop a peer whose socket accepts nothing this long")
	f.DurationVar(&c.Coalesce, "coalesce", relayserver.DefaultCoalesce, "under load, how long to gather events and writes into batches; each hop may take that much longer (negative: no batching)")
	f.IntVar(&c.MaxRecords, "max-records", relayserver.DefaultMaxRecords, "sites whose latest root record the relay keeps")
	f.IntVar(&c.Loops, "loops", 0, "epoll event loops (0: one per CPU; negative: a goroutine per connection)")
	for name, env := range relayEnv {
		fl := f.Lookup(name)
		fl.Usage += " (env " + env + ")"
	}
	return cmd
}

// relayApplyEnv sets each flag not given on the command line from its
// environment variable, if set.
func relayApplyEnv(cmd *cobra.Command) error {
	for name, env := range relayEnv {
		v, ok := os.LookupEnv(env)
		if !ok || cmd.Flags().Changed(name) {
			continue
		}
		if err := cmd.Flags().Set(name, v); err != nil {
			return fmt.Errorf("%s=%q: %w", env, v, err)
		}
	}
	return nil
}

func runRelay(parent context.Context, o *relayOptions) error {
	ctx, stop := signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.Default()
	cfg := o.cfg
	cfg.Logger = log
	cfg.OriginPatterns = o.origins
	cfg.TURNTTL = o.turnTTL

	var pc net.PacketConn
	if o.stun != "" {
		var err error
		if pc, err = net.ListenPacket("udp", o.stun); err != nil {
			return fmt.Errorf("listening for STUN: %w", err)
		}
	}
	turnCfg, err := o.ice(&cfg, pc)
	if err != nil {
		if pc != nil {
			_ = pc.Close()
		}
		return err
	}
	if turnCfg != nil {
		t, err := relayserver.NewTURN(*turnCfg) // owns pc from here on
		if err != nil {
			_ = pc.Close()
			return err
		}
		defer t.Close()
		log.Info("STUN serving", "addr", pc.LocalAddr().String(), "turn", len(turnCfg.Secret) > 0)
	}
	srv, err := relayserver.New(cfg)
	if err != nil {
		return err
	}
	defer srv.Close()

	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("listening: %w", err)
	}
	hs := &http.Server{
		Handler: srv.Handler(),
		// The WebSocket upgrade is one small request: 10 s is plenty, and
		// bounds clients that trickle headers to hold connections open.
		ReadHeaderTimeout: 10 * time.Second,
		// Whole requests (/metrics, /healthz, the upgrade) and responses
		// are small. net/http clears these deadlines when a WebSocket is
		// hijacked; the relay then enforces its own idle and write
		// timeouts.
		ReadTimeout:  30 * time.Second,
		WriteTimeout: 30 * time.Second,
		// Keep-alive connections of metric scrapers may idle this long.
		IdleTimeout: 2 * time.Minute,
		// An upgrade request has a dozen headers.
		MaxHeaderBytes: 16 << 10,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	scheme := "ws"
	if o.tlsCert != "" || o.tlsKey != "" {
		cert, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey)
		if err != nil {
			_ = ln.Close()
			return fmt.Errorf("loading TLS certificate: %w", err)
		}
		hs.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		ln = tls.NewListener(ln, hs.TLSConfig)
		scheme = "wss"
	}
	if o.addrFile != "" {
		if err := os.WriteFile(o.addrFile, []byte(ln.Addr().String()+"\n"), 0o644); err != nil {
			_ = ln.Close()
			return fmt.Errorf("writing address file: %w", err)
		}
	}
	log.Info("relay serving", "url", scheme+"://"+ln.Addr().String()+"/ws")
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()

	select {
	case err := <-served:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	log.Info("relay shutting down")
	// Stop accepting and finish plain HTTP requests, then say goodbye to
	// the WebSocket peers (the relay's Close gives them a second) and stop
	// STUN/TURN (deferred).
	sctx, cancel := context.WithTimeout(context.Background(), hosting.ShutdownGrace)
	defer cancel()
	shutErr := hs.Shutdown(sctx)
	if shutErr != nil {
		// Requests still in flight past the grace are cut.
		log.Warn("forcing shutdown", "err", shutErr)
		_ = hs.Close()
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving: %w", err)
	}
	return srv.Close()
}

// listenHost is the host part of --listen ("" when it has none).
func (o *relayOptions) listenHost() string {
	host, _, err := net.SplitHostPort(o.listen)
	if err != nil {
		return ""
	}
	return host
}

// ice works out the STUN/TURN set-up on pc (the socket bound to --stun, nil
// without it): the URLs the relay advertises and the TURN server's
// configuration (nil without --stun).
func (o *relayOptions) ice(cfg *relayserver.Config, pc net.PacketConn) (*relayserver.TURNConfig, error) {
	secret := []byte(os.Getenv(relayTURNSecretEnv))
	if o.turnSecretFile != "" {
		b, err := os.ReadFile(o.turnSecretFile)
		if err != nil {
			return nil, fmt.Errorf("reading TURN secret: %w", err)
		}
		secret = []byte(strings.TrimSpace(string(b)))
	}
	if pc == nil {
		if len(secret) > 0 {
			return nil, fmt.Errorf("a TURN secret needs --stun: %w", relay.ErrBadConfig)
		}
		return nil, nil
	}
	host, _, err := net.SplitHostPort(o.stun)
	if err != nil {
		return nil, fmt.Errorf("--stun %q: %w", o.stun, err)
	}
	_, port, _ := net.SplitHostPort(pc.LocalAddr().String())
	public := o.publicHost
	if public == "" {
		if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
			return nil, fmt.Errorf("--stun %q listens on every address: say which one peers reach with --public-host: %w", o.stun, relay.ErrBadConfig)
		}
		public = host
	}
	hostPort := net.JoinHostPort(public, port)
	cfg.STUNURLs = []string{"stun:" + hostPort}
	t := &relayserver.TURNConfig{Conn: pc, Realm: o.turnRealm, Logger: slog.Default()}
	if len(secret) == 0 {
		return t, nil
	}
	relayIP := net.ParseIP(o.turnRelayIP)
	if relayIP == nil {
		relayIP = net.ParseIP(public)
	}
	if relayIP == nil {
		return nil, fmt.Errorf("TURN needs --turn-relay-ip (--public-host %q is not an IP): %w", public, relay.ErrBadConfig)
	}
	lo, hi, ok := strings.Cut(o.turnPorts, "-")
	minPort, err1 := strconv.ParseUint(lo, 10, 16)
	maxPort, err2 := strconv.ParseUint(hi, 10, 16)
	if !ok || err1 != nil || err2 != nil || minPort == 0 || maxPort < minPort {
		return nil, fmt.Errorf("--turn-ports %q: want MIN-MAX: %w", o.turnPorts, relay.ErrBadConfig)
	}
	t.Secret, t.RelayIP = secret, relayIP
	t.MinPort, t.MaxPort = uint16(minPort), uint16(maxPort)
	t.MaxAllocationsPerPeer, t.MaxAllocationsPerIP = o.turnPerPeer, o.turnPerIP
	// Beside its interfaces' addresses, the relay's host answers on those it
	// is reached at, which may be a NAT's: TURN refuses them all as peers.
	for _, h := range []string{public, o.listenHost()} {
		if ip := net.ParseIP(h); ip != nil {
			t.OwnIPs = append(t.OwnIPs, ip)
		}
	}
	cfg.TURNSecret = secret
	cfg.TURNURLs = []string{"turn:" + hostPort + "?transport=udp"}
	return t, nil
}
