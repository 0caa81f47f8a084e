//go:build js && wasm

// Command sw is Hearth's service worker, compiled to js/wasm and started by
// the bootstrap /.hearth/sw.js (js/src/sw.js), which adds the event
// listeners synchronously and calls into Go once it has booted:
//
//	goHandleFetch(request, clientId, resultingClientId, resolve)
//	    resolve(Response) or resolve(null): fetch the request from the
//	    network, untouched.
//	goHandleMessage(data, ports, sourceClientId)
//	    a page registering its agent's MessagePort, or an agent message.
//
// The configuration is the object the bootstrap inlines as
// self.hearthConfig (jsconfig.Config). When Go has registered both
// functions it calls self.hearthReady().
//
// What it does with a request is in serve's documentation; where blocks
// come from (cache, page agent, origin gateway) and how roots are chosen
// is in worker.go.
package main

import (
	"syscall/js"

	"github.com/hearthcdn/hearth/wasm/internal/jsx"
)

func main() {
	g := jsx.Global()
	g.Set("hearthMainAt", g.Get("performance").Call("now")) // boot timing: Go's runtime and package init are done
	cfg, err := configFrom(g.Get("hearthConfig"))
	if err != nil {
		// Without a configuration every request passes through.
		g.Set("goHandleFetch", js.FuncOf(func(js.Value, []js.Value) any { return js.Null() }))
		g.Set("goHandleMessage", js.FuncOf(func(js.Value, []js.Value) any { return nil }))
		g.Set("hearthConfigError", err.Error())
		g.Call("hearthReady")
		select {}
	}
	w := newWorker(cfg)
	g.Set("goHandleFetch", js.FuncOf(w.jsFetch))
	g.Set("goHandleMessage", js.FuncOf(w.jsMessage))
	g.Call("hearthReady")
	w.start()
	select {} // the worker lives as long as the service worker
}
