/**
 * The proxy path end to end: real client -> real sidecar process -> real upstream, and its failure modes
 * (upstream down, slow, resetting sockets; oversize and malformed requests).
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { request, Agent, type IncomingMessage } from 'node:http';
import { createServer as createTcpServer, connect, type Socket } from 'node:net';
import { startDraftService, type DraftService } from '../../examples/draft-service';
import { startSidecar, basicPolicy, type SidecarProcess } from '../helpers/sidecar';
import { freePort } from '../helpers/ports';

interface Reply { status: number; headers: IncomingMessage['headers']; body: string; ms: number }

function send(url: string, opts: { method?: string; path?: string; headers?: Record<string, string>; body?: string | Buffer; agent?: Agent } = {}): Promise<Reply> {
  const u = new URL(opts.path ?? '/', url);
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = request(u, { method: opts.method ?? 'GET', headers: opts.headers, agent: opts.agent ?? false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString(), ms: performance.now() - t0 }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

let upstream: DraftService;
let sc: SidecarProcess;

before(async () => {
  upstream = await startDraftService({ port: 0, host: '127.0.0.1', serviceTimeMs: 0 });
  sc = await startSidecar(basicPolicy(upstream.port, '', { client_max_body_size: '64KB' }));
});
after(async () => {
  await sc?.stop();
  await upstream?.close();
});

test('a GET passes through unchanged, with Via on the response and X-Forwarded-* and Via upstream', async () => {
  const direct = await send(`http://127.0.0.1:${upstream.port}`, { path: '/get_font_types' });
  const via = await send(sc.url, { path: '/get_font_types' });
  assert.equal(via.status, 200);
  assert.equal(via.body, direct.body);
  assert.equal(via.headers.via, '1.1 bridge-sidecar');
  const echo = await send(sc.url, { method: 'POST', path: '/echo', headers: { 'content-type': 'application/json', 'x-forwarded-for': '203.0.113.9' }, body: '{"a":1}' });
  const seen = JSON.parse(echo.body) as { headers: Record<string, string>; method: string; body: unknown };
  assert.equal(seen.method, 'POST');
  assert.match(seen.headers['x-forwarded-for'], /^203\.0\.113\.9, 127\.0\.0\.1$/);
  assert.equal(seen.headers['x-forwarded-proto'], 'http');
  assert.match(seen.headers['x-forwarded-host'], /^127\.0\.0\.1:\d+$/);
  assert.match(seen.headers.via, /1\.1 bridge-sidecar/);
});

test('hop-by-hop request headers, and the ones Connection names, are not forwarded', async () => {
  const echo = await send(sc.url, {
    method: 'POST', path: '/echo',
    headers: { connection: 'keep-alive, x-secret-hop', 'x-secret-hop': '1', 'keep-alive': 'timeout=5', 'proxy-authorization': 'Basic x', 'x-kept': 'yes', 'content-type': 'application/json' },
    body: '{}',
  });
  const seen = JSON.parse(echo.body) as { headers: Record<string, string> };
  assert.equal(seen.headers['x-secret-hop'], undefined);
  assert.equal(seen.headers['proxy-authorization'], undefined);
  assert.equal(seen.headers['keep-alive'], undefined);
  assert.equal(seen.headers['x-kept'], 'yes');
});

test('a body over client_max_body_size is refused with 413 problem+json, with Content-Length and chunked', async () => {
  const big = Buffer.alloc(100 * 1024, 'a');
  const before = upstream.stats().requests;
  const r1 = await send(sc.url, { method: 'POST', path: '/echo', headers: { 'content-type': 'text/plain' }, body: big });
  assert.equal(r1.status, 413);
  assert.equal(r1.headers['content-type'], 'application/problem+json');
  assert.equal(JSON.parse(r1.body).status, 413);
  // chunked: no Content-Length, the limit is enforced while streaming
  const r2 = await new Promise<Reply>((resolve, reject) => {
    const t0 = performance.now();
    const req = request(new URL('/echo', sc.url), { method: 'POST', headers: { 'content-type': 'text/plain' }, agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, ms: performance.now() - t0 }));
    });
    req.on('error', reject);
    for (let i = 0; i < 10; i++) req.write(Buffer.alloc(10 * 1024, 'b'));
    req.end();
  });
  assert.equal(r2.status, 413);
  assert.equal(r2.headers['content-type'], 'application/problem+json');
  // the chunked one may have reached the upstream's parser, but was aborted before its end; the sidecar goes on
  assert.ok(upstream.stats().requests - before <= 1);
  assert.equal((await send(sc.url, { path: '/get_font_types' })).status, 200);
});

test('a malformed request gets 400 and oversized headers 431 from the listener', async () => {
  const raw = (payload: string) => new Promise<string>((resolve) => {
    const s = connect(sc.port, '127.0.0.1');
    let out = '';
    s.on('data', (d) => (out += d));
    s.on('close', () => resolve(out));
    s.on('error', () => { /* a reset after the answer: 'close' follows with what was read */ });
    s.write(payload);
    setTimeout(() => s.destroy(), 3000);
  });
  assert.match(await raw('GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n'), /^HTTP\/1\.1 400/);
  assert.match(await raw(`GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(40 * 1024)}\r\n\r\n`), /^HTTP\/1\.1 431/);
});

test('upstream down: 502 problem+json, fast', async () => {
  const deadPort = await freePort();
  const s = await startSidecar(basicPolicy(deadPort, '', {}));
  try {
    const r = await send(s.url, { path: '/get_font_types' });
    assert.equal(r.status, 502);
    assert.equal(r.headers['content-type'], 'application/problem+json');
    assert.equal(JSON.parse(r.body).type, 'https://bridge-sidecar.dev/problems/upstream-unavailable');
    assert.ok(r.ms < 3000, `502 took ${r.ms} ms`);
    const ready = await send(s.adminUrl, { path: '/readyz' });
    assert.equal(ready.status, 503);
    assert.match(ready.body, /upstream unreachable/);
  } finally {
    await s.stop();
  }
});

test('upstream too slow: 504 problem+json after read_timeout, and the slow upstream is not left hanging', async () => {
  const s = await startSidecar(basicPolicy(upstream.port, '', {}).replace(`url: http://127.0.0.1:${upstream.port}`, `url: http://127.0.0.1:${upstream.port}\n  pool: { read_timeout: 300ms, retries: 0 }`));
  try {
    const r = await send(s.url, { path: '/slow?ms=3000' });
    assert.equal(r.status, 504);
    assert.equal(r.headers['content-type'], 'application/problem+json');
    assert.ok(r.ms < 2500, `504 took ${r.ms} ms`);
    const ok = await send(s.url, { path: '/slow?ms=10' });
    assert.equal(ok.status, 200);
  } finally {
    await s.stop();
  }
});

/**
 * An upstream that answers the first request on each connection (keep-alive) and resets the connection when a
 * second request arrives on it: exactly what a proxy sees when the upstream closes an idle pooled socket just as
 * the proxy reuses it. Raw TCP, so the reset happens before any byte of a second response.
 */
async function startResettingUpstream(): Promise<{ port: number; handled: () => number; close: () => Promise<void> }> {
  let handled = 0;
  const sockets = new Set<Socket>();
  const server = createTcpServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => {});
    let buf = Buffer.alloc(0);
    let answered = false;
    sock.on('data', (d: Buffer) => {
      if (answered) {
        sock.resetAndDestroy();
        return;
      }
      buf = Buffer.concat([buf, d]);
      const end = buf.indexOf('\r\n\r\n');
      if (end === -1) return;
      const head = buf.subarray(0, end).toString();
      const len = Number(/content-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
      if (buf.length < end + 4 + len) return;
      answered = true;
      handled++;
      const body = JSON.stringify({ n: handled });
      sock.write(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: keep-alive\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    handled: () => handled,
    close: () => new Promise((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); }),
  };
}

test('a pooled socket reset by the upstream as it is reused is retried, even for a POST, and never 502s', async () => {
  const up = await startResettingUpstream();
  const s = await startSidecar(basicPolicy(up.port, '', {}));
  try {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const results: number[] = [];
    for (let i = 0; i < 6; i++) {
      const r = await send(s.url, { path: '/x', agent });
      results.push(r.status);
      const p = await send(s.url, { method: 'POST', path: '/write', headers: { 'content-type': 'application/json' }, body: '{"k":1}', agent });
      results.push(p.status);
    }
    agent.destroy();
    assert.deepEqual(results, new Array(12).fill(200));
    // each request reached the upstream's handler exactly once: the reset ones never got there
    assert.equal(up.handled(), 12);
    const m = await send(s.adminUrl, { path: '/metrics' });
    assert.match(m.body, /bridge_sidecar_upstream_retries_total\{reason="stale_keepalive"\} [1-9]/);
  } finally {
    await s.stop();
    await up.close();
  }
});

test('an upstream that resets mid-body: the client sees the response cut off, not a hang', async () => {
  const tcp = createTcpServer((sock) => {
    sock.once('data', () => {
      sock.write('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 100000\r\n\r\n' + 'x'.repeat(1000));
      setTimeout(() => sock.resetAndDestroy(), 50);
    });
  });
  await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', () => r()));
  const port = (tcp.address() as { port: number }).port;
  const s = await startSidecar(basicPolicy(port, '', {}));
  try {
    const outcome = await new Promise<string>((resolve) => {
      const req = request(new URL('/big', s.url), { agent: false }, (res) => {
        let n = 0;
        res.on('data', (c: Buffer) => (n += c.length));
        res.on('end', () => resolve(`end after ${n}`));
        res.on('error', () => resolve('error'));
        res.on('aborted', () => resolve('aborted'));
      });
      req.on('error', () => resolve('error'));
      req.end();
      setTimeout(() => resolve('hang'), 10_000);
    });
    assert.notEqual(outcome, 'hang');
    assert.notEqual(outcome, 'end after 100000');
  } finally {
    await s.stop();
    await new Promise<void>((r) => tcp.close(() => r()));
  }
});
