/**
 * Traces from the real sidecar to a real OTLP/HTTP receiver (the test decodes the OTLP JSON it receives):
 * the server span with the stable HTTP conventions, its children (rate limit, cache lookup, queue wait,
 * upstream call), traceparent continued from the client and propagated upstream, parent-based sampling, the
 * access log's trace id, tracing off = the client's traceparent untouched, and a reload that changes tracing.
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { startDraftService, type DraftService } from '../../examples/draft-service';
import { startSidecar, basicPolicy, type SidecarProcess } from '../helpers/sidecar';
import { waitFor, freePort } from '../helpers/ports';
import { http, startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from './helpers';

const SERVER = 2;
const CLIENT = 3;

const STAGES = `routes:
  - name: echo
    match: { path: /echo }
  - name: pattern
    match: { method: GET, path: "/api/drafts/preview/{id}" }
rate_limiting:
  global: { requests_per_second: 1000, burst_size: 100 }
queues: { max_in_flight: 16 }
cache:
  l1: { size: 4MB }
`;

function tracing(rx: OtlpReceiver, rate: number | string, extra = ''): string {
  return `tracing: { enabled: true, endpoint: "${rx.url}", sampling_rate: ${rate}${extra} }\n`;
}

let upstream: DraftService;
let rx: OtlpReceiver;
before(async () => {
  upstream = await startDraftService({ port: 0, host: '127.0.0.1' });
  rx = await startOtlpReceiver();
});
after(async () => {
  await upstream.close();
  await rx.close();
});

function ids() {
  return { traceId: randomBytes(16).toString('hex'), spanId: randomBytes(8).toString('hex') };
}

async function echo(sc: SidecarProcess, headers: Record<string, string> = {}): Promise<{ headers: Record<string, string> }> {
  const r = await http(`${sc.url}/echo`, { headers });
  assert.equal(r.status, 200, r.text);
  return JSON.parse(r.text) as { headers: Record<string, string> };
}

function ofTrace(traceId: string): ReceivedSpan[] {
  return rx.spans.filter((s) => s.traceId === traceId);
}

test('server span continues the client traceparent; stage and upstream spans are its children; upstream sees the upstream span', { timeout: 60_000 }, async (t) => {
  const sc = await startSidecar(basicPolicy(upstream.port, STAGES + tracing(rx, 1)));
  t.after(() => sc.stop());
  const client = ids();
  const seen = await echo(sc, { traceparent: `00-${client.traceId}-${client.spanId}-01`, tracestate: 'vendor=abc' });

  const spans = await rx.waitForSpans(() => ofTrace(client.traceId).some((s) => s.kind === SERVER));
  const mine = spans.filter((s) => s.traceId === client.traceId);
  const server = mine.find((s) => s.kind === SERVER)!;
  assert.equal(server.parentSpanId, client.spanId, 'the server span continues the client span');
  assert.equal(server.name, 'GET /echo');
  assert.equal(server.service, 'bridge-sidecar');
  assert.equal(server.attributes['http.request.method'], 'GET');
  assert.equal(server.attributes['http.route'], '/echo');
  assert.equal(server.attributes['http.response.status_code'], 200);
  assert.equal(server.attributes['url.path'], '/echo');
  assert.equal(server.attributes['url.scheme'], 'http');
  assert.equal(server.attributes['server.address'], '127.0.0.1');
  assert.equal(server.attributes['server.port'], sc.port);

  const children = mine.filter((s) => s.parentSpanId === server.spanId);
  const names = children.map((s) => s.name).sort();
  assert.deepEqual(names, ['GET', 'cache.lookup', 'queue.wait', 'ratelimit.check'], JSON.stringify(mine.map((s) => [s.name, s.parentSpanId])));
  const up = children.find((s) => s.kind === CLIENT)!;
  assert.equal(up.attributes['http.request.method'], 'GET');
  assert.equal(up.attributes['server.address'], '127.0.0.1');
  assert.equal(up.attributes['server.port'], upstream.port);
  assert.equal(up.attributes['http.response.status_code'], 200);
  assert.equal(up.attributes['url.full'], `http://127.0.0.1:${upstream.port}/echo`);

  // propagated: the upstream got the same trace, with the upstream-call span as its parent, and the tracestate
  assert.equal(seen.headers.traceparent, `00-${client.traceId}-${up.spanId}-01`);
  assert.equal(seen.headers.tracestate, 'vendor=abc');
  // the access log carries the same trace id
  const line = await sc.waitForLog((l) => l.msg === 'access' && l.path === '/echo');
  assert.equal(line.trace_id, client.traceId);
});

test('a request without traceparent starts a trace; route templates, not raw paths; errors are marked', { timeout: 60_000 }, async (t) => {
  const sc = await startSidecar(basicPolicy(upstream.port, STAGES + tracing(rx, '100%')));
  t.after(() => sc.stop());
  const seen = await echo(sc);
  const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(seen.headers.traceparent ?? '');
  assert.ok(m, `upstream got a sampled traceparent: ${seen.headers.traceparent}`);
  const traceId = m[1];
  await rx.waitForSpans(() => ofTrace(traceId).some((s) => s.kind === SERVER));
  const server = ofTrace(traceId).find((s) => s.kind === SERVER)!;
  assert.equal(server.parentSpanId, '', 'a root span');
  assert.equal(ofTrace(traceId).find((s) => s.kind === CLIENT)!.spanId, m[2]);
  const line = await sc.waitForLog((l) => l.msg === 'access' && l.path === '/echo');
  assert.equal(line.trace_id, traceId);

  const p = ids();
  await http(`${sc.url}/api/drafts/preview/some-id-123`, { headers: { traceparent: `00-${p.traceId}-${p.spanId}-01` } });
  const s5 = ids();
  const r5 = await http(`${sc.url}/status/503`, { headers: { traceparent: `00-${s5.traceId}-${s5.spanId}-01` } });
  assert.equal(r5.status, 503);
  await rx.waitForSpans(() => ofTrace(p.traceId).some((s) => s.kind === SERVER) && ofTrace(s5.traceId).some((s) => s.kind === SERVER));
  const ps = ofTrace(p.traceId).find((s) => s.kind === SERVER)!;
  assert.equal(ps.attributes['http.route'], '/api/drafts/preview/{id}');
  assert.equal(ps.name, 'GET /api/drafts/preview/{id}');
  assert.equal(ps.attributes['url.path'], '/api/drafts/preview/some-id-123');
  const es = ofTrace(s5.traceId).find((s) => s.kind === SERVER)!;
  assert.equal(es.attributes['http.route'], undefined, 'no route matched: no http.route');
  assert.equal(es.name, 'GET');
  assert.equal(es.attributes['http.response.status_code'], 503);
  assert.equal(es.attributes['error.type'], '503');
  assert.equal(es.status.code, 2, 'status ERROR');
});

test('sampling_rate 0: no spans for new traces, spans when the parent was sampled; propagation either way', { timeout: 60_000 }, async (t) => {
  const sc = await startSidecar(basicPolicy(upstream.port, STAGES + tracing(rx, 0)));
  t.after(() => sc.stop());
  const unsampled: string[] = [];
  for (let i = 0; i < 5; i++) {
    const seen = await echo(sc);
    const m = /^00-([0-9a-f]{32})-[0-9a-f]{16}-00$/.exec(seen.headers.traceparent ?? '');
    assert.ok(m, `an unsampled traceparent still goes upstream: ${seen.headers.traceparent}`);
    unsampled.push(m[1]);
  }
  const parentNotSampled = ids();
  const seen0 = await echo(sc, { traceparent: `00-${parentNotSampled.traceId}-${parentNotSampled.spanId}-00` });
  assert.match(seen0.headers.traceparent, new RegExp(`^00-${parentNotSampled.traceId}-[0-9a-f]{16}-00$`));
  const sampled = ids();
  await echo(sc, { traceparent: `00-${sampled.traceId}-${sampled.spanId}-01` });
  // spans are exported in order: once the sampled request's arrive, any of the earlier ones would have too
  await rx.waitForSpans(() => ofTrace(sampled.traceId).some((s) => s.kind === SERVER));
  for (const id of [...unsampled, parentNotSampled.traceId]) assert.equal(ofTrace(id).length, 0, `trace ${id} was not sampled`);
  // the access log still carries the trace id of unsampled requests (to match the upstream's logs)
  // access lines are written in batches (at most ~100 ms later)
  await waitFor('access lines with the unsampled trace ids', () => {
    const lines = sc.logs.filter((l) => l.msg === 'access');
    return unsampled.every((id) => lines.some((l) => l.trace_id === id));
  }, 5_000);
});

test('tracing off: no spans, the client traceparent passes through untouched, no trace id in the log', { timeout: 60_000 }, async (t) => {
  const sc = await startSidecar(basicPolicy(upstream.port, STAGES + `tracing: { enabled: false, endpoint: "${rx.url}", sampling_rate: 1 }\n`));
  t.after(() => sc.stop());
  const c = ids();
  const tp = `00-${c.traceId}-${c.spanId}-01`;
  const seen = await echo(sc, { traceparent: tp });
  assert.equal(seen.headers.traceparent, tp);
  const line = await sc.waitForLog((l) => l.msg === 'access' && l.path === '/echo');
  assert.equal(line.trace_id, undefined);
  // a traced sidecar's spans would arrive within the export delay: use one as the clock
  const sc2 = await startSidecar(basicPolicy(upstream.port, tracing(rx, 1)));
  t.after(() => sc2.stop());
  const marker = ids();
  await echo(sc2, { traceparent: `00-${marker.traceId}-${marker.spanId}-01` });
  await rx.waitForSpans(() => ofTrace(marker.traceId).length > 0);
  assert.equal(ofTrace(c.traceId).length, 0);
});

test('a reload that changes tracing settings re-creates the exporter (new service name, sampling)', { timeout: 60_000 }, async (t) => {
  const sc = await startSidecar(basicPolicy(upstream.port, tracing(rx, 0)));
  t.after(() => sc.stop());
  const before1 = await echo(sc);
  assert.match(before1.headers.traceparent, /-00$/, 'rate 0: not sampled');
  writeFileSync(sc.policyFile, basicPolicy(upstream.port, tracing(rx, 1, ', service_name: reloaded-sidecar')));
  await waitFor('reloaded tracing', async () => /-01$/.test((await echo(sc)).headers.traceparent ?? ''), 30_000, 200);
  const after1 = await echo(sc);
  const traceId = after1.headers.traceparent.split('-')[1];
  await rx.waitForSpans(() => ofTrace(traceId).some((s) => s.kind === SERVER));
  assert.equal(ofTrace(traceId).find((s) => s.kind === SERVER)!.service, 'reloaded-sidecar');
});

test('two workers: each exports its spans; the server span and the upstream span share the trace', { timeout: 60_000 }, async (t) => {
  const sc = await startSidecar(basicPolicy(upstream.port, tracing(rx, 1), { workers: 2 }));
  t.after(() => sc.stop());
  const traces: string[] = [];
  for (let i = 0; i < 6; i++) {
    const c = ids();
    traces.push(c.traceId);
    await echo(sc, { traceparent: `00-${c.traceId}-${c.spanId}-01` });
  }
  await rx.waitForSpans(() => traces.every((id) => ofTrace(id).some((s) => s.kind === SERVER) && ofTrace(id).some((s) => s.kind === CLIENT)));
  const tracedWorkers = () => new Set(sc.logs.filter((l) => l.msg === 'access' && traces.includes(String(l.trace_id))).map((l) => l.worker));
  await waitFor('both workers traced requests (their access lines)', () => tracedWorkers().size >= 2, 5_000);
  for (const id of traces) {
    const server = ofTrace(id).find((s) => s.kind === SERVER)!;
    assert.equal(ofTrace(id).find((s) => s.kind === CLIENT)!.parentSpanId, server.spanId);
  }
});

test('a collector that is down: requests are unaffected, one warning (not one per batch)', { timeout: 60_000 }, async (t) => {
  const dead = await freePort();
  const sc = await startSidecar(basicPolicy(upstream.port, `tracing: { enabled: true, endpoint: "http://127.0.0.1:${dead}", sampling_rate: 1 }\n`));
  t.after(() => sc.stop());
  for (let i = 0; i < 3; i++) await echo(sc);
  const warn = await sc.waitForLog((l) => l.msg === 'trace export failing: spans are dropped until it recovers', 20_000);
  assert.equal(warn.endpoint, `http://127.0.0.1:${dead}/v1/traces`);
  for (let i = 0; i < 3; i++) await echo(sc);
  await new Promise((r) => setTimeout(r, 2500)); // more export rounds fail
  assert.equal(sc.logs.filter((l) => l.msg === 'trace export failing: spans are dropped until it recovers').length, 1);
});

test('each cache tier looked up is a child span with its result (L1 miss then hit)', { timeout: 60_000 }, async (t) => {
  const policy = `routes:
  - name: fonts
    match: { method: GET, path: /get_font_types }
    cache: { key: "static:fonts", ttl: 1m }
cache:
  l1: { size: 4MB }
` + tracing(rx, 1);
  const sc = await startSidecar(basicPolicy(upstream.port, policy));
  t.after(() => sc.stop());
  const results: string[] = [];
  for (let i = 0; i < 2; i++) {
    const client = ids();
    const r = await http(`${sc.url}/get_font_types`, { headers: { traceparent: `00-${client.traceId}-${client.spanId}-01` } });
    assert.equal(r.status, 200);
    const spans = await rx.waitForSpans(() => ofTrace(client.traceId).some((s) => s.name === 'cache.lookup l1'));
    const server = spans.find((s) => s.traceId === client.traceId && s.kind === SERVER);
    const tier = spans.find((s) => s.traceId === client.traceId && s.name === 'cache.lookup l1')!;
    if (server) assert.equal(tier.parentSpanId, server.spanId, 'the tier span is a child of the request span');
    assert.equal(tier.attributes['cache.layer'], 'l1');
    results.push(String(tier.attributes['cache.result']));
  }
  assert.deepEqual(results, ['miss', 'hit']);
});
