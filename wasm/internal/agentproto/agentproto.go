//go:build js && wasm

// Package agentproto is the protocol between the service worker and a page
// agent, over a MessagePort the page hands to the worker (hearth.js posts
// {type: "hearth:agent"} with the port). Messages are plain objects
// (structured clone); block bytes are ArrayBuffers, transferred.
//
// Service worker → agent:
//
//	{t: "req", id, root, path, scope, from, to, toEnd, credit}
//	    A Trustless Gateway request (node.Request): root CID string, path
//	    segments, dag-scope, entity-bytes (from/to inclusive, negative from
//	    the end; toEnd for "*"; from absent for the whole entity). credit is
//	    how many block bytes the agent may send before the next grant.
//	{t: "want", id, cids: [ArrayBuffer]}
//	                        single raw blocks, answered by "blocks" messages
//	                        in any order, the last with end: true, or by an
//	                        "end" (with err when some were not found). Only
//	                        to an agent whose "status" says want: true.
//	{t: "credit", id, n}    n more bytes may be sent.
//	{t: "cancel", id}       stop sending; no "end" is needed.
//
// Agent → service worker:
//
//	{t: "status", peers, connected, want}
//	                        how many peers the agent knows, and of them is
//	                        connected to (absent: none); the worker asks
//	                        only agents with peers, the newest connected one
//	                        first. want: the agent reads "want".
//	{t: "blocks", id, cids: [ArrayBuffer], data: [ArrayBuffer], end}
//	                        the next blocks of the answer, in traversal order;
//	                        end (optional, true) makes it the last message,
//	                        as a successful "end" would.
//	{t: "end", id, err}     the answer is complete (err absent) or failed.
//	{t: "record", rec}      a root record's wire form, from the relay; the
//	                        worker verifies it like one from the origin.
//	{t: "bye"}              the agent is going away (pagehide).
//
// The worker verifies every block; an agent is a convenience, not trusted.
package agentproto

import (
	"fmt"
	"syscall/js"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/wasm/internal/jsx"
)

// Message types.
const (
	TypeRequest = "req"
	TypeWant    = "want"
	TypeCredit  = "credit"
	TypeCancel  = "cancel"
	TypeStatus  = "status"
	TypeBlocks  = "blocks"
	TypeEnd     = "end"
	TypeRecord  = "record"
	TypeBye     = "bye"
)

// EncodeRequest returns the "req" message for req.
func EncodeRequest(id uint64, req node.Request, credit int) js.Value {
	path := make([]any, len(req.Path))
	for i, s := range req.Path {
		path[i] = s
	}
	m := map[string]any{
		"t": TypeRequest, "id": float64(id), "root": req.Root.String(),
		"path": path, "scope": string(req.Scope), "credit": credit,
	}
	if req.Bytes != nil {
		m["from"] = float64(req.Bytes.From)
		m["to"] = float64(req.Bytes.To)
		m["toEnd"] = req.Bytes.ToEnd
	}
	return jsx.Object(m)
}

// MaxWant bounds the CIDs of a "want" an agent accepts.
const MaxWant = 256

// EncodeWant returns the "want" message for cids.
func EncodeWant(id uint64, cids []cid.Cid) js.Value {
	list := make([]any, len(cids))
	for i, c := range cids {
		list[i] = jsx.Uint8Array(c.Bytes())
	}
	return jsx.Object(map[string]any{"t": TypeWant, "id": float64(id), "cids": list})
}

// DecodeWant parses a "want" message: at most MaxWant raw-codec CIDs.
func DecodeWant(v js.Value) (id uint64, cids []cid.Cid, err error) {
	id = uint64(v.Get("id").Float())
	list := v.Get("cids")
	if list.Type() != js.TypeObject || list.Length() == 0 || list.Length() > MaxWant {
		return id, nil, fmt.Errorf("want message: %w", jsx.ErrJS)
	}
	cids = make([]cid.Cid, list.Length())
	for i := range cids {
		b, err := jsx.Bytes(list.Index(i))
		if err != nil {
			return id, nil, err
		}
		if cids[i], err = cid.Cast(b); err != nil {
			return id, nil, fmt.Errorf("wanted CID: %w", err)
		}
		if cids[i].Prefix().Codec != node.CodecRaw {
			return id, nil, fmt.Errorf("wanted %s is not a raw block", cids[i])
		}
	}
	return id, cids, nil
}

// DecodeRequest parses a "req" message.
func DecodeRequest(v js.Value) (id uint64, req node.Request, credit int, err error) {
	id = uint64(v.Get("id").Float())
	req.Root, err = node.ParseCID(jsx.String(v.Get("root")))
	if err != nil {
		return 0, req, 0, fmt.Errorf("request root: %w", err)
	}
	if p := v.Get("path"); p.Type() == js.TypeObject {
		for i := 0; i < p.Length(); i++ {
			req.Path = append(req.Path, jsx.String(p.Index(i)))
		}
	}
	if req.Scope, err = node.ParseScope(jsx.String(v.Get("scope"))); err != nil {
		return 0, req, 0, err
	}
	if f := v.Get("from"); f.Type() == js.TypeNumber {
		req.Bytes = &node.ByteRange{From: int64(f.Float()), To: int64(v.Get("to").Float()), ToEnd: v.Get("toEnd").Truthy()}
	}
	if c := v.Get("credit"); c.Type() == js.TypeNumber {
		credit = c.Int()
	}
	return id, req, credit, nil
}

// EncodeBlocks returns a "blocks" message and the list of its buffers to
// transfer; last marks the answer complete.
func EncodeBlocks(id uint64, blocks []node.Block, last bool) (msg, transfer js.Value) {
	cids := make([]any, len(blocks))
	data := make([]any, len(blocks))
	tr := make([]any, 0, 2*len(blocks))
	for i, b := range blocks {
		c := jsx.Uint8Array(b.Cid.Bytes())
		d := jsx.Uint8Array(b.Data)
		cids[i], data[i] = c.Get("buffer"), d.Get("buffer")
		tr = append(tr, cids[i], data[i])
	}
	msg = jsx.Object(map[string]any{"t": TypeBlocks, "id": float64(id), "cids": cids, "data": data})
	if last {
		msg.Set("end", true)
	}
	return msg, js.ValueOf(tr)
}

// DecodeBlocks parses a "blocks" message's blocks (copied into Go memory).
func DecodeBlocks(v js.Value) ([]node.Block, error) {
	cids, data := v.Get("cids"), v.Get("data")
	if cids.Type() != js.TypeObject || data.Type() != js.TypeObject || cids.Length() != data.Length() {
		return nil, fmt.Errorf("blocks message: %w", jsx.ErrJS)
	}
	out := make([]node.Block, cids.Length())
	for i := range out {
		cb, err := jsx.Bytes(cids.Index(i))
		if err != nil {
			return nil, err
		}
		c, err := cid.Cast(cb)
		if err != nil {
			return nil, fmt.Errorf("block CID: %w", err)
		}
		d, err := jsx.Bytes(data.Index(i))
		if err != nil {
			return nil, err
		}
		out[i] = node.Block{Cid: c, Data: d}
	}
	return out, nil
}

// Simple returns a message with only a type and the given fields.
func Simple(t string, kv map[string]any) js.Value {
	m := map[string]any{"t": t}
	for k, v := range kv {
		m[k] = v
	}
	return jsx.Object(m)
}

// The service worker's block cache, which a seeding agent reads: Cache
// Storage BlockCacheName, one entry per block at BlockKey, the block's
// bytes as the body. Entries are verified on every read.
const (
	BlockCacheName = "hearth-blocks-v1"
	blockKeyPath   = "/.hearth/block/"
)

// BlockKey returns the cache key of block c for a site at origin.
func BlockKey(origin string, c cid.Cid) string { return origin + blockKeyPath + c.String() }
