//go:build !js

package exchange

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"testing"
)

// testLogger logs through t at debug level when HEARTH_TEST_LOG is set.
func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("HEARTH_TEST_LOG") == "" {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return slog.New(slog.NewTextHandler(tbWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tbWriter struct{ t testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}
