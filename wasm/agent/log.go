//go:build js && wasm

package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/hearthcdn/hearth/wasm/internal/jsx"
)

// logger returns the agent's logger: to the console at debug level when
// the page sets window.hearthDebug = true before the agent starts, else
// nowhere.
func logger() *slog.Logger {
	if !jsx.Global().Get("hearthDebug").Truthy() {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(consoleHandler{})
}

// consoleHandler writes records to console.log.
type consoleHandler struct{ attrs []slog.Attr }

func (consoleHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h consoleHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "hearth agent %s %s", r.Level, r.Message)
	for _, a := range h.attrs {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
	}
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	jsx.Global().Get("console").Call("log", b.String())
	return nil
}

func (h consoleHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return consoleHandler{attrs: append(append([]slog.Attr{}, h.attrs...), as...)}
}

func (h consoleHandler) WithGroup(string) slog.Handler { return h }
