package relay_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/relay"
)

func TestEncodeDecodeRoundTrip(t *testing.T) {
	in := &relay.Message{
		Type: relay.TypeAnnounce, ID: 7, Role: relay.RoleSeeder, Capacity: 3,
		Sites: []relay.SiteRoots{{Site: "bsite", Roots: []string{"bafkroot"}}},
	}
	b, err := relay.Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte(`{"v":1,"type":"announce","id":7,`)) {
		t.Fatalf("wire form %s", b)
	}
	var out relay.Message
	if err := relay.Decode(b, &out); err != nil {
		t.Fatal(err)
	}
	if out.Type != in.Type || out.ID != 7 || out.Role != relay.RoleSeeder || out.Capacity != 3 ||
		len(out.Sites) != 1 || out.Sites[0].Roots[0] != "bafkroot" {
		t.Fatalf("decoded %+v", out)
	}
}

func TestDecodeRejects(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want error
	}{
		{`not json`, relay.ErrBadMessage},
		{`{"v":1}`, relay.ErrBadMessage},
		{`{"type":"ping"}`, relay.ErrUnsupportedVersion},
		{`{"v":2,"type":"ping"}`, relay.ErrUnsupportedVersion},
		{`{"v":1,"type":"signal","payload":{"a":}}`, relay.ErrBadMessage},
		{`{"v":1,"type":"ping","id":-1}`, relay.ErrBadMessage},
	} {
		var m relay.Message
		if err := relay.Decode([]byte(tc.in), &m); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.in, err, tc.want)
		}
	}
}

func TestAppendSignalMatchesEncode(t *testing.T) {
	from := "b5uaxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	payload := json.RawMessage(`{"type":"offer","sdp":"v=0\r\n","n":[1,2]}`)
	fast := relay.AppendSignal(nil, from, payload)
	slow, err := relay.Encode(&relay.Message{Type: relay.TypeSignal, From: from, Payload: payload})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fast, slow) {
		t.Fatalf("fast %s\nslow %s", fast, slow)
	}
	var m relay.Message
	if err := relay.Decode(fast, &m); err != nil || m.From != from || !bytes.Equal(m.Payload, payload) {
		t.Fatalf("decode: %v %+v", err, m)
	}
}

func TestHello(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	nonce := make([]byte, relay.NonceSize)
	_, _ = rand.Read(nonce)
	hello := relay.SignHello(priv, nonce)
	key, err := relay.VerifyHello(hello, nonce)
	if err != nil || key != node.SiteIDOf(pub) {
		t.Fatalf("verify: %v", err)
	}
	// The signature covers the domain: a bare signature of the nonce fails.
	bare := *hello
	bare.Sig = ed25519.Sign(priv, nonce)
	if _, err := relay.VerifyHello(&bare, nonce); !errors.Is(err, relay.ErrBadHello) {
		t.Fatalf("bare nonce signature: %v", err)
	}
	other := make([]byte, relay.NonceSize)
	if _, err := relay.VerifyHello(hello, other); !errors.Is(err, relay.ErrBadHello) {
		t.Fatalf("other nonce: %v", err)
	}
	short := *hello
	short.Sig = hello.Sig[:10]
	if _, err := relay.VerifyHello(&short, nonce); !errors.Is(err, relay.ErrBadHello) {
		t.Fatalf("short signature: %v", err)
	}
	badKey := *hello
	badKey.Key = "bnope"
	if _, err := relay.VerifyHello(&badKey, nonce); !errors.Is(err, relay.ErrBadHello) {
		t.Fatalf("bad key: %v", err)
	}
}

func TestCodes(t *testing.T) {
	for _, err := range []error{relay.ErrBadMessage, relay.ErrRateLimited, relay.ErrNotIntroduced, relay.ErrStaleRecord} {
		wrapped := fmt.Errorf("context: %w", err)
		if got := relay.CodeOf(wrapped).Err(); got != err {
			t.Errorf("%v → %s → %v", err, relay.CodeOf(wrapped), got)
		}
	}
	if relay.CodeOf(errors.New("other")) != relay.CodeInternal {
		t.Error("unknown error not internal")
	}
	if !errors.Is(relay.Code("from_the_future").Err(), relay.ErrInternal) {
		t.Error("unknown code not internal")
	}
}
