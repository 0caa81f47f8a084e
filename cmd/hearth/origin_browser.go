package main

import (
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	hearthjs "github.com/hearthcdn/hearth/js"
	"github.com/hearthcdn/hearth/js/jsconfig"
	"github.com/hearthcdn/hearth/node"
)

// browserFlags configure the browser client (service worker and page
// agent) that `hearth origin` and `hearth seed` serve under /.hearth/
// (package js), and the loader they add to the site's HTML (js/inject).
type browserFlags struct {
	relays, stun, prefixes []string
	scope                  string
	cacheMiB, uploadKiBps  int
	tabSeeding, off        bool
	tabRelayOnly           bool
	noInject               bool
	maxStale               time.Duration
}

// addBrowserFlags adds the browser client's flags to cmd; withRelay adds
// --relay and --ice (a seeder has its own --relay, which its visitors use).
func addBrowserFlags(cmd *cobra.Command, withRelay bool) *browserFlags {
	f := &browserFlags{}
	fl := cmd.Flags()
	if withRelay {
		fl.StringSliceVar(&f.relays, "relay", nil, "relay WebSocket URL for visitors' page agents (ws:// or wss://), repeatable; the origin also pushes each new root record there")
		fl.StringSliceVar(&f.stun, "ice", nil, "STUN/TURN server URL for visitors' WebRTC, repeatable")
	}
	fl.StringSliceVar(&f.prefixes, "swarm-prefix", nil, "URL path prefix the service worker serves from the swarm, repeatable (default: the scope)")
	fl.StringVar(&f.scope, "sw-scope", "/", "service worker scope")
	fl.IntVar(&f.cacheMiB, "browser-cache-mib", jsconfig.DefaultCacheMiB, "visitors' block cache bound, MiB")
	fl.BoolVar(&f.tabSeeding, "tab-seeding", false, "let visitors' open tabs serve what they cache")
	fl.BoolVar(&f.tabRelayOnly, "tab-relay-only", false, "seeding tabs serve only through the relay's TURN server, so that the visitors they serve never learn their addresses")
	fl.IntVar(&f.uploadKiBps, "tab-upload-kibps", jsconfig.DefaultUploadKiBps, "upload cap of a seeding tab, KiB/s")
	fl.DurationVar(&f.maxStale, "max-stale", jsconfig.DefaultMaxStaleMS*time.Millisecond, "freshness bound: visitors' service workers serve a navigation from a root record known to be the latest (from the origin, or pushed through the relay to their page agents) less than this long ago, and otherwise wait for the origin's record; 0: every navigation waits for it")
	fl.BoolVar(&f.off, "no-browser-client", false, "do not serve /.hearth/ (the service worker and page agent)")
	fl.BoolVar(&f.noInject, "no-inject", false, "serve the site's HTML as published, without adding the /.hearth/hearth.js loader")
	return f
}

// client returns the browser client's handler for site, whose page agents
// use relays besides --relay; nil when it is off, or not built (make wasm),
// which is logged.
func (f *browserFlags) client(site node.SiteID, relays []string, log *slog.Logger) (http.Handler, error) {
	if f.off {
		return nil, nil
	}
	cfg := jsconfig.Config{Site: site.String(), Scope: f.scope, Prefixes: f.prefixes, Relays: append(relays, f.relays...),
		CacheMiB: f.cacheMiB, TabSeeding: f.tabSeeding, RelayOnly: f.tabRelayOnly, UploadKiBps: f.uploadKiBps, NoInject: f.noInject}
	cfg.MaxStaleMS = -1
	if f.maxStale > 0 {
		cfg.MaxStaleMS = int((f.maxStale + time.Millisecond - 1) / time.Millisecond)
	}
	if len(f.stun) > 0 {
		cfg.ICEServers = []jsconfig.ICEServer{{URLs: f.stun}}
	}
	client, err := hearthjs.New(cfg, hearthjs.Options{})
	if errors.Is(err, hearthjs.ErrNoAssets) {
		log.Warn("browser client not built: serving pages without the service worker (run make wasm)", "err", err)
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return client, nil
}

// inject reports whether the site's HTML gets the loader: only where the
// client it loads is served, and not with --no-inject.
func (f *browserFlags) inject(client http.Handler) bool { return client != nil && !f.noInject }

// withClient serves client (if any) at /.hearth/ in front of h.
func withClient(h, client http.Handler) http.Handler {
	if client == nil {
		return h
	}
	mux := http.NewServeMux()
	mux.Handle(hearthjs.Prefix, client)
	mux.Handle("/", h)
	return mux
}
