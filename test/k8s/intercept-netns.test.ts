/**
 * Transparent interception end to end, as root, in network namespaces this test creates: a "pod" (the example
 * draft service on :9101, the sidecar on :15006 running as its own uid, admin on :9901) and a "client",
 * joined by a veth pair on 10.213.0.0/30 (addresses that exist only inside these namespaces).
 *
 * `bridge-sidecar intercept` is applied inside the pod namespace; the client's requests to the pod's address
 * on :9101 then go through the sidecar. The sidecar's upstream is the pod's own address (not 127.0.0.1), so
 * its connections to the service would be redirected back to itself without the --proxy-uid exclusion: the
 * request succeeding shows they are not looped.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { buildRoot } from '../helpers/repo';
import { waitFor } from '../helpers/ports';
import { assertReadableBy, httpFrom, PodAndClient, readableRepo, type Started } from './netns';
import { repoRoot } from '../helpers/repo';

const PROXY_UID = 1337;
const OTHER_UID = 65534;
// set in before(): paths under a root every test uid can read (see readableRepo)
let cli = join(buildRoot(), 'cmd', 'bridge-sidecar.js');
let draftService = join(buildRoot(), 'examples', 'draft-service', 'main.js');
let releaseRepo = (): void => {};

/** Runs `bridge-sidecar intercept` in the pod namespace, optionally as another uid or with another PATH. */
function intercept(net: PodAndClient, args: string[], opts: { uid?: number; path?: string } = {}) {
  const asUser = opts.uid === undefined ? [] : ['setpriv', `--reuid=${opts.uid}`, `--regid=${opts.uid}`, '--clear-groups', '--'];
  const withPath = opts.path === undefined ? [] : ['/usr/bin/env', `PATH=${opts.path}`];
  return net.exec(net.pod, [...asUser, ...withPath, process.execPath, cli, 'intercept', ...args], { allowFail: true });
}

function ownLines(table: string): string[] {
  return table.split('\n').filter((l) => l.includes('BRIDGE_'));
}

function requestsCounted(metrics: string): number {
  let sum = 0;
  for (const line of metrics.split('\n')) {
    if (line.startsWith('bridge_sidecar_http_requests_total')) sum += Number(line.split(' ').pop());
  }
  return sum;
}

describe('bridge-sidecar intercept in a network namespace (root)', { timeout: 300_000 }, () => {
  const net = new PodAndClient();
  let tmp = '';

  before(() => {
    assert.equal(process.getuid?.(), 0, 'this test creates network namespaces and iptables rules: run it as root (CI does)');
    const repo = readableRepo(repoRoot(), [PROXY_UID, OTHER_UID], join(relative(repoRoot(), buildRoot()), 'cmd', 'bridge-sidecar.js'));
    releaseRepo = repo.release;
    const build = join(repo.root, relative(repoRoot(), buildRoot()));
    cli = join(build, 'cmd', 'bridge-sidecar.js');
    draftService = join(build, 'examples', 'draft-service', 'main.js');
    for (const uid of [PROXY_UID, OTHER_UID]) assertReadableBy(uid, [cli, join(repo.root, 'node_modules', 'pino', 'package.json')]);
    tmp = mkdtempSync(join(tmpdir(), 'bridge-k8s-netns-'));
    chmodSync(tmp, 0o755);
    net.create();
  });
  after(async () => {
    await net.destroy();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
    releaseRepo();
  });

  test('rules: one set however often it runs, foreign rules untouched, --uninstall restores the table exactly', () => {
    // Someone else's rules (a CNI's, say) that must survive both install and uninstall.
    net.exec(net.pod, ['iptables', '-t', 'nat', '-N', 'OTHER_CHAIN']);
    net.exec(net.pod, ['iptables', '-t', 'nat', '-A', 'PREROUTING', '-p', 'udp', '-j', 'OTHER_CHAIN']);
    net.exec(net.pod, ['iptables', '-t', 'nat', '-A', 'OTHER_CHAIN', '-p', 'udp', '--dport', '53', '-j', 'RETURN']);
    const pristine = net.natTable(net.pod);

    const args = ['--ports', '9101', '--to-port', '15006', '--proxy-uid', String(PROXY_UID), '--exclude-ports', '9901'];
    const first = intercept(net, args);
    assert.equal(first.status, 0, first.stderr);
    const once = net.natTable(net.pod);
    assert.equal(ownLines(once).filter((l) => l.startsWith('-A PREROUTING')).length, 1, once);
    assert.equal(ownLines(once).filter((l) => l.startsWith('-A OUTPUT')).length, 1, once);
    assert.ok(once.includes(`-A BRIDGE_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006`), once);
    assert.ok(once.includes(`-A BRIDGE_OUTPUT -m owner --uid-owner ${PROXY_UID} -j RETURN`), once);

    for (let i = 0; i < 2; i++) assert.equal(intercept(net, args).status, 0);
    assert.equal(net.natTable(net.pod), once, 'running intercept again leaves exactly one set of rules');

    // A changed --to-port replaces the rules rather than adding a second set.
    assert.equal(intercept(net, [...args.slice(0, 2), '--to-port', '15007', ...args.slice(4)]).status, 0);
    const changed = net.natTable(net.pod);
    assert.ok(changed.includes('--to-ports 15007') && !changed.includes('--to-ports 15006'), changed);
    assert.equal(ownLines(changed).length, ownLines(once).length);

    const dry = intercept(net, ['--uninstall', '--dry-run']);
    assert.equal(dry.status, 0);
    assert.match(dry.stdout, /^-D PREROUTING -p tcp -j BRIDGE_INBOUND$/m);
    assert.equal(net.natTable(net.pod), changed, '--dry-run changes nothing');

    const un = intercept(net, ['--uninstall']);
    assert.equal(un.status, 0, un.stderr);
    assert.equal(net.natTable(net.pod), pristine, '--uninstall removes exactly what was added');
    const again = intercept(net, ['--uninstall']);
    assert.equal(again.status, 0, 'uninstalling twice is fine');
    assert.match(again.stdout, /nothing to remove/);
    assert.equal(net.natTable(net.pod), pristine);

    net.exec(net.pod, ['iptables', '-t', 'nat', '-D', 'PREROUTING', '-p', 'udp', '-j', 'OTHER_CHAIN']);
    net.exec(net.pod, ['iptables', '-t', 'nat', '-F', 'OTHER_CHAIN']);
    net.exec(net.pod, ['iptables', '-t', 'nat', '-X', 'OTHER_CHAIN']);
  });

  test('clear one-line errors without the capability or without iptables', () => {
    const before = net.natTable(net.pod);
    const denied = intercept(net, ['--ports', '9101'], { uid: OTHER_UID });
    assert.equal(denied.status, 1, denied.stdout + denied.stderr);
    assert.equal(denied.stderr.trim().split('\n').length, 1, denied.stderr);
    assert.match(denied.stderr, /permission denied.*NET_ADMIN/);

    const missing = intercept(net, ['--ports', '9101'], { path: tmp });
    assert.equal(missing.status, 1, missing.stdout + missing.stderr);
    assert.equal(missing.stderr.trim().split('\n').length, 1, missing.stderr);
    assert.match(missing.stderr, /iptables-save not found: install iptables/);
    assert.equal(net.natTable(net.pod), before, 'a failed run changes nothing');
  });

  describe('traffic', () => {
    let service: Started;
    let sidecar: Started;
    const podUrl = (port: number, path = '/get_mask_types'): string => `http://${net.podAddress}:${port}${path}`;

    before(async () => {
      service = net.start(net.pod, [process.execPath, draftService, '--host', '0.0.0.0', '--port', '9101']);
      await net.waitForLog(service, 'listening', 'the draft service to listen');
      const policy = join(tmp, 'policy.yaml');
      writeFileSync(policy, [
        'version: 1',
        'server: { listen: "0.0.0.0:15006", admin_listen: "0.0.0.0:9901", workers: 0 }',
        `upstream: { url: "http://${net.podAddress}:9101" }`,
        '',
      ].join('\n'));
      chmodSync(policy, 0o644);
      sidecar = net.start(net.pod, [process.execPath, cli, 'serve', '--policy', policy], PROXY_UID);
      await net.waitForLog(sidecar, 'listening', 'the sidecar to listen');
    });
    after(async () => {
      intercept(net, ['--uninstall']);
      await Promise.all([sidecar?.stop(), service?.stop()]);
    });

    const metrics = (): number => requestsCounted(httpFrom(net, net.pod, 'http://127.0.0.1:9901/metrics').body);

    test('before interception the client reaches the service directly', () => {
      const r = httpFrom(net, net.client, podUrl(9101));
      assert.equal(r.status, 200);
      assert.equal(r.headers.via, undefined);
    });

    test('with interception, client traffic to :9101 goes through the sidecar; its own upstream connections are not looped', async () => {
      const installed = intercept(net, ['--ports', '9101', '--to-port', '15006', '--proxy-uid', String(PROXY_UID), '--exclude-ports', '9901']);
      assert.equal(installed.status, 0, installed.stderr);
      const counted0 = metrics();

      const N = 5;
      for (let i = 0; i < N; i++) {
        const r = httpFrom(net, net.client, podUrl(9101));
        assert.equal(r.status, 200, `through the sidecar to the service (pod address as upstream, not looped): ${r.body}`);
        assert.equal(r.headers.via, '1.1 bridge-sidecar');
      }
      // A POST with a JSON body goes through too (the service answers from its own data).
      const created = httpFrom(net, net.client, podUrl(9101, '/create_draft'), { method: 'POST', body: JSON.stringify({ width: 1080, height: 1920 }) });
      assert.equal(created.status, 200, created.body);
      assert.equal(created.headers.via, '1.1 bridge-sidecar');
      await waitFor('the sidecar metrics to count the intercepted requests', () => metrics() >= counted0 + N + 1, 15_000, 200);

      // Inside the pod: loopback is never intercepted; the pod's own address is (it is inbound traffic).
      assert.equal(httpFrom(net, net.pod, 'http://127.0.0.1:9101/get_mask_types').headers.via, undefined);
      assert.equal(httpFrom(net, net.pod, podUrl(9101), { uid: OTHER_UID }).headers.via, '1.1 bridge-sidecar');
      // ...except for the sidecar's own uid.
      assert.equal(httpFrom(net, net.pod, podUrl(9101), { uid: PROXY_UID }).headers.via, undefined);
      // The admin port is not redirected.
      const health = httpFrom(net, net.client, podUrl(9901, '/healthz'));
      assert.equal(health.status, 200);
      assert.equal(health.headers.via, undefined);
    });

    test('intercept twice leaves one set of rules while traffic flows; --uninstall restores direct traffic', () => {
      const args = ['--ports', '9101', '--to-port', '15006', '--proxy-uid', String(PROXY_UID), '--exclude-ports', '9901'];
      assert.equal(intercept(net, args).status, 0);
      const once = net.natTable(net.pod);
      assert.equal(intercept(net, args).status, 0);
      assert.equal(net.natTable(net.pod), once);
      assert.equal(ownLines(once).filter((l) => /^-A (PREROUTING|OUTPUT) /.test(l)).length, 2, once);
      assert.equal(httpFrom(net, net.client, podUrl(9101)).headers.via, '1.1 bridge-sidecar');

      const un = intercept(net, ['--uninstall']);
      assert.equal(un.status, 0, un.stderr);
      assert.deepEqual(ownLines(net.natTable(net.pod)), []);
      const direct = httpFrom(net, net.client, podUrl(9101));
      assert.equal(direct.status, 200);
      assert.equal(direct.headers.via, undefined, 'after --uninstall the client reaches the service directly');
    });
  });
});
