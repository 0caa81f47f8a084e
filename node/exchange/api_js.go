//go:build js && wasm

package exchange

import "github.com/pion/webrtc/v4"

// newAPI builds the pion API over the browser's RTCPeerConnection. The
// browser owns ICE, DTLS and SCTP; the native tuning (README.md, "Tuning")
// has no counterpart here beyond the buffered-amount thresholds.
func newAPI(_ *TransportConfig, _ *Transport) (*webrtc.API, error) {
	return webrtc.NewAPI(), nil
}
