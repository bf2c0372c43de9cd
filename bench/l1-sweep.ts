#!/usr/bin/env node
/**
 * What one invalidation costs the worker in L1, by L1 size: the time of `L1Sweeper.remove(['draft:<id>:*'])`
 * (one draft's entries, as a write's `draft_updated` removes them) with N entries held, averaged over many
 * events. With --before DIR it runs the same against another build's lib (e.g. a checkout of main before L1's tag
 * index), in the same process, so both are measured side by side.
 *
 *   node dist/bench/l1-sweep.js [--sizes 1000,10000,100000] [--events 400] [--before /path/to/checkout] [--no-write]
 *
 * Prints Markdown and rewrites its section (SECTION) of bench/RESULTS.md.
 */
import { execFileSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { machineInfo, machineLine } from './lib/machine';
import { median } from './lib/stats';
import { updateSection } from './results';

const SECTION = 'Invalidation in L1: cost per event by L1 size';

interface Lib {
  L1Cache: new (maxBytes: number) => { set(k: string, e: unknown, ttl: number): void; readonly size: number };
  L1Sweeper: new (tiers: unknown) => { remove(p: readonly string[], cascade: boolean): Promise<{ l1: number }> };
}

function load(root: string): Lib {
  /* eslint-disable @typescript-eslint/no-require-imports */
  const { L1Cache } = require(join(root, 'lib', 'cache', 'l1.js')) as Pick<Lib, 'L1Cache'>;
  const { L1Sweeper } = require(join(root, 'lib', 'cache', 'invalidation', 'local.js')) as Pick<Lib, 'L1Sweeper'>;
  /* eslint-enable @typescript-eslint/no-require-imports */
  return { L1Cache, L1Sweeper };
}

function entry(key: string): unknown {
  const now = Date.now();
  return {
    meta: { v: 1, key, kind: 'response', vary: [], status: 200, headers: [], storedAt: now, initialAge: 0, freshUntil: now + 3_600_000, swrUntil: 0, sieUntil: 0, mustRevalidate: false, etag: null, lastModified: null, params: { draft_id: key.split(':')[1] }, request: null, bodyLength: 64, bodySha256: '' },
    body: Buffer.alloc(64, 120),
  };
}

/** µs per event: N drafts each with one script entry; each event removes one draft's entry, which is then stored again. */
async function measure(lib: Lib, n: number, events: number): Promise<number> {
  const l1 = new lib.L1Cache(4 * 1024 * 1024 * 1024);
  for (let d = 0; d < n; d++) l1.set(`draft:${d}:script#0123456789abcdef`, entry(`draft:${d}:script#0123456789abcdef`), 3_600_000);
  const sweeper = new lib.L1Sweeper({ l1 });
  const one = async (d: number) => {
    const r = await sweeper.remove([`draft:${d}:*`], true);
    if (r.l1 !== 1) throw new Error(`expected one removal for draft ${d}, got ${r.l1}`);
    l1.set(`draft:${d}:script#0123456789abcdef`, entry(`draft:${d}:script#0123456789abcdef`), 3_600_000);
  };
  for (let i = 0; i < Math.min(50, events); i++) await one((i * 7919) % n); // JIT
  const t0 = performance.now();
  for (let i = 0; i < events; i++) await one((i * 104_729) % n);
  return ((performance.now() - t0) * 1000) / events;
}

/** The checkout's commit, to name the "before" column by it rather than by a path on one machine. */
function commitOf(dir: string): string {
  try {
    return execFileSync('git', ['-C', dir, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  } catch {
    return dir;
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { sizes: { type: 'string' }, events: { type: 'string' }, before: { type: 'string' }, 'no-write': { type: 'boolean' } } });
  const sizes = (values.sizes ?? '1000,10000,100000').split(',').map(Number);
  const events = Number(values.events ?? 400);
  const builds: Array<[string, Lib]> = [];
  if (values.before) builds.push([`before (${commitOf(values.before)})`, load(join(resolve(values.before), 'dist'))]);
  builds.push(['this build', load(join(__dirname, '..'))]);
  const m = await machineInfo();
  const rows: string[] = [];
  for (const n of sizes) {
    const cells: string[] = [];
    for (const [, lib] of builds) {
      const runs: number[] = [];
      for (let r = 0; r < 3; r++) runs.push(await measure(lib, n, n >= 100_000 ? Math.min(events, 100) : events));
      cells.push(`${median(runs).toFixed(1)} (${runs.map((x) => x.toFixed(1)).join(' / ')})`);
      process.stderr.write(`[l1-sweep] ${n} entries: ${cells[cells.length - 1]}\n`);
    }
    rows.push(`| ${n.toLocaleString('en')} | ${cells.join(' | ')} |`);
  }
  const md = [
    `Run ${new Date().toISOString()}: \`node dist/bench/l1-sweep.js${values.before ? ` --before ${values.before}` : ''} --sizes ${sizes.join(',')} --events ${events}\`.`,
    '',
    `${machineLine(m)}; load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}.`,
    'One process; L1 holds N entries (one per draft); each event is `L1Sweeper.remove(["draft:<id>:*"])` (what a write\'s',
    '`draft_updated` asks of this worker\'s L1), awaited, then the entry is stored again. µs per event, median of 3 runs (the runs);',
    '100 events per run at 100,000 entries.',
    '',
    `| entries in L1 | ${builds.map(([name]) => `${name}: µs per event`).join(' | ')} |`,
    `|---:|${builds.map(() => '---:').join('|')}|`,
    ...rows,
  ].join('\n');
  process.stdout.write(md + '\n');
  if (!values['no-write']) updateSection(SECTION, md);
}

main().catch((e: unknown) => {
  process.stderr.write(String(e instanceof Error ? e.stack : e) + '\n');
  process.exit(1);
});
