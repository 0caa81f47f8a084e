//go:build js && wasm

package main

import (
	"github.com/hearthcdn/hearth/internal/logx"
	"github.com/hearthcdn/hearth/wasm/internal/jsx"
)

// logger returns the agent's logger: to the console at debug level when
// the page sets window.hearthDebug = true before the agent starts, else
// nowhere.
func logger() *logx.Logger {
	if !jsx.Global().Get("hearthDebug").Truthy() {
		return logx.Discard()
	}
	return logx.New(logx.LevelDebug, func(level logx.Level, msg, attrs string) {
		jsx.Global().Get("console").Call("log", "hearth agent "+level.String()+" "+msg+attrs)
	})
}
