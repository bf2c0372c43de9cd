import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { buildRoot } from '../helpers/repo';
import { fixture } from './util';

const CLI = join(buildRoot(), 'cmd', 'bridge-sidecar.js');

function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

test('validate on a good file: exit 0, one summary line on stdout, nothing on stderr', async () => {
  const r = await runCli(['validate', fixture('full.yaml')]);
  assert.equal(r.stderr, '');
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^policy ok: version [0-9a-f]{12}, 5 routes, .*\n$/);
  assert.equal(r.stdout.split('\n').length, 2);
});

test('validate on a bad file: exit 1, every problem as FILE:LINE:COL: message on stderr', async () => {
  const file = fixture('unknown-keys.yaml');
  const r = await runCli(['validate', file]);
  assert.equal(r.code, 1);
  assert.equal(r.stdout, '');
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 8);
  for (const l of lines) {
    const m = /^(.+):(\d+):(\d+): (.+)$/.exec(l);
    assert.ok(m, `format: ${l}`);
    assert.equal(m[1], file);
    assert.ok(Number(m[2]) >= 1 && Number(m[3]) >= 1);
  }
  assert.equal(lines[0], `${file}:1:1: unknown key "bogus_top" in (top level) (expected one of: version, server, upstream, redis, routes, rate_limiting, queues, cache, compression, memory, metrics, tracing, profiling, local_reply, auto_tuning)`);
  assert.equal(lines[1], `${file}:4:3: unknown key "worker" in server (did you mean "workers"?)`);
});

test('validate on a missing file: exit 2, one line (test/cli/errors.test.ts); on a YAML syntax error: exit 1, positioned', async () => {
  const missing = await runCli(['validate', '/nonexistent/policy.yaml']);
  assert.equal(missing.code, 2);
  assert.equal(missing.stderr, 'bridge-sidecar validate: policy file /nonexistent/policy.yaml does not exist (from the command line): give an existing file with --policy FILE\n');
  const syntax = await runCli(['validate', fixture('syntax-error.yaml')]);
  assert.equal(syntax.code, 1);
  assert.match(syntax.stderr, /^.*syntax-error\.yaml:5:3: Flow sequence.*\n$/);
});

test('validate --help exits 0; wrong usage exits 2 with the usage', async () => {
  const help = await runCli(['validate', '--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /usage: bridge-sidecar validate \[--keys\] FILE/);
  const none = await runCli(['validate']);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /expected exactly one FILE/);
  const flag = await runCli(['validate', '--frobnicate', fixture('full.yaml')]);
  assert.equal(flag.code, 2);
});
