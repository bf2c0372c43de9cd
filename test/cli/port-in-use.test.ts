/**
 * `serve` with its port already taken (a real listener holds it): one line (what, which address, what to do)
 * and a non-zero exit, for the proxy port and the admin port, with workers 0 (one process) and 2 (cluster).
 * Before, it printed a raw EADDRINUSE stack and hung with /readyz at 503 while workers were restarted forever.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from './run';

function hold(): Promise<{ server: Server; port: number }> {
  return new Promise((resolve, reject) => {
    const server = createServer((s) => s.destroy());
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as { port: number }).port }));
  });
}

for (const workers of [0, 2]) {
  for (const which of ['listen', 'admin_listen'] as const) {
    test(`workers: ${workers}, server.${which} taken: one clear line, exit 1, nothing left running`, { timeout: 120_000 }, async (t) => {
      const taken = await hold();
      t.after(() => taken.server.close());
      const dir = mkdtempSync(join(tmpdir(), 'bridge-sidecar-port-'));
      t.after(() => rmSync(dir, { recursive: true, force: true }));
      const listen = which === 'listen' ? `127.0.0.1:${taken.port}` : '127.0.0.1:0';
      const admin = which === 'admin_listen' ? `127.0.0.1:${taken.port}` : '127.0.0.1:0';
      const file = join(dir, 'policy.yaml');
      writeFileSync(file, `version: 1\nserver: { listen: "${listen}", admin_listen: "${admin}", workers: ${workers} }\nupstream: { url: "http://127.0.0.1:9" }\n`);
      // the limit only ends a hang (the old behaviour); a start on a busy machine takes a few seconds
      const r = await runCli(['serve', '--policy', file], { limitMs: 90_000 });
      assert.equal(r.hung, false, `still running after 90 s (or a worker outlived it): ${r.stderr}`);
      assert.equal(r.code, 1, r.stderr);
      assert.deepEqual(r.stderr.split('\n').filter((l) => l !== ''), [
        `bridge-sidecar: cannot listen on 127.0.0.1:${taken.port} (server.${which}): the address is already in use: stop the process that holds it (\`ss -ltnp\` shows it) or choose another port in the policy`,
      ]);
      // still usable by its owner: the sidecar did not take it over in between
      assert.equal(taken.server.listening, true);
    });
  }
}
