/**
 * `npm start` = `bridge-sidecar demo`: the example service on 127.0.0.1:9101 and the sidecar on :15006 with
 * examples/policy.yaml, with no Redis running. It must serve, say it has no Redis, and stop cleanly.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { CLI } from '../helpers/sidecar';
import { waitFor } from '../helpers/ports';

test('the demo serves the draft service through the sidecar without Redis, and stops on SIGINT', { timeout: 90_000 }, async () => {
  const env = { ...process.env };
  delete env.BRIDGE_SIDECAR_POLICY;
  const proc = spawn(process.execPath, [CLI(), 'demo'], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((r) => proc.once('exit', (c) => r(c)));
  try {
    await waitFor('the demo to listen', () => out.includes('"msg":"listening"'), 30_000, 100);
    assert.match(out, /policy: .*examples\/policy\.yaml/);
    const r = await fetch('http://127.0.0.1:15006/query_script', {
      method: 'POST', headers: { 'content-type': 'application/json', 'x-user-id': 'demo-test' },
      body: JSON.stringify({ draft_id: 'dft_000001', force_update: false }),
    });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('via'), '1.1 bridge-sidecar');
    assert.match(r.headers.get('cache-status') ?? '', /^bridge-sidecar; /);
    const body = (await r.json()) as { success: boolean };
    assert.equal(body.success, true);
    const m = await (await fetch('http://127.0.0.1:9901/metrics')).text();
    assert.match(m, /^bridge_sidecar_redis_up 0$/m);
  } finally {
    proc.kill('SIGINT');
    const t = setTimeout(() => proc.kill('SIGKILL'), 40_000);
    const code = await exited;
    clearTimeout(t);
    assert.equal(code, 0, out.slice(-2000));
  }
});
