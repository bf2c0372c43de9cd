/**
 * Hot reload through the REAL sidecar process, with the policy mounted the way the kubelet mounts a ConfigMap
 * (test/helpers/atomic-writer.ts: timestamped directory, `..data` swapped by rename, old directory deleted) and
 * updated with the kubelet's exact sequence while requests flow.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { policyVersion } from '../../lib/policy/load';
import { atomicUpdate } from '../helpers/atomic-writer';
import { basicPolicy } from '../helpers/sidecar';
import { sleep, waitFor } from '../helpers/ports';
import { get, metricsText, policyView, startCountingUpstream, startLoad, startReloadSidecar, sumSeries, type ReloadSidecar } from './harness';

function routesYaml(names: string[]): string {
  if (names.length === 0) return '';
  return ['routes:', ...names.flatMap((n) => [`  - name: ${n}`, `    match: { method: GET, path: /r/${n} }`])].join('\n') + '\n';
}

function policy(upstreamPort: number, opts: { routes?: string[]; extra?: string; server?: Record<string, string | number> } = {}): string {
  return basicPolicy(upstreamPort, routesYaml(opts.routes ?? []) + (opts.extra ?? ''), opts.server);
}

const GLOBAL_LIMIT = 'rate_limiting:\n  global: { requests_per_second: 5, burst_size: 5 }\n';

/** Publish `yaml` with the kubelet's update sequence and wait until /policy shows its version. */
async function publish(sc: ReloadSidecar, yaml: string, timeoutMs = 10_000): Promise<string> {
  const version = policyVersion(yaml);
  atomicUpdate(sc.mount, { 'policy.yaml': yaml });
  await waitFor(`/policy version ${version}`, async () => (await policyView(sc)).version === version, timeoutMs, 25);
  return version;
}

async function reloads(sc: ReloadSidecar, result: string): Promise<number> {
  return sumSeries(await metricsText(sc), 'bridge_sidecar_policy_reloads_total', `result="${result}"`);
}

test('a rate limit published while requests flow takes effect within 2 s, and its removal too', async (t) => {
  const up = await startCountingUpstream();
  t.after(() => up.close());
  const base = policy(up.port);
  const sc = await startReloadSidecar(t, base);
  const load = startLoad(sc.url, { connections: 4, okStatuses: [200, 429] });
  t.after(() => load.stop());
  await waitFor('load flowing', () => load.result.ok > 20, 15_000);
  assert.equal((await get(sc.url + '/probe')).status, 200);

  const started = Date.now();
  atomicUpdate(sc.mount, { 'policy.yaml': policy(up.port, { extra: GLOBAL_LIMIT }) });
  let limitedAfterMs = -1;
  for (let i = 0; i < 400 && Date.now() - started < 10_000; i++) {
    if ((await get(sc.url + '/probe')).status === 429) {
      limitedAfterMs = Date.now() - started;
      break;
    }
    await sleep(10);
  }
  console.log(`# rate limit in force ${limitedAfterMs} ms after the ConfigMap update`);
  assert.ok(limitedAfterMs >= 0, 'no 429 within 10 s of publishing a 5 rps limit under load');
  assert.ok(limitedAfterMs < 2000, `the new limit took ${limitedAfterMs} ms (must be < 2 s)`);

  const removed = Date.now();
  atomicUpdate(sc.mount, { 'policy.yaml': base });
  let streak = 0;
  let freeAfterMs = -1;
  for (let i = 0; i < 1000 && Date.now() - removed < 10_000; i++) {
    streak = (await get(sc.url + '/probe')).status === 200 ? streak + 1 : 0;
    if (streak === 30) {
      freeAfterMs = Date.now() - removed;
      break;
    }
  }
  assert.ok(freeAfterMs >= 0, 'the limit was still in force 10 s after it was removed');
  const r = await load.stop();
  assert.deepEqual(r.failures, [], 'no request failed (other than the 429s of the limit)');
  assert.ok((r.statuses.get(429) ?? 0) > 0, 'the load saw the limit too');
  assert.equal(await reloads(sc, 'success'), 2);
});

test('an invalid policy is refused: the old one keeps serving, FILE:LINE:COL logged, error counted, /policy unchanged', async (t) => {
  const up = await startCountingUpstream();
  t.after(() => up.close());
  const good = policy(up.port, { routes: ['kept'] });
  const sc = await startReloadSidecar(t, good);
  const v0 = (await policyView(sc)).version;
  assert.equal(v0, policyVersion(good));

  const bad = good + 'rate_limiting:\n  global: { requests_per_second: 5, burst_size: 5 }\nunknown_section: 1\n';
  const badLine = bad.split('\n').findIndex((l) => l.startsWith('unknown_section')) + 1;
  atomicUpdate(sc.mount, { 'policy.yaml': bad });
  const line = await sc.waitForLog((l) => l.msg === 'policy reload refused: the old policy keeps serving', 10_000);
  assert.ok(String(line.error).startsWith(`${sc.policyFile}:${badLine}:1: `), `error line: ${String(line.error)}`);
  assert.equal(line.level, 'error');
  assert.equal(line.kept_version, v0);

  const view = await policyView(sc);
  assert.equal(view.version, v0, '/policy still shows the old version');
  assert.equal(view.last_reload?.result, 'error');
  assert.deepEqual(view.policy.routes.map((r) => r.name), ['kept']);
  const m = await metricsText(sc);
  assert.equal(sumSeries(m, 'bridge_sidecar_policy_reloads_total', 'result="error"'), 1);
  assert.equal(sumSeries(m, 'bridge_sidecar_policy_reloads_total', 'result="success"'), 0);
  assert.equal(sumSeries(m, 'bridge_sidecar_policy_info', `version="${v0}"`), 1);
  // the old policy serves: no rate limit from the refused file, the old route still labels requests
  for (let i = 0; i < 12; i++) assert.equal((await get(sc.url + '/r/kept')).status, 200);
  assert.equal(sumSeries(await metricsText(sc), 'bridge_sidecar_http_requests_total', 'endpoint="kept"'), 12);
  // the poll does not log the same refusal again and again
  await sleep(300);
  assert.equal(sc.logs.filter((l) => l.msg === 'policy reload refused: the old policy keeps serving').length, 1);

  // fixed: applied
  const fixed = policy(up.port, { routes: ['kept', 'fixed'] });
  await publish(sc, fixed);
  assert.equal(await reloads(sc, 'success'), 1);
  const ok = await sc.waitForLog((l) => l.msg === 'policy reloaded');
  assert.deepEqual(ok.changed, ['routes.fixed (added)']);
  assert.equal(ok.from, v0);
  assert.equal(ok.to, policyVersion(fixed));
});

test('a burst of 10 ConfigMap updates ends on the final content, debounced into (nearly always) one reload', async (t) => {
  const up = await startCountingUpstream();
  t.after(() => up.close());
  // no poll during the test: a poll could read the burst half-way (that would still end on the final content)
  const sc = await startReloadSidecar(t, policy(up.port), { env: { BRIDGE_SIDECAR_RELOAD_POLL: '60s' } });
  const versions: string[] = [];
  let last = '';
  for (let i = 1; i <= 10; i++) {
    last = policy(up.port, { routes: Array.from({ length: i }, (_, k) => `burst${k + 1}`) });
    versions.push(policyVersion(last));
    atomicUpdate(sc.mount, { 'policy.yaml': last });
  }
  await waitFor('final version', async () => (await policyView(sc)).version === policyVersion(last), 10_000, 25);
  await sleep(1000);
  const view = await policyView(sc);
  assert.equal(view.version, policyVersion(last), 'still on the final content');
  assert.equal(view.policy.routes.length, 10);
  const applied = sc.logs.filter((l) => l.msg === 'policy reloaded');
  // one reload unless this machine stalled the writer for longer than the debounce in the middle of the burst
  assert.ok(applied.length >= 1 && applied.length <= 2, `reloads for the burst: ${applied.length}`);
  assert.equal(applied[applied.length - 1].to, policyVersion(last));
  assert.equal(await reloads(sc, 'success'), applied.length);
  for (let i = 0; i < 3; i++) assert.equal((await get(sc.url + '/r/burst10')).status, 200);
  assert.equal(sumSeries(await metricsText(sc), 'bridge_sidecar_http_requests_total', 'endpoint="burst10"'), 3);
});

test('SIGHUP forces a reload (file watching off, so only the signal can have done it)', async (t) => {
  const up = await startCountingUpstream();
  t.after(() => up.close());
  const sc = await startReloadSidecar(t, policy(up.port), { env: { BRIDGE_SIDECAR_RELOAD_WATCH: 'off' } });
  const v0 = (await policyView(sc)).version;
  const next = policy(up.port, { routes: ['hup'] });
  atomicUpdate(sc.mount, { 'policy.yaml': next });
  await sleep(1500);
  assert.equal((await policyView(sc)).version, v0, 'not watched: no reload without the signal');
  sc.proc.kill('SIGHUP');
  await waitFor('reload on SIGHUP', async () => (await policyView(sc)).version === policyVersion(next), 10_000, 25);
  const line = await sc.waitForLog((l) => l.msg === 'policy reloaded');
  assert.equal(line.why, 'SIGHUP');
  // SIGHUP with nothing new: a no-op, counted as unchanged
  sc.proc.kill('SIGHUP');
  await waitFor('unchanged counted', async () => (await reloads(sc, 'unchanged')) === 1, 10_000);
  assert.equal(await reloads(sc, 'success'), 1);
});

test('a changed listen address is reported as needing a restart and not applied; the rest of the update is', async (t) => {
  const up = await startCountingUpstream();
  t.after(() => up.close());
  const sc = await startReloadSidecar(t, policy(up.port));
  const { freePort } = await import('../helpers/ports');
  const newPort = await freePort();
  const moved = policy(up.port, { routes: ['after_move'], server: { listen: `127.0.0.1:${newPort}` } });
  const v = await publish(sc, moved);
  const warn = await sc.waitForLog((l) => l.msg !== undefined && String(l.msg).startsWith('RESTART NEEDED'));
  assert.equal(warn.level, 'warn');
  assert.deepEqual(warn.restart_needed, ['server.listen']);
  assert.match(String(warn.msg), /server\.listen/);

  const view = await policyView(sc);
  assert.equal(view.version, v);
  assert.deepEqual(view.policy.server.listen, { host: '127.0.0.1', port: 0 }, 'the effective policy keeps the running listen');
  assert.deepEqual(view.restart_pending, [{ key: 'server.listen', running: { host: '127.0.0.1', port: 0 }, file: { host: '127.0.0.1', port: newPort } }]);
  // still serving on the old socket, nothing on the new one; the route from the same update is in force
  assert.equal((await get(sc.url + '/r/after_move')).status, 200);
  assert.equal(sumSeries(await metricsText(sc), 'bridge_sidecar_http_requests_total', 'endpoint="after_move"'), 1);
  await assert.rejects(get(`http://127.0.0.1:${newPort}/r/after_move`, { timeoutMs: 3000 }), /ECONNREFUSED/);

  // the file goes back: nothing pending any more
  await publish(sc, policy(up.port, { routes: ['after_move'] }));
  assert.deepEqual((await policyView(sc)).restart_pending, []);
  await sc.waitForLog((l) => l.msg === 'the policy file matches the running start-only settings again: no restart pending');
});

test('state survives a reload: upstream keep-alive connection, cache entries (L1 resized), rate-limit tokens', async (t) => {
  const up = await startCountingUpstream();
  t.after(() => up.close());
  const extra = (l1: string) => [
    '  - name: cached',
    '    match: { method: GET, path: /cached }',
    '    cache: { key: "c:1", ttl: 5m }',
    '  - name: limited',
    '    match: { method: GET, path: /limited }',
    'cache:',
    `  l1: { size: ${l1} }`,
    'rate_limiting:',
    '  per_endpoint: { limited: { rps: 0.2, burst: 3 } }',
    '',
  ].join('\n');
  // the extra route items continue the `routes:` list written by policy()
  const make = (names: string[], l1: string) => policy(up.port, { routes: names, extra: extra(l1) });
  const sc = await startReloadSidecar(t, make(['plain'], '1MB'));

  const miss = await get(sc.url + '/cached');
  assert.equal(miss.status, 200);
  assert.match(String(miss.headers['cache-status']), /fwd=miss; stored/);
  for (let i = 0; i < 3; i++) assert.equal((await get(sc.url + '/limited')).status, 200);
  assert.equal((await get(sc.url + '/limited')).status, 429, 'the endpoint bucket is empty');
  for (let i = 0; i < 3; i++) assert.equal((await get(sc.url + '/r/plain')).status, 200);
  assert.equal(up.connections(), 1, 'sequential requests share one pooled upstream connection');
  const upstreamRequests = up.requests();

  // a route added and the L1 grown: the L1 is resized in place, not rebuilt
  await publish(sc, make(['plain', 'added'], '2MB'));

  const hit = await get(sc.url + '/cached');
  assert.equal(hit.status, 200);
  assert.match(String(hit.headers['cache-status']), /hit/, 'the cache entry survived the reload');
  assert.equal(up.requests(), upstreamRequests, 'the hit did not reach the upstream');
  let allowed = 0;
  for (let i = 0; i < 3; i++) if ((await get(sc.url + '/limited')).status === 200) allowed++;
  // a bucket reset by the reload would allow 3; at 0.2 rps at most one token came back meanwhile
  assert.ok(allowed <= 1, `requests allowed right after the reload: ${allowed}`);
  for (let i = 0; i < 3; i++) assert.equal((await get(sc.url + '/r/added')).status, 200);
  assert.equal(up.connections(), 1, 'the upstream keep-alive connection survived the reload');
});

test('queued requests (waiters) survive a reload that raises max_in_flight, and are all answered', async (t) => {
  const up = await startCountingUpstream();
  t.after(() => up.close());
  const queues = 'queues:\n  max_in_flight: 1\n  queue_timeout: 30s\n';
  const sc = await startReloadSidecar(t, policy(up.port, { extra: queues }));
  // 4 x 2 s one after another: still queued when the reload lands, however long the reload takes on a busy machine
  const pending = Array.from({ length: 4 }, () => get(sc.url + '/slow?delay=2000'));
  let answered = 0;
  for (const p of pending) void p.then(() => answered++, () => {});
  await waitFor('requests waiting in the queue', async () =>
    sumSeries(await metricsText(sc), 'bridge_sidecar_queue_length') >= 2, 10_000, 20);
  await publish(sc, policy(up.port, { routes: ['during_queue'], extra: queues.replace('max_in_flight: 1', 'max_in_flight: 4') }));
  assert.ok(answered < 4, 'the reload happened while requests were still queued');
  const replies = await Promise.all(pending);
  assert.deepEqual(replies.map((r) => r.status), [200, 200, 200, 200]);
});

test('a changed upstream.url (same scheme) is applied: new requests go to the new upstream, none fails while it moves', async (t) => {
  const up = await startCountingUpstream();
  t.after(() => up.close());
  const other = await startCountingUpstream();
  t.after(() => other.close());
  const sc = await startReloadSidecar(t, policy(up.port, { routes: ['moving'] }));
  assert.equal((await get(sc.url + '/r/moving')).status, 200);
  assert.equal(up.requests(), 1);
  // requests flow while the policy moves: every one is answered 200, by one upstream or the other
  let stop = false;
  const statuses: number[] = [];
  const flow = (async () => {
    for (let i = 0; i < 2000 && !stop; i++) statuses.push((await get(sc.url + '/r/moving')).status);
  })();
  await publish(sc, policy(other.port, { routes: ['moving'] }));
  await waitFor('the new upstream gets requests', () => other.requests() > 0, 10_000, 20);
  stop = true;
  await flow;
  assert.ok(statuses.length > 0);
  assert.deepEqual(statuses.filter((s) => s !== 200), [], 'no request failed while the upstream moved');
  const view = await policyView(sc);
  assert.equal((view.policy.upstream as { url: string }).url, `http://127.0.0.1:${other.port}`);
  assert.deepEqual(view.restart_pending, []);
  const before = up.requests();
  for (let i = 0; i < 5; i++) assert.equal((await get(sc.url + '/r/moving')).status, 200);
  assert.equal(up.requests(), before, 'the old upstream gets nothing after the move');
});

test('a changed upstream scheme (http → https) is held (restart needed), never half-applied', async (t) => {
  const up = await startCountingUpstream();
  t.after(() => up.close());
  const sc = await startReloadSidecar(t, policy(up.port));
  await publish(sc, policy(up.port, { routes: ['with_https'] }).replace(`http://127.0.0.1:${up.port}`, `https://127.0.0.1:${up.port}`));
  const warn = await sc.waitForLog((l) => String(l.msg ?? '').startsWith('RESTART NEEDED'));
  assert.deepEqual(warn.restart_needed, ['upstream.url']);
  const view = await policyView(sc);
  assert.equal((view.policy.upstream as { url: string }).url, `http://127.0.0.1:${up.port}`);
  assert.deepEqual(view.restart_pending, [{ key: 'upstream.url', running: `http://127.0.0.1:${up.port}`, file: `https://127.0.0.1:${up.port}` }]);
  const before = up.requests();
  assert.equal((await get(sc.url + '/r/with_https')).status, 200);
  assert.equal(up.requests(), before + 1, 'the running upstream got the request over plain HTTP');
});

test('a changed log_level applies at once (access lines stop at warn)', async (t) => {
  const up = await startCountingUpstream();
  t.after(() => up.close());
  const sc = await startReloadSidecar(t, policy(up.port));
  assert.equal((await get(sc.url + '/before')).status, 200);
  await sc.waitForLog((l) => l.msg === 'access' && l.path === '/before');
  await publish(sc, policy(up.port, { server: { log_level: 'warn' } }));
  assert.equal((await get(sc.url + '/after')).status, 200);
  // a request at info level after it would be logged within a moment; give it that moment
  await sleep(300);
  assert.equal(sc.logs.filter((l) => l.msg === 'access' && l.path === '/after').length, 0);
});
