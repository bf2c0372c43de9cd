/**
 * Compression streams. A 200 MB compressible response goes through the sidecar with its resident memory
 * bounded (read from its own /metrics), a paused client stops the upstream (backpressure reaches it through the
 * zlib stream), the bytes are counted in compression_bytes_total, and a gzip request body reaches the upstream
 * byte for byte (the sidecar never decodes requests).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { createGunzip, gzipSync } from 'node:zlib';
import { startDraftService, type DraftService } from '../../examples/draft-service';
import { startSidecar, basicPolicy, type SidecarProcess } from '../helpers/sidecar';
import { sleep, waitFor } from '../helpers/ports';
import { startEdgeUpstream, metricValue, type EdgeUpstream } from './helpers';

const MB = 1024 * 1024;
const COMPRESSION = `compression:
  algorithm: gzip
  level: 1
  threshold: 1KB
`;

let edge: EdgeUpstream;
let upstream: DraftService;
let scEdge: SidecarProcess;
let scDraft: SidecarProcess;

before(async () => {
  edge = await startEdgeUpstream();
  upstream = await startDraftService({ port: 0, host: '127.0.0.1', serviceTimeMs: 0 });
  [scEdge, scDraft] = await Promise.all([startSidecar(basicPolicy(edge.port, COMPRESSION)), startSidecar(basicPolicy(upstream.port, COMPRESSION))]);
});
after(async () => {
  await Promise.all([scEdge?.stop(), scDraft?.stop()]);
  await edge?.close();
  await upstream?.close();
});

async function metrics(sc: SidecarProcess): Promise<string> {
  const res = await fetch(`${sc.adminUrl}/metrics`);
  assert.equal(res.status, 200);
  return res.text();
}

async function rss(sc: SidecarProcess): Promise<number> {
  const v = metricValue(await metrics(sc), 'process_resident_memory_bytes');
  assert.ok(v !== null && v > 0, 'process_resident_memory_bytes is exported');
  return v;
}

test('200 MB of compressible JSON streams through gzip with the sidecar\'s memory bounded, and is counted', async (t) => {
  const total = 200 * MB;
  const before = await metrics(scEdge);
  const in0 = metricValue(before, 'bridge_sidecar_compression_bytes_total{direction="in"}') ?? 0;
  const out0 = metricValue(before, 'bridge_sidecar_compression_bytes_total{direction="out"}') ?? 0;
  const baseline = await rss(scEdge);
  let peak = baseline;
  let streaming = true;
  const sampler = (async () => {
    for (let i = 0; i < 2400 && streaming; i++) { // bounded: 10 min at most
      peak = Math.max(peak, await rss(scEdge));
      await sleep(200);
    }
  })();
  const { decodedBytes, wireBytes, encoding } = await new Promise<{ decodedBytes: number; wireBytes: number; encoding: string | undefined }>((resolve, reject) => {
    const req = request(`${scEdge.url}/big?bytes=${total}`, { headers: { 'accept-encoding': 'gzip' }, agent: false }, (res) => {
      let wire = 0;
      let decoded = 0;
      res.on('data', (c: Buffer) => { wire += c.length; });
      const gunzip = createGunzip();
      gunzip.on('data', (c: Buffer) => { decoded += c.length; });
      gunzip.on('end', () => resolve({ decodedBytes: decoded, wireBytes: wire, encoding: res.headers['content-encoding'] }));
      gunzip.on('error', reject);
      res.pipe(gunzip);
    });
    req.setTimeout(300_000, () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
  streaming = false;
  await sampler;
  peak = Math.max(peak, await rss(scEdge));
  assert.equal(encoding, 'gzip');
  assert.equal(decodedBytes, total);
  assert.ok(wireBytes < total / 4, `${wireBytes} bytes on the wire for ${total}`);
  const growth = peak - baseline;
  t.diagnostic(`rss baseline ${(baseline / MB).toFixed(1)} MB, peak ${(peak / MB).toFixed(1)} MB (+${(growth / MB).toFixed(1)} MB) for a ${total / MB} MB body`);
  // buffering the body (even half of it) would add 100+ MB; streaming holds a few zlib chunks and socket buffers
  assert.ok(growth < 96 * MB, `RSS grew by ${(growth / MB).toFixed(1)} MB while streaming ${total / MB} MB`);

  const after = await metrics(scEdge);
  const inBytes = (metricValue(after, 'bridge_sidecar_compression_bytes_total{direction="in"}') ?? 0) - in0;
  const outBytes = (metricValue(after, 'bridge_sidecar_compression_bytes_total{direction="out"}') ?? 0) - out0;
  assert.equal(inBytes, total, 'every identity byte counted as "in"');
  assert.ok(Math.abs(outBytes - wireBytes) < 64 * 1024, `"out" ${outBytes} matches the ${wireBytes} gzip bytes on the wire (chunk framing aside)`);
  t.diagnostic(`compression ratio out/in = ${(outBytes / inBytes).toFixed(3)}`);
});

test('a client that stops reading stops the upstream: backpressure passes through the compressor', async (t) => {
  const total = 2048 * MB; // far more than any buffer on the way
  const sentBefore = edge.bigSent();
  await new Promise<void>((resolve, reject) => {
    const req = request(`${scEdge.url}/big?bytes=${total}`, { headers: { 'accept-encoding': 'gzip' }, agent: false }, (res) => {
      assert.equal(res.headers['content-encoding'], 'gzip');
      let wire = 0;
      const onData = (c: Buffer) => {
        wire += c.length;
        if (wire < 256 * 1024) return;
        res.off('data', onData);
        res.pause();
        void (async () => {
          // wait until the upstream stops sending (the same count over 1 s), bounded
          let last = -1;
          const stalled = await waitFor('the upstream to stall', async () => {
            const now = edge.bigSent();
            const same = now === last;
            last = now;
            await sleep(1000);
            return same && edge.bigSent() === now ? now : 0;
          }, 60_000, 0);
          const sent = stalled - sentBefore;
          t.diagnostic(`upstream stalled after ${(sent / MB).toFixed(1)} MB of ${total / MB} MB`);
          assert.ok(sent < 512 * MB, `the upstream sent ${(sent / MB).toFixed(1)} MB to a client that read ${wire} bytes`);
          req.destroy();
          resolve();
        })().catch(reject);
      };
      res.on('data', onData);
      res.on('error', () => {});
    });
    req.on('error', () => {});
    req.end();
  });
});

async function echoGzip(size: number): Promise<void> {
  const json = JSON.stringify({ draft_id: 'dft_000001', blob: randomBytes(size).toString('base64') });
  const gz = gzipSync(json);
  const res = await fetch(`${scDraft.url}/echo`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'content-encoding': 'gzip', 'accept-encoding': 'gzip' },
    body: gz,
  });
  assert.equal(res.status, 200);
  const seen = (await res.json()) as { headers: Record<string, string>; body_bytes: number; body_sha256: string };
  assert.equal(seen.headers['content-encoding'], 'gzip');
  assert.equal(seen.body_bytes, gz.length);
  assert.equal(seen.body_sha256, createHash('sha256').update(gz).digest('hex'), 'the upstream got the gzip bytes unchanged');
}

test('a gzip request body reaches the upstream byte for byte, small (read whole) and large (streamed)', async () => {
  await echoGzip(1000); // under the 64 KB replay limit: the pipeline holds it as a Buffer
  await echoGzip(300_000); // over it: streamed
});

test('compression_bytes_total{direction} is exported with both directions, ratio out/in below 1', async () => {
  const text = await metrics(scDraft);
  assert.match(text, /# TYPE bridge_sidecar_compression_bytes_total counter/);
  const inBytes = metricValue(text, 'bridge_sidecar_compression_bytes_total{direction="in"}');
  const outBytes = metricValue(text, 'bridge_sidecar_compression_bytes_total{direction="out"}');
  assert.ok(inBytes !== null && outBytes !== null);
  // the echo answers of the previous test were compressed (JSON over 1 KB, client accepts gzip)
  assert.ok(inBytes > 0 && outBytes > 0 && outBytes < inBytes, `in ${inBytes}, out ${outBytes}`);
});

test('clients that hang up at any point of a gzip answer leave the sidecar healthy', async () => {
  const body = JSON.stringify({ draft_id: 'dft_000005', force_update: false });
  const attempts = Array.from({ length: 120 }, (_, i) => new Promise<void>((resolve) => {
    const req = request(`${scDraft.url}/query_script`, { method: 'POST', agent: false, headers: { 'content-type': 'application/json', 'accept-encoding': 'gzip' } }, (res) => {
      // hang up on the head, on the first bytes, or a moment later (while the gzip trailer is being made)
      if (i % 3 === 0) req.destroy();
      else if (i % 3 === 1) res.once('data', () => req.destroy());
      else setTimeout(() => req.destroy(), i % 5);
      res.on('error', () => {});
      res.resume();
    });
    req.on('error', () => {});
    req.on('close', () => resolve());
    req.end(body);
  }));
  await Promise.all(attempts);
  assert.equal(scDraft.proc.exitCode, null, `the sidecar is still running; stderr: ${scDraft.stderr.join('')}`);
  const res = await fetch(`${scDraft.url}/query_script`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  assert.equal(res.headers.get('content-encoding'), 'gzip');
  assert.equal((JSON.parse(await res.text()) as { success: boolean }).success, true);
});
