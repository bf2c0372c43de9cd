/**
 * The wall clock jumping (an NTP step, a VM resumed) under a running sidecar: faked for the child process with
 * libfaketime (Debian package `faketime`; CI installs it), whose offset is re-read from a file on every call, so
 * the test moves the sidecar's clock +2 h and then back to -2 h while it serves. The monotonic clock is left
 * alone (FAKETIME_DONT_FAKE_MONOTONIC=1), as on a real machine. Outcome: no crash, every request answered, no
 * user locked out by a rate-limit window "in the future", no negative Age.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDraftService } from '../../examples/draft-service';
import { startSidecar } from '../helpers/sidecar';
import { sleep } from '../helpers/ports';
import { send, postJson, recordFigure } from './helpers';

const LIBFAKETIME = ['/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1', '/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1', '/usr/lib/faketime/libfaketime.so.1'].find((p) => existsSync(p));

test('wall clock jumps +2 h, then back to -2 h: every request answered, no user locked out, Age never negative', { timeout: 60_000 }, async (t) => {
  assert.ok(LIBFAKETIME, 'libfaketime is installed (apt-get install faketime)');
  const up = await startDraftService({ port: 0, host: '127.0.0.1' });
  t.after(() => up.close());
  const dir = mkdtempSync(join(tmpdir(), 'rel-clock-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const offsetFile = join(dir, 'offset');
  writeFileSync(offsetFile, '+0\n');
  const sc = await startSidecar(`version: 1
server: { listen: "127.0.0.1:0", admin_listen: "127.0.0.1:0", workers: 0, log_level: warn }
upstream: { url: "http://127.0.0.1:${up.port}" }
routes:
  - name: query_script
    match: { method: POST, path: /query_script, body: { force_update: false } }
    params: { draft_id: body.draft_id }
    cache: { key: "draft:{draft_id}:script", ttl: 5m, store_if: { "response.success": true } }
  - name: type_lists
    match: { method: GET, path: "/{type_list}" }
    params: { type_list: path.type_list }
    cache: { key: "static:{type_list}", ttl: 5m }
rate_limiting:
  identity: { header: x-user-id }
  scope: pod
  global: { requests_per_second: 1000, burst_size: 200, algorithm: token_bucket }
  per_user: { requests_per_minute: 60, burst_size: 10 }
cache:
  l1: { size: 16MB, ttl: 5m }
`, { env: { LD_PRELOAD: LIBFAKETIME!, FAKETIME_TIMESTAMP_FILE: offsetFile, FAKETIME_NO_CACHE: '1', FAKETIME_DONT_FAKE_MONOTONIC: '1' } });
  t.after(() => sc.stop());

  const statuses: string[] = [];
  const ages: number[] = [];
  const round = async (tag: string, user: string) => {
    for (let i = 0; i < 3; i++) {
      const a = await send(sc.url, { path: '/get_font_types', headers: { 'x-user-id': `${user}` }, timeoutMs: 10_000 });
      const b = await postJson(sc.url, '/query_script', { draft_id: 'dft_000001', force_update: false }, { 'x-user-id': `${user}-q` }, 10_000);
      for (const r of [a, b]) {
        statuses.push(`${tag} ${r.status}`);
        if (r.headers.age !== undefined) ages.push(Number(r.headers.age));
      }
      assert.equal(a.status, 200, `${tag}: ${a.status} ${a.body}`);
      assert.equal(b.status, 200, `${tag}: ${b.status} ${b.body}`);
    }
  };
  await round('start', 'alice');
  writeFileSync(offsetFile, '+2h\n'); // NTP steps the clock forward
  await sleep(100);
  await round('+2h', 'alice');
  const hitAfterForward = String((await send(sc.url, { path: '/get_font_types', headers: { 'x-user-id': 'carol' } })).headers['cache-status']);
  writeFileSync(offsetFile, '-2h\n'); // and back, 4 h into the "past" of what was just stored and counted
  await sleep(100);
  const afterBack = await send(sc.url, { path: '/get_font_types', headers: { 'x-user-id': 'dave' } });
  // an entry stored at +2 h is 4 h "in the future" now: not served as fresh for hours (its ttl is 5 m), refreshed
  assert.doesNotMatch(String(afterBack.headers['cache-status']), /; hit; ttl=\d{4,}/, 'a 5 m entry served as fresh for hours after the clock stepped back');
  assert.match(String(afterBack.headers['cache-status']), /fwd=/);
  const refreshed = await send(sc.url, { path: '/get_font_types', headers: { 'x-user-id': 'frank' } });
  assert.match(String(refreshed.headers['cache-status']), /hit; ttl=(\d{1,3});/, 'the refreshed entry is a normal 5 m hit');
  // alice made 6 of her burst of 10 (60/min) across the jumps: a limiter on the wall clock would now see her
  // window 4 h "in the future" and lock her out; she gets her remaining requests
  await round('-2h', 'alice');
  await round('-2h new user', 'bob');
  recordFigure('clock jump: Cache-Status after +2 h / after back to -2 h', `${hitAfterForward} / ${String(afterBack.headers['cache-status'])}`);
  writeFileSync(offsetFile, '+0\n');
  await sleep(100);
  await round('back to +0', 'erin');
  for (const a of ages) assert.ok(Number.isInteger(a) && a >= 0, `Age ${a}`);
  assert.equal((await send(sc.adminUrl, { path: '/healthz' })).status, 200);
  assert.equal(sc.proc.exitCode, null);
  recordFigure('clock jump: requests answered 200', `${statuses.length} / ${statuses.length}`);
});
