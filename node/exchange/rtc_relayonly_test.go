//go:build !js

package exchange

import (
	"errors"
	"testing"
	"time"
)

// TestRTCRelayOnlyWithoutTURN: a relayed-only seeder with no TURN server
// refuses an offer at once (bye), so the dialer moves on instead of waiting
// for its connect timeout.
func TestRTCRelayOnlyWithoutTURN(t *testing.T) {
	h := newSigHub()
	st, _ := importDir(t, smallFilesDir(t, 1, 100))
	h.tune = func(c *TransportConfig) { c.RelayOnly = c.Handler != nil }
	h.seeder(t, "seeder", st, ServerConfig{})
	v := h.node(t, "visitor", nil)
	start := time.Now()
	_, err := v.Dial(ctxT(t, 10*time.Second), "seeder")
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("dial: %v, want a refusal", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("refused after %v, want at once", d)
	}
}
