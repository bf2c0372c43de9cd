/**
 * Interim responses and streams through the sidecar: 103 Early Hints reach the client (and are never cached),
 * `Expect: 100-continue` with an oversize Content-Length gets its 413 without `100 Continue`, and the head of
 * a long-lived SSE answer reaches the client as soon as the upstream sends it (before any event).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { send, sidecar, startOrigin } from './rig';

test('103 Early Hints are relayed to the client, and a cached answer does not replay them', async (t) => {
  const o = await startOrigin();
  t.after(() => o.close());
  o.routes.set('/page', (_req, _b, res) => {
    res.writeEarlyHints({ link: '</style.css>; rel=preload; as=style' });
    res.writeHead(200, { 'content-length': '4', 'cache-control': 'max-age=60' });
    res.end('page');
  });
  const sc = await sidecar(t, o.port, `
  - name: page
    match: { method: GET, path: /page }
    cache: { key: "page", ttl: 1m }`);
  const get = () => new Promise<{ hints: Array<{ status: number; link: unknown }>; status: number; cache: unknown }>((resolve, reject) => {
    const hints: Array<{ status: number; link: unknown }> = [];
    const req = http.get({ host: '127.0.0.1', port: sc.port, path: '/page', agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve({ hints, status: res.statusCode ?? 0, cache: res.headers['cache-status'] }));
    });
    req.on('information', (info) => hints.push({ status: info.statusCode, link: info.headers.link }));
    req.on('error', reject);
  });
  const first = await get();
  assert.equal(first.status, 200);
  assert.deepEqual(first.hints, [{ status: 103, link: '</style.css>; rel=preload; as=style' }]);
  const second = await get();
  assert.match(String(second.cache), /; hit;/);
  assert.deepEqual(second.hints, []);
});

test('Expect: 100-continue with a Content-Length over client_max_body_size: 413 at once, no 100 Continue', async (t) => {
  const o = await startOrigin();
  t.after(() => o.close());
  const sc = await sidecar(t, o.port, '\n  - name: any\n    match: { path: "/*" }', '', { client_max_body_size: '1KB' });
  const head = await new Promise<string>((resolve, reject) => {
    const s = net.connect(sc.port, '127.0.0.1', () => {
      s.write('POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n');
    });
    let got = '';
    s.setEncoding('latin1');
    s.on('data', (c: string) => { got += c; if (got.includes('\r\n\r\n')) { s.destroy(); resolve(got); } });
    s.on('error', reject);
    s.setTimeout(10_000, () => { s.destroy(); reject(new Error('no answer: ' + JSON.stringify(got))); });
  });
  assert.match(head, /^HTTP\/1\.1 413 /, head);
  assert.equal(o.seen.length, 0);
});

test('Expect: 100-continue with an acceptable body still gets 100 Continue and its answer', async (t) => {
  const o = await startOrigin();
  t.after(() => o.close());
  o.routes.set('/upload', (_req, body, res) => { res.writeHead(200, { 'content-length': String(body.length) }); res.end(body); });
  const sc = await sidecar(t, o.port, '\n  - name: any\n    match: { path: "/*" }', '', { client_max_body_size: '1KB' });
  const r = await new Promise<{ status: number; body: string; continued: boolean }>((resolve, reject) => {
    let continued = false;
    const req = http.request({ host: '127.0.0.1', port: sc.port, method: 'POST', path: '/upload', agent: false, headers: { expect: '100-continue', 'content-length': '5' } }, (res) => {
      let b = '';
      res.on('data', (c: Buffer) => { b += c.toString(); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: b, continued }));
    });
    req.on('continue', () => { continued = true; req.end('hello'); });
    req.on('error', reject);
  });
  assert.deepEqual(r, { status: 200, body: 'hello', continued: true });
});

test('the head of an SSE stream reaches the client when the upstream sends it, before the first event', async (t) => {
  const o = await startOrigin();
  t.after(() => o.close());
  let sendEvent: (() => void) | null = null;
  let eventSent = false;
  o.routes.set('/mcp', (req, _b, res) => {
    if (req.method !== 'GET') { res.writeHead(405, { 'content-length': '0' }); return void res.end(); }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    res.flushHeaders();
    sendEvent = () => { eventSent = true; res.end('event: message\ndata: {"jsonrpc":"2.0","method":"notifications/tools/list_changed"}\n\n'); };
  });
  t.after(() => sendEvent?.());
  const sc = await sidecar(t, o.port, '\n  - name: mcp\n    match: { path: /mcp }', 'compression: { enabled: true, threshold: 1KB }\n');
  const got = await new Promise<{ status: number; type: unknown; eventSentBefore: boolean }>((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port: sc.port, path: '/mcp', agent: false, headers: { accept: 'text/event-stream', 'accept-encoding': 'gzip' } }, (res) => {
      resolve({ status: res.statusCode ?? 0, type: res.headers['content-type'], eventSentBefore: eventSent });
      res.resume();
    });
    req.on('error', reject);
    // the event is only ever sent once the test has the head, or after 8 s if the head never comes on its own
    setTimeout(() => { sendEvent?.(); }, 8000).unref();
  });
  assert.equal(got.status, 200);
  assert.equal(got.type, 'text/event-stream');
  assert.equal(got.eventSentBefore, false);
});
