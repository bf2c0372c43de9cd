/**
 * What one client reads in `RateLimit` goes down by exactly one per request it sends, whichever of the pod's
 * workers answers. Each request opens its own connection, so node:cluster spreads them over both workers; the
 * per-user limit refills once a minute, so no token comes back during the test.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { startDraftService, type DraftService } from '../../examples/draft-service';
import { startSidecar, basicPolicy } from '../helpers/sidecar';
import { waitFor } from '../helpers/ports';

let upstream: DraftService;
before(async () => { upstream = await startDraftService({ port: 0, host: '127.0.0.1' }); });
after(async () => { await upstream.close(); });

function get(port: number, user: string): Promise<{ status: number; ratelimit: string }> {
  return new Promise((resolve, reject) => {
    // agent: false: a new connection per request, so the cluster hands them to the workers in turn
    const req = request({ host: '127.0.0.1', port, path: '/get_font_types', agent: false, headers: { 'x-user-id': user } }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, ratelimit: String(res.headers['ratelimit'] ?? '') }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('2 workers: one client sees RateLimit r = 9, 8, 7, ... 0, then 429 (never a jump)', { timeout: 90_000 }, async (t) => {
  const sc = await startSidecar(basicPolicy(upstream.port, `
rate_limiting:
  identity: { header: x-user-id }
  per_user: { requests_per_minute: 1, burst_size: 10 }
`, { workers: 2, log_level: 'info' }));
  t.after(() => sc.stop());
  const seen: number[] = [];
  for (let i = 0; i < 10; i++) {
    const r = await get(sc.port, 'alice');
    assert.equal(r.status, 200, `request ${i + 1}`);
    const m = /^"per_user";r=(\d+);t=\d+$/.exec(r.ratelimit);
    assert.ok(m, `RateLimit field: ${r.ratelimit}`);
    seen.push(Number(m[1]));
  }
  assert.deepEqual(seen, [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
  const over = await get(sc.port, 'alice');
  assert.equal(over.status, 429);
  // both workers answered (otherwise the test would not show anything about leases moving between them);
  // access lines are written in batches, so wait for all eleven
  const access = () => sc.logs.filter((l) => l.msg === 'access' && l.path === '/get_font_types');
  await waitFor('the access lines', () => access().length >= 11, 30_000);
  const workers = new Set(access().map((l) => l.pid));
  assert.equal(workers.size, 2, 'requests reached both workers');
});
