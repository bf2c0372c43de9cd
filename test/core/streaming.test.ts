/**
 * Bodies stream both ways with backpressure: SSE reaches the client event by event, a 500 MB download does not
 * grow the sidecar's memory, a large upload streams to the upstream, and WebSocket upgrades pass through.
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { createHash } from 'node:crypto';
import { WebSocket } from 'ws';
import { startDraftService, type DraftService } from '../../examples/draft-service';
import { startSidecar, basicPolicy, type SidecarProcess } from '../helpers/sidecar';

let upstream: DraftService;
let sc: SidecarProcess;

before(async () => {
  upstream = await startDraftService({ port: 0, host: '127.0.0.1' });
  sc = await startSidecar(basicPolicy(upstream.port, '', { log_level: 'warn' }));
});
after(async () => {
  await sc?.stop();
  await upstream?.close();
});

async function rssOfSidecar(): Promise<number> {
  const r = await fetch(`${sc.adminUrl}/metrics`);
  const text = await r.text();
  const m = /^process_resident_memory_bytes (\d+(\.\d+)?(e\+\d+)?)/m.exec(text);
  assert.ok(m, 'process_resident_memory_bytes in /metrics');
  return Number(m[1]);
}

test('an SSE response reaches the client event by event, not at the end', async () => {
  const events: number[] = [];
  const t0 = performance.now();
  await new Promise<void>((resolve, reject) => {
    const req = request(`${sc.url}/stream/sse?events=5&interval_ms=300`, { agent: false }, (res) => {
      assert.equal(res.headers['content-type']?.split(';')[0], 'text/event-stream');
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        buf += c;
        let i: number;
        while ((i = buf.indexOf('\n\n')) !== -1) {
          buf = buf.slice(i + 2);
          events.push(performance.now() - t0);
        }
      });
      res.on('end', () => resolve());
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
  assert.ok(events.length >= 5, `events: ${events.length}`);
  // the first event arrives long before the stream ends (4 intervals of 300 ms later)
  const spread = events[events.length - 1] - events[0];
  assert.ok(spread > 800, `events arrived within ${spread} ms of each other: buffered, not streamed`);
});

test('a 500 MB download streams through without growing the sidecar\'s memory', async () => {
  const before = await rssOfSidecar();
  const total = 500 * 1024 * 1024;
  let received = 0;
  let peak = before;
  await new Promise<void>((resolve, reject) => {
    const req = request(`${sc.url}/download?bytes=${total}`, { agent: false }, (res) => {
      let lastSample = 0;
      res.on('data', (c: Buffer) => {
        received += c.length;
        if (received - lastSample > 50 * 1024 * 1024) {
          lastSample = received;
          res.pause();
          void rssOfSidecar().then((r) => { peak = Math.max(peak, r); res.resume(); }, reject);
        }
      });
      res.on('end', () => resolve());
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
  assert.equal(received, total);
  const growth = peak - before;
  assert.ok(growth < 100 * 1024 * 1024, `sidecar RSS grew by ${Math.round(growth / 1048576)} MB while streaming 500 MB`);
});

test('a large upload streams to the upstream intact (chunked, 40 MB, under the 50 MB default limit)', async () => {
  const hash = createHash('sha256');
  const chunk = Buffer.alloc(1024 * 1024, 7);
  const reply = await new Promise<{ body_bytes: number; body_sha256: string }>((resolve, reject) => {
    const req = request(`${sc.url}/echo`, { method: 'POST', agent: false, headers: { 'content-type': 'application/octet-stream' } }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c));
      res.on('end', () => resolve(JSON.parse(body) as { body_bytes: number; body_sha256: string }));
    });
    req.on('error', reject);
    let n = 0;
    const write = () => {
      while (n < 40) {
        n++;
        hash.update(chunk);
        if (!req.write(chunk)) return void req.once('drain', write);
      }
      req.end();
    };
    write();
  });
  assert.equal(reply.body_bytes, 40 * 1024 * 1024);
  assert.equal(reply.body_sha256, hash.digest('hex'));
});

test('WebSocket upgrades pass through both ways', async () => {
  const ws = new WebSocket(`${sc.url.replace('http', 'ws')}/ws`);
  const got = await new Promise<string[]>((resolve, reject) => {
    const msgs: string[] = [];
    ws.on('open', () => {
      ws.send('hello');
      ws.send('bridge');
    });
    ws.on('message', (d) => {
      msgs.push(String(d));
      if (msgs.length === 2) resolve(msgs);
    });
    ws.on('error', reject);
    setTimeout(() => reject(new Error('no echo within 30 s')), 30_000).unref();
  });
  ws.close();
  assert.deepEqual(got, ['hello', 'bridge']);
});
