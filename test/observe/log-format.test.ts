/**
 * Logs a person can read on a terminal (pino-pretty, in pino's transport thread) and JSON for machines:
 * `server.log_format: auto` picks by whether stdout is a terminal, `json` / `pretty` force either. Expected
 * degraded states (Redis absent, the admin token file missing) are said once when they start and once when
 * they end, without a stack trace.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDraftService, type DraftService } from '../../examples/draft-service';
import { resolveLogFormat } from '../../lib/observe/logger';
import { formatLine } from '../../lib/observe/pretty-transport';
import { CLI, startSidecar, basicPolicy } from '../helpers/sidecar';
import { freePort, waitFor } from '../helpers/ports';

let upstream: DraftService;
before(async () => { upstream = await startDraftService({ port: 0, host: '127.0.0.1' }); });
after(async () => { await upstream.close(); });

test('auto is pretty exactly on a terminal; json and pretty force either', () => {
  assert.equal(resolveLogFormat('auto', true), 'pretty');
  assert.equal(resolveLogFormat('auto', false), 'json');
  assert.equal(resolveLogFormat('json', true), 'json');
  assert.equal(resolveLogFormat('pretty', false), 'pretty');
});

test('a readable line: who, the message, then the fields that are set; an error shows its message, never its stack', () => {
  assert.equal(
    formatLine({ level: 30, time: 1, pid: 7, role: 'worker', worker: 2, msg: 'access', method: 'POST', path: '/query_script', status: 200,
      duration_ms: 12.4, route: 'query_script', cache: 'hit; ttl=298; detail=l1', limit: null, client: '127.0.0.1', trace_id: 'ab' }),
    'w2 POST /query_script 200 12.4 ms route=query_script cache="hit; ttl=298; detail=l1"');
  const err = new Error('redis is not connected');
  const line = formatLine({ level: 40, role: 'primary', msg: 'write-behind task failed', err: { type: 'Error', message: err.message, stack: err.stack }, queue: 'l2' });
  assert.equal(line, 'primary write-behind task failed err="redis is not connected" queue=l2');
});

test('log_format: pretty on a pipe gives readable lines (access lines too); the default on a pipe stays JSON', { timeout: 90_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'bridge-sidecar-logfmt-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const port = await freePort();
  const file = join(dir, 'policy.yaml');
  writeFileSync(file, basicPolicy(upstream.port, '', { workers: 2, log_format: 'pretty' }).replace('127.0.0.1:0', `127.0.0.1:${port}`));
  const proc = spawn(process.execPath, [CLI(), 'serve', '--policy', file], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
  t.after(() => { if (proc.exitCode === null) proc.kill('SIGKILL'); });
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  await waitFor('the listening line', () => /INFO: primary listening listen=127\.0\.0\.1:\d+/.test(out), 60_000);
  const r = await fetch(`http://127.0.0.1:${port}/get_font_types`);
  assert.equal(r.status, 200);
  await r.arrayBuffer();
  await waitFor('the access line', () => /INFO: w\d GET \/get_font_types 200 [\d.]+ ms/.test(out), 30_000);
  for (const line of out.trim().split('\n')) assert.match(line, /^\[\d\d:\d\d:\d\d\.\d{3}\] (INFO|WARN|ERROR): /, line);
  proc.kill('SIGTERM');
  await new Promise((res) => proc.once('exit', res));
  assert.match(out, /INFO: primary shutdown complete/, 'lines written just before exit are not lost');

  const json = await startSidecar(basicPolicy(upstream.port, '', { workers: 0 }));
  t.after(() => json.stop());
  assert.ok(json.logs.some((l) => l.msg === 'listening' && typeof l.time === 'string'), 'JSON objects on a pipe');
});

test('Redis absent and the admin token file missing: one warning each when it starts, none per event, one line when it ends', { timeout: 90_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'bridge-sidecar-degraded-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const token = join(dir, 'admin-token');
  const redisPort = await freePort(); // nothing listens there
  const sc = await startSidecar(basicPolicy(upstream.port, `
redis: { url: "redis://127.0.0.1:${redisPort}" }
routes:
  - name: types
    match: { method: GET, path: "/{t}" }
    params: { t: path.t }
    cache: { key: "static:{t}" }
cache:
  l1: { size: 1MB }
  l2: { ttl: 1h }
`, { workers: 0, admin_token_file: token }));
  t.after(() => sc.stop());
  for (let i = 0; i < 10; i++) {
    const r = await fetch(`${sc.url}/get_font_types_${i}`); // ten L2 writes while Redis is absent
    await r.arrayBuffer();
    const a = await fetch(`${sc.adminUrl}/admin/purge`, { method: 'POST', headers: { authorization: 'Bearer x' }, body: '{}' });
    assert.equal(a.status, 404);
  }
  await waitFor('the access lines', () => sc.logs.filter((l) => l.msg === 'access').length >= 10, 30_000);
  const warns = sc.logs.filter((l) => l.level === 'warn' || l.level === 'error');
  const about = (re: RegExp) => warns.filter((l) => re.test(String(l.msg)));
  assert.equal(about(/^redis unreachable/).length, 1, JSON.stringify(warns));
  assert.equal(about(/^admin token file unreadable/).length, 1, JSON.stringify(warns));
  assert.equal(warns.length, 2, `nothing else warns per request: ${JSON.stringify(warns)}`);
  assert.ok(!sc.logs.some((l) => JSON.stringify(l).includes('"stack"')), 'no stack traces');

  writeFileSync(token, 'secret\n');
  const ok = await fetch(`${sc.adminUrl}/admin/purge`, { method: 'POST', headers: { authorization: 'Bearer secret' }, body: '{"pattern":"x:*"}' });
  assert.equal(ok.status, 200);
  await fetch(`${sc.adminUrl}/admin/purge`, { method: 'POST', headers: { authorization: 'Bearer secret' }, body: '{"pattern":"x:*"}' });
  assert.equal(sc.logs.filter((l) => /^admin token file readable again/.test(String(l.msg))).length, 1);
});
