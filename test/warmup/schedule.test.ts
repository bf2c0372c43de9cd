/**
 * Warm-up on a schedule (per-second cron) through a real sidecar process: expired entries of the most requested
 * keys are refetched from the upstream with no client asking, and those refetches wait in the `low` queue
 * class while a high-priority load runs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startSidecar } from '../helpers/sidecar';
import { sleep, waitFor } from '../helpers/ports';
import { startDraftService } from '../../examples/draft-service/server';
import { queryScript, request } from '../invalidation/helpers';
import { metric, warmPolicy } from './helpers';

test('per-second schedule: the most requested expired keys are refetched from the upstream', async (t) => {
  const svc = await startDraftService({ port: 0 });
  t.after(() => svc.close());
  const sc = await startSidecar(warmPolicy(svc.port, { schedule: '* * * * * *', top: 2 }));
  t.after(() => sc.stop());

  // popularity: draft 1 x3, draft 2 x2, draft 3 x1 -> top 2 are drafts 1 and 2
  for (const [id, n] of [['dft_000001', 3], ['dft_000002', 2], ['dft_000003', 1]] as const) {
    for (let i = 0; i < n; i++) assert.equal((await queryScript(sc.url, id)).status, 200);
  }
  svc.resetStats();
  // no client request from here on: the upstream still sees /query_script, from the warm-up
  await waitFor('warm-up refetches', async () => {
    const m = (await request(sc.adminUrl, { path: '/metrics' })).body;
    return metric(m, 'bridge_sidecar_warmup_entries_total', 'strategy="popular_drafts",source="upstream"') >= 4 &&
      metric(m, 'bridge_sidecar_warmup_runs_total', 'strategy="popular_drafts",result="ok"') >= 2;
  }, 20_000, 200);
  const byPath = svc.stats().byPath;
  assert.ok((byPath['/query_script'] ?? 0) >= 4, JSON.stringify(byPath));
  const runs = sc.logs.filter((l) => l.msg === 'warm-up run finished');
  assert.ok(runs.length >= 2);
  // only the top 2 (drafts 1 and 2) are ranked, never draft 3
  for (const r of runs) assert.ok(Number(r.keys) <= 2, `a run ranked ${String(r.keys)} keys with top: 2`);
});

test('warm-up refetches go through the low queue class while a high-priority load runs', async (t) => {
  const svc = await startDraftService({ port: 0, serviceTimeMs: 40 });
  t.after(() => svc.close());
  const sc = await startSidecar(warmPolicy(svc.port, {
    schedule: '* * * * * *', top: 4, priority: 'low',
    queues: 'queues: { max_in_flight: 1, queue_timeout: 30s }',
  }));
  t.after(() => sc.stop());
  for (const id of ['dft_000001', 'dft_000002', 'dft_000003', 'dft_000004']) await queryScript(sc.url, id);

  // a high-priority load: 4 clients writing back to back for a few seconds
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  t.after(() => agent.destroy());
  let stop = false;
  const statuses: number[] = [];
  const write = () => new Promise<number>((resolve) => {
    const body = JSON.stringify({ draft_id: 'dft_000010', video_url: 'https://v.example.invalid/x.mp4' });
    const req = http.request(`${sc.url}/add_video`, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', () => resolve(0));
    req.end(body);
  });
  const load = Array.from({ length: 4 }, async () => {
    while (!stop) statuses.push(await write());
  });
  // watch the queue: warm-up's waiters show up in the low class only
  let lowSeen = 0;
  let upstreamWarmed = 0;
  const deadline = Date.now() + 25_000;
  while (Date.now() < deadline) {
    const m = (await request(sc.adminUrl, { path: '/metrics' })).body;
    lowSeen = Math.max(lowSeen, metric(m, 'bridge_sidecar_queue_length', 'priority="low"'));
    upstreamWarmed = metric(m, 'bridge_sidecar_warmup_entries_total', 'strategy="popular_drafts",source="upstream"');
    if (lowSeen > 0 && upstreamWarmed >= 4) break;
    await sleep(30);
  }
  stop = true;
  await Promise.all(load);
  assert.ok(lowSeen > 0, 'no warm-up refetch ever waited in the low class');
  assert.ok(upstreamWarmed >= 4, `warm-up refetched ${upstreamWarmed} entries under load`);
  assert.ok(statuses.length > 0 && statuses.every((s) => s === 200), `high-priority load saw ${[...new Set(statuses)].join(',')}`);
});

test('one-pod mode with 2 workers: each worker warms its own L1 (nothing is shared without L2)', async (t) => {
  const svc = await startDraftService({ port: 0 });
  t.after(() => svc.close());
  const sc = await startSidecar(warmPolicy(svc.port, { schedule: '* * * * * *', top: 2, workers: 2 }));
  t.after(() => sc.stop());
  // fresh connections alternate between the workers: both store and count the drafts
  for (let i = 0; i < 4; i++) {
    await queryScript(sc.url, 'dft_000001');
    await queryScript(sc.url, 'dft_000002');
  }
  const byWorker = new Map<number, number>();
  await waitFor('both workers refetch', () => {
    byWorker.clear();
    for (const l of sc.logs) {
      if (l.msg !== 'warm-up run finished') continue;
      const up = Number((l.sources as Record<string, number> | undefined)?.upstream ?? 0);
      byWorker.set(Number(l.worker), (byWorker.get(Number(l.worker)) ?? 0) + up);
    }
    return [...byWorker.values()].filter((n) => n > 0).length >= 2;
  }, 20_000, 200);
  assert.equal(byWorker.size, 2, JSON.stringify([...byWorker]));
});
