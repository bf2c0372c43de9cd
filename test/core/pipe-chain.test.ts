/**
 * lib/core/pipe-chain.ts over real sockets: what the handler relies on when a response filter transforms an
 * answer (the contract stream.pipeline gave it): the body arrives whole and in order on a connection that stays
 * open; a filter's error or the client leaving destroys the source (which ends the upstream exchange) and is
 * reported once.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request, Agent, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable, Transform } from 'node:stream';
import { pipeChain } from '../../lib/core/pipe-chain';

interface Served {
  source: Readable;
  results: (Error | null)[];
}

/** A server whose every answer goes through pipeChain(source, transforms(), res); `feed` writes the source. */
async function serve(transforms: () => Transform[], feed: (source: Readable, res: ServerResponse) => void) {
  const served: Served[] = [];
  const sockets = new Set<unknown>();
  const server = createServer((_req, res) => {
    const s: Served = { source: new Readable({ read() {} }), results: [] };
    served.push(s);
    res.writeHead(200, { 'content-type': 'text/plain' });
    pipeChain(s.source, transforms(), res, (err) => {
      s.results.push(err);
      if (err && !res.destroyed) res.destroy();
    });
    feed(s.source, res);
  });
  server.on('connection', (c) => sockets.add(c));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  return { served, sockets, port, close: () => { server.closeAllConnections(); server.close(); } };
}

const upper = () => new Transform({ transform: (c: Buffer, _e, cb) => cb(null, Buffer.from(c.toString().toUpperCase())) });
const tag = () => new Transform({ transform: (c: Buffer, _e, cb) => cb(null, Buffer.concat([Buffer.from('<'), c, Buffer.from('>')])) });

function get(port: number, agent: Agent): Promise<{ body: string; complete: boolean }> {
  return new Promise((resolve, reject) => {
    const req = request({ port, host: '127.0.0.1', path: '/', agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { body += d; });
      res.on('end', () => resolve({ body, complete: res.complete }));
      res.on('aborted', () => resolve({ body, complete: false }));
      res.on('error', () => resolve({ body, complete: false }));
    });
    req.on('error', reject);
    req.end();
  });
}

const settle = () => new Promise((r) => setTimeout(r, 50));

test('pipeChain: the body goes through every transform in order, done(null) once, and the connection stays open', async (t) => {
  const s = await serve(() => [upper(), tag()], (source) => {
    source.push('ab');
    setImmediate(() => { source.push('cd'); source.push(null); });
  });
  t.after(s.close);
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  t.after(() => agent.destroy());
  assert.deepEqual(await get(s.port, agent), { body: '<AB><CD>', complete: true });
  assert.deepEqual(await get(s.port, agent), { body: '<AB><CD>', complete: true });
  await settle();
  assert.equal(s.sockets.size, 1, 'both answers on one keep-alive connection');
  assert.deepEqual(s.served.map((x) => x.results), [[null], [null]]);
});

test('pipeChain: a transform that fails mid-body destroys the source, breaks the answer off, reports the error once', async (t) => {
  const failing = () => new Transform({
    transform(c: Buffer, _e, cb) {
      if (c.toString() === 'bad') cb(new Error('filter failed'));
      else cb(null, c);
    },
  });
  const s = await serve(() => [failing(), upper()], (source) => {
    source.push('good');
    setTimeout(() => source.push('bad'), 20);
  });
  t.after(s.close);
  const agent = new Agent({ keepAlive: true });
  t.after(() => agent.destroy());
  const r = await get(s.port, agent);
  assert.equal(r.complete, false);
  assert.equal(r.body, 'GOOD');
  await settle();
  const [one] = s.served;
  assert.equal(one!.results.length, 1);
  assert.equal(one!.results[0]?.message, 'filter failed');
  assert.equal(one!.source.destroyed, true, 'the source (the upstream exchange) is ended');
});

test('pipeChain: the client leaving mid-body destroys the source and reports once', async (t) => {
  const s = await serve(() => [upper()], (source) => { source.push('first'); });
  t.after(s.close);
  await new Promise<void>((resolve, reject) => {
    const req = request({ port: s.port, host: '127.0.0.1', path: '/', agent: false }, (res) => {
      res.once('data', () => { req.destroy(); resolve(); });
    });
    req.on('close', () => resolve());
    req.on('error', reject); // after destroy() a late error settles nothing: the promise is resolved already
    req.end();
  });
  const deadline = Date.now() + 10_000;
  while (s.served[0]?.results.length !== 1 && Date.now() < deadline) await settle();
  await settle();
  const [one] = s.served;
  assert.equal(one!.results.length, 1);
  assert.ok(one!.results[0] instanceof Error);
  assert.equal(one!.source.destroyed, true);
});
