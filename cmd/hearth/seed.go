package main

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
	"unicode"

	cid "github.com/ipfs/go-cid"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/gateway"
	"github.com/hearthcdn/hearth/node/hosting"
	"github.com/hearthcdn/hearth/node/pebblestore"
	"github.com/hearthcdn/hearth/node/seeder"
)

func newSeedCmd() *cobra.Command {
	var storeDir, originURL, listen, maxStorage, peers, maxRate, addrFile, corrupt, cache, memLimit string
	var keep, concurrency int
	var poll time.Duration
	var rf *seedRelayFlags
	var browser *browserFlags
	var streams *eventStreamFlags
	cmd := &cobra.Command{
		Use:   "seed SITE --origin URL [--store DIR] [--listen ADDR] [--keep N] [--max-storage SIZE] [--peers URL,...]",
		Short: "Replicate a site's newest roots and serve them, standing in for the origin",
		Long: `Follow SITE's signed root records from --origin (event stream and polling)
and from --peers, replicate each new root's blocks into --store (only what is
missing, verified, in parallel, from the origin or the peers), keep the newest
--keep roots pinned and delete the rest, and serve the same trustless gateway,
record endpoints, files, /metrics and /healthz as the origin.

SIZE is a number of bytes with an optional unit: K, M, G, T (and KiB, MiB,
GiB, TiB) are powers of 1024; KB, MB, GB, TB powers of 1000.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			site, err := node.ParseSiteID(args[0])
			if err != nil {
				return err
			}
			if originURL == "" {
				return errUsage("--origin URL is required")
			}
			maxBytes, err := parseSize(maxStorage)
			if err != nil {
				return fmt.Errorf("--max-storage: %w", err)
			}
			rate, err := parseSize(strings.TrimSuffix(maxRate, "/s"))
			if err != nil {
				return fmt.Errorf("--max-rate: %w", err)
			}
			var peerList []string
			if peers != "" {
				if peerList, err = gateway.ParseSources(peers); err != nil {
					return fmt.Errorf("--peers: %w", err)
				}
			}
			cacheBytes, err := parseSize(cache)
			if err != nil {
				return fmt.Errorf("--cache: %w", err)
			}
			limit, err := parseSize(memLimit)
			if err != nil {
				return fmt.Errorf("--memory-limit: %w", err)
			}
			if _, set := os.LookupEnv("GOMEMLIMIT"); !set && limit > 0 {
				// A soft limit: the collector works harder as the Go heap
				// nears it, instead of letting it grow to twice the live
				// data; pebble's cache and memtables are outside it.
				debug.SetMemoryLimit(limit)
			}
			st, err := openSeedStore(storeDir, cacheBytes)
			if err != nil {
				return err
			}
			defer st.Close()
			log := slog.Default()
			var relays []string
			if rf.url != "" {
				relays = []string{rf.url}
			}
			client, err := browser.client(site, relays, log)
			if err != nil {
				return err
			}
			s, err := seeder.New(seeder.Config{
				InjectLoader: browser.inject(client),
				Site:         site, Origin: originURL, Peers: peerList, Store: st,
				Keep: keep, MaxStorage: maxBytes, PollInterval: poll,
				Concurrency: concurrency, MaxRate: rate, EventStreams: streams.limits(), Logger: log,
			})
			if err != nil {
				return err
			}
			h := withClient(s.Handler(), client)
			if corrupt != "" {
				c, err := node.ParseCID(corrupt)
				if err != nil {
					return fmt.Errorf("--testing-corrupt: %w", err)
				}
				h = corruptingHandler(h, st, c)
			}
			h, runRelay, err := rf.wire(site, st, s, h, log)
			if err != nil {
				return err
			}
			ln, err := hosting.Listen(listen, addrFile)
			if err != nil {
				return err
			}
			log.Info("seeder serving", "addr", ln.Addr().String(), "site", site.String(), "origin", originURL)
			g, ctx := errgroup.WithContext(cmd.Context())
			g.Go(func() error { return hosting.Serve(ctx, ln, h, log, s.Close) })
			g.Go(func() error { return s.Run(ctx) })
			if runRelay != nil {
				g.Go(func() error { return runRelay(ctx) })
			}
			return g.Wait()
		},
	}
	addStoreFlag(cmd, &storeDir)
	rf = addSeedRelayFlags(cmd)
	browser = addBrowserFlags(cmd, false)
	streams = addEventStreamFlags(cmd)
	f := cmd.Flags()
	f.StringVar(&originURL, "origin", "", "the origin's base URL, e.g. https://example.org")
	f.StringVar(&listen, "listen", "127.0.0.1:8081", "address to serve HTTP on (port 0: any free port)")
	f.IntVar(&keep, "keep", 3, "number of newest roots to keep pinned")
	f.StringVar(&maxStorage, "max-storage", "", "refuse roots whose blocks exceed SIZE; drop older pins to stay under it")
	f.StringVar(&peers, "peers", "", "other seeders' base URLs, comma-separated: fallback sources")
	f.DurationVar(&poll, "poll", 30*time.Second, "how often to poll for records besides the event stream")
	f.IntVar(&concurrency, "concurrency", 16, "parallel block downloads")
	f.StringVar(&maxRate, "max-rate", "", "cap the download rate at SIZE per second")
	f.StringVar(&addrFile, "addr-file", "", "write the bound address to this file once listening")
	f.StringVar(&cache, "cache", "8MiB", "store block cache SIZE")
	f.StringVar(&memLimit, "memory-limit", "24MiB", "soft limit for the Go heap (as GOMEMLIMIT, which overrides it); 0: none")
	f.StringVar(&corrupt, "testing-corrupt", "", "TESTS ONLY: serve the raw block CID with one byte flipped")
	_ = f.MarkHidden("testing-corrupt")
	return cmd
}

// seedMemTable is the seeder store's memtable size: small, since a seeder
// is a long-running process on a member's machine (see --cache).
const seedMemTable = 4 << 20

// openSeedStore opens the store like openStore, sized for a seeder.
func openSeedStore(dir string, cacheBytes int64) (*pebblestore.Store, error) {
	if dir == "" {
		dir = defaultStoreDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating store: %w", err)
	}
	if cacheBytes <= 0 {
		cacheBytes = 8 << 20
	}
	return pebblestore.Open(dir, pebblestore.Options{CacheBytes: cacheBytes, MemTableBytes: seedMemTable})
}

// corruptingHandler makes a seeder lie, for tests of the clients' checks:
// block c is sent with its last byte flipped, alone (a raw request) or
// inside a CAR stream (which is held whole to find it: tests only).
func corruptingHandler(h http.Handler, g node.Getter, c cid.Cid) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/ipfs/") {
			h.ServeHTTP(w, r)
			return
		}
		d, err := g.Get(r.Context(), c)
		if err != nil || len(d) == 0 {
			h.ServeHTTP(w, r)
			return
		}
		if r.URL.Path == "/ipfs/"+c.String() && r.URL.Query().Get("format") == "raw" {
			bad := append([]byte(nil), d...)
			bad[len(bad)-1] ^= 0xff
			w.Header().Set("Content-Type", gateway.MediaRaw)
			w.Header().Set("Content-Length", strconv.Itoa(len(bad)))
			_, _ = w.Write(bad)
			return
		}
		if r.URL.Query().Get("format") != "car" && !strings.Contains(r.Header.Get("Accept"), "car") {
			h.ServeHTTP(w, r)
			return
		}
		hw := &holdingWriter{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(hw, r)
		body := hw.body.Bytes()
		key := []byte(c.KeyString())
		// The CID's bytes also appear in its parent's links: flip the
		// occurrence that the block's data follows.
		for off := 0; off < len(body); {
			i := bytes.Index(body[off:], key)
			if i < 0 {
				break
			}
			at := off + i + len(key)
			if at+len(d) <= len(body) && bytes.Equal(body[at:at+len(d)], d) {
				body[at+len(d)-1] ^= 0xff
				break
			}
			off = off + i + 1
		}
		w.WriteHeader(hw.code)
		_, _ = w.Write(body)
	})
}

// holdingWriter holds a response's body until the handler returns; the
// headers are the real writer's, and deadlines reach it through Unwrap.
type holdingWriter struct {
	http.ResponseWriter
	code int
	body bytes.Buffer
}

func (h *holdingWriter) WriteHeader(code int)        { h.code = code }
func (h *holdingWriter) Write(p []byte) (int, error) { return h.body.Write(p) }
func (h *holdingWriter) Flush()                      {}
func (h *holdingWriter) Unwrap() http.ResponseWriter { return h.ResponseWriter }

// parseSize parses "" (0), a byte count, or a number with a unit: K, M,
// G, T, KiB, MiB, GiB, TiB (powers of 1024) or KB, MB, GB, TB (powers of
// 1000); B is allowed. Fractions are allowed with a unit ("1.5G").
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	i := strings.IndexFunc(s, func(r rune) bool { return !unicode.IsDigit(r) && r != '.' })
	num, unit := s, ""
	if i >= 0 {
		num, unit = s[:i], strings.TrimSpace(s[i:])
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("size %q: want a number of bytes with an optional unit (K, M, G, T, KiB, KB, ...)", s)
	}
	mult := map[string]float64{
		"": 1, "b": 1,
		"k": 1 << 10, "kib": 1 << 10, "kb": 1e3,
		"m": 1 << 20, "mib": 1 << 20, "mb": 1e6,
		"g": 1 << 30, "gib": 1 << 30, "gb": 1e9,
		"t": 1 << 40, "tib": 1 << 40, "tb": 1e12,
	}[strings.ToLower(unit)]
	if mult == 0 {
		return 0, fmt.Errorf("size %q: unknown unit %q", s, unit)
	}
	if v*mult > 1<<62 {
		return 0, fmt.Errorf("size %q: too large", s)
	}
	return int64(v * mult), nil
}
