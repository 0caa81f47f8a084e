// The operator dashboard: draws the samples the origin sends over its
// event stream. Every number comes from the origin's metrics as sampled;
// rates are differences of consecutive samples.
'use strict';

const KINDS = ['file', 'raw', 'car', 'record', 'records', 'events'];
const STATIC = ['file', 'raw', 'car'];
const NS = 'http://www.w3.org/2000/svg';
let samples = [];
let interval = 1000;

const $ = (id) => document.getElementById(id);
const css = (name) => getComputedStyle(document.documentElement).getPropertyValue('--' + name).trim();
const staticBytes = (s) => STATIC.reduce((a, k) => a + (s.originBytes[k] || 0), 0);

function fmtBytes(n) {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n.toFixed(0) : n.toFixed(n < 10 ? 2 : 1)) + ' ' + u[i];
}
const fmtPct = (x) => (100 * x).toFixed(1) + ' %';

// setNum shows v formatted and keeps the exact value in data-value.
function setNum(id, v, fmt) {
  const el = $(id);
  el.dataset.value = String(v);
  el.textContent = fmt ? fmt(v) : String(v);
}

function el(name, attrs, parent) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}

// plot draws series (arrays of numbers, stacked when stacked) as areas in svg.
function plot(svg, series, colors, opts) {
  svg.replaceChildren();
  // Drawn at the size shown, so that text is not stretched.
  const W = svg.clientWidth || 600;
  const H = svg.clientHeight || 180;
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  const n = series.length ? series[0].length : 0;
  let max = opts.max;
  if (max === undefined) {
    max = 0;
    for (let i = 0; i < n; i++) {
      let sum = 0;
      for (const s of series) sum = opts.stacked ? sum + s[i] : Math.max(sum, s[i]);
      max = Math.max(max, sum);
    }
    max = max || 1;
  }
  for (const f of [0.25, 0.5, 0.75]) el('line', { x1: 0, x2: W, y1: H * f, y2: H * f, class: 'grid' }, svg);
  const t = el('text', { x: 4, y: 11, class: 'axis' }, svg);
  t.textContent = opts.label(max);
  if (n < 2) return;
  const x = (i) => (W * i) / (n - 1);
  const y = (v) => H - (H * v) / max;
  const base = new Array(n).fill(0);
  series.forEach((s, si) => {
    const top = s.map((v, i) => (opts.stacked ? base[i] : 0) + v);
    let d = 'M' + x(0) + ' ' + y(top[0]);
    for (let i = 1; i < n; i++) d += 'L' + x(i) + ' ' + y(top[i]);
    if (opts.stacked) {
      for (let i = n - 1; i >= 0; i--) d += 'L' + x(i) + ' ' + y(base[i]);
    } else {
      d += 'L' + W + ' ' + H + 'L0 ' + H;
    }
    el('path', { d: d + 'Z', fill: colors[si], 'fill-opacity': 0.75, stroke: colors[si], 'stroke-width': 1.5 }, svg);
    if (opts.stacked) top.forEach((v, i) => { base[i] = v; });
  });
}

function rates(key) {
  const out = [];
  for (let i = 1; i < samples.length; i++) {
    const dt = Math.max(1, samples[i].t - samples[i - 1].t) / 1000;
    out.push(Math.max(0, key(samples[i]) - key(samples[i - 1])) / dt);
  }
  return out;
}

function draw(records) {
  const s = samples[samples.length - 1];
  if (!s) return;
  const origin = staticBytes(s);
  const total = origin + s.peerBytes;
  setNum('origin-static', origin, fmtBytes);
  setNum('peer-bytes', s.peerBytes, fmtBytes);
  setNum('streams', s.streams);
  setNum('clients', s.clients);
  setNum('seq', s.seq, (v) => '#' + v);
  setNum('published', s.published);
  $('peers-up').textContent = s.peers ? `${s.peersUp} of ${s.peers} seeders answering` : 'no --dashboard-peer given';
  if (s.peers) {
    setNum('offload', total ? s.peerBytes / total : 0, fmtPct);
    $('offload-empty').textContent = '';
  } else {
    $('offload').dataset.value = '';
    $('offload').textContent = 'n/a';
    $('offload-note').textContent = 'no seeder metrics to compare with';
    $('offload-empty').textContent = 'No source of peer bytes: run `hearth origin --dashboard-peer URL` with your seeders\' addresses to plot offload. Meanwhile the origin\'s own bytes are drawn below.';
  }

  // Offload per interval: the seeders' share of the static bytes served in it.
  const o = rates(staticBytes);
  const p = rates((x) => x.peerBytes);
  plot($('offload-plot'), [o.map((v, i) => (v + p[i] > 0 ? p[i] / (v + p[i]) : 0))], [css('peer')],
    { max: 1, label: () => '100 %' });

  plot($('rate-plot'), KINDS.map((k) => rates((x) => x.originBytes[k] || 0)), KINDS.map(css),
    { stacked: true, label: (m) => fmtBytes(m) + '/s' });
  $('rate-legend').replaceChildren(...KINDS.map((k) => {
    const span = document.createElement('span');
    span.innerHTML = `<i class="swatch" style="background:${css(k)}"></i>${k}`;
    return span;
  }));

  // Bytes by source: one bar, origin and seeders.
  const bar = $('source-bar');
  bar.replaceChildren();
  const denom = total || 1;
  el('rect', { x: 0, y: 0, width: (400 * origin) / denom, height: 36, fill: css('origin') }, bar);
  el('rect', { x: (400 * origin) / denom, y: 0, width: (400 * s.peerBytes) / denom, height: 36, fill: css('peer') }, bar);
  $('sources').innerHTML = '';
  for (const [name, v, color] of [['origin', origin, css('origin')], ['seeders', s.peerBytes, css('peer')]]) {
    const tr = $('sources').insertRow();
    tr.innerHTML = `<td><i class="swatch" style="background:${color}"></i>${name}</td><td class="num" data-source="${name}" data-value="${v}">${fmtBytes(v)}</td><td class="num">${total ? fmtPct(v / total) : '–'}</td>`;
  }

  plot($('streams-plot'), [samples.map((x) => x.streams)], [css('record')], { label: (m) => m + (m === 1 ? ' stream' : ' streams') });
  $('kinds').innerHTML = '<tr><th>kind</th><th class="num">requests</th><th class="num">bytes</th></tr>';
  for (const k of KINDS) {
    const tr = $('kinds').insertRow();
    const b = s.originBytes[k] || 0;
    const r = s.requests[k] || 0;
    tr.innerHTML = `<td><i class="swatch" style="background:${css(k)}"></i>${k}</td><td class="num" data-kind="${k}" data-requests="${r}">${r}</td><td class="num" data-kind="${k}" data-bytes="${b}">${fmtBytes(b)}</td>`;
  }

  const tbody = $('records').tBodies[0];
  tbody.innerHTML = '';
  for (const r of records) {
    const tr = tbody.insertRow();
    tr.innerHTML = `<td class="num">${r.seq}</td><td class="root"></td><td>${new Date(r.published).toLocaleString()}</td>`;
    tr.cells[1].textContent = r.root;
  }
  const span = samples.length > 1 ? Math.round((s.t - samples[0].t) / 1000) : 0;
  const ago = span >= 120 ? `${Math.round(span / 60)} min ago` : `${span} s ago`;
  for (const id of ['offload-span', 'rate-span', 'streams-span']) $(id).textContent = ago;
  document.body.dataset.sampled = String(s.t);
}

function connect() {
  const es = new EventSource('events');
  es.addEventListener('open', () => { $('live').textContent = 'live'; $('live').classList.remove('off'); });
  es.addEventListener('error', () => { $('live').textContent = 'reconnecting…'; $('live').classList.add('off'); });
  es.addEventListener('history', (e) => {
    const u = JSON.parse(e.data);
    interval = u.interval;
    samples = u.samples;
    draw(u.records);
  });
  es.addEventListener('sample', (e) => {
    const u = JSON.parse(e.data);
    samples.push(...u.samples);
    if (samples.length > 900) samples.splice(0, samples.length - 900);
    draw(u.records);
  });
}

connect();
