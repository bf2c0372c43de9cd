/**
 * Brotli when the policy lists it and the client prefers it (the policy's order breaks q-value ties),
 * and server-sent events compressed only when the types list names text/event-stream, then flushed event by
 * event so the client sees each one as the upstream sends it.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { brotliDecompressSync } from 'node:zlib';
import { startDraftService, type DraftService } from '../../examples/draft-service';
import { startSidecar, basicPolicy, type SidecarProcess } from '../helpers/sidecar';
import { rawRequest, curl } from './helpers';

// br first; SSE named explicitly, so it is compressed
const COMPRESSION = `compression:
  algorithm: "br, gzip"
  level: 6
  threshold: 1KB
  types: [application/json, "text/*", text/event-stream]
`;

const QUERY = JSON.stringify({ draft_id: 'dft_000007', force_update: false });
const JSON_HEADERS = { 'content-type': 'application/json' };

let upstream: DraftService;
let sc: SidecarProcess;
let draftJson: Buffer;

before(async () => {
  upstream = await startDraftService({ port: 0, host: '127.0.0.1', serviceTimeMs: 0 });
  sc = await startSidecar(basicPolicy(upstream.port, COMPRESSION));
  draftJson = (await rawRequest(`${upstream.url}/query_script`, { method: 'POST', headers: JSON_HEADERS, body: QUERY })).body;
});
after(async () => {
  await sc?.stop();
  await upstream?.close();
});

test('curl --compressed (deflate, gzip, br, zstd) gets brotli, the policy\'s first choice, and decodes it', async () => {
  const r = await curl(`${sc.url}/query_script`, ['--compressed', '-X', 'POST', '-H', 'content-type: application/json', '--data-binary', QUERY]);
  assert.equal(r.headers['content-encoding'], 'br');
  assert.match(r.headers.vary ?? '', /Accept-Encoding/);
  assert.ok(r.body.equals(draftJson));
});

test("fetch decodes brotli; the client's q-values come before the policy order", async () => {
  const cases: Array<[string, string | null]> = [
    ['gzip, br', 'br'], // tie: policy order (br first)
    ['gzip', 'gzip'],
    ['br;q=0.5, gzip', 'gzip'], // the client prefers gzip
    ['gzip;q=0.1, br;q=0.2', 'br'],
    ['identity', null],
  ];
  for (const [ae, want] of cases) {
    const res = await fetch(`${sc.url}/query_script`, { method: 'POST', headers: { ...JSON_HEADERS, 'accept-encoding': ae }, body: QUERY });
    assert.equal(res.headers.get('content-encoding'), want, ae);
    assert.equal(await res.text(), draftJson.toString(), ae);
  }
});

test('brotli output on the wire is a valid stream smaller than gzip-sized expectations', async () => {
  const r = await rawRequest(`${sc.url}/query_script`, { method: 'POST', headers: { ...JSON_HEADERS, 'accept-encoding': 'br' }, body: QUERY });
  assert.equal(r.headers['content-encoding'], 'br');
  assert.equal(r.headers['content-length'], undefined);
  assert.ok(r.body.length < draftJson.length / 2, `br ${r.body.length} vs ${draftJson.length}`);
  assert.ok(brotliDecompressSync(r.body).equals(draftJson));
});

interface Arrival { seq: number; sentAt: number; arrivedAt: number }

/** Reads an SSE stream with fetch (which decodes as it goes) and notes when each event arrives. */
async function readEvents(acceptEncoding: string, events: number, intervalMs: number): Promise<{ encoding: string | null; arrivals: Arrival[] }> {
  const res = await fetch(`${sc.url}/stream/sse?events=${events}&interval_ms=${intervalMs}`, { headers: { 'accept-encoding': acceptEncoding }, signal: AbortSignal.timeout(30_000) });
  assert.equal(res.status, 200);
  const arrivals: Arrival[] = [];
  const decoder = new TextDecoder();
  let text = '';
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    const now = Date.now();
    text += decoder.decode(chunk, { stream: true });
    let end: number;
    while ((end = text.indexOf('\n\n')) !== -1) {
      const ev = text.slice(0, end);
      text = text.slice(end + 2);
      const data = /^data: (.*)$/m.exec(ev)?.[1];
      assert.ok(data, `an event with data: ${ev}`);
      const d = JSON.parse(data) as { seq: number; at: number };
      arrivals.push({ seq: d.seq, sentAt: d.at, arrivedAt: now });
    }
  }
  return { encoding: res.headers.get('content-encoding'), arrivals };
}

for (const enc of ['gzip', 'br']) {
  test(`SSE compressed with ${enc} is flushed event by event: the first event arrives long before the last is sent`, async () => {
    const events = 5;
    const interval = 500;
    const { encoding, arrivals } = await readEvents(enc, events, interval);
    assert.equal(encoding, enc);
    assert.deepEqual(arrivals.map((a) => a.seq), [1, 2, 3, 4, 5]);
    const last = arrivals[events - 1];
    // without a flush per chunk the encoder would hold every small event until the stream ends
    assert.ok(arrivals[0].arrivedAt < last.sentAt - interval, `first event at ${arrivals[0].arrivedAt}, last sent at ${last.sentAt}`);
    // each event reaches the client before the upstream sends the one after next (generous on a slow machine)
    for (let i = 0; i + 2 < events; i++) {
      assert.ok(arrivals[i].arrivedAt < arrivals[i + 2].sentAt, `event ${i + 1} arrived at ${arrivals[i].arrivedAt}, event ${i + 3} sent at ${arrivals[i + 2].sentAt}`);
    }
  });
}

test('SSE through curl --compressed -N: the events decode whole', async () => {
  const r = await curl(`${sc.url}/stream/sse?events=3&interval_ms=50`, ['--compressed', '-N']);
  assert.equal(r.headers['content-encoding'], 'br');
  assert.equal((r.body.toString().match(/^event: progress$/gm) ?? []).length, 3);
});
