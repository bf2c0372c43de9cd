/**
 * `explain --admin URL` and POST /debug/explain against a running sidecar (two workers): the policy in force
 * and the current state of the limits, so a request that a per-user limit refuses right now is explained as
 * refused, by that scope, for that identity; the endpoint needs the admin token.
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { startDraftService, type DraftService } from '../../examples/draft-service';
import { CLI, startSidecar, type SidecarProcess } from '../helpers/sidecar';
import { http } from '../observe/helpers';

let svc: DraftService;
let sc: SidecarProcess;
let tokenFile: string;

before(async () => {
  svc = await startDraftService({ seedDrafts: 5 });
  const dir = mkdtempSync(join(tmpdir(), 'explain-admin-'));
  tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, 's3cret-token\n');
  sc = await startSidecar(`version: 1
server: { listen: "127.0.0.1:0", admin_listen: "127.0.0.1:0", workers: 2, log_level: warn, admin_token_file: ${JSON.stringify(tokenFile)} }
upstream: { url: "http://127.0.0.1:${svc.port}" }
routes:
  - name: query_script
    match: { method: POST, path: /query_script }
    params: { draft_id: body.draft_id }
rate_limiting:
  identity: { header: x-user-id }
  per_user: { requests_per_minute: 6, burst_size: 2 }
  global: { requests_per_second: 1000, burst_size: 100 }
`, { timeoutMs: 60_000 });
});
after(async () => {
  await sc?.stop();
  await svc?.close();
});

function explainAdmin(user: string, extra: string[] = []): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, [CLI(), 'explain', '--admin', sc.adminUrl, ...extra, '-X', 'POST', '-H', 'content-type: application/json',
    '-H', `x-user-id: ${user}`, '-d', '{"draft_id":"dft_000001"}', '/query_script'], { encoding: 'utf8', timeout: 30_000 });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

test('a request refused by its per-user limit is explained as refused by per_user, with the live state; others are admitted', async () => {
  const send = () => http(sc.url + '/query_script', { method: 'POST', headers: { 'content-type': 'application/json', 'x-user-id': 'alice' }, body: '{"draft_id":"dft_000001"}' });
  let refused = 0;
  for (let i = 0; i < 6 && refused === 0; i++) if ((await send()).status === 429) refused++;
  assert.equal(refused, 1, 'alice spent her burst and got a 429');

  const alice = explainAdmin('alice', ['--token-file', tokenFile]);
  assert.equal(alice.code, 0, alice.err);
  assert.match(alice.out, /3\. rate limits: refused by per_user \(h:alice\): 429/);
  assert.match(alice.out, /per_user \(h:alice\): 6\/min, burst 2 — now 0\/2 tokens → refuses: 429/);
  // the proxy agrees right now
  assert.equal((await send()).status, 429);

  const bob = explainAdmin('bob', ['--token-file', tokenFile]);
  assert.match(bob.out, /3\. rate limits: admitted by every limit/);
  assert.match(bob.out, /per_user \(h:bob\): 6\/min, burst 2 → admits: 2 of 2 tokens left/);
});

test('POST /debug/explain needs the admin token; the token may come from the environment', async () => {
  const body = JSON.stringify({ method: 'POST', url: '/query_script', headers: { 'x-user-id': 'carol' }, body: { draft_id: 'x' } });
  assert.equal((await http(sc.adminUrl + '/debug/explain', { method: 'POST', body, headers: { 'content-type': 'application/json' } })).status, 401);
  const ok = await http(sc.adminUrl + '/debug/explain', { method: 'POST', body, headers: { 'content-type': 'application/json', authorization: 'Bearer s3cret-token' } });
  assert.equal(ok.status, 200);
  const e = JSON.parse(ok.text);
  assert.equal(e.explanation.routing.route, 'query_script');
  assert.equal(e.explanation.routing.params.draft_id, 'x');
  assert.equal(e.explanation.identity, 'h:carol');
  const bad = await http(sc.adminUrl + '/debug/explain', { method: 'POST', body: '{"method":"GET"}', headers: { 'content-type': 'application/json', authorization: 'Bearer s3cret-token' } });
  assert.equal(bad.status, 400);
  assert.match(JSON.parse(bad.text).error, /"url" \(a path or absolute URL\) is required/);

  const noToken = explainAdmin('carol');
  assert.equal(noToken.code, 1);
  assert.match(noToken.err, /answered 401 .*--token-file/);
  const env = spawnSync(process.execPath, [CLI(), 'explain', '--admin', sc.adminUrl, '/health'], { encoding: 'utf8', env: { ...process.env, BRIDGE_SIDECAR_ADMIN_TOKEN: 's3cret-token' } });
  assert.equal(env.status, 0, env.stderr);
  const down = spawnSync(process.execPath, [CLI(), 'explain', '--admin', 'http://127.0.0.1:1', '/health'], { encoding: 'utf8' });
  assert.equal(down.status, 1);
  assert.match(down.stderr, /cannot reach http:\/\/127\.0\.0\.1:1\/debug\/explain/);
});
