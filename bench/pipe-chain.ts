#!/usr/bin/env node
/**
 * What carrying an answer through one response Transform costs, `stream.pipeline` against lib/core/pipe-chain.ts
 * (what the handler uses for answers that a response filter transforms: a stored cache miss, compression, an
 * end gate). One process: a node:http server whose handler pushes a 2 KB body into a Readable (as the undici
 * leg does) and sends it through a pass-through Transform to the response, and a keep-alive undici client with
 * 16 requests in flight. The figure is the process's CPU per request, both sides together, so only the
 * difference between the rows is the pipe's; rounds alternate.
 *
 *   node dist/bench/pipe-chain.js [--requests 20000] [--rounds 3]
 *
 * Prints Markdown (nothing is written to bench/RESULTS.md).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pipeline, Readable, Transform } from 'node:stream';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { pipeChain } from '../lib/core/pipe-chain';
import { machineInfo, machineLine } from './lib/machine';
import { median } from './lib/stats';

const { values: args } = parseArgs({ options: { requests: { type: 'string' }, rounds: { type: 'string' } } });
const REQUESTS = Number(args.requests ?? 20_000);
const ROUNDS = Number(args.rounds ?? 3);
const BODY = Buffer.alloc(2048, 'x');
const MODES = ['stream.pipeline', 'pipeChain'] as const;
type Mode = (typeof MODES)[number];

let mode: Mode = 'pipeChain';
const server = createServer((_req, res) => {
  const source = new Readable({ read() {} });
  const identity = new Transform({ transform: (chunk, _enc, cb) => cb(null, chunk) });
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(BODY.length) });
  const done = (err: Error | null | undefined) => { if (err && !res.destroyed) res.destroy(); };
  if (mode === 'pipeChain') pipeChain(source, [identity], res, done);
  else pipeline([source, identity, res], done);
  source.push(BODY);
  source.push(null);
});

async function round(pool: Pool, m: Mode, n: number): Promise<number> {
  mode = m;
  let next = 0;
  const c0 = process.cpuUsage();
  const lane = async () => {
    while (next++ < n) {
      const r = await pool.request({ path: '/', method: 'GET' });
      await r.body.arrayBuffer();
    }
  };
  await Promise.all(Array.from({ length: 16 }, lane));
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / n;
}

async function main(): Promise<void> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const pool = new Pool(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, { connections: 16 });
  const got = new Map<Mode, number[]>(MODES.map((m) => [m, []]));
  try {
    for (const m of MODES) await round(pool, m, 5_000); // JIT and sockets
    for (let i = 0; i < ROUNDS; i++) {
      for (const m of i % 2 === 0 ? MODES : [...MODES].reverse()) got.get(m)!.push(await round(pool, m, REQUESTS));
    }
  } finally {
    await pool.close();
    server.close();
  }
  const machine = await machineInfo();
  console.log(`\`node dist/bench/pipe-chain.js --requests ${REQUESTS} --rounds ${ROUNDS}\` (${new Date().toISOString()}; ${machineLine(machine)})\n`);
  console.log('| pipe | µs of CPU per request, server and client (median) | rounds |');
  console.log('|---|---:|---|');
  for (const m of MODES) console.log(`| ${m} | ${median(got.get(m)!).toFixed(1)} | ${got.get(m)!.map((x) => x.toFixed(1)).join(' / ')} |`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
