/**
 * Compression with the response cache (L1): the cache stores what the compression filter produced, so a hit for a
 * client that accepts the stored coding is served encoded without compressing again (compression_bytes_total
 * does not move), and every client still gets a body it can decode in a coding it accepted.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { startDraftService, type DraftService } from '../../examples/draft-service';
import { startSidecar, basicPolicy, type SidecarProcess } from '../helpers/sidecar';
import { metricValue, rawRequest, curl, type RawReply } from './helpers';

const POLICY = `compression:
  algorithm: [gzip, br]
  level: 6
  threshold: 1KB
cache:
  l1: {}
routes:
  - name: query_script
    match: { method: POST, path: /query_script, body: { force_update: false } }
    params: { draft_id: body.draft_id }
    cache: { key: "draft:{draft_id}:script", ttl: 5m }
`;

const QUERY = JSON.stringify({ draft_id: 'dft_000099', force_update: false });

let upstream: DraftService;
let sc: SidecarProcess;
let draftJson: Buffer;

before(async () => {
  upstream = await startDraftService({ port: 0, host: '127.0.0.1', serviceTimeMs: 0 });
  sc = await startSidecar(basicPolicy(upstream.port, POLICY));
  draftJson = (await rawRequest(`${upstream.url}/query_script`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: QUERY })).body;
});
after(async () => {
  await sc?.stop();
  await upstream?.close();
});

function query(acceptEncoding: string | null): Promise<RawReply> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (acceptEncoding !== null) headers['accept-encoding'] = acceptEncoding;
  return rawRequest(`${sc.url}/query_script`, { method: 'POST', headers, body: QUERY });
}

function identityOf(r: RawReply): Buffer {
  const enc = r.headers['content-encoding'];
  return enc === 'gzip' ? gunzipSync(r.body) : enc === 'br' ? brotliDecompressSync(r.body) : r.body;
}

async function compressedIn(): Promise<number> {
  const text = await (await fetch(`${sc.adminUrl}/metrics`)).text();
  return metricValue(text, 'bridge_sidecar_compression_bytes_total{direction="in"}') ?? 0;
}

test('a cached gzip answer is served to gzip clients without compressing again', async () => {
  const miss = await query('gzip');
  assert.equal(miss.headers['content-encoding'], 'gzip');
  assert.match(String(miss.headers['cache-status']), /stored/);
  const before = await compressedIn();
  assert.ok(before >= draftJson.length, 'the miss was compressed');
  for (let i = 0; i < 3; i++) {
    const hit = await query('gzip');
    assert.match(String(hit.headers['cache-status']), /hit/);
    assert.equal(hit.headers['content-encoding'], 'gzip');
    assert.match(String(hit.headers.vary), /Accept-Encoding/i);
    assert.ok(gunzipSync(hit.body).equals(draftJson));
  }
  assert.equal(await compressedIn(), before, 'hits did not go through the compressor');
});

test('clients with other Accept-Encoding values get a coding they accept, decodable to the same JSON', async () => {
  const cases: Array<[string | null, string | undefined]> = [[null, undefined], ['identity', undefined], ['br', 'br'], ['gzip;q=0, br', 'br'], ['gzip', 'gzip'], [null, undefined]];
  for (const [ae, want] of cases) {
    const r = await query(ae);
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-encoding'], want, `Accept-Encoding: ${ae}`);
    assert.ok(identityOf(r).equals(draftJson), `Accept-Encoding: ${ae}`);
  }
  const c = await curl(`${sc.url}/query_script`, ['--compressed', '-X', 'POST', '-H', 'content-type: application/json', '--data-binary', QUERY]);
  assert.ok(c.body.equals(draftJson));
  const plain = await curl(`${sc.url}/query_script`, ['-X', 'POST', '-H', 'content-type: application/json', '--data-binary', QUERY]);
  assert.equal(plain.headers['content-encoding'], undefined);
  assert.ok(plain.body.equals(draftJson));
});
