/**
 * The queue stage with real sockets: a client that hangs up while queued leaves the queue at once and never
 * reaches the upstream; shed responses are 503 + Retry-After + problem+json.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ShedError, type Release } from '../../lib/core/stage';
import { sendShed } from '../../lib/stages/queue';
import { metricValue, schedulerWithMetrics } from './helpers';
import { waitFor } from '../helpers/ports';

function listen(server: Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

function get(port: number, path: string, signal?: AbortSignal): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, signal, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('a client that hangs up while queued leaves the queue at once and never reaches the upstream', async (t) => {
  const { s, m } = schedulerWithMetrics({ maxInFlight: 1 });
  const upstreamPaths: string[] = [];
  const held: Array<{ release: Release; res: ServerResponse }> = [];
  const errors: ShedError[] = [];
  const server = createServer((req, res) => {
    const go = (release: Release) => {
      upstreamPaths.push(req.url ?? '');
      held.push({ release, res });
    };
    const r = s.acquire('low', res);
    if (typeof r === 'function') go(r);
    else r.then(go, (e: ShedError) => {
      errors.push(e);
      if (e.reason !== 'client_gone') sendShed(res, e);
    });
  });
  const port = await listen(server);
  t.after(() => {
    s.close();
    server.closeAllConnections();
    server.close();
  });

  const first = get(port, '/holder');
  await waitFor('holder admitted', () => held.length === 1, 10_000, 5);
  const ac = new AbortController();
  const quitter = get(port, '/quitter', ac.signal).catch((e: Error) => e);
  await waitFor('quitter queued', () => s.queued === 1, 10_000, 5);
  assert.equal(await metricValue(m, 'bridge_sidecar_queue_length', { priority: 'low' }), 1);
  ac.abort();
  await quitter;
  await waitFor('quitter left the queue', () => s.queued === 0, 10_000, 5);
  assert.equal(errors.length, 1);
  assert.equal(errors[0].reason, 'client_gone');
  assert.equal(await metricValue(m, 'bridge_sidecar_queue_length', { priority: 'low' }), 0);
  assert.equal(await metricValue(m, 'bridge_sidecar_shed_total', { reason: 'client_gone' }), 1);

  // the slot frees: a later request is admitted, the quitter never is
  const later = get(port, '/later');
  await waitFor('later queued', () => s.queued === 1, 10_000, 5);
  const h = held.shift()!;
  h.release({ ok: true, latencyMs: 5 });
  h.res.end('ok');
  await first;
  await waitFor('later admitted', () => held.length === 1, 10_000, 5);
  const h2 = held.shift()!;
  h2.release({ ok: true, latencyMs: 5 });
  h2.res.end('ok');
  await later;
  assert.deepEqual(upstreamPaths, ['/holder', '/later']);
  assert.equal(s.inFlight, 0);
});

test('a request whose client is already gone when it would queue is refused without queueing', async () => {
  const { s } = schedulerWithMetrics({ maxInFlight: 1 });
  const hold = s.acquire('high', null) as Release;
  const gone = { destroyed: true, once: () => undefined, removeListener: () => undefined };
  await assert.rejects(Promise.resolve(s.acquire('high', gone)), (e: unknown) => e instanceof ShedError && e.reason === 'client_gone');
  assert.equal(s.queued, 0);
  hold({ ok: true, latencyMs: 1 });
});

test('sendShed writes 503, Retry-After and an RFC 9457 problem+json naming the reason', async (t) => {
  const server = createServer((req, res) => sendShed(res, new ShedError(req.url!.slice(1), 3)));
  const port = await listen(server);
  t.after(() => server.close());
  for (const reason of ['queue_full', 'class_full', 'queue_timeout', 'displaced']) {
    const r = await get(port, '/' + reason);
    assert.equal(r.status, 503);
    assert.equal(r.headers['retry-after'], '3');
    assert.equal(r.headers['content-type'], 'application/problem+json');
    const body = JSON.parse(r.body) as { type: string; status: number; title: string; detail: string };
    assert.equal(body.type, `https://bridge-sidecar.dev/problems/shed/${reason}`);
    assert.equal(body.status, 503);
    assert.ok(body.detail.length > 0);
  }
  // Retry-After is a whole number of seconds, at least 1
  const server2 = createServer((_req, res) => sendShed(res, new ShedError('queue_full', 0.2)));
  const port2 = await listen(server2);
  t.after(() => server2.close());
  assert.equal((await get(port2, '/')).headers['retry-after'], '1');
});
