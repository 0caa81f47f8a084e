//go:build js && wasm

package main

import (
	"syscall/js"

	"github.com/hearthcdn/hearth/js/jsconfig"
	"github.com/hearthcdn/hearth/wasm/internal/jsx"
)

// configFrom reads the configuration object the bootstrap inlines
// (self.hearthConfig) field by field: encoding/json's decoder would add
// about 60 KB of brotli'd wasm to the worker.
func configFrom(v js.Value) (*jsconfig.Config, error) {
	var c jsconfig.Config
	if v.Type() == js.TypeObject {
		c.Site = jsx.String(v.Get("site"))
		c.Scope = jsx.String(v.Get("scope"))
		c.Prefixes = stringList(v.Get("prefixes"))
		c.Relays = stringList(v.Get("relays"))
		c.CacheMiB = number(v.Get("cacheMiB"))
		c.TabSeeding = v.Get("tabSeeding").Truthy()
		c.UploadKiBps = number(v.Get("uploadKiBps"))
		c.AgentTimeoutMS = number(v.Get("agentTimeoutMs"))
		c.MaxStaleMS = number(v.Get("maxStaleMs"))
		c.NoInject = v.Get("noInject").Truthy()
		// iceServers are the page agent's business.
	}
	if err := c.Normalize(); err != nil {
		return nil, err
	}
	return &c, nil
}

func stringList(v js.Value) []string {
	if v.Type() != js.TypeObject {
		return nil
	}
	out := make([]string, 0, v.Length())
	for i := 0; i < v.Length(); i++ {
		out = append(out, jsx.String(v.Index(i)))
	}
	return out
}

func number(v js.Value) int {
	if v.Type() != js.TypeNumber {
		return 0
	}
	return v.Int()
}
