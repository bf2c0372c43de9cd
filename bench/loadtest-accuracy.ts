#!/usr/bin/env node
/**
 * Load generator accuracy: `bridge-sidecar loadtest` against wrk on the same local target, the
 * example draft service in its own process (GET /get_font_types):
 *   1. service time 10 ms, 20 connections, closed loop: throughput (~ connections / service time) and
 *      latency are set by the server, so both tools must report the same figures: this checks the clock;
 *   2. service time 0, 50 connections, closed loop: throughput bound by the CPUs the generator shares with
 *      the target on this machine, i.e. what each tool costs per request;
 *   3. the open loop (what wrk from Debian cannot do: it has no -R) at a fixed rate against the 10 ms
 *      service: achieved rate against requested, and latency against the service time.
 * Prints a Markdown table and rewrites its section (SECTION) of bench/RESULTS.md.
 *
 *   node dist/bench/loadtest-accuracy.js [--duration 10s] [--quick] [--no-write]
 */
import { parseArgs } from 'node:util';
import { loadavg } from 'node:os';
import { machineInfo, machineLine } from './lib/machine';
import { startDraftServiceProcess, type ServiceProcess } from './lib/services';
import { runWrk } from './lib/wrk';
import { updateSection } from './results';
import { runPhase } from '../lib/loadtest/runner';
import { summarize } from '../lib/loadtest/histogram';
import { parseDuration } from '../lib/policy/units';
import type { MixEntry } from '../lib/loadtest/mix';

const SECTION = 'Load generator accuracy (issue 12)';
const PATH = '/get_font_types';

interface Row {
  case: string;
  tool: string;
  rps: number;
  p50: number;
  p99: number;
  max: number;
  note: string;
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { duration: { type: 'string' }, quick: { type: 'boolean' }, 'no-write': { type: 'boolean' }, help: { type: 'boolean' } } });
  if (values.help) {
    process.stdout.write('usage: node dist/bench/loadtest-accuracy.js [--duration 10s] [--quick] [--no-write]\n');
    return 0;
  }
  const durationMs = parseDuration(values.duration ?? (values.quick ? '3s' : '10s'));
  const wrkDuration = `${Math.round(durationMs / 1000)}s`;
  const machine = await machineInfo();
  const rows: Row[] = [];
  const mix: MixEntry[] = [{ name: PATH, method: 'GET', path: PATH, headers: [], body: null, weight: 1 }];
  const services: ServiceProcess[] = [];
  const log = (s: string) => process.stdout.write(s + '\n');
  try {
    const slow = await startDraftServiceProcess({ serviceTime: '10ms' });
    services.push(slow);
    const fast = await startDraftServiceProcess({ serviceTime: '0ms' });
    services.push(fast);

    const closed = async (name: string, svc: ServiceProcess, connections: number) => {
      // a short warm-up for the target's JIT, not recorded
      await runWrk(svc.url + PATH, { threads: 2, connections, duration: '1s' });
      const w = await runWrk(svc.url + PATH, { threads: 2, connections, duration: wrkDuration });
      rows.push({ case: name, tool: `wrk -t2 -c${connections}`, rps: w.requestsPerSec, p50: w.latency.p50, p99: w.latency.p99, max: w.latency.max,
        note: w.errors.non2xx3xx + w.errors.timeout > 0 ? `errors ${w.errors.non2xx3xx + w.errors.timeout}` : '' });
      log(`${name}: wrk ${w.requestsPerSec.toFixed(0)} req/s p50 ${w.latency.p50} ms p99 ${w.latency.p99} ms`);
      for (const threads of [1, 2]) {
        const cpu0 = process.cpuUsage();
        const r = await runPhase({ origin: svc.url, basePath: '', mix, mode: 'closed', rate: 0, connections, durationMs, timeoutMs: 10_000, threads });
        const cpu = process.cpuUsage(cpu0);
        const l = summarize(r.tally.latency)!;
        const rps = r.tally.inWindow / (durationMs / 1000);
        rows.push({ case: name, tool: `loadtest baseline, ${threads} thread(s), ${connections} conn.`, rps, p50: l.p50, p99: l.p99, max: l.max,
          note: `generator CPU ${((cpu.user + cpu.system) / 1000 / r.elapsedMs).toFixed(2)} cores, ${((cpu.user + cpu.system) / Math.max(1, r.tally.completed)).toFixed(1)} µs/request` });
        log(`${name}: loadtest(${threads}) ${rps.toFixed(0)} req/s p50 ${l.p50} ms p99 ${l.p99} ms`);
      }
    };
    await closed('10 ms service, closed loop', slow, 20);
    await closed('0 ms service, closed loop', fast, 50);

    for (const rate of [500, 1000]) {
      const r = await runPhase({ origin: slow.url, basePath: '', mix, mode: 'open', rate, connections: 50, durationMs, timeoutMs: 10_000, threads: 1 });
      const l = summarize(r.tally.latency)!;
      const u = summarize(r.tally.uncorrected)!;
      const achieved = r.tally.inWindow / (durationMs / 1000);
      rows.push({ case: `10 ms service, open loop ${rate} req/s`, tool: 'loadtest --rate, 50 conn.', rps: achieved, p50: l.p50, p99: l.p99, max: l.max,
        note: `sent ${r.tally.sent} of ${rate * durationMs / 1000} scheduled; from the send time p50 ${u.p50} ms p99 ${u.p99} ms` });
      log(`open ${rate}: achieved ${achieved.toFixed(1)} req/s p50 ${l.p50} ms p99 ${l.p99} ms`);
    }
  } finally {
    await Promise.all(services.map((s) => s.stop()));
  }

  const f = (v: number) => (v >= 100 ? v.toFixed(0) : v.toFixed(2));
  const md = [
    `Run \`node dist/bench/loadtest-accuracy.js\` on ${machineLine(machine)}; load average ${machine.load1} at the start and ${loadavg()[0].toFixed(2)} at the end (other work on the machine shows up as noise); ${durationMs / 1000} s per measurement.`,
    'Target: the example draft service (its own process, `GET /get_font_types`) with a fixed service time. wrk and the generator run on the same 2 cores as the target.',
    '',
    '| Case | Tool | Requests/s | P50 (ms) | P99 (ms) | Max (ms) | Notes |',
    '|---|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.case} | ${r.tool} | ${r.rps.toFixed(0)} | ${f(r.p50)} | ${f(r.p99)} | ${f(r.max)} | ${r.note} |`),
    '',
  ].join('\n');
  process.stdout.write('\n' + md + '\n');
  if (!values['no-write']) updateSection(SECTION, md);
  return 0;
}

main().then((code) => (process.exitCode = code), (e: unknown) => {
  process.stderr.write(`loadtest-accuracy: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
  process.exitCode = 1;
});
