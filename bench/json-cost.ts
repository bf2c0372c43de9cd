#!/usr/bin/env node
/**
 * What reading JSON costs on the cache's path, by answer size, in-process on one core:
 *  - deciding a store_if per stored miss: the probe (lib/cache/json-probe.ts) against JSON.parse + a property
 *    read, for the real service's answer (`{"error","output","success"}`: Flask sorts keys, so `success` comes
 *    after the draft) and for the same answer with `success` first; on its gzip variant, decoding it against the
 *    compressor's kept tail of the identity body;
 *  - a JSON-RPC hit (an MCP tool's answer replayed with the request's own id): finding the stored answer's id
 *    walks the whole answer; withId (lib/cache/jsonrpc.ts) finds it once per stored body; a gzip answer was
 *    compressed again per hit, and is now spliced (lib/cache/gzip-splice.ts);
 *  - building the entry of a stored miss (buildEntry), next to the body's sha256 it no longer computes there (the
 *    digest is made at the entry's first L2/L3 write, lib/cache/entry.ts encodeEntry).
 *
 *   node dist/bench/json-cost.js [--no-write]
 *
 * Prints Markdown and rewrites its section of bench/RESULTS.md.
 */
import { parseArgs } from 'node:util';
import { memberSpan, probeJson } from '../lib/cache/json-probe';
import { gunzipSync, gzipSync } from 'node:zlib';
import { withId, withIdParts } from '../lib/cache/jsonrpc';
import { GzipSplice } from '../lib/cache/gzip-splice';
import { buildEntry, compileStoreIf, storeIfPasses, type StoreRequest } from '../lib/cache/admission';
import { IdentityTail } from '../lib/core/identity-tail';
import { sha256hex } from '../lib/cache/entry';
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
  const gzRows: string[] = [];
  for (const texts of [10, 100, 1000, 2000]) {
    const output = draft(texts);
    const last = Buffer.from(JSON.stringify({ error: '', output, success: true }));
    const first = Buffer.from(JSON.stringify({ success: true, error: '', output }));
    for (const b of [last, first]) if (probeJson(b, PATHS)?.[0] !== true) throw new Error('probe disagrees with the document');
    const parse = timeUs(() => (JSON.parse(last.toString('utf8')) as { success: boolean }).success);
    rows.push(`| ${(last.length / 1024).toFixed(1)} KB | ${timeUs(() => probeJson(last, PATHS)).toFixed(2)} | ${timeUs(() => probeJson(first, PATHS)).toFixed(2)} | ${parse.toFixed(1)} |`);
    // the same decision on the gzip variant the cache stores for a client that accepts gzip
    const gz = gzipSync(last);
    const tail = new IdentityTail();
    for (let i = 0; i < last.length; i += 16_384) tail.add(last.subarray(i, i + 16_384));
    const rule = compileStoreIf({ 'response.success': true });
    const headers = { 'content-encoding': 'gzip' };
    if (!storeIfPasses(rule, headers, gz) || !storeIfPasses(rule, headers, Buffer.alloc(0), false, tail)) throw new Error('store_if disagrees');
    gzRows.push(`| ${(last.length / 1024).toFixed(1)} KB (${(gz.length / 1024).toFixed(1)} KB gzip) | ${timeUs(() => storeIfPasses(rule, headers, gz)).toFixed(1)} | ${timeUs(() => storeIfPasses(rule, headers, gz, false, tail)).toFixed(2)} |`);
  }
  const replay: string[] = [];
  for (const texts of [10, 100, 1000, 2000]) {
    // an MCP tools/call answer: the service's JSON answer as the text of one content item
    const text = JSON.stringify({ error: '', output: draft(texts), success: true });
    const stored = Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 1, result: { content: [{ type: 'text', text }] } }));
    const id = Buffer.from('4242');
    if ((JSON.parse(withId(stored, id)!.toString()) as { id: unknown }).id !== 4242) throw new Error('withId did not put the id in');
    const s = memberSpan(stored, 'id')!;
    const splice = new GzipSplice(stored.subarray(0, s.start), stored.subarray(s.end));
    if ((JSON.parse(gunzipSync(Buffer.concat(splice.parts(id)!)).toString()) as { id: unknown }).id !== 4242) throw new Error('the splice did not put the id in');
    replay.push(`| ${(stored.length / 1024).toFixed(1)} KB | ${timeUs(() => memberSpan(stored, 'id')).toFixed(1)} | ${timeUs(() => withId(stored, id)).toFixed(1)} | ${timeUs(() => withIdParts(stored, id)).toFixed(2)} | ${timeUs(() => gzipSync(withId(stored, id)!), 1000).toFixed(0)} | ${timeUs(() => splice.parts(id)).toFixed(2)} |`);
  }
  const store: string[] = [];
  for (const texts of [10, 100, 1000, 2000]) {
    const body = Buffer.from(JSON.stringify({ error: '', output: draft(texts), success: true }));
    const now = Date.now();
    const r: StoreRequest = {
      method: 'POST', path: '/query_script', query: '', headers: { 'content-type': 'application/json' },
      body: Buffer.from('{"draft_id":"dft_bench","force_update":false}'),
      params: { draft_id: 'dft_bench' }, baseKey: 'draft:dft_bench', requestTime: now,
      rules: { ttl: 300_000, staleWhileRevalidate: 0, staleIfError: 0, override: false }, storeIf: null, noStore: false,
    };
    const headers = { 'content-type': 'application/json', 'content-length': String(body.length) };
    if (buildEntry(r, 200, headers, body, now) === null) throw new Error('not storable');
    store.push(`| ${(body.length / 1024).toFixed(1)} KB | ${timeUs(() => buildEntry(r, 200, headers, body, now)).toFixed(1)} | ${timeUs(() => sha256hex(body)).toFixed(1)} |`);
  }
  const md = [
    `Command: \`npm run build && node dist/bench/json-cost.js\` (${new Date().toISOString()}; ${machineLine(machine)}).`,
    'µs per decision of `store_if: { "response.success": true }` on a query_script answer, median of 5 rounds:',
    '',
    '| answer | probe, `success` last (the real service) | probe, `success` first | JSON.parse + read |',
    '|---|---:|---:|---:|',
    ...rows,
    '',
    'The same store_if on the gzip variant the cache stores for a client that accepts gzip (the example policy compresses;',
    'Python requests always accepts gzip), µs per decision: decoding the body, then the probe (until session 17), against',
    'the probe on the last 4 KB of the identity body that the compressor kept (lib/core/identity-tail.ts):',
    '',
    '| answer | gunzipSync + probe | the kept tail |',
    '|---|---:|---:|',
    ...gzRows,
    '',
    'µs per JSON-RPC hit for finding the stored answer\'s id (a walk of the whole answer), and for the id substitution with',
    'the id\'s place found once per stored body: joined into a copy with the request\'s id (withId: hits until session 17),',
    'and as the three parts a hit now writes (withIdParts: before the id, the id, after it; nothing copied); for a stored',
    'gzip answer, gzipSync of the changed answer against the splice of the id between halves compressed once:',
    '',
    '| MCP tools/call answer | finding the id (walk) | joined copy per hit | parts per hit | gzip entry: compressed again per hit (until session 17) | gzip entry: spliced (lib/cache/gzip-splice.ts) |',
    '|---|---:|---:|---:|---:|---:|',
    ...replay,
    '',
    'µs per stored miss for building its entry (buildEntry: key, fields, freshness, the request to replay), and for the',
    'sha256 of its body that building it included until session 17 and that is now made at its first L2/L3 write:',
    '',
    '| query_script answer | buildEntry | sha256 of the body |',
    '|---|---:|---:|',
    ...store,
  ].join('\n');
  process.stdout.write(md + '\n');
  if (!args['no-write']) updateSection(SECTION, md);
}

main().then(() => process.exit(0), (e: unknown) => {
  process.stderr.write((e instanceof Error ? e.stack ?? e.message : String(e)) + '\n');
  process.exit(1);
});
