/**
 * GET / on the admin port: one self-contained HTML page (inline CSS and JS, no framework, no CDN, nothing to
 * build), so it works offline inside a cluster. It polls /stats every second and draws the figures with small
 * SVG sparklines over the history /stats returns. Every value is inserted as text (never as HTML).
 */
export const STATUS_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>bridge-sidecar status</title>
<style>
  :root { --fg:#1d2330; --muted:#6b7280; --line:#e5e7eb; --bg:#f7f8fa; --card:#fff; --ok:#15803d; --warn:#b45309; --bad:#b91c1c; --accent:#2563eb; }
  * { box-sizing: border-box; }
  body { margin:0; font:13px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color:var(--fg); background:var(--bg); }
  header { display:flex; gap:16px; align-items:baseline; padding:10px 16px; background:#111827; color:#f9fafb; flex-wrap:wrap; }
  header h1 { font-size:16px; margin:0; }
  header .meta { color:#cbd5e1; font-size:12px; }
  #conn.down { color:#fca5a5; font-weight:600; }
  main { display:grid; grid-template-columns:repeat(auto-fit, minmax(440px, 1fr)); gap:12px; padding:12px; }
  section { overflow-x:auto; background:var(--card); border:1px solid var(--line); border-radius:6px; padding:10px 12px; }
  section.wide { grid-column:1 / -1; }
  h2 { font-size:13px; margin:0 0 8px; text-transform:uppercase; letter-spacing:.04em; color:var(--muted); }
  table { border-collapse:collapse; width:100%; }
  th, td { text-align:right; padding:3px 6px; border-bottom:1px solid var(--line); white-space:nowrap; font-variant-numeric:tabular-nums; }
  th:first-child, td:first-child { text-align:left; }
  th { font-weight:600; color:var(--muted); font-size:12px; }
  td.spark { width:124px; padding:1px 4px; }
  svg.spark { width:120px; height:22px; display:block; }
  svg.spark polyline { fill:none; stroke:var(--accent); stroke-width:1.3; }
  .s5 { color:var(--bad); } .s4 { color:var(--warn); } .s2 { color:var(--ok); }
  .bar { background:var(--line); border-radius:3px; height:8px; width:120px; display:inline-block; vertical-align:middle; }
  .bar > span { display:block; height:8px; border-radius:3px; background:var(--accent); }
  .bar.hot > span { background:var(--bad); }
  .kv { display:grid; grid-template-columns:max-content 1fr; gap:2px 12px; }
  .kv dt { color:var(--muted); } .kv dd { margin:0; }
  .muted { color:var(--muted); }
  ul.reloads { list-style:none; margin:0; padding:0; }
  ul.reloads li { border-top:1px solid var(--line); padding:4px 0; }
  code, pre { font:12px/1.35 ui-monospace, "DejaVu Sans Mono", monospace; }
  pre { margin:2px 0 0; white-space:pre-wrap; word-break:break-all; background:var(--bg); padding:4px 6px; border-radius:4px; }
  .ok { color:var(--ok); font-weight:600; } .bad { color:var(--bad); font-weight:600; }
</style>
</head>
<body>
<header>
  <h1>bridge-sidecar</h1>
  <span class="meta">policy <code id="version">…</code></span>
  <span class="meta" id="updated">waiting for /stats…</span>
  <span class="meta" id="conn"></span>
</header>
<main>
  <section class="wide"><h2>Routes <span class="muted" id="window"></span></h2>
    <table id="routes"><thead><tr><th>route</th><th>req/s</th><th></th><th>p50 ms</th><th>p99 ms</th><th></th><th title="answered from the cache (hit or stale) over the route's requests at the cache stage">cache hit</th><th></th><th>2xx</th><th>3xx</th><th>4xx</th><th>5xx</th><th>total</th></tr></thead><tbody></tbody></table>
  </section>
  <section><h2>Cache</h2>
    <table id="cache"><thead><tr><th>tier</th><th>hit ratio</th><th></th><th>hits</th><th>misses</th><th>bytes</th></tr></thead><tbody></tbody></table>
  </section>
  <section><h2>Rate limits</h2>
    <table id="limits"><thead><tr><th>scope</th><th>admitted/s</th><th>refused/s</th><th>admitted</th><th>refused</th></tr></thead><tbody></tbody></table>
    <h2 style="margin-top:10px">Closest to their limit</h2>
    <table id="closest"><thead><tr><th>limit</th><th>key</th><th>used</th><th>tokens</th><th>full in</th></tr></thead><tbody></tbody></table>
    <div class="muted" id="closest-note"></div>
  </section>
  <section><h2>Queues</h2>
    <div class="kv" id="queue-kv"></div>
    <table id="queues"><thead><tr><th>class</th><th>length</th><th></th><th>in/s</th><th>wait p99</th><th>mean (ms)</th></tr></thead><tbody></tbody></table>
  </section>
  <section><h2>Upstream pool &amp; memory</h2>
    <div class="kv" id="pool-kv"></div>
  </section>
  <section><h2>Policy &amp; reloads</h2>
    <div class="kv" id="policy-kv"></div>
    <ul class="reloads" id="reloads"></ul>
  </section>
  <section><h2>Auto-tuning &amp; Redis</h2>
    <div class="kv" id="tuning-kv"></div>
    <table id="strategies"><thead><tr><th>strategy</th><th>trigger</th><th>steps</th><th>actions</th><th>last action</th></tr></thead><tbody></tbody></table>
  </section>
</main>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(k === null || k === undefined ? '–' : String(k)));
  return e;
}
const num = (v, d) => (v === null || v === undefined ? '–' : Number(v).toLocaleString('en-US', { maximumFractionDigits: d === undefined ? 1 : d }));
const pct = (v) => (v === null || v === undefined ? '–' : (v * 100).toFixed(1) + ' %');
function bytes(v) {
  if (v === null || v === undefined) return '–';
  const u = ['B', 'KB', 'MB', 'GB', 'TB']; let i = 0; let n = v;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return n.toFixed(i ? 1 : 0) + ' ' + u[i];
}
const SPAN = 300000;
function spark(points, now) {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('class', 'spark'); svg.setAttribute('viewBox', '0 0 120 22'); svg.setAttribute('preserveAspectRatio', 'none');
  const pts = (points || []).filter((p) => now - p[0] <= SPAN);
  if (pts.length > 1) {
    const max = Math.max(...pts.map((p) => p[1])) || 1;
    const line = document.createElementNS(ns, 'polyline');
    line.setAttribute('points', pts.map((p) => (120 - ((now - p[0]) / SPAN) * 120).toFixed(1) + ',' + (21 - (p[1] / max) * 20).toFixed(1)).join(' '));
    svg.append(line);
    const t = document.createElementNS(ns, 'title'); t.textContent = 'last 5 min, max ' + num(max, 2); svg.append(t);
  }
  return el('td', { class: 'spark' }, svg);
}
function fill(tbody, rows) { tbody.replaceChildren(...rows); }
function kv(node, pairs) {
  node.replaceChildren(...pairs.flatMap(([k, v]) => [el('dt', {}, k), v instanceof Node ? el('dd', {}, v) : el('dd', {}, v)]));
}
function bar(ratio) {
  const b = el('span', { class: 'bar' + (ratio > 0.8 ? ' hot' : '') }, el('span', { style: 'width:' + Math.round(Math.min(1, ratio || 0) * 100) + '%' }));
  return b;
}
function render(s) {
  const now = Date.parse(s.at) || Date.now();
  $('version').textContent = s.policy.version;
  $('updated').textContent = 'updated ' + new Date(now).toLocaleTimeString();
  $('updated').setAttribute('data-at', s.at || '');
  $('window').textContent = '(rates over the last ' + s.window_seconds + ' s; sparklines ' + Math.round(s.history_seconds / 60 * 10) / 10 + ' min)';
  fill($('routes').tBodies[0], s.routes.map((r) => {
    const st = r.status || {};
    return el('tr', { 'data-route': r.name },
      el('td', {}, r.name), el('td', { 'data-field': 'rps' }, num(r.rps)), spark(r.series.rps, now),
      el('td', { 'data-field': 'p50' }, num(r.p50_ms, 2)), el('td', { 'data-field': 'p99' }, num(r.p99_ms, 2)), spark(r.series.p99_ms, now),
      el('td', { 'data-field': 'cache_hit_ratio', title: r.cache ? 'total: ' + Object.entries(r.cache.total).map(([k, v]) => k + ' ' + v).join(', ') : 'no cache section' },
        r.cache ? pct(r.cache.hit_ratio) : '–'), r.cache ? spark(r.cache.series.hit_ratio, now) : el('td', {}),
      el('td', { class: 's2' }, num(st['2xx'] || 0, 0)), el('td', {}, num(st['3xx'] || 0, 0)),
      el('td', { class: 's4' }, num(st['4xx'] || 0, 0)), el('td', { class: 's5' }, num(st['5xx'] || 0, 0)),
      el('td', { 'data-field': 'total' }, num(r.total, 0)));
  }));
  fill($('cache').tBodies[0], (s.cache ? s.cache.tiers : []).map((t) => el('tr', { 'data-tier': t.layer },
    el('td', {}, t.layer), el('td', { 'data-field': 'hit_ratio' }, pct(t.hit_ratio)), spark(t.series.hit_ratio, now),
    el('td', {}, num(t.window.hit || 0, 0)), el('td', {}, num(t.window.miss || 0, 0)), el('td', {}, bytes(t.bytes)))));
  const L = s.limits;
  fill($('limits').tBodies[0], L ? L.scopes.map((x) => el('tr', { 'data-scope': x.scope },
    el('td', {}, x.scope), el('td', {}, num(x.admitted_per_s)), el('td', { class: x.rejected_per_s > 0 ? 's4' : '' }, num(x.rejected_per_s)),
    el('td', { 'data-field': 'admitted' }, num(x.admitted_total, 0)), el('td', { 'data-field': 'rejected' }, num(x.rejected_total, 0)))) : [el('tr', {}, el('td', { colspan: '5', class: 'muted' }, 'no rate_limiting section'))]);
  fill($('closest').tBodies[0], (L && L.closest ? L.closest : []).map((b) => el('tr', {},
    el('td', {}, b.scope), el('td', {}, el('code', {}, b.key || '–')), el('td', {}, bar(b.used), ' ', pct(b.used)),
    el('td', {}, num(b.available, 0) + ' / ' + num(b.capacity, 0)), el('td', {}, num(b.msUntilFull / 1000, 1) + ' s'))));
  $('closest-note').textContent = L ? (L.closest_note || (L.limits || []).map((x) => x.scope + ' ' + x.limit).join(' · ')) : '';
  const Q = s.queues;
  kv($('queue-kv'), Q ? [['in-flight limit', Q.in_flight_limit.configured === 'auto' ? 'auto, now ' + num(Q.in_flight_limit.current, 0) : num(Q.in_flight_limit.current, 0)],
    ['shed', num(Q.shed_per_s) + '/s · total ' + Object.entries(Q.shed_total).map(([k, v]) => k + ' ' + v).join(', ')]] : [['queues', 'no queues section']]);
  fill($('queues').tBodies[0], Q ? Q.classes.map((c) => el('tr', { 'data-class': c.priority },
    el('td', {}, c.priority), el('td', { 'data-field': 'length' }, num(c.length, 0) + (c.max_size ? ' / ' + c.max_size : '')), spark(c.series.length, now),
    el('td', {}, num(c.admitted_per_s)), el('td', {}, num(c.wait_p99_ms, 2)), el('td', {}, num(c.wait_mean_ms, 2)))) : []);
  const P = s.upstream_pool, M = s.memory;
  const mem = M ? el('span', {}, bar(M.usage_ratio), ' ', pct(M.usage_ratio) + ' of ' + bytes(M.limit_bytes) + ' (sidecar RSS ' + bytes(M.rss_bytes) + ')') : '–';
  kv($('pool-kv'), [
    ['upstream in use', P ? el('span', { 'data-field': 'pool-in-use' }, num(P.in_use, 0) + ' (max ' + P.max_per_host + ' per worker)') : '–'],
    ['idle / waiting', P ? num(P.idle, 0) + ' / ' + num(P.waiting, 0) : '–'],
    ['in use, 5 min', P ? el('table', {}, el('tr', {}, spark(P.series.in_use, now))) : '–'],
    ['memory', mem],
    ['memory, 5 min', M ? el('table', {}, el('tr', {}, spark(M.series.usage_ratio, now))) : '–'],
  ]);
  const pol = s.policy;
  kv($('policy-kv'), [
    ['file', pol.file], ['version', pol.version],
    ['workers', (pol.workers || []).map((w) => 'w' + w.worker + ' ' + w.version.slice(0, 12) + (w.error ? ' (' + w.error + ')' : '')).join(', ') || '–'],
    ['restart pending', (pol.restart_pending || []).map((p) => p.key).join(', ') || 'none'],
    ['reloads', Object.entries(pol.reload_counts || {}).map(([k, v]) => k + ' ' + v).join(', ')],
  ]);
  fill($('reloads'), (pol.reloads || []).map((r) => el('li', {},
    el('span', { class: r.result === 'error' ? 'bad' : 'ok' }, r.result), ' ', new Date(r.at).toLocaleTimeString(), ' ', el('span', { class: 'muted' }, r.why),
    ...(r.errors || []).slice(0, 3).map((e) => el('pre', {}, e)),
    ...(r.diff || []).map((d) => el('pre', {}, d.path + ': ' + JSON.stringify(d.before) + ' → ' + JSON.stringify(d.after))))));
  const T = s.auto_tuning, R = s.redis;
  kv($('tuning-kv'), [
    ['auto-tuning', T.enabled ? 'on' + (T.dry_run ? ' (dry run)' : '') : 'off'],
    ['effective', T.effective ? JSON.stringify(T.effective) : '–'],
    ['redis', !R.configured ? 'not configured (one-pod mode)' : el('span', { class: R.up === 1 ? 'ok' : 'bad' }, (R.up === 1 ? 'up' : 'down') + ' · ' + R.endpoint)],
  ]);
  fill($('strategies').tBodies[0], (T.strategies || []).map((x) => el('tr', {},
    el('td', {}, x.name), el('td', {}, el('code', {}, x.trigger)), el('td', {}, num(x.steps, 0)), el('td', {}, num((T.actions || {})[x.name] || 0, 0)),
    el('td', {}, x.last_action ? JSON.stringify(x.last_action) : '–'))));
}
async function poll() {
  try {
    const r = await fetch('stats', { cache: 'no-store' });
    if (!r.ok) throw new Error('HTTP ' + r.status);
    render(await r.json());
    $('conn').textContent = ''; $('conn').className = '';
  } catch (e) {
    $('conn').textContent = 'cannot reach /stats: ' + e.message; $('conn').className = 'down';
  }
  setTimeout(poll, 1000);
}
poll();
</script>
</body>
</html>
`;
