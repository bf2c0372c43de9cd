/**
 * A global limit through the real `bridge-sidecar serve` with 2 workers while both cores are saturated by other
 * processes: a flood from several concurrent clients over real sockets is admitted at the configured rate
 * (within 5 %), counted as the clients see it (200s vs 429s) and as the pod counts it (its metrics).
 *
 * The rate is measured from the sidecar's own view: /metrics is scraped during the flood, and the admissions
 * between the first scrape that shows refusals (the burst is spent, the flood is on) and the last scrape before
 * the flood ends are compared with rate x the time between those scrapes. A client slowed by the busy machine
 * then does not skew the expectation, as long as the pod keeps refusing (it had more demand than tokens).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, request } from 'node:http';
import { loadavg } from 'node:os';
import { startDraftService, type DraftService } from '../../examples/draft-service';
import { startSidecar, basicPolicy } from '../helpers/sidecar';
import { waitFor } from '../helpers/ports';
import { burnCpus, within5 } from './helpers';

let upstream: DraftService;
before(async () => { upstream = await startDraftService({ port: 0, host: '127.0.0.1' }); });
after(async () => { await upstream.close(); });

const RATE = 200;
const BURST = 10;
const FLOOD_MS = 8000;
const CLIENTS = 16;

async function counters(adminUrl: string): Promise<{ admitted: number; rejected: number }> {
  const text = await (await fetch(adminUrl + '/metrics')).text();
  const value = (name: string): number => {
    const line = text.split('\n').find((l) => l.startsWith(`${name}{scope="global"}`));
    return line ? Number(line.split(' ').pop()) : 0;
  };
  return { admitted: value('bridge_sidecar_ratelimit_admitted_total'), rejected: value('bridge_sidecar_ratelimit_rejected_total') };
}

test('both cores saturated by other processes: a flood through 2 workers is admitted at the global rate (within 5 %)', { timeout: 120_000 }, async (t) => {
  const sc = await startSidecar(basicPolicy(upstream.port, `
rate_limiting:
  global: { requests_per_second: ${RATE}, burst_size: ${BURST} }
`, { workers: 2, log_level: 'warn' }));
  t.after(() => sc.stop());
  // both workers answer before the load starts (the burst is not spent on start-up)
  await waitFor('sidecar ready', async () => (await fetch(sc.adminUrl + '/readyz')).ok, 30_000);
  burnCpus(FLOOD_MS + 8_000, t);

  const agent = new Agent({ keepAlive: true, maxSockets: CLIENTS });
  t.after(() => agent.destroy());
  const byStatus = new Map<number, number>();
  let errors = 0;
  const send = (): Promise<void> => new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port: sc.port, path: '/get_font_types', agent, timeout: 30_000 }, (res) => {
      res.resume();
      res.on('end', () => { byStatus.set(res.statusCode ?? 0, (byStatus.get(res.statusCode ?? 0) ?? 0) + 1); resolve(); });
    });
    req.on('error', () => { errors++; resolve(); });
    req.on('timeout', () => req.destroy());
    req.end();
  });
  let flooding = true;
  const clients = Array.from({ length: CLIENTS }, async () => { while (flooding) await send(); });

  // the pod's own view, every 250 ms while the flood runs (bounded: the flood has a fixed length)
  const scrapes: Array<{ at: number; admitted: number; rejected: number }> = [];
  const start = performance.now();
  while (performance.now() - start < FLOOD_MS) {
    const c = await counters(sc.adminUrl);
    scrapes.push({ at: performance.now(), ...c });
    await new Promise((r) => setTimeout(r, 250));
  }
  flooding = false;
  await Promise.all(clients);

  const ok = byStatus.get(200) ?? 0;
  const limited = byStatus.get(429) ?? 0;
  const final = await counters(sc.adminUrl);
  const from = scrapes.find((s) => s.rejected > 0);
  assert.ok(from !== undefined, 'the pod refused during the flood');
  const to = scrapes[scrapes.length - 1]!;
  const seconds = (to.at - from.at) / 1000;
  const inWindow = to.admitted - from.admitted;
  t.diagnostic(`clients: 200: ${ok}, 429: ${limited}, errors: ${errors}; pod: admitted ${final.admitted}, rejected ${final.rejected}; ` +
    `window ${seconds.toFixed(2)} s: admitted ${inWindow}, expected ${(RATE * seconds).toFixed(0)}; load ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);

  assert.equal(errors, 0);
  assert.equal(ok + limited, [...byStatus.values()].reduce((a, b) => a + b, 0), 'every answer is a 200 or a 429');
  assert.ok(limited > ok, `a flood: more refused than admitted (${limited} vs ${ok})`);
  assert.equal(final.admitted, ok, 'the pod counts the admissions the clients saw');
  assert.equal(final.rejected, limited, 'the pod counts the refusals the clients saw');
  assert.ok(seconds >= FLOOD_MS / 2000, `the flood was on for most of the run (window ${seconds} s)`);
  assert.ok(to.rejected > from.rejected, 'still refusing at the end of the window: demand above the limit throughout');
  assert.ok(within5(inWindow, RATE * seconds), `admitted ${inWindow} in ${seconds.toFixed(2)} s, expected ${(RATE * seconds).toFixed(0)} (rate ${RATE}/s)`);
  assert.ok(ok <= BURST + RATE * ((performance.now() - start) / 1000) * 1.05, `never over the limit: ${ok}`);
});
