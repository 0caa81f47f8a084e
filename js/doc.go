// Package hearthjs serves Hearth's browser client from assets embedded in
// the hearth binary: the page loader, the service worker and its wasm, the
// page agent's wasm, Go's wasm_exec.js and the client configuration.
//
// A site's pages include one line:
//
//	<script src="/.hearth/hearth.js" defer></script>
//
// # Paths
//
// Handler answers GET and HEAD under Prefix (/.hearth/):
//
//	/.hearth/hearth.js            page loader (js/src/hearth.js) with the
//	                              configuration and asset names inlined; no-cache
//	/.hearth/sw.js                service-worker bootstrap (js/src/sw.js), same
//	                              inlining; no-cache; Service-Worker-Allowed: /
//	                              so that it may control the scope configured
//	/.hearth/config.json          the configuration (jsconfig.Config); no-cache
//	/.hearth/sw.{hash}.wasm       the service worker (wasm/sw)
//	/.hearth/agent.{hash}.wasm    the page agent (wasm/agent)
//	/.hearth/wasm_exec.{hash}.js  Go's wasm support script
//
// {hash} is the first 16 hex digits of the file's SHA-256: those names are
// immutable (Cache-Control: public, max-age=31536000, immutable), and a new
// build changes sw.js's bytes, which makes browsers install the new worker.
// The same files under their plain names (sw.wasm, …) are served no-cache.
// Each file is sent brotli- or gzip-compressed when the request accepts it
// (Accept-Encoding, Vary), from the precompressed copies `make wasm` writes;
// ETag and If-None-Match are supported.
//
// The wasm binaries are build outputs: `make wasm` writes them to js/dist,
// which this package embeds. New returns an error wrapping ErrNoAssets when
// they are missing; Options.Assets serves another directory (tests build
// into a temporary one with jsbuild.Build).
package hearthjs
