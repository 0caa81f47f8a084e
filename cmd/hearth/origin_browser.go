package main

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/spf13/cobra"

	hearthjs "github.com/hearthcdn/hearth/js"
	"github.com/hearthcdn/hearth/js/jsconfig"
	"github.com/hearthcdn/hearth/node"
)

// browserFlags configure the browser client (service worker and page
// agent) that `hearth origin` serves under /.hearth/ (package js).
type browserFlags struct {
	relays, stun, prefixes []string
	scope                  string
	cacheMiB, uploadKiBps  int
	tabSeeding, off        bool
}

func addBrowserFlags(cmd *cobra.Command) *browserFlags {
	f := &browserFlags{}
	fl := cmd.Flags()
	fl.StringSliceVar(&f.relays, "relay", nil, "relay WebSocket URL for visitors' page agents (ws:// or wss://), repeatable")
	fl.StringSliceVar(&f.stun, "ice", nil, "STUN/TURN server URL for visitors' WebRTC, repeatable")
	fl.StringSliceVar(&f.prefixes, "swarm-prefix", nil, "URL path prefix the service worker serves from the swarm, repeatable (default: the scope)")
	fl.StringVar(&f.scope, "sw-scope", "/", "service worker scope")
	fl.IntVar(&f.cacheMiB, "browser-cache-mib", jsconfig.DefaultCacheMiB, "visitors' block cache bound, MiB")
	fl.BoolVar(&f.tabSeeding, "tab-seeding", false, "let visitors' open tabs serve what they cache")
	fl.IntVar(&f.uploadKiBps, "tab-upload-kibps", jsconfig.DefaultUploadKiBps, "upload cap of a seeding tab, KiB/s")
	fl.BoolVar(&f.off, "no-browser-client", false, "do not serve /.hearth/ (the service worker and page agent)")
	return f
}

// wrap serves the browser client at /.hearth/ in front of h. Without built
// wasm assets (make wasm) it logs a warning and serves h alone.
func (f *browserFlags) wrap(h http.Handler, site node.SiteID, log *slog.Logger) (http.Handler, error) {
	if f.off {
		return h, nil
	}
	cfg := jsconfig.Config{Site: site.String(), Scope: f.scope, Prefixes: f.prefixes, Relays: f.relays,
		CacheMiB: f.cacheMiB, TabSeeding: f.tabSeeding, UploadKiBps: f.uploadKiBps}
	if len(f.stun) > 0 {
		cfg.ICEServers = []jsconfig.ICEServer{{URLs: f.stun}}
	}
	client, err := hearthjs.New(cfg, hearthjs.Options{})
	if errors.Is(err, hearthjs.ErrNoAssets) {
		log.Warn("browser client not built: serving pages without the service worker (run make wasm)", "err", err)
		return h, nil
	}
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle(hearthjs.Prefix, client)
	mux.Handle("/", h)
	return mux, nil
}
