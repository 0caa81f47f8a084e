// Hearth page loader, served at /.hearth/hearth.js. A site's pages include
//
//   <script src="/.hearth/hearth.js" defer></script>
//
// It registers the service worker for the configured scope, relays the
// worker's reports as DOM events, and starts the page agent (Go wasm: relay
// and WebRTC, which a service worker cannot hold). On a page the worker
// controls, the agent starts at once: the page's subresources go through
// the worker, which asks the agent's peers for them (and, with the origin
// unreachable, waits for the agent). On a page it does not control yet
// (the first visit), the agent starts after the load event, so that it
// never competes with the page for the network.
//
// Events, on window:
//   "hearth:stats"  detail: {cache, peer, origin, passthrough, responses,
//                   peerFailures, originFailures, last}: block bytes this page
//                   used by source, summed, and the last response's report.
//   "hearth:error"  detail: {reason, detail}: a refused root record, a full
//                   cache, an agent that failed to start.
//   "hearth:root"   detail: {seq, root}: the worker accepted a newer root
//                   record (the site was republished; pushed through the
//                   relay to page agents, or from the origin): the next
//                   navigation shows it.
// An element with id "hearth-stats", if the page has one, shows the totals.
// API: window.hearth = {config, stats(), reports(), canSeed, seeding(),
// seed(on), agent: Promise}: reports() returns the last 256 per-response
// reports of the worker.
//
// Tab seeding (this tab serving what the worker cached to other visitors)
// needs two yeses: the operator's (config tabSeeding, which sets canSeed)
// and the visitor's, through seed(on), which a site binds to a button of
// its own. The visitor's choice is kept in localStorage
// ("hearth:tab-seeding") for every page of the origin, off until given;
// seed(on) returns false, changing nothing, where the operator has not
// allowed seeding. Each change fires "hearth:seeding" (detail: {on}).
//
// The origin replaces the two markers below.
(() => {
  'use strict';
  const config = /*HEARTH_CONFIG*/ {};
  const assets = /*HEARTH_ASSETS*/ { swScript: '/.hearth/sw.js', wasmExec: '/.hearth/wasm_exec.js', agent: '/.hearth/agent.wasm' };
  const totals = { cache: 0, peer: 0, origin: 0, passthrough: 0, responses: 0, peerFailures: 0, originFailures: 0 };
  const reports = [];
  const canSeed = !!config.tabSeeding;
  const consentKey = 'hearth:tab-seeding';
  let seeding = false;
  try { seeding = canSeed && localStorage.getItem(consentKey) === 'on'; } catch (e) { /* storage blocked: off */ }
  let agentAPI = null;
  let agentResolve;
  const agentReady = new Promise((resolve) => { agentResolve = resolve; });

  const emit = (type, detail) => window.dispatchEvent(new CustomEvent(type, { detail }));

  window.hearth = {
    config,
    stats: () => Object.assign({}, totals),
    reports: () => reports.slice(),
    canSeed,
    seeding: () => seeding,
    seed(on) {
      if (!canSeed) return false;
      seeding = !!on;
      try { localStorage.setItem(consentKey, seeding ? 'on' : 'off'); } catch (e) { /* kept for this page only */ }
      if (agentAPI) agentAPI.seed(seeding);
      emit('hearth:seeding', { on: seeding });
      return true;
    },
    agent: agentReady,
  };

  // showStats fills an element with id "hearth-stats", if the page has
  // one, with where this page's bytes came from.
  const fmt = (n) => (n < 1024 ? n + ' B' : n < 1 << 20 ? (n / 1024).toFixed(1) + ' KiB' : (n / (1 << 20)).toFixed(2) + ' MiB');
  const showStats = () => {
    const el = document.getElementById('hearth-stats');
    if (!el) return;
    el.textContent = 'from peers ' + fmt(totals.peer) + ' · from cache ' + fmt(totals.cache) +
      ' · from origin ' + fmt(totals.origin) + ' · ' + totals.responses + ' responses, every block verified';
  };

  if (!('serviceWorker' in navigator)) return;

  const take = (m) => {
    totals.responses++;
    totals.cache += m.cache || 0;
    totals.peer += m.peer || 0;
    totals.origin += m.origin || 0;
    totals.peerFailures += m.peerFailures || 0;
    totals.originFailures += m.originFailures || 0;
    if (m.passthrough) totals.passthrough++;
    reports.push(m);
    if (reports.length > 256) reports.shift();
    emit('hearth:stats', Object.assign({ last: m }, totals));
  };

  navigator.serviceWorker.addEventListener('message', (event) => {
    const m = event.data;
    if (!m || typeof m.type !== 'string') return;
    if (m.type === 'hearth:stats-batch') {
      // The worker posts a page's reports together, as JSON text.
      let list = [];
      try { list = JSON.parse(m.reports); } catch (e) { return; }
      if (!Array.isArray(list)) return;
      list.forEach(take);
      showStats();
    } else if (m.type === 'hearth:error') {
      emit('hearth:error', { reason: m.reason, detail: m.detail });
    } else if (m.type === 'hearth:root') {
      // The worker accepted a newer root record: the site was
      // republished, and the next navigation shows it.
      emit('hearth:root', { seq: m.seq, root: m.root });
    } else if (m.type === 'hearth:reconnect' && agentAPI) {
      // The worker was stopped and started again: the agent's port to
      // the old instance is dead.
      connectAgent(agentAPI);
    }
  });

  const registered = navigator.serviceWorker
    .register(assets.swScript, { scope: config.scope || '/', updateViaCache: 'none' })
    .catch((err) => emit('hearth:error', { reason: 'register', detail: String(err) }));

  // connectAgent hands the agent a MessageChannel to the active worker,
  // again whenever a new worker takes over.
  const connectAgent = async (api) => {
    const reg = await navigator.serviceWorker.ready;
    const ch = new MessageChannel();
    api.setPort(ch.port1);
    reg.active.postMessage({ type: 'hearth:agent' }, [ch.port2]);
  };

  const startAgent = async () => {
    if (!assets.agent) return;
    await registered;
    await new Promise((resolve, reject) => {
      if (typeof Go === 'function') return resolve();
      const s = document.createElement('script');
      s.src = assets.wasmExec;
      s.onload = resolve;
      s.onerror = () => reject(new Error('loading ' + assets.wasmExec));
      document.head.appendChild(s);
    });
    const go = new Go();
    const started = new Promise((resolve) => { window.hearthAgentReady = resolve; });
    const { instance } = await WebAssembly.instantiateStreaming(fetch(assets.agent), go.importObject);
    go.run(instance);
    const api = await started; // {setPort(port), seed(on), stats()}
    agentAPI = api;
    api.seed(seeding);
    await connectAgent(api);
    navigator.serviceWorker.addEventListener('controllerchange', () => connectAgent(api));
    window.addEventListener('pagehide', () => api.bye());
    agentResolve(api);
  };

  const onLoad = () => startAgent().catch((err) => emit('hearth:error', { reason: 'agent', detail: String(err) }));
  if (document.readyState === 'complete' || navigator.serviceWorker.controller) onLoad();
  else window.addEventListener('load', onLoad, { once: true });
})();
