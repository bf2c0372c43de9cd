/**
 * `--uninstall` appended to the command that installed the rules removes them (the contract's form,
 * `intercept --ports 9101 --to-port 15006 --uninstall`). It used to be refused with "--ports has no meaning
 * with --uninstall" and left the rules in place. Run as root in a network namespace of its own (`unshare -n`),
 * so the machine's own tables are never touched.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { CLI } from '../helpers/sidecar';

test('intercept --ports 9101 --to-port 15006 --uninstall removes the rules the same flags installed (root, own netns)', (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root for a network namespace and iptables (CI runs as root)');
  const cli = `${JSON.stringify(process.execPath)} ${JSON.stringify(CLI())} intercept --ports 9101 --to-port 15006`;
  const script = [
    `${cli}`,
    'echo "installed=$(iptables-save -t nat | grep -c BRIDGE_)"',
    `${cli} --uninstall`,
    'echo "uninstall_exit=$?"',
    'echo "left=$(iptables-save -t nat | grep -c BRIDGE_)"',
  ].join('\n');
  const r = spawnSync('unshare', ['-n', 'sh', '-c', script], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  const got = Object.fromEntries([...r.stdout.matchAll(/^(\w+)=(\d+)$/gm)].map((m) => [m[1], Number(m[2])]));
  assert.ok(got.installed! > 0, r.stdout);
  assert.equal(got.uninstall_exit, 0, r.stderr);
  assert.equal(got.left, 0, 'every BRIDGE_ rule and chain is gone');
  assert.match(r.stdout, /^bridge-sidecar intercept: removed$/m);
  assert.match(r.stderr, /^bridge-sidecar intercept: --uninstall removes every rule this command added; ignoring --ports, --to-port$/m);
});
