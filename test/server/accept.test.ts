/**
 * Who accepts client connections (lib/server/primary/accept.ts): with one worker, the worker itself on the shared
 * listening socket, so a new connection costs no relay through the primary; with several workers, or when the
 * operator says so (NODE_CLUSTER_SCHED_POLICY=rr), the primary hands them out in turn. What an operator sees:
 * which processes hold the proxy's listening socket (as `ss -ltnp` shows), and that answers still come.
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { startDraftService, type DraftService } from '../../examples/draft-service';
import { startSidecar, basicPolicy } from '../helpers/sidecar';
import { acceptModeFor } from '../../lib/server/primary/accept';
import { formatErrors, parsePolicy } from '../../lib/policy/load';

/** The pids (of `pids`) that hold the 127.0.0.1:`port` listening socket, from /proc. */
function listeners(port: number, pids: number[]): number[] {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  const inodes = new Set<string>();
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[1] === `0100007F:${hex}` && f[3] === '0A') inodes.add(f[9]!);
  }
  assert.ok(inodes.size > 0, `no listening socket on ${port}`);
  return pids.filter((pid) => readdirSync(`/proc/${pid}/fd`).some((fd) => {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      return m !== null && inodes.has(m[1]!);
    } catch {
      return false; // closed meanwhile
    }
  }));
}

function children(pid: number): number[] {
  return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(' ').filter(Boolean).map(Number);
}

let upstream: DraftService;
before(async () => {
  upstream = await startDraftService({ port: 0, host: '127.0.0.1' });
});
after(async () => {
  await upstream.close();
});

const CASES: { name: string; workers: number; env: Record<string, string>; workerListens: boolean }[] = [
  { name: 'one worker: the worker accepts its connections itself', workers: 1, env: {}, workerListens: true },
  { name: 'two workers: the primary hands connections out in turn', workers: 2, env: {}, workerListens: false },
  { name: 'one worker with NODE_CLUSTER_SCHED_POLICY=rr: the operator\'s choice wins', workers: 1, env: { NODE_CLUSTER_SCHED_POLICY: 'rr' }, workerListens: false },
];
for (const c of CASES) {
  test(`accept: ${c.name}`, async (t) => {
    const sc = await startSidecar(basicPolicy(upstream.port, '', { workers: c.workers }), { env: c.env });
    t.after(() => sc.stop());
    const primary = sc.proc.pid!;
    const workers = children(primary);
    assert.equal(workers.length, c.workers);
    const held = listeners(sc.port, [primary, ...workers]);
    assert.ok(held.includes(primary), 'the primary keeps the listening socket');
    for (const w of workers) assert.equal(held.includes(w), c.workerListens, `worker ${w} holds the listening socket: ${held.includes(w)}`);
    for (let i = 0; i < 5; i++) {
      const r = await fetch(`${sc.url}/get_mask_types`, { headers: { connection: 'close' } });
      assert.equal(r.status, 200);
      await r.arrayBuffer();
    }
  });
}

test('acceptModeFor: workers accept only with one worker and nothing that may add workers', () => {
  const policy = (workers: number, tuning = '') => {
    const r = parsePolicy(`version: 1
server: { listen: "127.0.0.1:0", admin_listen: "127.0.0.1:0", workers: ${workers} }
upstream: { url: "http://127.0.0.1:9" }
${tuning}`, 'p.yaml');
    if (!r.ok) assert.fail(formatErrors(r.errors));
    return r.loaded.policy;
  };
  assert.equal(acceptModeFor(policy(1), {}), 'workers');
  assert.equal(acceptModeFor(policy(2), {}), 'primary');
  const scaling = `auto_tuning:
  enabled: true
  strategies:
    - { name: more, trigger: "queue_length > 500", action: increase_workers, params: { increment: 1, max_workers: 4 } }
`;
  assert.equal(acceptModeFor(policy(1, scaling), {}), 'primary');
  assert.equal(acceptModeFor(policy(2), { NODE_CLUSTER_SCHED_POLICY: 'none' }), 'workers');
  assert.equal(acceptModeFor(policy(1), { NODE_CLUSTER_SCHED_POLICY: 'rr' }), 'primary');
});
