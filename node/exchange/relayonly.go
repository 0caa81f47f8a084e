package exchange

import (
	"hash/fnv"
	"strconv"
	"strings"

	"github.com/pion/webrtc/v4"
)

// Relayed-only connections (TransportConfig.RelayOnly): the ICE agent (pion,
// or the browser's) gathers only TURN candidates, under ICE transport
// policy "relay". What the agent puts in signalling messages still names
// the peer's own addresses in places, so every description and candidate a
// relayed-only session sends is filtered here first:
//   - a relay candidate's related address (raddr/rport) is the local
//     address its TURN allocation was made from (pion: the LAN address);
//     it becomes 0.0.0.0 0, as browsers write it when they hide it;
//   - a foundation may be derived from the base address (browsers hash
//     it, and a hash of a private IPv4 address is easily reversed); it is
//     replaced by a hash of the relayed address, which is public anyway;
//   - candidates of any other type (host, srflx, prflx, mDNS names) are
//     dropped, in trickle and in SDP (a=candidate lines);
//   - connection lines (c=) are set to IN IP4 0.0.0.0, as RFC 8840 writes
//     them before any candidate is known.
//
// The ICE connectivity checks that follow go only through the TURN server,
// so the remote peer sees the relayed address alone.

// iceServersHaveTURN reports whether servers include a TURN server, without
// which a relayed-only connection cannot be made.
func iceServersHaveTURN(servers []webrtc.ICEServer) bool {
	for _, s := range servers {
		for _, u := range s.URLs {
			if strings.HasPrefix(u, "turn:") || strings.HasPrefix(u, "turns:") {
				return true
			}
		}
	}
	return false
}

// relayOnlyCandidate returns the candidate attribute c ("candidate:…", as
// in RTCIceCandidate.candidate, or the value of an a=candidate line) fit to
// send from a relayed-only session, and false when it must not be sent.
// The empty candidate (end of candidates) passes as is.
func relayOnlyCandidate(c string) (string, bool) {
	if c == "" {
		return c, true
	}
	prefix := ""
	rest := c
	if strings.HasPrefix(rest, "candidate:") {
		prefix, rest = "candidate:", rest[len("candidate:"):]
	}
	f := strings.Fields(rest)
	// foundation component transport priority address port typ TYPE …
	if len(f) < 8 || f[6] != "typ" || f[7] != "relay" {
		return "", false
	}
	h := fnv.New32a()
	h.Write([]byte("relay " + strings.ToLower(f[2]) + " " + f[4]))
	f[0] = strconv.FormatUint(uint64(h.Sum32()), 10)
	for i := 8; i+1 < len(f); i += 2 {
		switch f[i] {
		case "raddr":
			f[i+1] = "0.0.0.0"
		case "rport":
			f[i+1] = "0"
		}
	}
	return prefix + strings.Join(f, " "), true
}

// relayOnlySDP returns sdp fit to send from a relayed-only session: only
// relay candidates, filtered as relayOnlyCandidate does, and every
// connection line set to 0.0.0.0.
func relayOnlySDP(sdp string) string {
	nl := "\r\n"
	if !strings.Contains(sdp, nl) {
		nl = "\n"
	}
	lines := strings.Split(sdp, nl)
	out := lines[:0]
	for _, l := range lines {
		switch {
		case strings.HasPrefix(l, "a=candidate:"):
			c, ok := relayOnlyCandidate(l[len("a="):])
			if !ok {
				continue
			}
			l = "a=" + c
		case strings.HasPrefix(l, "c="):
			l = "c=IN IP4 0.0.0.0"
		case strings.HasPrefix(l, "a=rtcp:"):
			l = "a=rtcp:9 IN IP4 0.0.0.0"
		}
		out = append(out, l)
	}
	return strings.Join(out, nl)
}

// relayOnlySignal filters an outgoing signalling message of a relayed-only
// session; false: send nothing.
func relayOnlySignal(m SignalMsg) (SignalMsg, bool) {
	if m.SDP != "" {
		m.SDP = relayOnlySDP(m.SDP)
	}
	if m.Candidate != nil {
		c, ok := relayOnlyCandidate(m.Candidate.Candidate)
		if !ok {
			return m, false
		}
		cc := *m.Candidate
		cc.Candidate = c
		m.Candidate = &cc
	}
	return m, true
}
