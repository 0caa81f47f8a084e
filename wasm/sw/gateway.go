//go:build js && wasm

package main

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"syscall/js"

	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/wasm/internal/jsx"
	"github.com/hearthcdn/hearth/wasm/internal/serve"
)

// gatewaySource asks the origin's Trustless Gateway for a CAR:
//
//	GET {base}/ipfs/{root}/{path}?format=car&dag-scope={scope}[&entity-bytes={from}:{to}]
//	Accept: application/vnd.ipld.car; version=1; order=dfs; dups=n
//
// and streams its blocks as they arrive (fetch's ReadableStream). It is
// not trusted: serve verifies every block.
type gatewaySource struct{ base string }

var _ serve.Source = (*gatewaySource)(nil)

func (g *gatewaySource) Kind() serve.Kind { return serve.FromOrigin }

// URL returns the gateway URL for req.
func (g *gatewaySource) URL(req node.Request) string {
	var b strings.Builder
	b.WriteString(g.base)
	b.WriteString("/ipfs/")
	b.WriteString(req.Root.String())
	for _, s := range req.Path {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	b.WriteString("?format=car&dag-scope=")
	b.WriteString(string(req.Scope))
	if req.Bytes != nil {
		b.WriteString("&entity-bytes=")
		b.WriteString(req.Bytes.String())
	}
	return b.String()
}

func (g *gatewaySource) Open(ctx context.Context, req node.Request) (serve.Stream, error) {
	u := g.URL(req)
	ctx, cancel := context.WithCancel(ctx)
	ac := jsx.Global().Get("AbortController").New()
	stop := context.AfterFunc(ctx, func() { ac.Call("abort") })
	fail := func(err error) (serve.Stream, error) {
		stop()
		cancel()
		return nil, err
	}
	hdr := jsx.Object(map[string]any{"Accept": "application/vnd.ipld.car; version=1; order=dfs; dups=n"})
	opts := jsx.Object(map[string]any{"headers": hdr, "signal": ac.Get("signal"), "credentials": "same-origin"})
	p, err := jsx.Try(func() js.Value { return jsx.Global().Call("fetch", u, opts) })
	if err != nil {
		return fail(fmt.Errorf("fetching %s: %w", u, err))
	}
	resp, err := jsx.Await(ctx, p)
	if err != nil {
		return fail(fmt.Errorf("fetching %s: %w", u, err))
	}
	if st := resp.Get("status").Int(); st != 200 {
		_, _ = jsx.Try(func() js.Value { return resp.Get("body").Call("cancel") })
		return fail(fmt.Errorf("fetching %s: status %d", u, st))
	}
	body, err := jsx.NewBodyReader(ctx, resp.Get("body"))
	if err != nil {
		return fail(err)
	}
	cr, err := node.NewCARReader(body)
	if err != nil {
		body.Close()
		return fail(fmt.Errorf("%s: %w", u, err))
	}
	return &carStream{cr: cr, body: body, stop: func() { stop(); cancel(); ac.Call("abort") }}, nil
}

type carStream struct {
	cr   *node.CARReader
	body *jsx.BodyReader
	stop func()
}

func (s *carStream) Next() (node.Block, error) { return s.cr.Next() }

func (s *carStream) Close() error {
	s.body.Close()
	s.stop()
	return nil
}
