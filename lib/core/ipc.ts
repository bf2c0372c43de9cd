/**
 * The channel between the primary and the worker processes, as stages and services see it (the node:cluster
 * implementation is lib/server/ipc.ts):
 *  - request/handle: one process asks, the handler answers (token leases, metrics, profiles); in a single
 *    process the handler is called directly;
 *  - broadcast/on: a message every process receives once (policy swaps, L1 purges), the sender included
 *    (except the topics in NOT_ECHOED, whose sender already holds what they carry).
 *
 * `Coordinator` is a union on `role`: only the primary can address one worker, so code that must do so checks
 * `role === 'primary'` and the compiler lets it call requestWorker/workerIds — no downcasts.
 */
import type { BroadcastTopic, BroadcastTopics, ReplyOf, RequestOf, RequestTopic } from './topics';

export type Handler<K extends RequestTopic> = (payload: RequestOf<K>, fromWorker: number) => ReplyOf<K> | Promise<ReplyOf<K>>;
export type Listener<K extends BroadcastTopic> = (payload: BroadcastTopics[K], origin: number) => void;

interface Channel {
  /** cluster worker id, or 0 for the primary / single process. */
  readonly id: number;
  request<K extends RequestTopic>(topic: K, payload: RequestOf<K>, timeoutMs?: number): Promise<ReplyOf<K>>;
  handle<K extends RequestTopic>(topic: K, fn: Handler<K>): void;
  broadcast<K extends BroadcastTopic>(topic: K, payload: BroadcastTopics[K]): void;
  on<K extends BroadcastTopic>(topic: K, fn: Listener<K>): () => void;
}

/** The one process of a pod with server.workers: 0: requests reach its own handlers. */
export interface SingleChannel extends Channel {
  readonly role: 'single';
}

export interface WorkerChannel extends Channel {
  readonly role: 'worker';
  /**
   * This worker is the pod's only one (the primary says so once it listens alone, and takes it back before
   * another worker runs any code): pod-wide state and fan-outs may then stay in this process. Absent or false:
   * go through the primary.
   */
  readonly sole?: boolean;
  /** Called when `sole` changes. */
  onSole?(fn: (sole: boolean) => void): () => void;
}

export interface PrimaryChannel extends Channel {
  readonly role: 'primary';
  /** Send a request to one worker and await its answer (profiles, per-worker state). */
  requestWorker<K extends RequestTopic>(workerId: number, topic: K, payload: RequestOf<K>, timeoutMs?: number): Promise<ReplyOf<K>>;
  /** Ids of live workers. */
  workerIds(): number[];
  /** Called when a worker becomes the pod's only one (true), and when that ends (false; also when it exits). */
  onSole?(fn: (workerId: number, sole: boolean) => void): () => void;
}

export type Coordinator = SingleChannel | WorkerChannel | PrimaryChannel;
