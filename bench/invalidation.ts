#!/usr/bin/env node
/**
 * Invalidation benchmark: how long after a write through pod A does pod B stop serving the old
 * entry? Two `bridge-sidecar serve` processes (workers: 0: one process each) share one
 * redis-server on loopback, in front of the example draft service (its own process).
 *
 * Per round: a draft's script is read through B until it is an L1 hit; then a write (POST /mcp/add_video,
 * route `emits: [draft_updated]`) goes through A, and B is polled back to back until its answer is no longer
 * the old one. Reported, p50/p99 over the rounds:
 *   - write: the write's latency through A (it includes A's own invalidation: L1, L3, L2);
 *   - event -> B: from sending the write to B's first fresh answer (client's view, includes the write);
 *   - B's own histogram (bridge_sidecar_invalidation_delay_seconds): event time in A to removal in B.
 *
 *   node dist/bench/invalidation.js [--rounds 200] [--quick] [--no-write]
 *
 * Needs redis-server. Prints Markdown and rewrites its section (SECTION) of bench/RESULTS.md.
 */
import http from 'node:http';
import { parseArgs } from 'node:util';
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { startRedis } from '../test/helpers/redis';
import { startSidecar } from '../test/helpers/sidecar';
import { draftPolicy } from '../test/invalidation/helpers';
import { startDraftServiceProcess } from './lib/services';
import { machineInfo, machineLine } from './lib/machine';
import { updateSection } from './results';

const SECTION = 'Invalidation (issue 6)';
const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });

function post(base: string, path: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: string; cache: string }> {
  const data = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(`${base}${path}`, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data), ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), cache: String(res.headers['cache-status'] ?? '') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(data);
  });
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

const ms = (x: number): string => x.toFixed(2);

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { rounds: { type: 'string' }, quick: { type: 'boolean' }, 'no-write': { type: 'boolean' } } });
  const rounds = Math.max(5, Number(values.rounds ?? (values.quick ? 50 : 200)));
  const loadBefore = loadavg()[0];
  const redis = await startRedis();
  const svc = await startDraftServiceProcess();
  const policy = (): string => draftPolicy(svc.port, { redis: redis.url, keyPrefix: 'bench:' }).replace('log_level: info', 'log_level: warn');
  const a = await startSidecar(policy());
  const b = await startSidecar(policy());
  const write: number[] = [];
  const toB: number[] = [];
  let polls = 0;
  try {
    for (let i = 0; i < rounds; i++) {
      const id = `dft_${String(1 + (i % 900)).padStart(6, '0')}`;
      const query = (base: string) => post(base, '/query_script', { draft_id: id, force_update: false }, { 'x-user-id': '7' });
      let old = await query(b.url);
      for (let j = 0; j < 20 && !/detail=l1/.test(old.cache); j++) old = await query(b.url);
      const t0 = performance.now();
      const w = await post(a.url, '/mcp/add_video', { draft_id: id, video_url: 'https://v.example.invalid/b.mp4', start: 0, end: 2 }, { 'x-user-id': '7' });
      write.push(performance.now() - t0);
      if (w.status !== 200) throw new Error(`write answered ${w.status}`);
      let seen = false;
      for (let k = 0; k < 100_000 && performance.now() - t0 < 10_000; k++) {
        polls++;
        const r = await query(b.url);
        if (r.body !== old.body) { toB.push(performance.now() - t0); seen = true; break; }
      }
      if (!seen) throw new Error(`round ${i}: pod B still served the old draft 10 s after the write`);
    }
    const m = await new Promise<string>((resolve, reject) => {
      http.get(`${b.adminUrl}/metrics`, (res) => { let s = ''; res.on('data', (c) => (s += c)); res.on('end', () => resolve(s)); }).on('error', reject);
    });
    const sum = Number(/^bridge_sidecar_invalidation_delay_seconds_sum (\S+)$/m.exec(m)?.[1] ?? NaN);
    const count = Number(/^bridge_sidecar_invalidation_delay_seconds_count (\S+)$/m.exec(m)?.[1] ?? NaN);
    const buckets = [...m.matchAll(/^bridge_sidecar_invalidation_delay_seconds_bucket\{le="([^"]+)"\} (\S+)$/gm)].map((x) => [x[1], Number(x[2])] as const);
    const bucketOf = (q: number): string => buckets.find(([, n]) => n >= q * count)?.[0] ?? '?';
    const mach = await machineInfo();
    const md = [
      `Two sidecar processes (workers: 0) sharing one redis-server on loopback, in front of the example draft service; ${rounds} rounds of: read a draft through B until it is an L1 hit, write it through A (\`add_video\`, which emits \`draft_updated\`), poll B until it answers the new draft. ${new Date().toISOString().slice(0, 10)}, ${machineLine(mach)}.`,
      '',
      '| measure | p50 ms | p99 ms | max ms |',
      '|---|---:|---:|---:|',
      `| write through A (includes A's own invalidation of L1, L3, L2) | ${ms(pct(write, 50))} | ${ms(pct(write, 99))} | ${ms(Math.max(...write))} |`,
      `| write sent -> B serves the new draft (client's view) | ${ms(pct(toB, 50))} | ${ms(pct(toB, 99))} | ${ms(Math.max(...toB))} |`,
      '',
      `1-minute load average ${loadBefore.toFixed(2)} at the start, ${loadavg()[0].toFixed(2)} at the end (on a shared machine the tails are mostly other processes).`,
      '',
      `B's own histogram \`bridge_sidecar_invalidation_delay_seconds\` (event raised in A -> keys removed in B): ${count} events, mean ${ms((sum / count) * 1000)} ms, p50 <= ${bucketOf(0.5)} s, p99 <= ${bucketOf(0.99)} s (bucket bounds). ${polls} polls of B in all.`,
      '',
      'Rerun: `node dist/bench/invalidation.js [--rounds 200]` (needs redis-server).',
    ].join('\n');
    console.log(md);
    if (values['no-write'] !== true) updateSection(SECTION, md);
  } finally {
    agent.destroy();
    await a.stop();
    await b.stop();
    await svc.stop();
    await redis.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
