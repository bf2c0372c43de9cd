/**
 * The compression filter's decisions for heads the real pipeline rarely or never hands it (1xx, Content-Length 0,
 * Content-Encoding: identity), on real RequestContexts (a real server's req/res); and the policy switch: with
 * no `compression` section, or `enabled: false`, the sidecar sends identity and adds no Vary.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { CompressionFilter, compressionCounters } from '../../lib/stages/compress';
import { RequestContext } from '../../lib/core/context';
import type { ResponseHead } from '../../lib/core/stage';
import type { CompressionPolicy } from '../../lib/policy/types';
import { DEFAULT_COMPRESSIBLE_TYPES } from '../../lib/policy/defaults';
import { startDraftService } from '../../examples/draft-service';
import { startSidecar, basicPolicy } from '../helpers/sidecar';
import { rawRequest } from './helpers';

const policy: CompressionPolicy = { enabled: true, algorithm: ['gzip'], level: 6, threshold: 1024, types: DEFAULT_COMPRESSIBLE_TYPES };
const filter = new CompressionFilter(policy, compressionCounters(new Registry()));

interface Outcome { transform: boolean; head: ResponseHead }

/** Runs the filter on `head` for a real request with `reqHeaders`, inside a real server. */
async function decide(head: ResponseHead, reqHeaders: Record<string, string> = { 'accept-encoding': 'gzip' }, method = 'GET'): Promise<Outcome> {
  let outcome: Outcome | null = null;
  const server = createServer((req, res) => {
    const ctx = new RequestContext(req, res, performance.now());
    const t = filter.onResponse(ctx, head);
    outcome = { transform: t !== null, head };
    t?.destroy();
    res.end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  await new Promise<IncomingHttpHeaders>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, headers: reqHeaders, agent: false }, (res) => { res.resume(); res.on('end', () => resolve(res.headers)); });
    req.on('error', reject);
    req.end();
  });
  await new Promise<void>((r) => server.close(() => r()));
  assert.ok(outcome);
  return outcome;
}

const json = (extra: Record<string, string> = {}): Record<string, string> => ({ 'content-type': 'application/json', ...extra });

test('1xx heads are never encoded', async () => {
  for (const status of [100, 101, 103]) {
    const o = await decide({ status, headers: json() });
    assert.equal(o.transform, false, String(status));
    assert.equal(o.head.headers['content-encoding'], undefined);
  }
});

test('Content-Length: 0 is not encoded; Content-Encoding: identity counts as not encoded', async () => {
  const empty = await decide({ status: 200, headers: json({ 'content-length': '0' }) });
  assert.equal(empty.transform, false);
  assert.equal(empty.head.headers['content-length'], '0');
  const identity = await decide({ status: 200, headers: json({ 'content-encoding': 'identity', 'content-length': '5000' }) });
  assert.equal(identity.transform, true);
  assert.equal(identity.head.headers['content-encoding'], 'gzip');
});

test('an encoded head: Content-Length, Accept-Ranges and digests of the identity bytes are dropped', async () => {
  const o = await decide({ status: 200, headers: json({ 'content-length': '5000', 'accept-ranges': 'bytes', 'content-digest': 'sha-256=:x:', 'content-md5': 'x', etag: '"e"' }) });
  assert.equal(o.transform, true);
  assert.deepEqual(Object.keys(o.head.headers).sort(), ['content-encoding', 'content-type', 'etag', 'vary']);
  assert.equal(o.head.headers.etag, 'W/"e"');
});

test('a 404 or 500 JSON error body is compressed like a 200 (only bodiless statuses are skipped)', async () => {
  for (const status of [404, 500]) {
    const o = await decide({ status, headers: json({ 'content-length': '2000' }) });
    assert.equal(o.transform, true, String(status));
  }
});

test('no compression section, or enabled: false: identity, and no Vary added', async (t) => {
  const upstream = await startDraftService({ port: 0, host: '127.0.0.1', serviceTimeMs: 0 });
  t.after(() => upstream.close());
  for (const extra of ['', 'compression:\n  enabled: false\n']) {
    const sc = await startSidecar(basicPolicy(upstream.port, extra));
    try {
      const r = await rawRequest(`${sc.url}/query_script`, { method: 'POST', headers: { 'content-type': 'application/json', 'accept-encoding': 'gzip, br' }, body: JSON.stringify({ draft_id: 'dft_000003' }) });
      assert.equal(r.status, 200);
      assert.equal(r.headers['content-encoding'], undefined, extra || 'no section');
      assert.equal(r.headers.vary, undefined);
      assert.ok(JSON.parse(r.body.toString()));
    } finally {
      await sc.stop();
    }
  }
});

