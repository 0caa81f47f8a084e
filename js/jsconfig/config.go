// Package jsconfig is the browser client's configuration: what the origin
// serves at /.hearth/config.json and inlines into /.hearth/hearth.js and
// /.hearth/sw.js, and what the service worker and the page agent read.
// It depends on nothing but the standard library and node, so that both
// wasm binaries can import it.
package jsconfig

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hearthcdn/hearth/node"
)

// ErrBadConfig: a configuration value is invalid.
var ErrBadConfig = errors.New("invalid browser client configuration")

// Defaults.
const (
	DefaultScope          = "/"
	DefaultCacheMiB       = 256
	DefaultAgentTimeoutMS = 1500
	DefaultUploadKiBps    = 512
	DefaultMaxStaleMS     = 5000
)

// Config is the browser client's configuration, as JSON:
//
//	{
//	  "site": "b5uax…",                       // site ID (node.SiteID text form)
//	  "scope": "/",                            // service-worker scope
//	  "prefixes": ["/"],                       // URL path prefixes served from the swarm
//	  "relays": ["wss://relay.example/ws"],    // signalling relays, for the page agent
//	  "iceServers": [{"urls": ["stun:relay.example:3478"]}],
//	  "cacheMiB": 256,                         // block cache bound, MiB
//	  "tabSeeding": false,                     // open tabs serve what they cache
//	  "relayOnly": false,                      // seeding tabs serve only through TURN
//	  "uploadKiBps": 512,                      // tab seeding upload cap, KiB/s
//	  "agentTimeoutMs": 1500,                  // how long a page agent may stay silent
//	  "maxStaleMs": 5000                       // freshness bound of the root record; -1: none
//	}
type Config struct {
	// Site is the site's ID, text form.
	Site string `json:"site"`
	// Scope is the service worker's scope, a path ending in "/".
	Scope string `json:"scope"`
	// Prefixes are the URL path prefixes (each starting with "/") whose GET
	// and HEAD requests the service worker answers from the site's DAG;
	// everything else passes through untouched.
	Prefixes []string `json:"prefixes"`
	// Relays are the WebSocket URLs of the signalling relays.
	Relays []string `json:"relays"`
	// ICEServers are the STUN and TURN servers for WebRTC.
	ICEServers []ICEServer `json:"iceServers"`
	// CacheMiB bounds the service worker's block cache, in MiB.
	CacheMiB int `json:"cacheMiB"`
	// TabSeeding makes open tabs serve the blocks they hold to other
	// visitors (a page can also opt in with hearth.seed(true)).
	TabSeeding bool `json:"tabSeeding"`
	// RelayOnly makes a seeding tab serve only over relayed-only
	// connections (ICE transport policy "relay", TURN from the relay's ice
	// answer): the visitors it serves, and the relay's signalling, never
	// learn its addresses. Its own fetches still take direct paths.
	RelayOnly bool `json:"relayOnly,omitempty"`
	// UploadKiBps caps a seeding tab's upload, in KiB per second.
	UploadKiBps int `json:"uploadKiBps"`
	// AgentTimeoutMS is how long a page agent may stay silent (no block,
	// no progress report while its peers deliver) before the service
	// worker asks the origin for the block it awaits, in ms (four times
	// that once the request has had a block).
	AgentTimeoutMS int `json:"agentTimeoutMs"`
	// MaxStaleMS is the site's freshness bound, in ms: a navigation is
	// served from the root record the service worker holds, without
	// asking the origin, while that record was known to be the latest
	// (fetched from the origin, or pushed or confirmed by a page agent
	// subscribed to the site's records at the relay) less than this long
	// ago; otherwise it waits for the origin's record. 0 means
	// DefaultMaxStaleMS; -1 makes every navigation wait for the origin.
	//
	// It lives here and not in the signed root record: this configuration
	// reaches the worker inlined in /.hearth/sw.js, the worker's own code,
	// from the origin over the same connection, so it is exactly as
	// trustworthy as the code that enforces it, and a signed copy would
	// protect it from no one who could not already change that code. The
	// root record's wire form is fixed (node.ParseRootRecord takes one
	// version and one length), so a field there would make every relay,
	// seeder and worker deployed before it refuse new records.
	MaxStaleMS int `json:"maxStaleMs,omitempty"`
	// NoInject makes the service worker serve the site's HTML as
	// published; by default it adds the page loader to pages that lack it
	// (package js/inject), as the origin does.
	NoInject bool `json:"noInject,omitempty"`
}

// ICEServer is one STUN or TURN server, as RTCIceServer.
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// Normalize fills defaults and checks every field. Errors wrap ErrBadConfig
// (or node.ErrBadSiteID for the site).
func (c *Config) Normalize() error {
	if _, err := node.ParseSiteID(c.Site); err != nil {
		return fmt.Errorf("site: %w", err)
	}
	if c.Scope == "" {
		c.Scope = DefaultScope
	}
	if !strings.HasPrefix(c.Scope, "/") || !strings.HasSuffix(c.Scope, "/") {
		return fmt.Errorf("scope %q: want an absolute path ending in /: %w", c.Scope, ErrBadConfig)
	}
	if len(c.Prefixes) == 0 {
		c.Prefixes = []string{c.Scope}
	}
	for _, p := range c.Prefixes {
		if !strings.HasPrefix(p, "/") {
			return fmt.Errorf("prefix %q: want an absolute path: %w", p, ErrBadConfig)
		}
	}
	for _, r := range c.Relays {
		if !strings.HasPrefix(r, "ws://") && !strings.HasPrefix(r, "wss://") {
			return fmt.Errorf("relay %q: want a ws:// or wss:// URL: %w", r, ErrBadConfig)
		}
	}
	for _, s := range c.ICEServers {
		if len(s.URLs) == 0 {
			return fmt.Errorf("ICE server without URLs: %w", ErrBadConfig)
		}
	}
	if c.CacheMiB == 0 {
		c.CacheMiB = DefaultCacheMiB
	}
	if c.UploadKiBps == 0 {
		c.UploadKiBps = DefaultUploadKiBps
	}
	if c.AgentTimeoutMS == 0 {
		c.AgentTimeoutMS = DefaultAgentTimeoutMS
	}
	if c.MaxStaleMS == 0 {
		c.MaxStaleMS = DefaultMaxStaleMS
	}
	if c.MaxStaleMS < -1 {
		return fmt.Errorf("maxStaleMs %d: want -1 (none) or more: %w", c.MaxStaleMS, ErrBadConfig)
	}
	if c.CacheMiB < 0 || c.UploadKiBps < 0 || c.AgentTimeoutMS < 0 {
		return fmt.Errorf("negative size or time: %w", ErrBadConfig)
	}
	return nil
}

// MaxStale returns the freshness bound (MaxStaleMS) as a duration; 0 when
// every navigation waits for the origin's record. Call after Normalize.
func (c *Config) MaxStale() time.Duration {
	if c.MaxStaleMS <= 0 {
		return 0
	}
	return time.Duration(c.MaxStaleMS) * time.Millisecond
}

// SiteID returns the parsed site ID; call after Normalize.
func (c *Config) SiteID() node.SiteID {
	id, _ := node.ParseSiteID(c.Site)
	return id
}

// Parse decodes and normalizes a JSON configuration.
func Parse(b []byte) (*Config, error) {
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("decoding config: %v: %w", err, ErrBadConfig)
	}
	if err := c.Normalize(); err != nil {
		return nil, err
	}
	return &c, nil
}
