//go:build js && wasm

// Command agent is Hearth's page agent, compiled to js/wasm and started by
// the page loader (js/src/hearth.js) after the page's load event. A service
// worker cannot hold WebRTC connections, so the agent does it for the
// worker: it connects to the relay, finds the site's seeders, and fetches
// the blocks the worker asks for over a MessagePort from them through the
// WebRTC block exchange (every block verified here, and again by the
// worker). With tab seeding allowed by the operator (config tabSeeding)
// and turned on by the visitor (hearth.seed(true)), it also answers other visitors' offers from the worker's block cache,
// with an upload cap.
//
// Startup: it reads window.hearth.config and calls
// window.hearthAgentReady(api) with
//
//	api.setPort(port)   the MessagePort to the active service worker
//	api.seed(on)        tab seeding on or off
//	api.stats()         {peers, connected, banned (peer IDs), bytesIn, bytesOut, seeding, relay, error}
//	api.bye()           the page is going away
//
// The protocol on the port is agentproto's.
package main

import (
	"github.com/hearthcdn/hearth/js/jsconfig"
	"github.com/hearthcdn/hearth/wasm/internal/jsx"
)

func main() {
	g := jsx.Global()
	cfgJSON := g.Get("JSON").Call("stringify", g.Get("hearth").Get("config")).String()
	cfg, err := jsconfig.Parse([]byte(cfgJSON))
	if err != nil {
		g.Call("hearthAgentReady", failedAPI(err))
		select {}
	}
	a := newAgent(cfg, g.Get("location").Get("origin").String())
	g.Call("hearthAgentReady", a.api())
	a.start()
	select {} // the agent lives as long as the page
}
