package exchange

import (
	"strings"
	"testing"

	"github.com/pion/webrtc/v4"
)

func TestRelayOnlyCandidate(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"candidate:1 1 udp 2130706431 192.168.3.2 5000 typ host generation 0", "", false},
		{"candidate:2 1 udp 1694498815 198.18.3.2 5000 typ srflx raddr 192.168.3.2 rport 5000", "", false},
		{"candidate:3 1 udp 2130706431 4f2a-host.local 5000 typ host", "", false},
		{"candidate:4 1 udp 1853817087 198.18.3.2 5000 typ prflx raddr 0.0.0.0 rport 0", "", false},
		{"candidate:5 1 udp 2130706431 fd00:77::2 5000 typ host", "", false},
		{"candidate:3792651432 1 udp 41885439 198.18.2.2 49948 typ relay raddr 198.18.3.2 rport 40000 generation 0 ufrag ab network-id 1",
			"candidate:F 1 udp 41885439 198.18.2.2 49948 typ relay raddr 0.0.0.0 rport 0 generation 0 ufrag ab network-id 1", true},
		{"candidate:x 1 udp", "", false},
		{"", "", true},
	} {
		got, ok := relayOnlyCandidate(tc.in)
		if ok != tc.ok {
			t.Errorf("%q: kept %v, want %v", tc.in, ok, tc.ok)
			continue
		}
		if !ok {
			continue
		}
		// The foundation is replaced by a hash of the relayed address.
		if f := strings.Fields(tc.want); len(f) > 0 {
			gf := strings.Fields(got)
			if gf[0] == strings.Fields(tc.in)[0] {
				t.Errorf("%q: foundation kept", tc.in)
			}
			gf[0], f[0] = "", ""
			got, tc.want = strings.Join(gf, " "), strings.Join(f, " ")
		}
		if got != tc.want {
			t.Errorf("%q:\n got %q\nwant %q", tc.in, got, tc.want)
		}
	}
}

func TestRelayOnlySDP(t *testing.T) {
	sdp := strings.Join([]string{
		"v=0",
		"o=- 1 2 IN IP4 0.0.0.0",
		"s=-",
		"t=0 0",
		"m=application 5000 UDP/DTLS/SCTP webrtc-datachannel",
		"c=IN IP4 192.168.3.2",
		"a=rtcp:5001 IN IP4 192.168.3.2",
		"a=candidate:1 1 udp 2130706431 192.168.3.2 5000 typ host",
		"a=candidate:2 1 udp 2130706431 fd00:77::2 5000 typ host",
		"a=candidate:3 1 udp 1694498815 198.18.3.2 5000 typ srflx raddr 192.168.3.2 rport 5000",
		"a=candidate:4 1 udp 41885439 198.18.2.2 49948 typ relay raddr 192.168.3.2 rport 5000",
		"a=end-of-candidates",
		"",
	}, "\r\n")
	got := relayOnlySDP(sdp)
	for _, leak := range []string{"192.168.3.2", "198.18.3.2", "fd00:77::2"} {
		if strings.Contains(got, leak) {
			t.Errorf("%s left in\n%s", leak, got)
		}
	}
	if !strings.Contains(got, " 198.18.2.2 49948 typ relay raddr 0.0.0.0 rport 0\r\n") ||
		!strings.Contains(got, "\r\nc=IN IP4 0.0.0.0\r\n") || !strings.HasSuffix(got, "a=end-of-candidates\r\n") {
		t.Errorf("filtered SDP:\n%s", got)
	}
}

func TestRelayOnlySignal(t *testing.T) {
	host := webrtc.ICECandidateInit{Candidate: "candidate:1 1 udp 2130706431 192.168.3.2 5000 typ host"}
	if _, ok := relayOnlySignal(SignalMsg{Type: SignalCandidate, Candidate: &host}); ok {
		t.Error("a host candidate is sent")
	}
	relayed := webrtc.ICECandidateInit{Candidate: "candidate:4 1 udp 41885439 198.18.2.2 49948 typ relay raddr 192.168.3.2 rport 5000"}
	m, ok := relayOnlySignal(SignalMsg{Type: SignalCandidate, Candidate: &relayed})
	if !ok || strings.Contains(m.Candidate.Candidate, "192.168.3.2") || !strings.Contains(relayed.Candidate, "192.168.3.2") {
		t.Errorf("relay candidate: sent %v %+v; the caller's copy must stay as it was", ok, m.Candidate)
	}
}

func TestICEServersHaveTURN(t *testing.T) {
	if iceServersHaveTURN([]webrtc.ICEServer{{URLs: []string{"stun:a:3478"}}}) {
		t.Error("STUN counted as TURN")
	}
	if !iceServersHaveTURN([]webrtc.ICEServer{{URLs: []string{"stun:a:3478"}}, {URLs: []string{"turn:a:3478?transport=udp"}}}) {
		t.Error("TURN not found")
	}
}
