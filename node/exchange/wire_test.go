package exchange

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/node"
)

func sampleMessages() []message {
	c := node.Sum(node.CodecRaw, []byte("hello"))
	d := node.Sum(node.CodecDagPB, []byte("dir"))
	return []message{
		{Type: msgSettings, Version: 1, MaxRequests: 32},
		{Type: msgRequest, ID: 1, Window: 2 << 20, Req: wireRequest{DAG: &node.Request{Root: d, Path: []string{"a", "b c"}, Scope: node.ScopeEntity, Bytes: &node.ByteRange{From: 10, To: -3}}}},
		{Type: msgRequest, ID: 2, Window: 1, Req: wireRequest{DAG: &node.Request{Root: d, Scope: node.ScopeAll}}},
		{Type: msgRequest, ID: 3, Window: 1, Req: wireRequest{DAG: &node.Request{Root: d, Scope: node.ScopeBlock, Bytes: &node.ByteRange{From: -5, ToEnd: true}}}},
		{Type: msgRequest, ID: 4, Window: 9, Req: wireRequest{Blocks: []cid.Cid{c, d}}},
		{Type: msgBlock, ID: 1 << 40, Cid: c, Size: 5, Data: []byte("hel")},
		{Type: msgMore, ID: 7, Data: []byte("lo")},
		{Type: msgMissing, ID: 7, Cid: c},
		{Type: msgEnd, ID: 7, Code: codeNotFound, Text: "no such block"},
		{Type: msgCredit, ID: 7, Credit: 1 << 20},
		{Type: msgCancel, ID: 8},
	}
}

func TestWireRoundTrip(t *testing.T) {
	for _, m := range sampleMessages() {
		b := appendMessage(nil, &m)
		got, err := decodeMessage(b)
		if err != nil {
			t.Fatalf("%s: %v", m.Type, err)
		}
		if m.Data != nil && got.Data == nil {
			got.Data = []byte{}
		}
		if !reflect.DeepEqual(normal(got), normal(m)) {
			t.Errorf("%s: round trip\n got %+v\nwant %+v", m.Type, got, m)
		}
	}
}

// normal makes messages comparable: CIDs as strings, requests by value.
func normal(m message) any {
	type req struct {
		Root, Scope, Bytes string
		Path               []string
		Blocks             []string
	}
	var r req
	if m.Req.DAG != nil {
		r.Root, r.Scope, r.Path = m.Req.DAG.Root.String(), string(m.Req.DAG.Scope), m.Req.DAG.Path
		if m.Req.DAG.Bytes != nil {
			r.Bytes = m.Req.DAG.Bytes.String()
		}
	}
	for _, c := range m.Req.Blocks {
		r.Blocks = append(r.Blocks, c.String())
	}
	m.Req = wireRequest{}
	cs := ""
	if m.Cid.Defined() {
		cs = m.Cid.String()
	}
	m.Cid = cid.Undef
	return struct {
		M   message
		R   req
		Cid string
	}{m, r, cs}
}

func TestWireRejects(t *testing.T) {
	c := node.Sum(node.CodecRaw, []byte("x"))
	big := &message{Type: msgBlock, ID: 1, Cid: c, Size: 3, Data: []byte("toolong")}
	cases := map[string][]byte{
		"empty":           {},
		"unknown type":    {99, 1},
		"truncated":       {byte(msgCredit), 1},
		"trailing":        append(appendMessage(nil, &message{Type: msgCancel, ID: 1}), 0),
		"fragment > size": appendMessage(nil, big),
		"huge block":      appendMessage(nil, &message{Type: msgBlock, ID: 1, Cid: c, Size: node.MaxBlockLen + 1}),
		"empty list":      {byte(msgRequest), 1, 1, reqBlocks, 0},
		"bad CID":         {byte(msgMissing), 1, 3, 1, 2, 3},
		"oversize":        bytes.Repeat([]byte{byte(msgMore)}, MaxMessage+1),
	}
	for name, b := range cases {
		if _, err := decodeMessage(b); !errors.Is(err, ErrProtocol) {
			t.Errorf("%s: err = %v, want ErrProtocol", name, err)
		}
	}
}

func TestFragmentFits(t *testing.T) {
	c := node.Sum(node.CodecDagPB, []byte("x"))
	b := appendBlockHeader(nil, 1<<62, c, node.MaxBlockLen)
	if len(b)+maxFragment > MaxMessage {
		t.Fatalf("header %d + fragment %d > %d", len(b), maxFragment, MaxMessage)
	}
}

func FuzzDecode(f *testing.F) {
	for _, m := range sampleMessages() {
		f.Add(appendMessage(nil, &m))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMessage(b)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("error %v does not wrap ErrProtocol", err)
			}
			return
		}
		// What decodes re-encodes to something that decodes the same.
		b2 := appendMessage(nil, &m)
		m2, err := decodeMessage(b2)
		if err != nil {
			t.Fatalf("re-encoding of %+v does not decode: %v", m, err)
		}
		if m.Data != nil && m2.Data == nil {
			m2.Data = []byte{}
		}
		if !reflect.DeepEqual(normal(m), normal(m2)) {
			t.Fatalf("re-encoding changed the message:\n%+v\n%+v", m, m2)
		}
	})
}
