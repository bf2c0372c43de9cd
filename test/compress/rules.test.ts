/**
 * Response compression through the real sidecar: when a response is compressed and when it must not be, with real clients
 * decoding (curl --compressed, Node's fetch) and a raw client that shows the bytes on the wire.
 *
 * Two sidecars with the same compression policy: one in front of the example draft service (10 KB JSON,
 * /headers to make the upstream send chosen headers), one in front of a small upstream for the cases the draft
 * service cannot produce (204/205/304 with a Content-Type, 206, Content-Range, chunked bodies).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { startDraftService, type DraftService } from '../../examples/draft-service';
import { startSidecar, basicPolicy, type SidecarProcess } from '../helpers/sidecar';
import { startEdgeUpstream, rawRequest, curl, type EdgeUpstream, type RawReply } from './helpers';

const COMPRESSION = `compression:
  enabled: true
  algorithm: [gzip, br]
  level: 6
  threshold: 1KB
`;

const QUERY = JSON.stringify({ draft_id: 'dft_000042', force_update: false });
const JSON_HEADERS = { 'content-type': 'application/json' };

let upstream: DraftService;
let edge: EdgeUpstream;
let sc: SidecarProcess;
let scEdge: SidecarProcess;
/** The draft JSON as the upstream sends it (identity). */
let draftJson: Buffer;

before(async () => {
  upstream = await startDraftService({ port: 0, host: '127.0.0.1', serviceTimeMs: 0 });
  edge = await startEdgeUpstream();
  [sc, scEdge] = await Promise.all([startSidecar(basicPolicy(upstream.port, COMPRESSION)), startSidecar(basicPolicy(edge.port, COMPRESSION))]);
  draftJson = (await rawRequest(`${upstream.url}/query_script`, { method: 'POST', headers: JSON_HEADERS, body: QUERY })).body;
  assert.ok(draftJson.length > 5000, `the draft JSON is ${draftJson.length} bytes`);
});
after(async () => {
  await Promise.all([sc?.stop(), scEdge?.stop()]);
  await upstream?.close();
  await edge?.close();
});

function headersPath(headers: Record<string, string>, pad = 5000): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(headers)) q.append('h', `${k}:${v}`);
  q.set('pad', String(pad));
  return `/headers?${q}`;
}

/** The identity body of a raw reply, decoding what the sidecar said it encoded. */
function decoded(r: RawReply): Buffer {
  const enc = r.headers['content-encoding'];
  if (enc === 'gzip') return gunzipSync(r.body);
  if (enc === 'br') return brotliDecompressSync(r.body);
  assert.equal(enc, undefined, `unexpected content-encoding ${String(enc)}`);
  return r.body;
}

function query(acceptEncoding?: string, extra: Record<string, string> = {}): Promise<RawReply> {
  const headers: Record<string, string> = { ...JSON_HEADERS, ...extra };
  if (acceptEncoding !== undefined) headers['accept-encoding'] = acceptEncoding;
  return rawRequest(`${sc.url}/query_script`, { method: 'POST', headers, body: QUERY });
}

test('curl --compressed gets the 10 KB draft JSON gzipped (policy order breaks its all-q=1 tie) and decodes it to the same bytes', async () => {
  const r = await curl(`${sc.url}/query_script`, ['--compressed', '-X', 'POST', '-H', 'content-type: application/json', '--data-binary', QUERY]);
  assert.equal(r.status, 200);
  assert.equal(r.headers['content-encoding'], 'gzip');
  assert.equal(r.headers['content-length'], undefined, 'Content-Length dropped when compressing');
  assert.equal(r.headers['transfer-encoding'], 'chunked');
  assert.match(r.headers.vary ?? '', /accept-encoding/i);
  assert.ok(r.body.equals(draftJson), 'curl decoded the same JSON the upstream sent');
  // and without --compressed curl sends no Accept-Encoding: identity, with Content-Length
  const plain = await curl(`${sc.url}/query_script`, ['-X', 'POST', '-H', 'content-type: application/json', '--data-binary', QUERY]);
  assert.equal(plain.headers['content-encoding'], undefined);
  assert.equal(plain.headers['content-length'], String(draftJson.length));
  assert.ok(plain.body.equals(draftJson));
});

test("Node's fetch (gzip, deflate) gets gzip and decodes it; the wire bytes are much smaller", async () => {
  const res = await fetch(`${sc.url}/query_script`, { method: 'POST', headers: JSON_HEADERS, body: QUERY });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-encoding'), 'gzip');
  assert.equal(await res.text(), draftJson.toString());
  const raw = await query('gzip');
  assert.equal(raw.headers['content-encoding'], 'gzip');
  assert.ok(raw.body.length < draftJson.length / 2, `gzip ${raw.body.length} bytes vs identity ${draftJson.length}`);
  assert.ok(gunzipSync(raw.body).equals(draftJson));
});

test('no Accept-Encoding: identity with its Content-Length, and still Vary: Accept-Encoding', async () => {
  const r = await query(undefined);
  assert.equal(r.headers['content-encoding'], undefined);
  assert.equal(r.headers['content-length'], String(draftJson.length));
  assert.equal(r.headers.vary, 'Accept-Encoding');
  assert.ok(r.body.equals(draftJson));
});

test('Accept-Encoding q-values, `*` and identity;q=0 choose the coding (RFC 9110), identity when nothing fits', async () => {
  const cases: Array<[string, string | undefined]> = [
    ['gzip', 'gzip'],
    ['gzip;q=0', undefined],
    ['br', 'br'],
    ['gzip;q=0.5, br;q=0.8', 'br'],
    ['gzip;q=0.9, br;q=0.8', 'gzip'],
    ['br, gzip', 'gzip'], // a tie: the policy lists gzip first
    ['*', 'gzip'],
    ['*;q=0.5, gzip;q=0', 'br'],
    ['deflate, zstd', undefined],
    ['gzip;q=0.5, identity', undefined], // identity preferred explicitly
    ['identity;q=0', undefined], // nothing acceptable: identity anyway (nginx, RFC 9110 §12.5.3), never 406
    ['gzip;q=0, identity;q=0', undefined],
    ['*;q=0', undefined],
    ['gzip, identity;q=0', 'gzip'],
  ];
  for (const [ae, want] of cases) {
    const r = await query(ae);
    assert.equal(r.status, 200, ae);
    assert.equal(r.headers['content-encoding'], want, `Accept-Encoding: ${ae}`);
    assert.ok(decoded(r).equals(draftJson), `body for Accept-Encoding: ${ae}`);
    assert.match(String(r.headers.vary), /Accept-Encoding/, ae);
  }
});

test('a response the upstream already encoded passes untouched (never encoded twice, no Vary added)', async () => {
  for (const enc of ['gzip', 'br', 'deflate']) {
    const r = await rawRequest(sc.url + headersPath({ 'Content-Encoding': enc }), { headers: { 'accept-encoding': 'gzip, br' } });
    assert.equal(r.headers['content-encoding'], enc);
    assert.equal(r.headers.vary, undefined);
    // the draft service's "encoded" body is plain JSON: it parses, so the sidecar did not encode it again
    const body = JSON.parse(r.body.toString()) as { pad: string };
    assert.equal(body.pad.length, 5000);
    assert.equal(r.headers['content-length'], String(r.body.length));
  }
});

test('Cache-Control: no-transform, on the response or on the request, is honoured', async () => {
  for (const cc of ['no-transform', 'public, max-age=60, No-Transform']) {
    const r = await rawRequest(sc.url + headersPath({ 'Cache-Control': cc }), { headers: { 'accept-encoding': 'gzip' } });
    assert.equal(r.headers['content-encoding'], undefined, cc);
    assert.equal(r.headers.vary, undefined, cc);
    assert.equal((JSON.parse(r.body.toString()) as { pad: string }).pad.length, 5000);
  }
  const req = await query('gzip', { 'cache-control': 'no-transform' });
  assert.equal(req.headers['content-encoding'], undefined);
  assert.ok(req.body.equals(draftJson));
  // a different directive does not count
  const other = await rawRequest(sc.url + headersPath({ 'Cache-Control': 'no-cache' }), { headers: { 'accept-encoding': 'gzip' } });
  assert.equal(other.headers['content-encoding'], 'gzip');
});

test('HEAD is never encoded (Content-Length of identity kept) but says Vary: Accept-Encoding', async () => {
  const path = headersPath({}, 5000);
  const get = await rawRequest(sc.url + path, { headers: { 'accept-encoding': 'gzip' } });
  assert.equal(get.headers['content-encoding'], 'gzip');
  const head = await rawRequest(sc.url + path, { method: 'HEAD', headers: { 'accept-encoding': 'gzip' } });
  assert.equal(head.status, 200);
  assert.equal(head.headers['content-encoding'], undefined);
  assert.ok(Number(head.headers['content-length']) > 5000);
  assert.equal(head.headers.vary, 'Accept-Encoding');
  assert.equal(head.body.length, 0);
});

test('204, 205 and 304 are never encoded even with a compressible Content-Type', async () => {
  for (const status of [204, 205, 304]) {
    const r = await rawRequest(`${scEdge.url}/${status}`, { headers: { 'accept-encoding': 'gzip' } });
    assert.equal(r.status, status);
    assert.equal(r.headers['content-encoding'], undefined, String(status));
    assert.equal(r.body.length, 0);
  }
  const r304 = await rawRequest(`${scEdge.url}/304`, { headers: { 'accept-encoding': 'gzip' } });
  assert.equal(r304.headers.etag, '"v1"', 'a 304 keeps its strong validator');
});

test('ranges: a 206, or any response with Content-Range, passes as identity bytes', async () => {
  for (const path of ['/206', '/content-range']) {
    const direct = await rawRequest(`http://127.0.0.1:${edge.port}${path}`);
    const r = await rawRequest(scEdge.url + path, { headers: { 'accept-encoding': 'gzip, br', range: 'bytes=0-4999' } });
    assert.equal(r.status, direct.status);
    assert.equal(r.headers['content-encoding'], undefined, path);
    assert.equal(r.headers['content-range'], direct.headers['content-range']);
    assert.equal(r.headers['content-length'], direct.headers['content-length']);
    assert.ok(r.body.equals(direct.body), path);
  }
  const r206 = await rawRequest(`${scEdge.url}/206`, { headers: { 'accept-encoding': 'gzip' } });
  assert.equal(r206.headers.etag, '"r1"');
});

test('threshold: a Content-Length under it is sent as is (with Vary), at or over it is compressed', async () => {
  const small = await rawRequest(sc.url + headersPath({}, 100), { headers: { 'accept-encoding': 'gzip' } });
  assert.ok(Number(small.headers['content-length']) < 1024);
  assert.equal(small.headers['content-encoding'], undefined);
  assert.equal(small.headers.vary, 'Accept-Encoding');
  const big = await rawRequest(sc.url + headersPath({}, 1100), { headers: { 'accept-encoding': 'gzip' } });
  assert.equal(big.headers['content-encoding'], 'gzip');
  assert.equal((JSON.parse(gunzipSync(big.body).toString()) as { pad: string }).pad.length, 1100);
});

test('unknown length (chunked): compressed whatever its size, like nginx; curl decodes it', async () => {
  for (const bytes of [100, 50_000]) {
    const direct = await rawRequest(`http://127.0.0.1:${edge.port}/chunked?bytes=${bytes}`);
    assert.equal(direct.headers['content-length'], undefined);
    const r = await rawRequest(`${scEdge.url}/chunked?bytes=${bytes}`, { headers: { 'accept-encoding': 'gzip' } });
    assert.equal(r.headers['content-encoding'], 'gzip');
    assert.ok(gunzipSync(r.body).equals(direct.body));
    const c = await curl(`${scEdge.url}/chunked?bytes=${bytes}`, ['--compressed']);
    assert.ok(c.body.equals(direct.body));
  }
});

test('Vary is merged with the upstream one, never duplicated; Vary: * is kept', async () => {
  const cases: Array<[string, string]> = [
    ['Origin', 'Origin, Accept-Encoding'],
    ['accept-encoding', 'accept-encoding'],
    ['Origin, Accept-Encoding', 'Origin, Accept-Encoding'],
    ['*', '*'],
  ];
  for (const [vary, want] of cases) {
    for (const ae of ['gzip', '']) {
      const r = await rawRequest(sc.url + headersPath({ Vary: vary }), { headers: ae ? { 'accept-encoding': ae } : {} });
      assert.equal(r.headers.vary, want, `Vary: ${vary}, Accept-Encoding: ${ae}`);
    }
  }
});

test('a strong ETag becomes weak when the body is encoded, and stays strong when it is not', async () => {
  const gz = await rawRequest(sc.url + headersPath({ ETag: '"abc"' }), { headers: { 'accept-encoding': 'gzip' } });
  assert.equal(gz.headers['content-encoding'], 'gzip');
  assert.equal(gz.headers.etag, 'W/"abc"');
  const plain = await rawRequest(sc.url + headersPath({ ETag: '"abc"' }));
  assert.equal(plain.headers.etag, '"abc"');
  const weak = await rawRequest(sc.url + headersPath({ ETag: 'W/"xyz"' }), { headers: { 'accept-encoding': 'br' } });
  assert.equal(weak.headers['content-encoding'], 'br');
  assert.equal(weak.headers.etag, 'W/"xyz"');
});

test('Accept-Ranges is dropped from an encoded response (ranges of the encoded body are not offered)', async () => {
  const r = await rawRequest(sc.url + headersPath({ 'Accept-Ranges': 'bytes' }), { headers: { 'accept-encoding': 'gzip' } });
  assert.equal(r.headers['content-encoding'], 'gzip');
  assert.equal(r.headers['accept-ranges'], undefined);
  const plain = await rawRequest(sc.url + headersPath({ 'Accept-Ranges': 'bytes' }));
  assert.equal(plain.headers['accept-ranges'], 'bytes');
});

test('content types: only the listed ones (wildcards, parameters, any case); SSE not by default', async () => {
  const cases: Array<[string, string | undefined]> = [
    ['application/json', 'gzip'],
    ['Application/JSON; charset=utf-8', 'gzip'],
    ['text/html', 'gzip'],
    ['application/problem+json', 'gzip'],
    ['image/svg+xml', 'gzip'],
    ['image/png', undefined],
    ['application/octet-stream', undefined],
    ['text/event-stream', undefined],
  ];
  for (const [ct, want] of cases) {
    const r = await rawRequest(`${scEdge.url}/typed?ct=${encodeURIComponent(ct)}`, { headers: { 'accept-encoding': 'gzip' } });
    assert.equal(r.headers['content-encoding'], want, ct);
    assert.equal(r.headers.vary, want ? 'Accept-Encoding' : undefined, ct);
    assert.equal(decoded(r).length, 4000);
  }
  // the real SSE stream of the draft service, with a client that accepts gzip
  const sse = await rawRequest(`${sc.url}/stream/sse?events=3&interval_ms=10`, { headers: { 'accept-encoding': 'gzip' } });
  assert.equal(sse.headers['content-type'], 'text/event-stream');
  assert.equal(sse.headers['content-encoding'], undefined);
  assert.equal((sse.body.toString().match(/^event: progress$/gm) ?? []).length, 3);
});

test('many concurrent gzip answers for different drafts each decode to their own JSON (no cross-talk)', async () => {
  const ids = Array.from({ length: 60 }, (_, i) => `dft_${String(100 + i).padStart(6, '0')}`);
  const body = (id: string) => JSON.stringify({ draft_id: id, force_update: false });
  const direct = await Promise.all(ids.map((id) => rawRequest(`${upstream.url}/query_script`, { method: 'POST', headers: JSON_HEADERS, body: body(id) })));
  const viaSidecar = await Promise.all(ids.map((id) => rawRequest(`${sc.url}/query_script`, { method: 'POST', headers: { ...JSON_HEADERS, 'accept-encoding': 'gzip' }, body: body(id) })));
  viaSidecar.forEach((r, i) => {
    assert.equal(r.headers['content-encoding'], 'gzip');
    assert.ok(gunzipSync(r.body).equals(direct[i].body), ids[i]);
  });
});
