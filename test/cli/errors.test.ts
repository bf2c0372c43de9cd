/**
 * Clear answers to the mistakes of the first ten minutes: each gets one line that says what is wrong and what
 * to do, and a non-zero exit at once (no usage dump, no stack, no hang).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from './run';

function scratch(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'bridge-sidecar-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const oneLine = (s: string): string[] => s.split('\n').filter((l) => l !== '');

test('an unknown subcommand: one line naming it, the closest command and the list; exit 2', async () => {
  const r = await runCli(['serv']);
  assert.equal(r.code, 2);
  assert.equal(r.stdout, '');
  assert.deepEqual(oneLine(r.stderr), [
    'bridge-sidecar: unknown command "serv" (did you mean "serve"?); the commands are ' + r.stderr.split('the commands are ')[1]!.trim(),
  ]);
  assert.match(r.stderr, /the commands are serve, validate, intercept, .*demo \(bridge-sidecar --help\)\n$/);
  const far = await runCli(['frobnicate']);
  assert.equal(far.code, 2);
  assert.equal(oneLine(far.stderr).length, 1);
  assert.doesNotMatch(far.stderr, /did you mean/);
});

test('a policy path that does not exist: one line for serve, validate and demo; exit 2', async (t) => {
  const missing = join(scratch(t), 'nope', 'policy.yaml');
  for (const [args, env] of [
    [['serve', '--policy', missing], {}],
    [['serve'], { BRIDGE_SIDECAR_POLICY: missing }],
    [['validate', missing], {}],
    [['demo'], { BRIDGE_SIDECAR_POLICY: missing }],
  ] as const) {
    const r = await runCli([...args], { env });
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    const lines = oneLine(r.stderr);
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, new RegExp(`^bridge-sidecar ${args[0]}: policy file ${missing} does not exist \\(from [^)]+\\): give an existing file with --policy FILE$`));
  }
});

test('a policy directory: its policy.yaml is used (a mounted ConfigMap); without one, one line and exit 2', async (t) => {
  const dir = scratch(t);
  const empty = join(dir, 'empty');
  mkdirSync(empty);
  const r = await runCli(['serve', '--policy', empty]);
  assert.equal(r.code, 2);
  assert.deepEqual(oneLine(r.stderr), [`bridge-sidecar serve: policy directory ${empty} (from --policy) has no policy.yaml: put the policy there as policy.yaml, or give the file itself with --policy FILE`]);
  const v = await runCli(['validate', empty]);
  assert.equal(v.code, 2);
  assert.equal(oneLine(v.stderr).length, 1);

  const mounted = join(dir, 'configmap');
  mkdirSync(mounted);
  writeFileSync(join(mounted, 'policy.yaml'), 'version: 1\nupstream: { url: "http://127.0.0.1:9101" }\n');
  const ok = await runCli(['validate', mounted]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /^policy ok: /);
});
