/**
 * Who accepts the client connections when the sidecar runs workers (node:cluster).
 *
 * Node's default on Linux is round-robin in the primary: the primary accepts each connection and passes it to
 * a worker over the IPC channel (a sendmsg with the descriptor, the worker woken to take it, an acknowledgement
 * back). That spreads connections evenly over several workers. With one worker there is nothing to spread, and
 * the relay is pure cost: three processes' wake-ups per new connection. In the first second after /readyz,
 * when a client opens its connections, the worker's profile had a tenth of its time in that IPC
 * (bench/RESULTS.md, issue 19, session 21).
 *
 * So with one worker, and no auto-tuning strategy that may add workers, the worker accepts on the shared
 * listening socket itself (cluster.SCHED_NONE), as nginx's single worker does. With more workers it stays
 * round-robin: Node documents SCHED_NONE as badly unbalanced between several acceptors. The choice is made
 * once, before the first fork (node fixes it then): a reload that later adds workers keeps it.
 * NODE_CLUSTER_SCHED_POLICY ("rr" or "none"), when set, is the operator's and wins.
 */
import cluster from 'node:cluster';
import type { Policy } from '../../policy/types';

export type AcceptMode = 'workers' | 'primary';

/** Where the policy's workers get their connections from: the shared socket themselves, or the primary. */
export function acceptModeFor(policy: Policy, env: NodeJS.ProcessEnv = process.env): AcceptMode {
  const forced = env.NODE_CLUSTER_SCHED_POLICY;
  if (forced === 'none') return 'workers';
  if (forced === 'rr') return 'primary';
  const mayAddWorkers = policy.auto_tuning?.strategies.some((s) => s.action === 'increase_workers') ?? false;
  return policy.server.workers === 1 && !mayAddWorkers ? 'workers' : 'primary';
}

/** Sets node's cluster scheduling for `policy`; call before the first fork. */
export function applyAcceptMode(policy: Policy, env: NodeJS.ProcessEnv = process.env): AcceptMode {
  const mode = acceptModeFor(policy, env);
  cluster.schedulingPolicy = mode === 'workers' ? cluster.SCHED_NONE : cluster.SCHED_RR;
  return mode;
}
