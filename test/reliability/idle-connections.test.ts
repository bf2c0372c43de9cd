/**
 * 10,000 idle client connections against one worker capped at server.worker_connections: the cap holds (the
 * connections beyond it are closed at once), memory stays bounded, the sidecar stays healthy on its admin port,
 * and once the idle connections go away a fresh client is served at once.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { spawnSync } from 'node:child_process';
import { startDraftService } from '../../examples/draft-service';
import { startSidecar, basicPolicy } from '../helpers/sidecar';
import { sleep, waitFor } from '../helpers/ports';
import { send, rssBytes, recordFigure } from './helpers';

const IDLE = 10_000;
const CAP = 4000;

/** Raise the open-files limit of a running process (root, as CI runs; harmless when already high enough). */
function raiseNoFile(pid: number, n: number): void {
  spawnSync('prlimit', ['--pid', String(pid), `--nofile=${n}:${n}`]);
}

test(`${IDLE} idle connections against worker_connections ${CAP}: the cap holds, memory bounded, a fresh client is served after they close`, { timeout: 60_000 }, async (t) => {
  raiseNoFile(process.pid, IDLE + 4096);
  const up = await startDraftService({ port: 0, host: '127.0.0.1' });
  t.after(() => up.close());
  const sc = await startSidecar(basicPolicy(up.port, '', { worker_connections: CAP, request_timeout: '30s', log_level: 'warn' }));
  t.after(() => sc.stop());
  raiseNoFile(sc.proc.pid!, IDLE + 4096);
  const rssBefore = rssBytes(sc.proc.pid!);

  const sockets: Socket[] = [];
  t.after(() => { for (const s of sockets) s.destroy(); });
  let closedByServer = 0;
  let errors = 0;
  // open in batches so the listen backlog (511) is not the thing being tested
  for (let b = 0; b < IDLE / 500; b++) {
    await Promise.all(Array.from({ length: 500 }, () => new Promise<void>((resolve) => {
      const s = connect(sc.port, '127.0.0.1');
      sockets.push(s);
      s.on('connect', () => resolve());
      s.on('error', () => { errors++; resolve(); });
      s.on('close', () => { closedByServer++; resolve(); });
    })));
  }
  // connections past the cap are accepted and closed at once by the server
  await sleep(1000);
  const open = sockets.filter((s) => !s.destroyed).length;
  const rssHolding = rssBytes(sc.proc.pid!);
  recordFigure('idle connections: held open / closed by the cap / errors', `${open} / ${closedByServer} / ${errors}`);
  recordFigure('idle connections: sidecar RSS before / holding', `${Math.round(rssBefore / 1e6)} / ${Math.round(rssHolding / 1e6)}`, 'MB');
  assert.ok(open <= CAP + 50, `the cap holds: ${open} open`);
  assert.ok(open >= CAP * 0.9, `the idle connections up to the cap are kept: ${open}`);
  assert.ok(closedByServer + errors >= IDLE - CAP - 50, `the ones past the cap were closed: ${closedByServer} closed, ${errors} errors`);
  // memory bounded: a few KB per connection, not the body buffers of a request
  assert.ok(rssHolding - rssBefore < 200e6, `RSS grew ${Math.round((rssHolding - rssBefore) / 1e6)} MB`);
  // the sidecar itself is healthy (the admin port is a separate listener)
  assert.equal((await send(sc.adminUrl, { path: '/healthz' })).status, 200);
  // at the cap, a new client connection is closed rather than queued forever
  const atCap = await send(sc.url, { path: '/get_font_types', timeoutMs: 5000 }).then((r) => String(r.status), (e: Error & { code?: string }) => e.code ?? e.message);
  assert.match(atCap, /^(ECONNRESET|socket hang up|EPIPE)$/, `a client at the cap: ${atCap}`);

  // the idle clients go away: a fresh client is served at once
  for (const s of sockets) s.destroy();
  const t0 = performance.now();
  await waitFor('a fresh client served after the idle connections closed', async () => (await send(sc.url, { path: '/get_font_types', timeoutMs: 5000 })).status === 200, 15_000, 100);
  recordFigure('idle connections: fresh client served after they closed', Math.round(performance.now() - t0), 'ms');
  assert.equal(sc.proc.exitCode, null);
});
