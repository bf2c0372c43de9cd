/**
 * Messages between the primary and the worker processes (node:cluster IPC), behind one small interface so
 * stages can share state across workers without caring whether workers exist:
 *  - request/handle: a worker asks the primary (token leases, metrics, profiles); in single-process mode the
 *    handler is called directly.
 *  - broadcast/on: a message every process receives once (policy swaps, L1 invalidations), the sender included.
 *
 * prom-client's AggregatorRegistry uses the same channel with its own message types; we ignore those.
 */
import cluster, { type Worker } from 'node:cluster';

const TAG = '__bridge_sidecar';

type Msg =
  | { [TAG]: 1; kind: 'req'; id: number; topic: string; payload: unknown }
  | { [TAG]: 1; kind: 'res'; id: number; ok: boolean; payload: unknown }
  | { [TAG]: 1; kind: 'bcast'; topic: string; payload: unknown; origin: number };

export type Handler = (payload: any, fromWorker: number) => unknown;
export type Listener = (payload: any, origin: number) => void;

export interface Coordinator {
  readonly role: 'primary' | 'worker' | 'single';
  /** cluster worker id, or 0 for the primary / single process. */
  readonly id: number;
  request<T = unknown>(topic: string, payload: unknown, timeoutMs?: number): Promise<T>;
  handle(topic: string, fn: Handler): void;
  broadcast(topic: string, payload: unknown): void;
  on(topic: string, fn: Listener): () => void;
  /** Primary only: send a request to one worker and await its answer (profiles, per-worker state). */
  requestWorker?<T = unknown>(workerId: number, topic: string, payload: unknown, timeoutMs?: number): Promise<T>;
  /** Primary only: ids of live workers. */
  workerIds?(): number[];
}

function isMsg(m: unknown): m is Msg {
  return typeof m === 'object' && m !== null && (m as Record<string, unknown>)[TAG] === 1;
}

function errPayload(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

class Base {
  protected handlers = new Map<string, Handler>();
  protected listeners = new Map<string, Set<Listener>>();
  protected pending = new Map<number, { resolve: (v: any) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  protected nextId = 1;

  handle(topic: string, fn: Handler): void {
    this.handlers.set(topic, fn);
  }

  on(topic: string, fn: Listener): () => void {
    let set = this.listeners.get(topic);
    if (!set) this.listeners.set(topic, (set = new Set()));
    set.add(fn);
    return () => set!.delete(fn);
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
      this.pending.set(id, { resolve, reject, timer });
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
export class SingleCoordinator extends Base implements Coordinator {
  readonly role = 'single' as const;
  readonly id = 0;

  async request<T>(topic: string, payload: unknown): Promise<T> {
    const r = await this.runHandler(topic, payload, 0);
    if (!r.ok) throw new Error(String(r.payload));
    return r.payload as T;
  }

  broadcast(topic: string, payload: unknown): void {
    this.deliver(topic, payload, 0);
  }
}

export class PrimaryCoordinator extends Base implements Coordinator {
  readonly role = 'primary' as const;
  readonly id = 0;

  constructor() {
    super();
    cluster.on('message', (worker: Worker, m: unknown) => {
      if (!isMsg(m)) return;
      if (m.kind === 'req') {
        void this.runHandler(m.topic, m.payload, worker.id).then((r) => {
          if (worker.isConnected()) worker.send({ [TAG]: 1, kind: 'res', id: m.id, ok: r.ok, payload: r.payload });
        });
      } else if (m.kind === 'bcast') {
        this.broadcastFrom(m.topic, m.payload, m.origin);
      } else if (m.kind === 'res') {
        this.settle(m);
      }
    });
  }

  async request<T>(topic: string, payload: unknown): Promise<T> {
    const r = await this.runHandler(topic, payload, 0);
    if (!r.ok) throw new Error(String(r.payload));
    return r.payload as T;
  }

  requestWorker<T>(workerId: number, topic: string, payload: unknown, timeoutMs = 5000): Promise<T> {
    const w = cluster.workers?.[workerId];
    if (!w || !w.isConnected()) return Promise.reject(new Error(`worker ${workerId} is not running`));
    const id = this.nextId++;
    const p = this.track<T>(id, topic, timeoutMs);
    w.send({ [TAG]: 1, kind: 'req', id, topic, payload });
    return p;
  }

  workerIds(): number[] {
    return Object.values(cluster.workers ?? {}).flatMap((w) => (w && w.isConnected() ? [w.id] : []));
  }

  broadcast(topic: string, payload: unknown): void {
    this.broadcastFrom(topic, payload, 0);
  }

  private broadcastFrom(topic: string, payload: unknown, origin: number): void {
    this.deliver(topic, payload, origin);
    for (const w of Object.values(cluster.workers ?? {})) {
      if (w && w.isConnected()) w.send({ [TAG]: 1, kind: 'bcast', topic, payload, origin });
    }
  }
}

export class WorkerCoordinator extends Base implements Coordinator {
  readonly role = 'worker' as const;
  readonly id: number;

  constructor() {
    super();
    this.id = cluster.worker?.id ?? 0;
    process.on('message', (m: unknown) => {
      if (!isMsg(m)) return;
      if (m.kind === 'res') this.settle(m);
      else if (m.kind === 'bcast') this.deliver(m.topic, m.payload, m.origin);
      else if (m.kind === 'req') {
        void this.runHandler(m.topic, m.payload, 0).then((r) => {
          if (process.connected) process.send!({ [TAG]: 1, kind: 'res', id: m.id, ok: r.ok, payload: r.payload });
        });
      }
    });
  }

  request<T>(topic: string, payload: unknown, timeoutMs = 5000): Promise<T> {
    if (!process.connected) return Promise.reject(new Error('not connected to the primary'));
    const id = this.nextId++;
    const p = this.track<T>(id, topic, timeoutMs);
    process.send!({ [TAG]: 1, kind: 'req', id, topic, payload });
    return p;
  }

  broadcast(topic: string, payload: unknown): void {
    if (process.connected) process.send!({ [TAG]: 1, kind: 'bcast', topic, payload, origin: this.id });
  }
}
