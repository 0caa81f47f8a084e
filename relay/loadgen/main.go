//go:build !js

// Command loadgen drives a Hearth relay with many concurrent WebSocket peers
// on loopback and reports what it costs: relayed signalling messages per
// second, offer→answer latency at a fixed offered rate, the relay's CPU time
// per relayed message, its RSS per connected peer, and the generator's own
// CPU.
//
// By default it starts the relay as a child process (this binary with
// -serve), so that the relay's CPU and memory can be read from /proc apart
// from the generator's:
//
//	go run ./relay/loadgen -peers 10000 -rate 20000 -duration 20s
//
// Each peer dials from one of -src-ips loopback addresses (127.1.x.1, so
// that the relay's default per-IP connection limit holds), says hello,
// announces one of -sites sites and finds -find peers of it. Then pacers
// send offers at -rate/2 per second (each answered, so -rate relayed
// messages per second) from random peers to peers they found; the peer that
// gets an offer answers at once, and the offerer records the time from the
// offer's scheduled send to the answer's arrival (so a generator that falls
// behind shows as latency, not as a lower rate). -rate 0 saturates instead,
// with -window offers in flight.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/relay"
	relayserver "github.com/hearthcdn/hearth/relay/server"
)

type options struct {
	peers       int
	rate        int
	window      int
	duration    time.Duration
	warmup      time.Duration
	sites       int
	find        int
	payload     int
	srcIPs      int
	dialers     int
	pacers      int
	relayURL    string
	relayPID    int
	relayPprof  string
	relayProcs  int
	serve       string
	servePerIP  int
	serveCPU    string
	serveMemory string
	coalesce    time.Duration
	loops       int
}

func main() {
	var o options
	flag.IntVar(&o.peers, "peers", 10000, "concurrent WebSocket peers")
	flag.IntVar(&o.rate, "rate", 20000, "offered load in relayed messages per second (offers + answers); 0 saturates")
	flag.IntVar(&o.window, "window", 2000, "offers in flight when -rate is 0")
	flag.DurationVar(&o.duration, "duration", 20*time.Second, "measured signalling time")
	flag.DurationVar(&o.warmup, "warmup", 3*time.Second, "signalling before measuring")
	flag.IntVar(&o.sites, "sites", 100, "sites the peers announce (peers/sites per site)")
	flag.IntVar(&o.find, "find", 5, "peers each peer finds")
	flag.IntVar(&o.payload, "payload", 200, "bytes of padding in each offer and answer payload")
	flag.IntVar(&o.srcIPs, "src-ips", 200, "loopback source addresses (127.1.1.1, 127.1.2.1, …) to spread peers over")
	flag.IntVar(&o.dialers, "dialers", 128, "concurrent connection set-ups")
	flag.IntVar(&o.pacers, "pacers", 4, "goroutines sending offers")
	flag.StringVar(&o.relayURL, "relay", "", "relay WebSocket URL; empty starts one as a child process")
	flag.IntVar(&o.relayPID, "relay-pid", 0, "PID of the relay given by -relay, to read its CPU and RSS")
	flag.IntVar(&o.relayProcs, "relay-gomaxprocs", 0, "GOMAXPROCS of the child relay (0: Go's default, the CPU count)")
	flag.StringVar(&o.relayPprof, "relay-cpuprofile", "", "write the child relay's CPU profile of the measured window here")
	flag.DurationVar(&o.coalesce, "coalesce", -1, "the child relay's -coalesce (-1ns: its default; other negative values: off)")
	flag.IntVar(&o.loops, "loops", 0, "the child relay's event loops (0: one per CPU; negative: blocking mode)")
	flag.StringVar(&o.serve, "serve", "", "internal: run a relay on this address (the child process)")
	flag.IntVar(&o.servePerIP, "serve-max-conns-per-ip", 0, "internal: the child relay's per-IP limit (0: default)")
	flag.StringVar(&o.serveCPU, "serve-cpuprofile", "", "internal: the child relay's CPU profile, started and stopped on SIGUSR1")
	flag.StringVar(&o.serveMemory, "serve-memprofile", "", "internal: write a heap profile at exit")
	flag.Parse()
	nofile := raiseFileLimit()
	var err error
	if o.serve != "" {
		err = serve(o)
	} else {
		if nofile < uint64(o.peers)+64 {
			fmt.Fprintf(os.Stderr, "loadgen: RLIMIT_NOFILE is %d, too low for %d peers\n", nofile, o.peers)
		}
		err = run(o)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

// raiseFileLimit lifts RLIMIT_NOFILE's soft limit to the hard limit (10,000
// peers need 10,000 descriptors on each side) and returns it.
func raiseFileLimit() uint64 {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0
	}
	if l.Cur < l.Max {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
	_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l)
	return l.Cur
}

// serve is the child: a relay on o.serve until stdin closes. It prints the
// listening address as its first line of output.
func serve(o options) error {
	ln, err := net.Listen("tcp", o.serve)
	if err != nil {
		return err
	}
	cfg := relayserver.Config{
		MaxConnsPerIP: o.servePerIP,
		Logger:        slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	if o.coalesce != -1 {
		cfg.Coalesce = o.coalesce
	}
	cfg.Loops = o.loops
	srv, err := relayserver.New(cfg)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- hs.Serve(ln) }()
	fmt.Println(ln.Addr().String())

	if o.serveCPU != "" {
		// SIGUSR1 starts the CPU profile, the next one stops it: the
		// parent profiles only the measured window.
		usr := make(chan os.Signal, 1)
		signal.Notify(usr, syscall.SIGUSR1)
		go func() {
			<-usr
			f, err := os.Create(o.serveCPU)
			if err != nil {
				return
			}
			_ = pprof.StartCPUProfile(f)
			<-usr
			pprof.StopCPUProfile()
			_ = f.Close()
		}()
	}
	_, _ = io.Copy(io.Discard, os.Stdin)
	if o.serveMemory != "" {
		if f, err := os.Create(o.serveMemory); err == nil {
			runtime.GC()
			_ = pprof.WriteHeapProfile(f)
			_ = f.Close()
		}
	}
	_ = hs.Close()
	_ = srv.Close()
	<-done
	return nil
}

// peer is one simulated peer.
type peer struct {
	idx   int
	key   ed25519.PrivateKey
	id    string
	site  string
	ws    *wsConn
	found []string
	ctl   chan []byte // non-signal messages during set-up
}

type gen struct {
	o       options
	peers   []*peer
	base    time.Time
	sent    []int64 // scheduled send time of offer seq, ns since base
	seq     atomic.Int64
	lat     []int64 // latencies of measured offers, ns
	nLat    atomic.Int64
	mStart  atomic.Int64 // measured window, ns since base
	mEnd    atomic.Int64
	offers  atomic.Int64 // offers received
	answers atomic.Int64 // answers received
	errs    sync.Map     // error code → *atomic.Int64
	window  chan struct{}
	pad     string
}

func (g *gen) now() int64 { return int64(time.Since(g.base)) }

func (g *gen) countErr(code string) {
	v, _ := g.errs.LoadOrStore(code, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

func run(o options) error {
	if o.peers < 2 || o.sites < 1 || o.find < 1 || o.srcIPs < 1 || o.srcIPs > 250*250 {
		return errors.New("bad flags")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	relayURL, pid, metricsURL, child, err := startRelay(o)
	if err != nil {
		return err
	}
	if child != nil {
		defer child.stop()
	}
	time.Sleep(200 * time.Millisecond) // let the child settle before the baseline
	baseRSS := rssKiB(pid)
	fmt.Printf("relay pid %d at %s, baseline RSS %.1f MiB\n", pid, relayURL, float64(baseRSS)/1024)

	g := &gen{o: o, base: time.Now(), pad: strings.Repeat("x", o.payload)}
	if err := g.connect(ctx, relayURL); err != nil {
		return err
	}
	defer g.closeAll()
	time.Sleep(time.Second) // let the relay's GC run before reading RSS
	connRSS := rssKiB(pid)
	fmt.Printf("connected %d peers: relay RSS %.1f MiB, %.2f KiB per peer\n",
		len(g.peers), float64(connRSS)/1024, float64(connRSS-baseRSS)/float64(len(g.peers)))
	heap, _ := scrape(metricsURL, "go_memstats_heap_inuse_bytes")
	stack, _ := scrape(metricsURL, "go_memstats_stack_inuse_bytes")
	gor, _ := scrape(metricsURL, "go_goroutines")
	fmt.Printf("relay Go memory: heap in use %.1f MiB, stacks %.1f MiB, %.0f goroutines\n",
		heap/(1<<20), stack/(1<<20), gor)

	if err := g.signal(ctx, pid, child, metricsURL, baseRSS); err != nil {
		return err
	}
	return nil
}

type childRelay struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

func (c *childRelay) stop() {
	_ = c.stdin.Close()
	_ = c.cmd.Wait()
}

func startRelay(o options) (url string, pid int, metrics string, child *childRelay, err error) {
	if o.relayURL != "" {
		metrics = strings.Replace(strings.Replace(o.relayURL, "ws", "http", 1), "/ws", "/metrics", 1)
		return o.relayURL, o.relayPID, metrics, nil, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return "", 0, "", nil, err
	}
	perIP := (o.peers + o.srcIPs - 1) / o.srcIPs // raised only when the source addresses do not suffice
	args := []string{"-serve", "127.0.0.1:0", "-serve-max-conns-per-ip", strconv.Itoa(max(perIP, relayserver.DefaultMaxConnsPerIP))}
	if o.relayPprof != "" {
		args = append(args, "-serve-cpuprofile", o.relayPprof)
	}
	args = append(args, "-coalesce", o.coalesce.String(), "-loops", strconv.Itoa(o.loops))
	cmd := exec.Command(exe, args...)
	cmd.Stderr = os.Stderr
	if o.relayProcs > 0 {
		cmd.Env = append(os.Environ(), "GOMAXPROCS="+strconv.Itoa(o.relayProcs))
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return "", 0, "", nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", 0, "", nil, err
	}
	if err := cmd.Start(); err != nil {
		return "", 0, "", nil, err
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		return "", 0, "", nil, fmt.Errorf("reading the child relay's address: %w", err)
	}
	addr := strings.TrimSpace(line)
	return "ws://" + addr + "/ws", cmd.Process.Pid, "http://" + addr + "/metrics", &childRelay{cmd: cmd, stdin: stdin}, nil
}

// connect sets up every peer: dial, hello, announce, then find.
func (g *gen) connect(ctx context.Context, url string) error {
	o := g.o
	var next atomic.Uint32
	srcAddr := func() net.Addr {
		n := int(next.Add(1)) % o.srcIPs
		return &net.TCPAddr{IP: net.IPv4(127, byte(1+n/250), byte(1+n%250), 1)}
	}
	g.peers = make([]*peer, o.peers)
	start := time.Now()
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(o.dialers)
	for i := range g.peers {
		eg.Go(func() error { return g.setup(ectx, i, url, srcAddr()) })
	}
	if err := eg.Wait(); err != nil {
		return err
	}
	fmt.Printf("hello+announce for %d peers in %v\n", o.peers, time.Since(start).Round(time.Millisecond))
	start = time.Now()
	eg, ectx = errgroup.WithContext(ctx)
	eg.SetLimit(o.dialers)
	for _, p := range g.peers {
		eg.Go(func() error { return g.findPeers(ectx, p) })
	}
	if err := eg.Wait(); err != nil {
		return err
	}
	fmt.Printf("find for %d peers in %v\n", o.peers, time.Since(start).Round(time.Millisecond))
	return nil
}

func (g *gen) setup(ctx context.Context, i int, url string, laddr net.Addr) error {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	p := &peer{idx: i, key: key, ctl: make(chan []byte, 1)}
	p.id = node.SiteIDOf(key.Public().(ed25519.PublicKey)).String()
	p.site = siteName(i % g.o.sites)
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ws, err := dialWS(dctx, url, laddr)
	if err != nil {
		return fmt.Errorf("peer %d: %w", i, err)
	}
	p.ws = ws
	g.peers[i] = p
	var m relay.Message
	if err := readMsg(dctx, ws, &m); err != nil || m.Type != relay.TypeChallenge {
		return fmt.Errorf("peer %d challenge: %v %s", i, err, m.Type)
	}
	if err := writeMsg(dctx, ws, relay.SignHello(key, m.Nonce)); err != nil {
		return err
	}
	if err := readMsg(dctx, ws, &m); err != nil || m.Type != relay.TypeWelcome {
		return fmt.Errorf("peer %d welcome: %v %+v", i, err, m)
	}
	role := relay.RoleTab
	if i%5 == 0 {
		role = relay.RoleSeeder
	}
	if err := writeMsg(dctx, ws, &relay.Message{Type: relay.TypeAnnounce, ID: 1, Role: role, Capacity: 50,
		Sites: []relay.SiteRoots{{Site: p.site}}}); err != nil {
		return err
	}
	if err := readMsg(dctx, ws, &m); err != nil || m.Type != relay.TypeOK {
		return fmt.Errorf("peer %d announce: %v %+v", i, err, m)
	}
	return nil
}

// siteName returns a valid site ID for site number n.
func siteName(n int) string {
	var s node.SiteID
	s[0], s[1], s[2] = 0x5a, byte(n>>8), byte(n)
	return s.String()
}

func (g *gen) findPeers(ctx context.Context, p *peer) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := writeMsg(ctx, p.ws, &relay.Message{Type: relay.TypeFind, ID: 2, Site: p.site, N: g.o.find}); err != nil {
		return err
	}
	var m relay.Message
	if err := readMsg(ctx, p.ws, &m); err != nil || m.Type != relay.TypePeers {
		return fmt.Errorf("peer %d find: %v %+v", p.idx, err, m)
	}
	for _, f := range m.Peers {
		p.found = append(p.found, f.Peer)
	}
	return nil
}

// readMsg reads one message during set-up, bounded by ctx.
func readMsg(ctx context.Context, ws *wsConn, m *relay.Message) error {
	if dl, ok := ctx.Deadline(); ok {
		_ = ws.c.SetReadDeadline(dl)
		defer ws.c.SetReadDeadline(time.Time{})
	}
	b, err := ws.read(nil)
	if err != nil {
		return err
	}
	return relay.Decode(b, m)
}

func writeMsg(_ context.Context, ws *wsConn, m *relay.Message) error {
	b, err := relay.Encode(m)
	if err != nil {
		return err
	}
	return ws.write(b)
}

func (g *gen) closeAll() {
	var wg sync.WaitGroup
	for _, p := range g.peers {
		if p != nil && p.ws != nil {
			wg.Go(func() { _ = p.ws.close() })
		}
	}
	wg.Wait()
}

// Offer and answer wire forms. The payload is what a WebRTC stack would
// send, shrunk to what the generator needs: kind, sequence, padding.
const (
	offerHead  = `{"v":1,"type":"signal","to":"`
	offerMid   = `","payload":{"t":"o","s":`
	answerMid  = `","payload":{"t":"a","s":`
	payloadPad = `,"p":"`
	tail       = `"}}`
)

func (g *gen) appendSignal(b []byte, to string, mid string, seq int64) []byte {
	b = append(b, offerHead...)
	b = append(b, to...)
	b = append(b, mid...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, payloadPad...)
	b = append(b, g.pad...)
	return append(b, tail...)
}

// readLoop handles everything a peer receives while signalling.
func (g *gen) readLoop(p *peer) {
	buf := make([]byte, 0, 1024)
	out := make([]byte, 0, 512)
	for {
		b, err := p.ws.read(buf)
		if err != nil {
			return
		}
		buf = b[:0]
		g.handle(p, b, &out)
	}
}

var (
	typeSignal = []byte(`"type":"signal"`)
	fromKey    = []byte(`"from":"`)
	kindKey    = []byte(`"t":"`)
	seqKey     = []byte(`"s":`)
	codeKey    = []byte(`"code":"`)
)

func (g *gen) handle(p *peer, b []byte, out *[]byte) {
	if !bytesContains(b, typeSignal) {
		if c := fieldAfter(b, codeKey, '"'); c != nil {
			g.countErr(string(c))
		}
		return
	}
	from := fieldAfter(b, fromKey, '"')
	kind := fieldAfter(b, kindKey, '"')
	seqB := fieldAfter(b, seqKey, ',')
	if from == nil || len(kind) != 1 || seqB == nil {
		g.countErr("generator_parse")
		return
	}
	seq, err := strconv.ParseInt(string(seqB), 10, 64)
	if err != nil || seq < 0 || int(seq) >= len(g.sent) {
		g.countErr("generator_seq")
		return
	}
	switch kind[0] {
	case 'o':
		g.offers.Add(1)
		*out = g.appendSignal((*out)[:0], string(from), answerMid, seq)
		if err := p.ws.write(*out); err != nil {
			g.countErr("generator_write")
		}
	case 'a':
		g.answers.Add(1)
		now := g.now()
		sched := atomic.LoadInt64(&g.sent[seq])
		if sched >= g.mStart.Load() && sched < g.mEnd.Load() {
			if i := g.nLat.Add(1) - 1; int(i) < len(g.lat) {
				g.lat[i] = now - sched
			}
		}
		if g.window != nil {
			<-g.window
		}
	}
}

func bytesContains(b, sub []byte) bool { return bytes.Index(b, sub) >= 0 }

// fieldAfter returns the bytes after key up to the terminator.
func fieldAfter(b, key []byte, term byte) []byte {
	i := bytes.Index(b, key)
	if i < 0 {
		return nil
	}
	rest := b[i+len(key):]
	for j, c := range rest {
		if c == term || (term == ',' && c == '}') {
			return rest[:j]
		}
	}
	return nil
}

// signal runs the warm-up and the measured window and reports.
func (g *gen) signal(ctx context.Context, pid int, child *childRelay, metricsURL string, baseRSS int64) error {
	o := g.o
	total := o.warmup + o.duration + 2*time.Second
	maxOffers := int64(o.rate/2+1) * int64(total/time.Second+1)
	if o.rate == 0 {
		maxOffers = 50_000_000
	}
	g.sent = make([]int64, maxOffers)
	g.lat = make([]int64, maxOffers)
	g.mStart.Store(1 << 62)
	g.mEnd.Store(1 << 62)
	if o.rate == 0 {
		g.window = make(chan struct{}, o.window)
	}
	var readers sync.WaitGroup
	for _, p := range g.peers {
		readers.Go(func() { g.readLoop(p) })
	}
	defer readers.Wait()
	defer g.closeAll()

	sctx, cancel := context.WithTimeout(ctx, o.warmup+o.duration)
	defer cancel()
	var pacers sync.WaitGroup
	for i := range o.pacers {
		pacers.Go(func() { g.pace(sctx, i) })
	}

	// Warm up, then measure.
	select {
	case <-time.After(o.warmup):
	case <-ctx.Done():
		return ctx.Err()
	}
	relayed0, err := scrape(metricsURL, "hearth_relay_signals_relayed_total")
	if err != nil {
		return err
	}
	cpu0 := procCPU(pid)
	self0 := selfCPU()
	busy0 := machineBusy()
	cs0 := ctxSwitches(pid)
	got0 := g.offers.Load() + g.answers.Load()
	if child != nil && o.relayPprof != "" {
		_ = child.cmd.Process.Signal(syscall.SIGUSR1)
	}
	t0 := time.Now()
	g.mStart.Store(g.now())
	g.mEnd.Store(g.now() + int64(o.duration))
	<-sctx.Done()
	elapsed := time.Since(t0)
	cpu1 := procCPU(pid)
	self1 := selfCPU()
	busy1 := machineBusy()
	cs1 := ctxSwitches(pid)
	got1 := g.offers.Load() + g.answers.Load()
	relayed1, err := scrape(metricsURL, "hearth_relay_signals_relayed_total")
	if err != nil {
		return err
	}
	if child != nil && o.relayPprof != "" {
		_ = child.cmd.Process.Signal(syscall.SIGUSR1)
	}
	rss := rssKiB(pid)
	pacers.Wait()

	relayed := relayed1 - relayed0
	secs := elapsed.Seconds()
	n := min(int(g.nLat.Load()), len(g.lat))
	lat := g.lat[:n]
	slices.Sort(lat)
	pct := func(p float64) float64 {
		if n == 0 {
			return 0
		}
		return float64(lat[min(n-1, int(p*float64(n)))]) / 1e6
	}
	offered := "saturating"
	if o.rate > 0 {
		offered = fmt.Sprintf("%d msg/s offered", o.rate)
	}
	fmt.Printf("\n== %d peers, %d sites, %d-byte payloads, %s, %v measured (after %v warm-up)\n",
		o.peers, o.sites, o.payload, offered, elapsed.Round(time.Millisecond), o.warmup)
	fmt.Printf("relayed:        %.0f msg/s (relay counter), %.0f msg/s delivered to peers\n",
		relayed/secs, float64(got1-got0)/secs)
	fmt.Printf("offer→answer:   p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.2f ms (%d offers)\n",
		pct(0.50), pct(0.99), pct(0.999), pct(1), n)
	if relayed > 0 {
		fmt.Printf("relay CPU:      %.2f µs per relayed msg (%.0f%% of one core), %.2f context switches per msg\n",
			(cpu1-cpu0).Seconds()*1e6/relayed, 100*(cpu1-cpu0).Seconds()/secs, float64(cs1-cs0)/relayed)
		fmt.Printf("generator CPU:  %.2f µs per relayed msg (%.0f%% of one core)\n",
			(self1-self0).Seconds()*1e6/relayed, 100*(self1-self0).Seconds()/secs)
	}
	other := (busy1 - busy0) - (cpu1 - cpu0) - (self1 - self0)
	fmt.Printf("other load:     %.0f%% of one core used by other processes and the kernel meanwhile (%d CPUs)\n",
		max(0, 100*other.Seconds()/secs), runtime.NumCPU())
	fmt.Printf("relay RSS:      %.1f MiB while signalling, %.2f KiB per peer over the %.1f MiB baseline\n",
		float64(rss)/1024, float64(rss-baseRSS)/float64(o.peers), float64(baseRSS)/1024)
	var codes []string
	g.errs.Range(func(k, v any) bool {
		codes = append(codes, fmt.Sprintf("%s=%d", k, v.(*atomic.Int64).Load()))
		return true
	})
	slices.Sort(codes)
	if len(codes) > 0 {
		fmt.Printf("errors:         %s\n", strings.Join(codes, " "))
	}
	return nil
}

// pace sends offers: at a fixed rate (its share of -rate/2 offers per
// second), or as fast as the window allows.
func (g *gen) pace(ctx context.Context, id int) {
	o := g.o
	rng := mrand.New(mrand.NewPCG(uint64(id), uint64(time.Now().UnixNano())))
	buf := make([]byte, 0, 512)
	send := func(sched int64) bool {
		a := g.peers[rng.IntN(len(g.peers))]
		if len(a.found) == 0 {
			return true
		}
		b := a.found[rng.IntN(len(a.found))]
		seq := g.seq.Add(1) - 1
		if int(seq) >= len(g.sent) {
			return false
		}
		atomic.StoreInt64(&g.sent[seq], sched)
		buf = g.appendSignal(buf[:0], b, offerMid, seq)
		if err := a.ws.write(buf); err != nil {
			g.countErr("generator_write")
		}
		return true
	}
	if o.rate == 0 {
		for ctx.Err() == nil {
			select {
			case g.window <- struct{}{}:
			case <-ctx.Done():
				return
			}
			if !send(g.now()) {
				return
			}
		}
		return
	}
	perSec := float64(o.rate) / 2 / float64(o.pacers)
	interval := float64(time.Second) / perSec
	start := g.now()
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	sent := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		due := int(float64(g.now()-start)/interval) + 1 // offer k is due at start + k·interval
		for ; sent < due; sent++ {
			if !send(start + int64(float64(sent)*interval)) {
				return
			}
		}
	}
}

// procCPU returns a process's user+system CPU time from /proc/PID/stat.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	// Fields after the command: state is [0]; utime [11], stime [12].
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const hz = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / hz
}

// machineBusy returns the CPU time all CPUs spent not idle, from
// /proc/stat.
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	var busy int64
	for i, v := range f[1:] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		if i >= 8 { // guest time is already in user
			break
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		busy += n
	}
	return time.Duration(busy) * time.Second / 100
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ctxSwitches returns a process's context switches, voluntary and not,
// summed over its threads.
func ctxSwitches(pid int) int64 {
	dirs, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0
	}
	var n int64
	for _, d := range dirs {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", pid, d.Name()))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "voluntary_ctxt_switches:"); ok {
				x, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				n += x
			} else if v, ok := strings.CutPrefix(line, "nonvoluntary_ctxt_switches:"); ok {
				x, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				n += x
			}
		}
	}
	return n
}

// rssKiB returns a process's resident set size from /proc/PID/status.
func rssKiB(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// scrape reads one counter from the relay's /metrics.
func scrape(url, name string) (float64, error) {
	resp, err := http.Get(url) //nolint:noctx // loopback, short
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("metric %s not found", name)
}
