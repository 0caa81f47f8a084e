// Package logx is the logger type of the packages that run both natively
// and in the page agent (GOOS=js): node/exchange, relay/client and
// wasm/swarm.
//
// Natively Logger is *slog.Logger itself (a type alias), so callers pass
// any slog logger. On js it is a small leveled logger with the same
// Debug/Info/Warn/Error(msg, key, value, …) methods, which keeps log/slog
// out of the browser build. Code that must build for both uses only those
// methods and this package's functions.
package logx
