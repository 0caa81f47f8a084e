//go:build !js

package node

import (
	"bytes"
	"testing"

	"github.com/ipfs/go-unixfsnode/data"
	dagpb "github.com/ipld/go-codec-dagpb"
	cidlink "github.com/ipld/go-ipld-prime/linking/cid"
)

// refDecode decodes with the reference libraries (go-codec-dagpb, strict,
// and go-unixfsnode's UnixFS decoder).
func refDecode(raw []byte) (*pbNode, *unixfsData, error, error) {
	nb := dagpb.Type.PBNode.NewBuilder()
	if err := dagpb.DecodeBytes(nb, raw); err != nil {
		return nil, nil, err, nil
	}
	pbn := nb.Build().(dagpb.PBNode)
	n := &pbNode{}
	it := pbn.FieldLinks().Iterator()
	for !it.Done() {
		_, l := it.Next()
		var ln Link
		ln.Cid = l.FieldHash().Link().(cidlink.Link).Cid
		if l.FieldName().Exists() {
			ln.Name = l.FieldName().Must().String()
		}
		if l.FieldTsize().Exists() {
			ln.Tsize = uint64(l.FieldTsize().Must().Int())
		}
		n.links = append(n.links, ln)
	}
	if !pbn.FieldData().Exists() {
		return n, nil, nil, nil
	}
	n.data, n.hasData = pbn.FieldData().Must().Bytes(), true
	ud, err := data.DecodeUnixFSData(n.data)
	if err != nil {
		return n, nil, nil, err
	}
	u := &unixfsData{typ: ud.FieldDataType().Int(), hasType: true}
	if ud.FieldData().Exists() {
		u.data = ud.FieldData().Must().Bytes()
	}
	if ud.FieldFileSize().Exists() {
		u.fileSize = uint64(ud.FieldFileSize().Must().Int())
	}
	bit := ud.FieldBlockSizes().Iterator()
	for !bit.Done() {
		_, v := bit.Next()
		u.blockSizes = append(u.blockSizes, uint64(v.Int()))
	}
	if ud.FieldFanout().Exists() {
		u.fanout = uint64(ud.FieldFanout().Must().Int())
	}
	if ud.FieldHashType().Exists() {
		u.hashType = uint64(ud.FieldHashType().Must().Int())
	}
	return n, u, nil, nil
}

// FuzzPBMatchesReference: whatever go-codec-dagpb accepts, decodePB accepts
// with the same links and data, and whatever it refuses, decodePB refuses;
// UnixFS data that go-unixfsnode decodes, decodeUnixFS decodes the same.
func FuzzPBMatchesReference(f *testing.F) {
	for _, seed := range [][]byte{
		{0x0a, 0x02, 0x08, 0x01},
		{0x0a, 0x04, 0x08, 0x02, 0x18, 0x05},
		{},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		ref, refU, refErr, refUErr := refDecode(raw)
		got, err := decodePB(raw)
		if (err == nil) != (refErr == nil) {
			t.Fatalf("decodePB error %v, reference error %v", err, refErr)
		}
		if err != nil {
			return
		}
		if len(got.links) != len(ref.links) || got.hasData != ref.hasData || !bytes.Equal(got.data, ref.data) {
			t.Fatalf("decodePB %+v, reference %+v", got, ref)
		}
		for i := range got.links {
			a, b := got.links[i], ref.links[i]
			if !a.Cid.Equals(b.Cid) || a.Name != b.Name || a.Tsize != b.Tsize {
				t.Fatalf("link %d: %+v, reference %+v", i, a, b)
			}
		}
		if !got.hasData || refUErr != nil {
			return // we may be stricter or looser on malformed UnixFS; Decode checks it
		}
		u, err := decodeUnixFS(got.data)
		if err != nil {
			t.Fatalf("decodeUnixFS refused what go-unixfsnode decodes: %v", err)
		}
		if u.typ != refU.typ || !bytes.Equal(u.data, refU.data) || u.fileSize != refU.fileSize ||
			u.fanout != refU.fanout || u.hashType != refU.hashType || len(u.blockSizes) != len(refU.blockSizes) {
			t.Fatalf("decodeUnixFS %+v, reference %+v", u, refU)
		}
		for i := range u.blockSizes {
			if u.blockSizes[i] != refU.blockSizes[i] {
				t.Fatalf("blocksize %d: %d, reference %d", i, u.blockSizes[i], refU.blockSizes[i])
			}
		}
	})
}
