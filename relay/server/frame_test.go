package relayserver

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// clientFrame builds a masked frame as a browser would.
func clientFrame(fin bool, op byte, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	b := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n < 1<<16:
		b = append(b, 0x80|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	key := [4]byte{0x12, 0x34, 0x56, 0x78}
	b = append(b, key[:]...)
	for i, c := range payload {
		b = append(b, c^key[i%4])
	}
	return b
}

// parseAll feeds b to p and returns the events, as consume does.
func parseAll(t *testing.T, p *frameParser, b []byte) ([]frameEvent, error) {
	t.Helper()
	var evs []frameEvent
	for len(b) > 0 {
		used, need, ev, err := p.next(b)
		if err != nil {
			return evs, err
		}
		if used == 0 {
			if need <= len(b) {
				t.Fatalf("incomplete frame of %d bytes says it needs %d", len(b), need)
			}
			return evs, nil
		}
		ev.payload = append([]byte(nil), ev.payload...)
		evs = append(evs, ev)
		b = b[used:]
	}
	return evs, nil
}

func TestFrameParse(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 70000)
	medium := bytes.Repeat([]byte("y"), 300)
	var in []byte
	in = append(in, clientFrame(true, opText, []byte(`{"v":1}`))...)
	in = append(in, clientFrame(true, opText, medium)...)
	in = append(in, clientFrame(false, opText, []byte("frag-"))...)
	in = append(in, clientFrame(true, opPing, []byte("p"))...) // control inside a fragmented message
	in = append(in, clientFrame(false, opContinuation, []byte("ment-"))...)
	in = append(in, clientFrame(true, opContinuation, []byte("ed"))...)
	in = append(in, clientFrame(true, opBinary, big)...)
	in = append(in, clientFrame(true, opPong, nil)...)
	in = append(in, clientFrame(true, opClose, []byte{0x03, 0xe8, 'b', 'y', 'e'})...)

	// Fed whole, and fed a byte at a time, the events are the same.
	p := frameParser{max: 100000}
	whole, err := parseAll(t, &p, append([]byte(nil), in...)) // parsing unmasks in place
	if err != nil {
		t.Fatal(err)
	}
	var trickled []frameEvent
	q := frameParser{max: 100000}
	var buf []byte
	for _, c := range in {
		buf = append(buf, c)
		evs, err := parseAll(t, &q, buf)
		if err != nil {
			t.Fatal(err)
		}
		// A byte completes at most one frame, and then the buffer holds
		// exactly that frame: it is consumed whole.
		trickled = append(trickled, evs...)
		if len(evs) > 0 {
			buf = buf[:0]
		}
	}
	want := []struct {
		kind    int
		op      byte
		payload string
	}{
		{evMessage, opText, `{"v":1}`},
		{evMessage, opText, string(medium)},
		{evFragment, 0, ""},
		{evPing, 0, "p"},
		{evFragment, 0, ""},
		{evMessage, opText, "frag-ment-ed"},
		{evMessage, opBinary, string(big)},
		{evPong, 0, ""},
		{evClose, 0, "\x03\xe8bye"},
	}
	for _, got := range [][]frameEvent{whole, trickled} {
		if len(got) != len(want) {
			t.Fatalf("%d events, want %d", len(got), len(want))
		}
		for i, w := range want {
			g := got[i]
			if g.kind != w.kind || g.op != w.op || string(g.payload) != w.payload {
				t.Fatalf("event %d: kind %d op %d %.20q, want %d %d %.20q", i, g.kind, g.op, g.payload, w.kind, w.op, w.payload)
			}
		}
	}
	if closeCode(whole[8].payload) != 1000 || closeCode(nil) != closeNormal {
		t.Fatal("close code")
	}
}

func TestFrameErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"unmasked", []byte{0x81, 0x01, 'x'}, errProtocol},
		{"rsv1", append([]byte{0xc1}, clientFrame(true, opText, []byte("x"))[1:]...), errProtocol},
		{"reserved opcode", clientFrame(true, 0x3, nil), errProtocol},
		{"reserved control opcode", clientFrame(true, 0xb, nil), errProtocol},
		{"fragmented ping", clientFrame(false, opPing, nil), errProtocol},
		{"long ping", clientFrame(true, opPing, make([]byte, 126)), errProtocol},
		{"continuation first", clientFrame(true, opContinuation, []byte("x")), errProtocol},
		{"text inside fragments", append(clientFrame(false, opText, []byte("a")), clientFrame(true, opText, []byte("b"))...), errProtocol},
		{"close of one byte", clientFrame(true, opClose, []byte{3}), errProtocol},
		{"close reason not UTF-8", clientFrame(true, opClose, []byte{3, 0xe8, 0xff}), errProtocol},
		{"too big", clientFrame(true, opText, make([]byte, 101)), errTooBig},
		{"too big in fragments", append(clientFrame(false, opText, make([]byte, 60)), clientFrame(true, opContinuation, make([]byte, 60))...), errTooBig},
		// The size is refused from the header, before the payload comes.
		{"too big header only", []byte{0x81, 0x80 | 127, 0, 0, 0, 1, 0, 0, 0, 0}, errTooBig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := frameParser{max: 100}
			if _, err := parseAll(t, &p, tc.in); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestAppendFrame(t *testing.T) {
	for _, n := range []int{0, 125, 126, 65535, 65536} {
		f := appendFrame(nil, opText, make([]byte, n))
		if f[0] != 0x81 || f[1]&0x80 != 0 {
			t.Fatalf("%d: header % x", n, f[:2])
		}
		hdr := map[bool]int{true: 2}[n < 126]
		switch {
		case n >= 65536:
			hdr = 10
		case n >= 126:
			hdr = 4
		}
		if len(f) != hdr+n {
			t.Fatalf("%d: frame of %d bytes", n, len(f))
		}
	}
	c := appendClose(nil, closePolicy, string(bytes.Repeat([]byte("é"), 100)))
	if len(c) > 2+125 || closeCode(c[2:]) != closePolicy {
		t.Fatalf("close frame of %d bytes", len(c))
	}
}

func FuzzFrameParser(f *testing.F) {
	f.Add(clientFrame(true, opText, []byte("hello")))
	f.Add(append(clientFrame(false, opText, []byte("a")), clientFrame(true, opContinuation, []byte("b"))...))
	f.Add(clientFrame(true, opClose, []byte{3, 0xe8}))
	f.Add([]byte{0x81, 0xfe, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		p := frameParser{max: 1 << 12}
		for len(b) > 0 {
			used, need, ev, err := p.next(b)
			if err != nil {
				return
			}
			if used == 0 {
				if need <= len(b) {
					t.Fatalf("need %d with %d buffered", need, len(b))
				}
				return
			}
			if used > len(b) || len(ev.payload) > p.max {
				t.Fatalf("used %d of %d, payload %d", used, len(b), len(ev.payload))
			}
			b = b[used:]
		}
	})
}
