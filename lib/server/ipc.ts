/**
 * The node:cluster implementation of the Coordinator (lib/core/ipc.ts): one class per role.
 *
 * prom-client's AggregatorRegistry uses the same channel with its own message types; we ignore those.
 */
import cluster, { type Worker } from 'node:cluster';
import type { Handler, Listener, PrimaryChannel, SingleChannel, WorkerChannel } from '../core/ipc';
import type { BroadcastTopic, BroadcastTopics, ReplyOf, RequestOf, RequestTopic } from '../core/topics';
import { NOT_ECHOED } from '../core/topics';

const TAG = '__bridge_sidecar';

type Msg =
  | { [TAG]: 1; kind: 'req'; id: number; topic: string; payload: unknown }
  | { [TAG]: 1; kind: 'res'; id: number; ok: boolean; payload: unknown }
  | { [TAG]: 1; kind: 'bcast'; topic: string; payload: unknown; origin: number }
  | { [TAG]: 1; kind: 'sole'; sole: boolean };

/** What the maps below hold: the typed handlers and listeners, seen from the untyped wire. */
type AnyHandler = (payload: unknown, fromWorker: number) => unknown;
type AnyListener = (payload: unknown, origin: number) => void;

function isMsg(m: unknown): m is Msg {
  return typeof m === 'object' && m !== null && (m as Record<string, unknown>)[TAG] === 1;
}

function errPayload(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

class Base {
  protected handlers = new Map<string, AnyHandler>();
  protected listeners = new Map<string, Set<AnyListener>>();
  protected pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  protected nextId = 1;

  handle<K extends RequestTopic>(topic: K, fn: Handler<K>): void {
    this.handlers.set(topic, fn as AnyHandler);
  }

  on<K extends BroadcastTopic>(topic: K, fn: Listener<K>): () => void {
    let set = this.listeners.get(topic);
    if (!set) this.listeners.set(topic, (set = new Set()));
    const listener = fn as AnyListener;
    set.add(listener);
    return () => set.delete(listener);
  }

  /** A request answered by this process's own handler (the single process, or the primary asking itself). */
  protected async requestHere<K extends RequestTopic>(topic: K, payload: RequestOf<K>): Promise<ReplyOf<K>> {
    const r = await this.runHandler(topic, payload, 0);
    if (!r.ok) throw new Error(String(r.payload));
    return r.payload as ReplyOf<K>;
  }

  protected deliver(topic: string, payload: unknown, origin: number): void {
    const set = this.listeners.get(topic);
    if (!set) return;
    for (const fn of set) {
      try {
        fn(payload, origin);
      } catch {
        /* a listener's failure must not stop the others */
      }
    }
  }

  protected async runHandler(topic: string, payload: unknown, from: number): Promise<{ ok: boolean; payload: unknown }> {
    const h = this.handlers.get(topic);
    if (!h) return { ok: false, payload: `no handler for ${topic}` };
    try {
      return { ok: true, payload: await h(payload, from) };
    } catch (e) {
      return { ok: false, payload: errPayload(e) };
    }
  }

  protected track<T>(id: number, topic: string, timeoutMs: number): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`ipc ${topic}: no answer in ${timeoutMs} ms`));
      }, timeoutMs);
      timer.unref();
      // what comes back over the wire is the handler's answer for this topic (see lib/core/topics.ts)
      this.pending.set(id, { resolve: (v) => resolve(v as T), reject, timer });
    });
  }

  protected settle(m: { id: number; ok: boolean; payload: unknown }): void {
    const p = this.pending.get(m.id);
    if (!p) return;
    this.pending.delete(m.id);
    clearTimeout(p.timer);
    if (m.ok) p.resolve(m.payload);
    else p.reject(new Error(String(m.payload)));
  }
}

/** One process does everything: requests call the handler, broadcasts reach local listeners. */
export class SingleCoordinator extends Base implements SingleChannel {
  readonly role = 'single' as const;
  readonly id = 0;

  request<K extends RequestTopic>(topic: K, payload: RequestOf<K>): Promise<ReplyOf<K>> {
    return this.requestHere(topic, payload);
  }

  broadcast<K extends BroadcastTopic>(topic: K, payload: BroadcastTopics[K]): void {
    this.deliver(topic, payload, 0);
  }
}

/** A send to a worker that exited meanwhile (EPIPE, channel closed): nothing to do, its exit is handled elsewhere. */
function ignoreGone(_err: Error | null): void {}

export class PrimaryCoordinator extends Base implements PrimaryChannel {
  readonly role = 'primary' as const;
  readonly id = 0;
  /** The worker told it is the pod's only one, if any. */
  private soleId: number | null = null;
  private readonly listened = new Set<number>();
  private readonly soleListeners = new Set<(workerId: number, sole: boolean) => void>();

  constructor() {
    super();
    // 'fork' comes on the tick after cluster.fork(), long before the new process runs any code: the sole worker
    // hears that it is no longer alone before the new one can serve (or cache) anything
    cluster.on('fork', () => this.updateSole());
    cluster.on('listening', (w: Worker) => {
      this.listened.add(w.id);
      this.updateSole();
    });
    cluster.on('disconnect', () => this.updateSole());
    cluster.on('exit', (w: Worker) => {
      this.listened.delete(w.id);
      this.updateSole();
    });
    cluster.on('message', (worker: Worker, m: unknown) => {
      if (!isMsg(m)) return;
      if (m.kind === 'req') {
        void this.runHandler(m.topic, m.payload, worker.id).then((r) => {
          if (worker.isConnected()) worker.send({ [TAG]: 1, kind: 'res', id: m.id, ok: r.ok, payload: r.payload }, undefined, ignoreGone);
        });
      } else if (m.kind === 'bcast') {
        this.broadcastFrom(m.topic, m.payload, m.origin);
      } else if (m.kind === 'res') {
        this.settle(m);
      }
    });
  }

  request<K extends RequestTopic>(topic: K, payload: RequestOf<K>): Promise<ReplyOf<K>> {
    return this.requestHere(topic, payload);
  }

  requestWorker<K extends RequestTopic>(workerId: number, topic: K, payload: RequestOf<K>, timeoutMs = 5000): Promise<ReplyOf<K>> {
    const w = cluster.workers?.[workerId];
    if (!w || !w.isConnected()) return Promise.reject(new Error(`worker ${workerId} is not running`));
    const id = this.nextId++;
    const p = this.track<ReplyOf<K>>(id, topic, timeoutMs);
    // a worker that is exiting can close its channel between isConnected() and the write: the request then fails
    // like any unanswered one, instead of an unhandled EPIPE 'error' event taking the primary down
    w.send({ [TAG]: 1, kind: 'req', id, topic, payload }, undefined, (err: Error | null) => { if (err) this.settle({ id, ok: false, payload: err.message }); });
    return p;
  }

  workerIds(): number[] {
    return Object.values(cluster.workers ?? {}).flatMap((w) => (w && w.isConnected() ? [w.id] : []));
  }

  onSole(fn: (workerId: number, sole: boolean) => void): () => void {
    this.soleListeners.add(fn);
    return () => this.soleListeners.delete(fn);
  }

  /**
   * One live worker that listens: it is told it is alone. Anything else (a second one forked, or starting, or
   * draining; none): the one told before is told it no longer is.
   */
  private updateSole(): void {
    const live = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined && !w.isDead() && w.isConnected());
    const only = live.length === 1 && this.listened.has(live[0]!.id) ? live[0]! : null;
    const next = only === null ? null : only.id;
    const prev = this.soleId;
    if (next === prev) return;
    this.soleId = next;
    if (prev !== null) {
      const w = cluster.workers?.[prev];
      if (w && w.isConnected()) w.send({ [TAG]: 1, kind: 'sole', sole: false }, undefined, ignoreGone);
      for (const fn of this.soleListeners) fn(prev, false);
    }
    if (only !== null) {
      only.send({ [TAG]: 1, kind: 'sole', sole: true }, undefined, ignoreGone);
      for (const fn of this.soleListeners) fn(only.id, true);
    }
  }

  broadcast<K extends BroadcastTopic>(topic: K, payload: BroadcastTopics[K]): void {
    this.broadcastFrom(topic, payload, 0);
  }

  private broadcastFrom(topic: string, payload: unknown, origin: number): void {
    this.deliver(topic, payload, origin);
    const skip = NOT_ECHOED.has(topic) ? origin : -1;
    for (const w of Object.values(cluster.workers ?? {})) {
      if (w && w.id !== skip && w.isConnected()) w.send({ [TAG]: 1, kind: 'bcast', topic, payload, origin }, undefined, ignoreGone);
    }
  }
}

export class WorkerCoordinator extends Base implements WorkerChannel {
  readonly role = 'worker' as const;
  readonly id: number;
  sole = false;
  private readonly soleListeners = new Set<(sole: boolean) => void>();

  constructor() {
    super();
    this.id = cluster.worker?.id ?? 0;
    process.on('message', (m: unknown) => {
      if (!isMsg(m)) return;
      if (m.kind === 'res') this.settle(m);
      else if (m.kind === 'sole') {
        if (m.sole === this.sole) return;
        this.sole = m.sole;
        for (const fn of this.soleListeners) {
          try {
            fn(m.sole);
          } catch {
            /* one listener's failure must not keep the others in the old mode */
          }
        }
      }
      else if (m.kind === 'bcast') this.deliver(m.topic, m.payload, m.origin);
      else if (m.kind === 'req') {
        void this.runHandler(m.topic, m.payload, 0).then((r) => {
          if (process.connected) process.send!({ [TAG]: 1, kind: 'res', id: m.id, ok: r.ok, payload: r.payload });
        });
      }
    });
  }

  request<K extends RequestTopic>(topic: K, payload: RequestOf<K>, timeoutMs = 5000): Promise<ReplyOf<K>> {
    if (!process.connected) return Promise.reject(new Error('not connected to the primary'));
    const id = this.nextId++;
    const p = this.track<ReplyOf<K>>(id, topic, timeoutMs);
    process.send!({ [TAG]: 1, kind: 'req', id, topic, payload });
    return p;
  }

  onSole(fn: (sole: boolean) => void): () => void {
    this.soleListeners.add(fn);
    return () => this.soleListeners.delete(fn);
  }

  broadcast<K extends BroadcastTopic>(topic: K, payload: BroadcastTopics[K]): void {
    if (process.connected) process.send!({ [TAG]: 1, kind: 'bcast', topic, payload, origin: this.id });
  }
}
