/**
 * server.* settings that shape connections and logs: keepalive_timeout closes idle client connections,
 * worker_connections caps open connections per worker, and every request writes one access-log line (with a
 * warning above slow_request_threshold).
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { startDraftService, type DraftService } from '../../examples/draft-service';
import { startSidecar, basicPolicy } from '../helpers/sidecar';
import { sleep, waitFor } from '../helpers/ports';

let upstream: DraftService;
before(async () => {
  upstream = await startDraftService({ port: 0, host: '127.0.0.1' });
});
after(async () => {
  await upstream.close();
});

function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => resolve(s));
    s.on('error', reject);
  });
}

function exchange(s: Socket, path: string): Promise<string> {
  return new Promise((resolve) => {
    let buf = Buffer.alloc(0);
    const onData = (d: Buffer) => {
      // Content-Length counts bytes: compare it with bytes, not characters (the lists hold UTF-8 names)
      buf = Buffer.concat([buf, d]);
      const headEnd = buf.indexOf('\r\n\r\n');
      const out = buf.toString('latin1');
      if (headEnd !== -1 && /content-length: (\d+)/i.test(out)) {
        const len = Number(/content-length: (\d+)/i.exec(out)![1]);
        if (buf.length - headEnd - 4 >= len) { s.off('data', onData); resolve(buf.toString('utf8')); }
      }
    };
    s.on('data', onData);
    s.write(`GET ${path} HTTP/1.1\r\nHost: test\r\n\r\n`);
  });
}

test('keepalive_timeout closes an idle client connection after that long', async () => {
  const sc = await startSidecar(basicPolicy(upstream.port, '', { keepalive_timeout: '1s' }));
  try {
    const s = await open(sc.port);
    const closed = new Promise<number>((r) => { const t0 = Date.now(); s.on('close', () => r(Date.now() - t0)); });
    assert.match(await exchange(s, '/get_font_types'), /^HTTP\/1\.1 200/);
    const after = await closed;
    assert.ok(after >= 800 && after < 5000, `closed ${after} ms after the response`);
  } finally {
    await sc.stop();
  }
});

test('worker_connections caps open connections per worker; others are served once one closes', async () => {
  const sc = await startSidecar(basicPolicy(upstream.port, '', { worker_connections: 3 }));
  const sockets: Socket[] = [];
  try {
    for (let i = 0; i < 3; i++) {
      const s = await open(sc.port);
      sockets.push(s);
      assert.match(await exchange(s, '/get_font_types'), /^HTTP\/1\.1 200/);
    }
    // the 4th connection is accepted by the kernel, then dropped by the server: no answer on it
    const fourth = await open(sc.port);
    const dropped = await new Promise<boolean>((resolve) => {
      fourth.on('close', () => resolve(true));
      fourth.on('error', () => {});
      fourth.write('GET /get_font_types HTTP/1.1\r\nHost: t\r\n\r\n');
      setTimeout(() => resolve(false), 3000);
    });
    assert.equal(dropped, true);
    sockets.shift()!.destroy();
    await sleep(100);
    const again = await open(sc.port);
    sockets.push(again);
    assert.match(await exchange(again, '/get_font_types'), /^HTTP\/1\.1 200/);
  } finally {
    for (const s of sockets) s.destroy();
    await sc.stop();
  }
});

test('access lines are batched, yet every one arrives: within ~100 ms when idle, and all of them on shutdown (2 workers)', async () => {
  const sc = await startSidecar(basicPolicy(upstream.port, '', { workers: 2 }));
  try {
    // a few requests, then idle: the periodic flush writes them out without more traffic
    for (let i = 0; i < 3; i++) await (await fetch(`${sc.url}/get_font_types?idle=${i}`)).text();
    await waitFor('idle lines flushed', () => sc.logs.filter((l) => l.msg === 'access' && String(l.path).startsWith('/get_font_types')).length === 3, 5_000, 20);
    // a burst, then SIGTERM at once: the lines still in the buffer are written on exit
    const n = 600;
    let next = 0;
    await Promise.all(Array.from({ length: 8 }, async () => {
      while (next < n) {
        const i = next++;
        const r = await fetch(`${sc.url}/get_text_outro_types?burst=${i}`);
        await r.text();
        assert.equal(r.status, 200);
      }
    }));
    const code = await sc.stop();
    assert.equal(code, 0);
    const burst = sc.logs.filter((l) => l.msg === 'access' && String(l.path) === '/get_text_outro_types');
    assert.equal(burst.length, n, 'one access line per request, none lost at shutdown');
    assert.deepEqual(sc.logs.filter((l) => 'raw' in l), [], 'every stdout line is whole JSON (no interleaving)');
  } finally {
    await sc.stop();
  }
});

test('one access-log line per request with its outcome; a warning above slow_request_threshold', async () => {
  const sc = await startSidecar(basicPolicy(upstream.port, '', { slow_request_threshold: '200ms' }));
  try {
    await (await fetch(`${sc.url}/get_font_types`)).text();
    await (await fetch(`${sc.url}/slow?ms=400`)).text();
    const access = await sc.waitForLog((l) => l.msg === 'access' && l.path === '/get_font_types');
    assert.equal(access.status, 200);
    assert.equal(access.method, 'GET');
    assert.equal(typeof access.duration_ms, 'number');
    assert.equal(typeof access.upstream_ms, 'number');
    assert.ok('cache' in access && 'limit' in access && 'route' in access);
    const slow = await sc.waitForLog((l) => l.msg === 'slow request' && l.path === '/slow');
    assert.equal(slow.level, 'warn');
    assert.ok((slow.duration_ms as number) >= 200);
    await waitFor('exactly one line per request', () => sc.logs.filter((l) => l.msg === 'access' || l.msg === 'slow request').length === 2);
  } finally {
    await sc.stop();
  }
});
