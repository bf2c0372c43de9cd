/**
 * GET /readyz: ready when not draining, every worker listens, the upstream accepts a TCP connection, no start-up
 * work (cache warm-up) is pending and no worker refuses connections for memory; else 503 with the reasons.
 */
import { connect } from 'node:net';
import type { OverloadReport } from '../../perf/overload-protocol';
import type { AdminReply } from '../admin';
import type { PodState } from './state';

/** The answer to /readyz; `want` is how many proxies must listen (1 in the single process). */
export async function readiness(state: PodState, want: number): Promise<AdminReply> {
  const reasons: string[] = [];
  if (state.draining) reasons.push('draining');
  if (state.listening.size < want) reasons.push(`workers listening ${state.listening.size}/${want}`);
  if (!(await upstreamReachable(state))) reasons.push('upstream unreachable');
  for (const s of state.startupPending) reasons.push(`waiting for ${s}`);
  const overload = overloadDetail(state);
  if (overload?.state === 'refuse_connections') reasons.push('memory overload: refusing new connections');
  return reasons.length === 0
    ? { status: 200, body: { status: 'ready', version: state.loaded.version, ...(overload ? { overload } : {}) } }
    : { status: 503, body: { status: 'not ready', reasons, ...(overload ? { overload } : {}) } };
}

/** /readyz detail while the policy has a `memory` section: the worst step any worker is in, and each one's. */
function overloadDetail(state: PodState): { state: OverloadReport['state']; workers: Record<string, OverloadReport> } | null {
  if (state.loaded.policy.memory === null) return null;
  const order: Array<OverloadReport['state']> = ['normal', 'shrink_cache', 'refuse_connections'];
  let worst: OverloadReport['state'] = 'normal';
  const workers: Record<string, OverloadReport> = {};
  for (const [id, r] of state.overload) {
    workers[String(id)] = { state: r.state, memoryRatio: Math.round(r.memoryRatio * 1000) / 1000 };
    if (order.indexOf(r.state) > order.indexOf(worst)) worst = r.state;
  }
  return { state: worst, workers };
}

/** A TCP connect to the upstream, at most once a second (probes come often; the answer is kept between). */
async function upstreamReachable(state: PodState): Promise<boolean> {
  const now = Date.now();
  if (now - state.upstreamCheckedAt < 1000) return state.upstreamOk;
  const u = state.loaded.policy.upstream;
  state.upstreamOk = await new Promise<boolean>((resolve) => {
    const s = connect({ host: u.host, port: u.port });
    const t = setTimeout(() => { s.destroy(); resolve(false); }, Math.min(1000, u.pool.connect_timeout));
    s.once('connect', () => { clearTimeout(t); s.end(); resolve(true); });
    s.once('error', () => { clearTimeout(t); resolve(false); });
  });
  state.upstreamCheckedAt = now;
  return state.upstreamOk;
}
