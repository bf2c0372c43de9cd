/**
 * server.workers: 1: the pod's only worker holds the pod's rate-limit counters and applies its own invalidations,
 * with no round trip through the primary per request. The counters still reach the primary (explain, the status
 * page), survive a worker restart and a reload. A real sidecar process in front of a real upstream.
 *
 * "No round trip" is shown by stopping the primary (SIGSTOP) on a keep-alive connection already handed to the
 * worker: a round trip would wait for the 1 s IPC timeout and log that the primary did not answer.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, request } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { startSidecar, type SidecarProcess } from '../helpers/sidecar';
import { freePort, waitFor } from '../helpers/ports';
import { http } from '../observe/helpers';
import { startUpstream, type TestUpstream } from '../cache/harness';
import { startDraftService } from '../../examples/draft-service/server';
import { draftPolicy } from '../invalidation/helpers';

interface Answer { status: number; body: string; headers: Record<string, string | string[] | undefined> }

function send(url: string, opts: { method?: string; headers?: Record<string, string>; body?: string; agent?: Agent | false } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: opts.method ?? 'GET', headers: opts.headers, agent: opts.agent ?? false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

let up: TestUpstream;
let dir: string;
let tokenFile: string;
before(async () => {
  up = await startUpstream(() => ({ body: 'ok' }));
  dir = mkdtempSync(join(tmpdir(), 'sole-worker-'));
  tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, 'sole-token\n');
});
after(async () => {
  await up?.close();
  rmSync(dir, { recursive: true, force: true });
});

function policy(burst: number, extra = '', port = 0): string {
  return `version: 1
server: { listen: "127.0.0.1:${port}", admin_listen: "127.0.0.1:0", workers: 1, log_level: info, admin_token_file: ${JSON.stringify(tokenFile)} }
upstream: { url: "${up.url}" }
routes:
  - name: read
    match: { method: GET, path: /read }
rate_limiting:
  scope: pod
  identity: { header: x-user-id }
  per_user: { requests_per_minute: 1, burst_size: ${burst} }
${extra}`;
}

const HOLDS = "this worker holds the pod's rate-limit counters (the pod's only worker)";

async function start(yaml: string, t: { after(fn: () => unknown): void }): Promise<SidecarProcess> {
  const sc = await startSidecar(yaml, { timeoutMs: 60_000 });
  t.after(async () => {
    try { process.kill(sc.proc.pid!, 'SIGCONT'); } catch { /* gone */ }
    await sc.stop();
  });
  await sc.waitForLog((l) => l.msg === HOLDS, 30_000);
  return sc;
}

async function explainState(sc: SidecarProcess, user: string): Promise<{ available: number; capacity: number } | null> {
  const r = await http(sc.adminUrl + '/debug/explain', {
    method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer sole-token' },
    body: JSON.stringify({ method: 'GET', url: '/read', headers: { 'x-user-id': user } }),
  });
  assert.equal(r.status, 200, r.text);
  const limits = JSON.parse(r.text).explanation.limits.limits as Array<{ scope: string; state: { available: number; capacity: number } | null }>;
  return limits.find((l) => l.scope === 'per_user')!.state;
}

const read = (sc: SidecarProcess, user: string, agent: Agent | false = false): Promise<Answer> =>
  send(sc.url + '/read', { headers: { 'x-user-id': user }, agent });

test('workers: 1, primary stopped: the worker admits the burst and refuses the next from its own counters, exactly', { timeout: 90_000 }, async (t) => {
  const sc = await start(policy(3), t);
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  t.after(() => agent.destroy());
  // the connection is handed to the worker now; after that the primary is not needed to serve on it
  assert.equal((await read(sc, 'warm', agent)).status, 200);
  process.kill(sc.proc.pid!, 'SIGSTOP');
  const statuses: number[] = [];
  const remaining: string[] = [];
  for (let i = 0; i < 4; i++) {
    const r = await read(sc, 'alice', agent);
    statuses.push(r.status);
    remaining.push(String(r.headers['ratelimit']));
  }
  process.kill(sc.proc.pid!, 'SIGCONT');
  assert.deepEqual(statuses, [200, 200, 200, 429]);
  assert.deepEqual(remaining.slice(0, 3), ['"per_user";r=2;t=60', '"per_user";r=1;t=120', '"per_user";r=0;t=180']);
  assert.ok(!sc.logs.some((l) => typeof l.msg === 'string' && l.msg.startsWith('rate-limit lease server did not answer')),
    'a request waited for the stopped primary');
  // the primary's view (explain) is the worker's
  assert.equal((await explainState(sc, 'alice'))?.available, 0);
  assert.equal(await explainState(sc, 'nobody'), null);
});

test('workers: 1: a restarted worker takes up the count where the crashed one left it', { timeout: 90_000 }, async (t) => {
  // a fixed port: with no worker left, the listening socket closes, and port 0 would pick another one
  const sc = await start(policy(3, '', await freePort()), t);
  for (let i = 0; i < 3; i++) assert.equal((await read(sc, 'bob')).status, 200);
  // the worker's checkpoint reaches the primary's store: the status page reads that store as it is
  await waitFor('bob on the status page', async () => {
    const s = JSON.parse((await http(sc.adminUrl + '/stats')).text);
    return (s.limits?.closest ?? []).some((b: { key: string; used: number }) => b.key === 'h:bob' && b.used === 1);
  }, 15_000, 50);
  const pid = (await waitFor('a worker pid', () => sc.logs.find((l) => l.role === 'worker' && typeof l.pid === 'number')?.pid as number | undefined, 15_000))!;
  const before = sc.logs.filter((l) => l.msg === HOLDS).length;
  process.kill(pid, 'SIGKILL');
  await sc.waitForLog((l) => l.msg === 'worker exited unexpectedly: restarting it');
  await waitFor('the new worker holds the counters', () => sc.logs.filter((l) => l.msg === HOLDS).length > before, 30_000);
  assert.equal((await read(sc, 'bob')).status, 429, 'the restarted worker gave bob a fresh burst');
  assert.equal((await read(sc, 'carol')).status, 200);
});

test('workers: 1: a reload with a larger burst keeps what the user spent (3 of 5: 2 more)', { timeout: 90_000 }, async (t) => {
  const sc = await start(policy(3), t);
  for (let i = 0; i < 3; i++) assert.equal((await read(sc, 'dave')).status, 200);
  assert.equal((await read(sc, 'dave')).status, 429);
  writeFileSync(sc.policyFile, policy(5, `  per_endpoint:
    /probe: { rps: 100, burst: 1 }
`));
  process.kill(sc.proc.pid!, 'SIGHUP');
  await sc.waitForLog((l) => l.msg === 'policy reloaded', 30_000);
  // the worker has the new policy once /probe carries its own limit's field (its burst of 1 is the closest)
  await waitFor('the worker on the new policy', async () => {
    const r = await send(sc.url + '/probe', { headers: { 'x-user-id': 'probe' } });
    return String(r.headers['ratelimit-policy']).includes('per_endpoint');
  }, 30_000, 50);
  const statuses: number[] = [];
  for (let i = 0; i < 3; i++) statuses.push((await read(sc, 'dave')).status);
  assert.deepEqual(statuses, [200, 200, 429]);
});

test('workers: 1, primary stopped: a write invalidates the cached read at once, without the primary', { timeout: 90_000 }, async (t) => {
  const svc = await startDraftService({ port: 0, host: '127.0.0.1' });
  t.after(() => svc.close());
  const yaml = draftPolicy(svc.port, { workers: 1, async: false });
  const sc = await start(yaml, t);
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  t.after(() => agent.destroy());
  const q = (): Promise<Answer> => send(sc.url + '/query_script', {
    method: 'POST', agent, headers: { 'content-type': 'application/json', 'x-user-id': '7' },
    body: JSON.stringify({ draft_id: 'dft_000005', force_update: false }),
  });
  const old = await q();
  assert.equal(old.status, 200);
  assert.match(String((await q()).headers['cache-status']), /hit/);
  process.kill(sc.proc.pid!, 'SIGSTOP');
  const w = await send(sc.url + '/add_video', {
    method: 'POST', agent, headers: { 'content-type': 'application/json', 'x-user-id': '7' },
    body: JSON.stringify({ draft_id: 'dft_000005', video_url: 'https://v.example.invalid/a.mp4', start: 0, end: 3 }),
  });
  const fresh = await q();
  process.kill(sc.proc.pid!, 'SIGCONT');
  assert.equal(w.status, 200, w.body);
  assert.notEqual(fresh.body, old.body, 'the read after the write was the cached one');
  assert.ok(!sc.logs.some((l) => l.msg === 'invalidation fan-out to the other workers failed'), 'the write waited for the stopped primary');
});
