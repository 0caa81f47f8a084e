package relay_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/hearthcdn/hearth/relay"
)

var decodeSeeds = []string{
	`{"v":1,"type":"hello","key":"b5uax","sig":"AAECAw=="}`,
	`{"v":1,"type":"challenge","nonce":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}`,
	`{"v":1,"type":"welcome","peer":"bx","limits":{"max_message":16384,"rate":50.5,"burst":100,"max_sites":64,"max_subscriptions":64,"idle_timeout":60},"servers":[{"urls":["stun:a:3478"]}]}`,
	`{"v":1,"type":"announce","id":3,"role":"seeder","capacity":32,"sites":[{"site":"bs","roots":["bafk1","bafk2"]},null]}`,
	`{"v":1,"type":"find","id":4,"site":"bs","n":5,"exclude":["b1",null,"b2"]}`,
	`{"v":1,"type":"peers","id":4,"site":"bs","peers":[{"peer":"b1","role":"tab","capacity":3,"roots":[]}]}`,
	`{"v":1,"type":"signal","to":"b1","payload":{"type":"offer","sdp":"v=0\r\n\u00e9\ud83d\ude00","n":[1,-2.5e3,true,false,null,{}]}}`,
	`{"v":1,"type":"signal","from":"b1","payload":"just a string"}`,
	`{"v":1,"type":"signal","payload":null}`,
	`{"v":1,"type":"publish","id":9,"record":"AQID"}`,
	`{"v":1,"type":"publish","id":9,"members":"AQID"}`,
	`{"v":1,"type":"ice","id":7,"servers":[{"urls":["turn:x"],"username":"1:b","credential":"c2VjcmV0"}],"expires":1735689600}`,
	`{"v":1,"type":"error","id":3,"code":"not_introduced","reason":"a \"quoted\" \\ reason","peer":"b1"}`,
	` { "v" : 1 , "type" : "ping" , "id" : 18446744073709551615 , "unknown" : {"a":[1,{"b":null}]} } `,
	`{"v":1,"type":"ping","id":1,"id":2,"type":"pong"}`,
	`{"v":1,"type":"x","site":"a","site":null}`,
	`{"v":1,"type":"x","limits":{"rate":1},"limits":{"burst":2}}`,
	`{"v":1,"type":"x","capacity":1.5}`,
	`{"v":1,"type":"x","n":1e2}`,
	`{"v":1,"type":"x","id":-1}`,
	`{"v":1,"type":"x","payload":{"a":}}`,
	`{"v":1,"type":"x","payload":[1,2,]}`,
	`{"v":1,"type":"x","key":"\ud800"}`,
	`{"v":1,"type":"x","nonce":"not base64!"}`,
	`{"v":1,"type":"x"} trailing`,
	`{"v":1,"type":"x"}` + "\x00",
	`{"v":01,"type":"x"}`,
	`[{"v":1}]`,
	``,
	`{"v":1,"type":"x","payload":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`,
}

// FuzzDecode checks Decode against encoding/json: where both accept, they
// agree; Decode may only refuse what encoding/json accepts for a documented
// reason (invalid UTF-8, a key that matches only case-insensitively, depth).
func FuzzDecode(f *testing.F) {
	for _, s := range decodeSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var fast relay.Message
		fastErr := relay.Decode(b, &fast)
		var slow relay.Message
		slowErr := json.Unmarshal(b, &slow)
		if fastErr != nil && !errors.Is(fastErr, relay.ErrBadMessage) && !errors.Is(fastErr, relay.ErrUnsupportedVersion) {
			t.Fatalf("error without a sentinel: %v", fastErr)
		}
		if fastErr == nil {
			if slowErr != nil && !caseFolded(b) {
				t.Fatalf("Decode accepted what encoding/json refuses (%v): %q", slowErr, b)
			}
			if !caseFolded(b) && !reflect.DeepEqual(normalize(fast), normalize(slow)) {
				t.Fatalf("disagree on %q:\nDecode %+v\njson   %+v", b, fast, slow)
			}
			if !utf8.Valid(fast.Payload) {
				t.Fatalf("invalid UTF-8 payload accepted: %q", b)
			}
			return
		}
		if slowErr != nil || slow.V != relay.Version || slow.Type == "" {
			return // both refuse
		}
		// encoding/json accepts; Decode may refuse only for its reasons.
		if !utf8.Valid(b) || bytes.Contains(b, []byte(`\u`)) || caseFolded(b) || bytes.Count(b, []byte("[")) > 60 || bytes.Count(b, []byte("{")) > 60 {
			return
		}
		t.Fatalf("Decode refused (%v) what encoding/json accepts: %q", fastErr, b)
	})
}

// caseFolded reports whether b has a key that is a known key only up to
// case, which encoding/json matches and Decode does not.
func caseFolded(b []byte) bool {
	lower := bytes.ToLower(b)
	return !bytes.Equal(lower, b) && bytes.Contains(lower, []byte(`"`))
}

// normalize maps the representations both decoders may legitimately choose
// differently (empty vs nil slices, payload whitespace) to one.
func normalize(m relay.Message) relay.Message {
	if len(m.Payload) > 0 {
		var buf bytes.Buffer
		if json.Compact(&buf, m.Payload) == nil {
			m.Payload = buf.Bytes()
		}
	} else {
		m.Payload = nil
	}
	if len(m.Sites) == 0 {
		m.Sites = nil
	}
	for i := range m.Sites {
		if len(m.Sites[i].Roots) == 0 {
			m.Sites[i].Roots = nil
		}
	}
	if len(m.Exclude) == 0 {
		m.Exclude = nil
	}
	if len(m.Peers) == 0 {
		m.Peers = nil
	}
	for i := range m.Peers {
		if len(m.Peers[i].Roots) == 0 {
			m.Peers[i].Roots = nil
		}
	}
	if len(m.Servers) == 0 {
		m.Servers = nil
	}
	for i := range m.Servers {
		if len(m.Servers[i].URLs) == 0 {
			m.Servers[i].URLs = nil
		}
	}
	if len(m.Nonce) == 0 {
		m.Nonce = nil
	}
	if len(m.Sig) == 0 {
		m.Sig = nil
	}
	if len(m.Record) == 0 {
		m.Record = nil
	}
	if len(m.Members) == 0 {
		m.Members = nil
	}
	return m
}

func TestDecodeStrict(t *testing.T) {
	for _, s := range []string{
		`{"v":1,"type":"signal","payload":"` + "\xff" + `"}`, // invalid UTF-8
		`{"V":1,"type":"ping"}`,                              // case-folded key: unknown, so no version
		`{"v":1,"type":"x","payload":` + strings.Repeat("[", 70) + strings.Repeat("]", 70) + `}`,
	} {
		var m relay.Message
		if err := relay.Decode([]byte(s), &m); err == nil {
			t.Errorf("accepted %q", s)
		}
	}
}
