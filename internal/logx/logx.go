//go:build !js

package logx

import (
	"context"
	"log/slog"
)

// Logger is slog.Logger natively.
type Logger = slog.Logger

// Discard returns a logger that drops everything.
func Discard() *Logger { return slog.New(slog.DiscardHandler) }

// Default returns slog.Default().
func Default() *Logger { return slog.Default() }

// DebugEnabled reports whether l logs at debug level.
func DebugEnabled(l *Logger) bool { return l.Enabled(context.Background(), slog.LevelDebug) }
