/**
 * Every message that crosses between the primary and the workers, by topic: what is sent and what comes back.
 * The Coordinator (./ipc.ts) is typed by these maps, so a topic name with a typo, or a payload of the wrong
 * shape, is a compile error rather than a silent "no handler" at run time.
 *
 * Payload types live with the feature that owns them, in a file that imports nothing back from here.
 */
import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import type { LoadedPolicy } from '../policy/types';
import type { GiveItem, LimitSnapshot, TakeItem, TakeResult } from '../stages/ratelimit/protocol';
import type { ApplyRequest, ApplyResult, RaiseResult } from '../cache/invalidation/protocol';
import type { RunRequest, RunResult } from '../cache/warmup/protocol';
import type { WorkerTuning } from '../tuning/protocol';
import type { ProfileOrder, ProfileResult } from '../observe/profile-protocol';
import type { OverloadReport } from '../perf/overload-protocol';

/** What a worker tells the primary after it applied (or refused) a policy. */
export interface WorkerPolicyReport {
  version: string;
  error?: string;
}

export interface ListenAddress {
  host: string;
  port: number;
}

/** One answer per request: `req` goes to the handler, `res` comes back. */
export interface RequestTopics {
  /** worker -> primary: the policy in force, asked once at start. */
  'policy:get': { req: null; res: LoadedPolicy };
  'policy:applied': { req: WorkerPolicyReport; res: boolean };
  'worker:listening': { req: ListenAddress; res: boolean };
  /** worker -> primary: it cannot bind the proxy port (the one-line reason); the primary stops start-up. */
  'worker:listen-failed': { req: string; res: boolean };
  /** primary -> worker: its registry, for /metrics and auto-tuning. */
  'metrics:get': { req: null; res: Array<MetricObjectWithValues<MetricValue<string>>> };
  'admin:purge': { req: { pattern: string }; res: { purged: number } };
  'admin:invalidate': { req: { event?: unknown; params?: unknown }; res: RaiseResult };
  'profile:take': { req: ProfileOrder; res: ProfileResult };
  'ratelimit.take': { req: TakeItem[]; res: TakeResult[] };
  'ratelimit.give': { req: GiveItem[]; res: null };
  /** the pod's only worker takes the pod's counters: every limit that is not full */
  'ratelimit.adopt': { req: null; res: LimitSnapshot[] };
  /** that worker's changed limits (at most every CHECKPOINT_MS), or all of them when it hands them back */
  'ratelimit.checkpoint': { req: LimitSnapshot[]; res: null };
  'ratelimit.handback': { req: LimitSnapshot[]; res: null };
  /** primary -> that worker: its changes now (explain reads the pod's state) */
  'ratelimit.sync': { req: null; res: LimitSnapshot[] };
  /** worker -> primary: apply these patterns in every worker of the pod. */
  'invalidate:fanout': { req: ApplyRequest; res: ApplyResult };
  /** primary -> worker: apply these patterns to this worker's L1 and L3. */
  'invalidate:apply': { req: ApplyRequest; res: ApplyResult };
  'warmup:counts': { req: { pattern: string; top: number }; res: Array<[string, number]> };
  'warmup:run': { req: RunRequest; res: RunResult };
  'warmup:promote': { req: { keys: string[] }; res: boolean };
  'autotune:get': { req: null; res: WorkerTuning | null };
  'autotune:retire': { req: null; res: boolean };
  /** worker -> primary: it entered an overload step (memory pressure), for /readyz. */
  'overload:state': { req: OverloadReport; res: boolean };
}

/** Sent to every process (the sender included, except NOT_ECHOED), no answer. */
export interface BroadcastTopics {
  'policy:apply': LoadedPolicy;
  shutdown: null;
  /** A glob of cache keys every worker drops from its own L1/L3. */
  'bridge-sidecar:cache-purge': string;
  /**
   * An entry one worker stored in its L1: every other worker of the pod holds it too (one cache per pod); not
   * sent back to its sender (NOT_ECHOED). `startedAt`: when its upstream request (or lower-tier read) started,
   * as the sender's Date.now() (epoch ms; the same clock on one node), so its age counts the time spent in the
   * primary too.
   */
  'cache:replicate': { from: number | null; key: string; entry: string; ttl: number; startedAt: number };
  'autotune:apply': WorkerTuning;
}

export type RequestTopic = keyof RequestTopics;
export type BroadcastTopic = keyof BroadcastTopics;
export type RequestOf<K extends RequestTopic> = RequestTopics[K]['req'];
export type ReplyOf<K extends RequestTopic> = RequestTopics[K]['res'];

/**
 * Broadcasts the primary does not send back to the worker that sent them: the sender already holds what they
 * carry (its own L1 store, the whole body), and decoding its own copy would be work for nothing.
 */
export const NOT_ECHOED: ReadonlySet<string> = new Set<BroadcastTopic>(['cache:replicate']);
