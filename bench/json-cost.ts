#!/usr/bin/env node
/**
 * What reading JSON costs on the cache's path, by answer size, in-process on one core:
 *  - deciding a store_if per stored miss: the probe (lib/cache/json-probe.ts) against JSON.parse + a property
 *    read, for the real service's answer (`{"error","output","success"}`: Flask sorts keys, so `success` comes
 *    after the draft) and for the same answer with `success` first;
 *  - a JSON-RPC hit (an MCP tool's answer replayed with the request's own id): finding the stored answer's id
 *    walks the whole answer; withId (lib/cache/jsonrpc.ts) finds it once per stored body.
 *
 *   node dist/bench/json-cost.js [--no-write]
 *
 * Prints Markdown and rewrites its section of bench/RESULTS.md.
 */
import { parseArgs } from 'node:util';
import { memberSpan, probeJson } from '../lib/cache/json-probe';
import { withId } from '../lib/cache/jsonrpc';
import { machineInfo, machineLine } from './lib/machine';
import { median } from './lib/stats';
import { updateSection } from './results';

const SECTION = 'JSON on the cache path: store_if and JSON-RPC replay';
const { values: args } = parseArgs({ options: { 'no-write': { type: 'boolean' } } });
const PATHS = [['success']] as const;

/** A draft with `texts` text segments, as query_script returns it (roughly 150 bytes a segment). */
function draft(texts: number): unknown {
  const segments = Array.from({ length: texts }, (_, i) => ({
    id: `txt_${i}`, text: `caption ${i} with "quotes" and more`, start: i, end: i + 1,
    style: { size: 12, color: '#ffffff', font: 'SourceHanSans' },
  }));
  return { draft_id: 'dft_bench', tracks: [{ type: 'text', segments }] };
}

/** µs per call, the median of 5 timed rounds after a warm-up. */
function timeUs(fn: () => unknown, budgetMs = 200): number {
  for (let i = 0; i < 200; i++) fn();
  const rounds: number[] = [];
  for (let r = 0; r < 5; r++) {
    let n = 0;
    const t0 = performance.now();
    while (performance.now() - t0 < budgetMs / 5) { fn(); n++; }
    rounds.push(((performance.now() - t0) * 1000) / n);
  }
  return median(rounds);
}

async function main(): Promise<void> {
  const machine = await machineInfo();
  const rows: string[] = [];
  for (const texts of [10, 100, 1000, 2000]) {
    const output = draft(texts);
    const last = Buffer.from(JSON.stringify({ error: '', output, success: true }));
    const first = Buffer.from(JSON.stringify({ success: true, error: '', output }));
    for (const b of [last, first]) if (probeJson(b, PATHS)?.[0] !== true) throw new Error('probe disagrees with the document');
    const parse = timeUs(() => (JSON.parse(last.toString('utf8')) as { success: boolean }).success);
    rows.push(`| ${(last.length / 1024).toFixed(1)} KB | ${timeUs(() => probeJson(last, PATHS)).toFixed(2)} | ${timeUs(() => probeJson(first, PATHS)).toFixed(2)} | ${parse.toFixed(1)} |`);
  }
  const replay: string[] = [];
  for (const texts of [10, 100, 1000, 2000]) {
    // an MCP tools/call answer: the service's JSON answer as the text of one content item
    const text = JSON.stringify({ error: '', output: draft(texts), success: true });
    const stored = Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 1, result: { content: [{ type: 'text', text }] } }));
    const id = Buffer.from('4242');
    if ((JSON.parse(withId(stored, id)!.toString()) as { id: unknown }).id !== 4242) throw new Error('withId did not put the id in');
    replay.push(`| ${(stored.length / 1024).toFixed(1)} KB | ${timeUs(() => memberSpan(stored, 'id')).toFixed(1)} | ${timeUs(() => withId(stored, id)).toFixed(1)} |`);
  }
  const md = [
    `Command: \`npm run build && node dist/bench/json-cost.js\` (${new Date().toISOString()}; ${machineLine(machine)}).`,
    'µs per decision of `store_if: { "response.success": true }` on a query_script answer, median of 5 rounds:',
    '',
    '| answer | probe, `success` last (the real service) | probe, `success` first | JSON.parse + read |',
    '|---|---:|---:|---:|',
    ...rows,
    '',
    'µs per JSON-RPC hit for finding the stored answer\'s id (a walk of the whole answer) and for the whole id substitution',
    'as a hit does it now (the id\'s place found once per stored body, then the copy with the request\'s id):',
    '',
    '| MCP tools/call answer | finding the id (walk) | withId per hit |',
    '|---|---:|---:|',
    ...replay,
  ].join('\n');
  process.stdout.write(md + '\n');
  if (!args['no-write']) updateSection(SECTION, md);
}

main().then(() => process.exit(0), (e: unknown) => {
  process.stderr.write((e instanceof Error ? e.stack ?? e.message : String(e)) + '\n');
  process.exit(1);
});
