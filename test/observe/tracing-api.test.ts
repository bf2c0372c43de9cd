/**
 * The tracing helpers stages use (startChildSpan, traceRedis), in-process against a real HTTP server, a real
 * redis-server and a real OTLP/HTTP receiver: spans are children of the request's span, failures are marked,
 * and with tracing off or an unsampled request they are shared no-ops that create nothing.
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import { Redis } from 'ioredis';
import { RequestContext } from '../../lib/core/context';
import { Tracing, tracingFor, startChildSpan, traceRedis, endRequestSpan, shutdownTracing } from '../../lib/observe/tracing';
import { startRedis, type RedisInstance } from '../helpers/redis';
import { startOtlpReceiver, type OtlpReceiver } from './helpers';

let rx: OtlpReceiver;
let redis: RedisInstance;
before(async () => {
  rx = await startOtlpReceiver();
  redis = await startRedis();
});
after(async () => {
  await shutdownTracing();
  await rx.close();
  await redis.stop();
});

/** Serves one request with `handle(ctx)` and returns the ctx once the response is done. */
async function oneRequest(handle: (ctx: RequestContext) => Promise<void>, headers: Record<string, string> = {}): Promise<RequestContext> {
  let captured: RequestContext | null = null;
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const ctx = new RequestContext(req, res, performance.now());
    captured = ctx;
    void handle(ctx).then(() => res.end('ok'), (e: unknown) => { res.statusCode = 500; res.end(String(e)); });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve, reject) => {
    const req = request({ port, host: '127.0.0.1', path: '/thing', headers, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve());
    });
    req.on('error', reject);
    req.end();
  });
  await new Promise<void>((r) => server.close(() => r()));
  return captured!;
}

test('child spans and Redis spans hang under the request span, errors marked', { timeout: 60_000 }, async () => {
  const tracing = new Tracing({ enabled: true, endpoint: rx.url, sampling_rate: 1, service_name: 'api-test' });
  const client = new Redis(redis.url);
  try {
    const ctx = await oneRequest(async (c) => {
      tracing.startRequest(c);
      const l1 = startChildSpan(c, 'cache.lookup l1', { 'cache.layer': 'l1' });
      l1.end(null, { 'cache.result': 'miss' });
      await traceRedis(c, 'SET', client.set('k', 'v'));
      assert.equal(await traceRedis(c, 'GET', client.get('k')), 'v');
      await assert.rejects(traceRedis(c, 'EVALSHA', client.evalsha('0000000000000000000000000000000000000000', 0)));
      const failed = startChildSpan(c, 'cache.lookup l3');
      failed.end(Object.assign(new Error('disk gone'), { code: 'EIO' }));
      endRequestSpan(c, 200, '/thing');
    });
    await tracing.flush();
    const spans = await rx.waitForSpans((s) => s.some((x) => x.traceId === ctx.traceId && x.kind === 2));
    const mine = spans.filter((s) => s.traceId === ctx.traceId);
    const server = mine.find((s) => s.kind === 2)!;
    assert.equal(server.service, 'api-test');
    const byName = new Map(mine.map((s) => [s.name, s]));
    for (const n of ['cache.lookup l1', 'redis SET', 'redis GET', 'redis EVALSHA', 'cache.lookup l3']) {
      assert.equal(byName.get(n)?.parentSpanId, server.spanId, `${n} is a child of the request span`);
    }
    assert.equal(byName.get('cache.lookup l1')!.attributes['cache.result'], 'miss');
    assert.equal(byName.get('redis GET')!.kind, 3);
    assert.equal(byName.get('redis GET')!.attributes['db.system.name'], 'redis');
    assert.equal(byName.get('redis GET')!.attributes['db.operation.name'], 'GET');
    assert.equal(byName.get('redis GET')!.status.code ?? 0, 0);
    assert.equal(byName.get('redis EVALSHA')!.status.code, 2, 'a failed Redis call is an error');
    assert.equal(byName.get('cache.lookup l3')!.attributes['error.type'], 'EIO');
  } finally {
    client.disconnect();
    await tracing.shutdown();
  }
});

test('tracing off or unsampled: helpers are shared no-ops and the Redis promise is returned as is', { timeout: 30_000 }, async () => {
  assert.equal(tracingFor(null), null);
  assert.equal(tracingFor({ enabled: false, endpoint: rx.url, sampling_rate: 1, service_name: 'x' }), null);
  const off = await oneRequest(async (c) => {
    const call = Promise.resolve(1);
    assert.equal(traceRedis(c, 'GET', call), call, 'the same promise');
    assert.equal(startChildSpan(c, 'a'), startChildSpan(c, 'b'), 'one shared no-op');
    endRequestSpan(c, 200, null);
  });
  assert.equal(off.traceId, null);
  assert.deepEqual(Object.getOwnPropertySymbols(off), [], 'nothing hung on the request');

  const unsampled = new Tracing({ enabled: true, endpoint: rx.url, sampling_rate: 0, service_name: 'unsampled' });
  try {
    const ctx = await oneRequest(async (c) => {
      unsampled.startRequest(c);
      assert.equal(startChildSpan(c, 'a'), startChildSpan(c, 'b'), 'no span objects for an unsampled request');
      const call = Promise.resolve(1);
      assert.equal(traceRedis(c, 'GET', call), call);
      endRequestSpan(c, 200, null);
    });
    assert.match(ctx.traceId ?? '', /^[0-9a-f]{32}$/, 'the trace id is still known (access log)');
    await unsampled.flush();
    assert.equal(rx.spans.filter((s) => s.service === 'unsampled').length, 0);
  } finally {
    await unsampled.shutdown();
  }
});

test('tracingFor keeps one provider per settings and replaces it when they change', () => {
  const a = { enabled: true, endpoint: rx.url, sampling_rate: 0.5, service_name: 's' };
  const t1 = tracingFor(a);
  assert.ok(t1);
  assert.equal(tracingFor({ ...a }), t1, 'same settings, same provider');
  const t2 = tracingFor({ ...a, sampling_rate: 0.25 });
  assert.ok(t2 && t2 !== t1);
  assert.equal(tracingFor(null), null);
});
