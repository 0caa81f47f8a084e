// Hearth service worker bootstrap, served at /.hearth/sw.js with
// "Service-Worker-Allowed: /" so that it may control the whole site.
//
// A service worker must add its listeners while its script first runs, but
// Go's wasm starts asynchronously: so this shim adds them at once, starts
// the wasm (compiled while streaming), and hands each request it takes to
// Go once Go is ready. Requests that are not the worker's business are not
// touched at all: no respondWith, the browser fetches them as if there were
// no worker. If Go fails or declines (resolves null), the network answers.
//
// A navigation that arrives while the wasm is still booting (the worker was
// stopped while idle and restarts cold) goes to the network: the page does
// not wait for the boot, and its subresources, which do, are served from a
// freshly fetched root record (the worker does not know the page, so it
// fetches the record again). If the network fails (the origin is down) or
// answers 502–504, the navigation comes back to the worker once booted.
//
// Hearth's own files (the loader, wasm_exec.js, both wasm modules) are kept
// in Cache Storage (hearthShellCache) from install on, and served from
// there when the network fails: with the origin down, pages still start
// their agent and the worker still boots. The hashed names are immutable
// and served from the cache first; the loader, which is not, from the
// network first.
//
// The origin replaces the markers below.
'use strict';
self.hearthConfig = /*HEARTH_CONFIG*/ {};
const hearthAssets = /*HEARTH_ASSETS*/ { wasmExec: '/.hearth/wasm_exec.js', sw: '/.hearth/sw.wasm' };
importScripts(hearthAssets.wasmExec);

let hearthSignalReady;
const hearthGoReady = new Promise((resolve) => { hearthSignalReady = resolve; });
self.hearthReady = () => hearthSignalReady();

const hearthShellCache = 'hearth-shell-v1';
const hearthLoader = '/.hearth/hearth.js';
// hearthShell lists Hearth's own files the worker keeps.
const hearthShell = [hearthLoader, hearthAssets.wasmExec, hearthAssets.sw, hearthAssets.agent].filter((x) => x);

// hearthShellFetch answers a request for one of hearthShell's paths: an
// immutable (hashed) one from the cache first, the loader from the network
// first; whatever the network gives that is 200 is kept, and the cached
// copy answers when the network fails or gives 5xx.
async function hearthShellFetch(req, path) {
  const cache = await caches.open(hearthShellCache).catch(() => null);
  const cached = () => (cache ? cache.match(path) : Promise.resolve(undefined));
  if (path !== hearthLoader) {
    const hit = await cached();
    if (hit) return hit;
  }
  let resp;
  try {
    resp = await fetch(req);
  } catch (e) {
    const hit = await cached();
    if (hit) return hit;
    throw e;
  }
  if (resp.status === 200 && cache) {
    await cache.put(path, resp.clone()).catch(() => {});
  } else if (resp.status >= 500) {
    const hit = await cached();
    if (hit) return hit;
  }
  return resp;
}

// hearthKeepShell fills hearthShellCache and drops what older builds kept.
async function hearthKeepShell() {
  await Promise.all(hearthShell.map((p) => hearthShellFetch(new Request(p), p).catch(() => null)));
  const cache = await caches.open(hearthShellCache);
  for (const r of await cache.keys()) {
    if (!hearthShell.includes(new URL(r.url).pathname)) await cache.delete(r);
  }
}

const hearthBootStart = performance.now();
let hearthBooted = false;
const hearthBoot = (async () => {
  const go = new Go();
  const { instance } = await WebAssembly.instantiateStreaming(hearthShellFetch(new Request(hearthAssets.sw), hearthAssets.sw), go.importObject);
  self.hearthCompileMs = performance.now() - hearthBootStart;
  go.run(instance); // resolves only if Go exits, which it does not
  await hearthGoReady;
  self.hearthBootMs = performance.now() - hearthBootStart;
  hearthBooted = true;
})();
hearthBoot.catch(() => {}); // each request falls back to the network

// A worker that starts again (the browser stops idle workers) has lost the
// page agents' ports: it asks the pages it controls to connect their agents
// anew, so that a navigation arriving cold can be served through the agent
// of the page being left.
hearthBoot.then(() => self.clients.matchAll({ type: 'window' }))
  .then((cs) => cs.forEach((c) => c.postMessage({ type: 'hearth:reconnect' })))
  .catch(() => {});

const hearthOwn = ['/.hearth/', '/.well-known/hearth/', '/ipfs/'];

// hearthTakes mirrors the Go worker's check, so that requests outside its
// business never wait for the wasm to boot.
function hearthTakes(req) {
  if (req.method !== 'GET' && req.method !== 'HEAD') return false;
  if (req.cache === 'no-store' || req.cache === 'only-if-cached') return false;
  const url = new URL(req.url);
  if (url.origin !== self.location.origin) return false;
  const p = url.pathname;
  if (hearthOwn.some((x) => p.startsWith(x))) return false;
  return (self.hearthConfig.prefixes || ['/']).some((x) => p.startsWith(x));
}

self.addEventListener('install', (event) => {
  event.waitUntil(Promise.all([hearthBoot, hearthKeepShell().catch(() => {})]).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  event.waitUntil(self.clients.claim());
});

self.addEventListener('fetch', (event) => {
  const req = event.request;
  const url = new URL(req.url);
  if (req.method === 'GET' && url.origin === self.location.origin && hearthShell.includes(url.pathname)) {
    event.respondWith(hearthShellFetch(req, url.pathname));
    return;
  }
  if (!hearthTakes(req)) return;
  const viaGo = () => hearthBoot.then(() => new Promise((resolve) => goHandleFetch(req, event.clientId, event.resultingClientId, resolve)));
  if (req.mode === 'navigate' && !hearthBooted) { // cold: see above
    event.respondWith(
      fetch(req).then(
        (resp) => (resp.status >= 502 && resp.status <= 504 ? viaGo().then((r) => r || resp, () => resp) : resp),
        (err) => viaGo().then((r) => r || Promise.reject(err)),
      ),
    );
    return;
  }
  event.respondWith(
    viaGo()
      .then((resp) => resp || fetch(req))
      .catch(() => fetch(req)),
  );
});

// Helpers Go calls, so that one call across the wasm boundary does what
// would otherwise take one per property or per header.

// hearthResponse builds a Response; headers is "name\nvalue\n..." .
self.hearthResponse = (body, status, headers) => {
  const h = new Headers();
  const kv = headers ? headers.split('\n') : [];
  for (let i = 0; i + 1 < kv.length; i += 2) h.append(kv[i], kv[i + 1]);
  return new Response(body, { status, headers: h });
};

// hearthPutAll writes blocks to a Cache: keys[i] gets the bytes datas[i].
// It resolves to the keys whose put failed, each with its error's name.
self.hearthPutAll = (cache, keys, datas) =>
  Promise.all(keys.map((k, i) => cache.put(k, new Response(datas[i])).then(() => null, (e) => [k, e && e.name ? e.name : String(e)])))
    .then((r) => r.filter((x) => x !== null));

// hearthSizes resolves to the byte size of each request's entry in a Cache
// (-1 where it has none or cannot be read), from the body's Blob, which the
// browser sizes without reading it.
self.hearthSizes = (cache, reqs) =>
  Promise.all(reqs.map((r) => cache.match(r).then((res) => (res ? res.blob().then((b) => b.size) : -1), () => -1)));

// hearthPost posts msg to the client with this id, if it still exists.
self.hearthPost = (id, msg) => self.clients.get(id).then((c) => c && c.postMessage(msg), () => {});

self.addEventListener('message', (event) => {
  const source = event.source && event.source.id ? event.source.id : '';
  const ports = event.ports ? Array.from(event.ports) : [];
  if (event.data && event.data.type === 'hearth:boot-time') {
    hearthBoot.then(() => event.source && event.source.postMessage({ type: 'hearth:boot-time', ms: self.hearthBootMs, compileMs: self.hearthCompileMs, mainMs: self.hearthMainAt - hearthBootStart }));
    return;
  }
  hearthBoot.then(() => goHandleMessage(event.data, ports, source)).catch(() => {});
});
