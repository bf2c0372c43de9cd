/**
 * The load generator of one thread: a fixed set of keep-alive connections (one undici Client each, no
 * pipelining) driven either open-loop or closed-loop.
 *
 * Open loop (wrk2's model, the one that corrects coordinated omission): request k of this engine is due at
 * `start + phase + k / rate`. A free connection sends the next due request; if none is free the due requests
 * wait (as a counter, not as objects: memory stays flat however far behind the target falls) and are sent
 * as soon as connections free up. Latency is measured from the DUE time, so a stalled server is charged for
 * all the requests that should have gone out during the stall, not only the few that were in flight.
 * The "uncorrected" histogram (from the actual send time) is kept too, to show the difference.
 *
 * Closed loop (wrk's baseline): every connection sends its next request as soon as the previous answer is
 * in; latency from the send time.
 *
 * Figures leave the engine as Ticks (deltas since the last tick, histograms encoded) so the same code runs
 * in the main thread or in a worker and the caller only ever adds ticks up.
 */
import { Client, type Dispatcher } from 'undici';
import { performance } from 'node:perf_hooks';
import { encodeHistogram, newHistogram, recordMs, type Histogram } from './histogram';
import { RequestFactory, type MixEntry } from './mix';

export interface EngineSpec {
  /** scheme://host:port of the target */
  origin: string;
  /** prefix for the mix paths (the target URL's path), '' when the mix already holds full paths */
  basePath: string;
  mix: MixEntry[];
  mode: 'open' | 'closed';
  /** open loop: requests per second for this engine */
  rate: number;
  connections: number;
  durationMs: number;
  /** wall-clock start, epoch ms (threads share it) */
  startAt: number;
  /** offset of this engine's schedule within one interval, so several threads interleave */
  phaseMs: number;
  timeoutMs: number;
  tickMs: number;
  /** {seq} values: seqStart, seqStart + seqStride, ... (unique across threads) */
  seqStart: number;
  seqStride: number;
}

/** What happened since the previous tick. */
export interface Tick {
  sent: number;
  /** responses and transport errors */
  completed: number;
  /** completions before the end of the window (the achieved rate counts these) */
  inWindow: number;
  /** status >= 400, timeouts and connection errors */
  errors: number;
  /** answers with status < 400: what the target actually served */
  succeeded: number;
  /** successful answers before the end of the window (the achieved rate counts these) */
  inWindowOk: number;
  /** 429 and 503: the target (its rate limiter, its load shedding) declined to serve */
  refused: number;
  /** every other error: other 4xx/5xx, timeouts, connection errors */
  failed: number;
  bytes: number;
  /** by HTTP status ("200") or transport error kind ("timeout", "refused", "reset", "error") */
  outcomes: Record<string, number>;
  latency: string;
  uncorrected: string;
  /** latency of the successful answers only (from the due time), encoded */
  okLatency: string;
  /** per mix entry (only when the mix has several): encoded latency and error count */
  perEntry: { latency: string; errors: number }[];
  final: boolean;
  /** final tick only: requests due in the window that could not be sent before it closed */
  unsent: number;
  /** final tick only: how long the window really was (shorter than durationMs when stopped early) */
  windowMs: number;
}

/** How long after the window a late-firing timer may still send a request that was due inside it. */
const LATE_SEND_GRACE_MS = 50;

const now = (): number => performance.timeOrigin + performance.now();

class Connection implements Dispatcher.DispatchHandler {
  due = 0;
  sentAt = 0;
  entry = 0;
  status = 0;
  constructor(readonly client: Client, private readonly engine: Engine) {}
  onRequestStart(): void {}
  onResponseStart(_c: Dispatcher.DispatchController, statusCode: number): void {
    this.status = statusCode;
  }
  onResponseData(_c: Dispatcher.DispatchController, chunk: Buffer): void {
    this.engine.bytes += chunk.length;
  }
  onResponseEnd(): void {
    this.engine.complete(this, null);
  }
  onResponseError(_c: Dispatcher.DispatchController, err: Error): void {
    this.engine.complete(this, err);
  }
}

class Engine {
  bytes = 0;
  private readonly factory: RequestFactory;
  private readonly idle: Connection[] = [];
  private readonly all: Connection[] = [];
  private readonly start: number;
  private end: number;
  private readonly interval: number;
  private total: number;
  private wake: (() => void) | null = null;
  private next = 0;
  private inFlight = 0;
  private closed = false;
  private timer: NodeJS.Timeout | null = null;
  private timerAt = Infinity;
  private onDrained: (() => void) | null = null;
  /** inside dispatch(): a request rejected synchronously must not re-enter pump() (unbounded recursion) */
  private dispatching = false;
  /** requests sent so far (cumulative: {seq} values derive from it) */
  private sent = 0;
  private sentAtLastTick = 0;
  // figures since the last tick
  private completed = 0;
  private inWindow = 0;
  private errors = 0;
  private succeeded = 0;
  private inWindowOk = 0;
  private refused = 0;
  private failed = 0;
  private outcomes: Record<string, number> = {};
  private readonly latency: Histogram = newHistogram();
  private readonly okLatency: Histogram = newHistogram();
  private readonly uncorrected: Histogram = newHistogram();
  private readonly entryLatency: Histogram[];
  private readonly entryErrors: number[];

  constructor(private readonly spec: EngineSpec) {
    this.factory = new RequestFactory(spec.mix, spec.basePath);
    for (let i = 0; i < spec.connections; i++) {
      const client = new Client(spec.origin, { pipelining: 1, keepAliveTimeout: 60_000, connectTimeout: spec.timeoutMs });
      const c = new Connection(client, this);
      this.all.push(c);
      this.idle.push(c);
    }
    this.start = spec.startAt + spec.phaseMs;
    this.end = spec.startAt + spec.durationMs;
    this.interval = spec.mode === 'open' ? 1000 / spec.rate : 0;
    this.total = spec.mode === 'open' ? Math.max(0, Math.ceil((spec.durationMs - spec.phaseMs) / this.interval)) : Infinity;
    const n = spec.mix.length > 1 ? spec.mix.length : 0;
    this.entryLatency = Array.from({ length: n }, () => newHistogram());
    this.entryErrors = new Array<number>(n).fill(0);
  }

  /** Runs the window, then waits for the answers still out (bounded by the timeout). */
  async run(onTick: (t: Tick) => void): Promise<void> {
    const ticker = setInterval(() => onTick(this.takeTick(false, 0)), this.spec.tickMs);
    try {
      await sleepUntil(this.spec.startAt);
      this.pump();
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        const wait = () => {
          const ms = this.end + LATE_SEND_GRACE_MS - now();
          if (ms <= 0 || this.wake === null) return resolve();
          setTimeout(wait, Math.min(Math.ceil(ms), 1000));
        };
        wait();
      });
      this.wake = null;
      this.closed = true;
      if (this.timer) clearTimeout(this.timer);
      const unsent = this.spec.mode === 'open' ? this.total - this.next : 0;
      await this.drain(this.spec.timeoutMs + 1000);
      clearInterval(ticker);
      onTick({ ...this.takeTick(true, unsent), windowMs: this.end - this.spec.startAt });
    } finally {
      clearInterval(ticker);
      await Promise.all(this.all.map((c) => c.client.destroy().catch(() => undefined)));
    }
  }

  /** Close the window now (Ctrl-C): nothing further is scheduled, the answers still out are awaited. */
  stop(): void {
    const t = now();
    if (t >= this.end) return;
    this.end = Math.max(t, this.spec.startAt);
    if (this.spec.mode === 'open') this.total = Math.min(this.total, this.next);
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }

  /** Send every due request that has a free connection; otherwise arm one timer for the next due time. */
  private pump(): void {
    if (this.closed) return;
    const t = now();
    if (this.spec.mode === 'closed') {
      while (this.idle.length > 0 && t < this.end) this.send(this.idle.pop()!, t, t);
      return;
    }
    while (this.idle.length > 0 && this.next < this.total) {
      const due = this.start + this.next * this.interval;
      if (due > t) {
        this.arm(due - t, due);
        return;
      }
      this.next++;
      this.send(this.idle.pop()!, due, t);
    }
  }

  private arm(delay: number, at: number): void {
    if (this.timer !== null && this.timerAt <= at) return;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.timerAt = Infinity;
      this.pump();
    }, Math.floor(delay));
  }

  private send(c: Connection, due: number, t: number): void {
    const seq = this.spec.seqStart + this.sent * this.spec.seqStride;
    const req = this.factory.make(seq);
    c.due = due;
    c.sentAt = t;
    c.entry = req.entry;
    c.status = 0;
    this.sent++;
    this.inFlight++;
    this.dispatching = true;
    try {
      c.client.dispatch(
        {
          path: req.path,
          method: req.method as Dispatcher.HttpMethod,
          headers: req.headers,
          body: req.body,
          headersTimeout: this.spec.timeoutMs,
          bodyTimeout: this.spec.timeoutMs,
        },
        c,
      );
    } finally {
      this.dispatching = false;
    }
  }

  complete(c: Connection, err: Error | null): void {
    const t = now();
    this.inFlight--;
    this.completed++;
    if (t <= this.end) this.inWindow++;
    let failed: boolean;
    let outcome: string;
    if (err === null) {
      failed = c.status >= 400;
      outcome = String(c.status);
      recordMs(this.latency, t - c.due);
      const kind = answerKind(c.status);
      if (kind === 'succeeded') {
        this.succeeded++;
        if (t <= this.end) this.inWindowOk++;
        recordMs(this.okLatency, t - c.due);
      } else if (kind === 'refused') this.refused++;
      else this.failed++;
      recordMs(this.uncorrected, t - c.sentAt);
      if (this.entryLatency.length > 0) recordMs(this.entryLatency[c.entry], t - c.due);
    } else {
      // failures carry no latency: a refused connection is fast, and would flatter the percentiles
      failed = true;
      outcome = errorKind(err);
      this.failed++;
    }
    if (failed) {
      this.errors++;
      if (this.entryErrors.length > 0) this.entryErrors[c.entry]++;
    }
    this.outcomes[outcome] = (this.outcomes[outcome] ?? 0) + 1;
    this.idle.push(c);
    if (this.closed) {
      if (this.inFlight === 0 && this.onDrained) this.onDrained();
    } else if (this.dispatching || (err !== null && this.spec.mode === 'closed')) {
      // a closed loop against a refusing port would otherwise spin without yielding
      setImmediate(() => this.pump());
    } else {
      this.pump();
    }
  }

  private drain(maxMs: number): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(resolve, maxMs);
      this.onDrained = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }

  private takeTick(final: boolean, unsent: number): Tick {
    const tick: Tick = {
      sent: this.sent - this.sentAtLastTick,
      completed: this.completed,
      inWindow: this.inWindow,
      errors: this.errors,
      succeeded: this.succeeded,
      inWindowOk: this.inWindowOk,
      refused: this.refused,
      failed: this.failed,
      bytes: this.bytes,
      outcomes: this.outcomes,
      latency: encodeHistogram(this.latency),
      uncorrected: encodeHistogram(this.uncorrected),
      okLatency: encodeHistogram(this.okLatency),
      perEntry: this.entryLatency.map((h, i) => ({ latency: encodeHistogram(h), errors: this.entryErrors[i] })),
      final,
      unsent,
      windowMs: 0,
    };
    this.sentAtLastTick = this.sent;
    this.completed = this.inWindow = this.errors = this.bytes = 0;
    this.succeeded = this.inWindowOk = this.refused = this.failed = 0;
    this.outcomes = {};
    this.latency.reset();
    this.okLatency.reset();
    this.uncorrected.reset();
    for (const h of this.entryLatency) h.reset();
    this.entryErrors.fill(0);
    return tick;
  }
}

/**
 * What an answer means for throughput: served (status < 400), refused (429: rate limited; 503: shed or
 * unavailable; the target chose not to serve it) or failed (any other error status).
 */
export function answerKind(status: number): 'succeeded' | 'refused' | 'failed' {
  if (status < 400) return 'succeeded';
  return status === 429 || status === 503 ? 'refused' : 'failed';
}

function errorKind(err: Error): string {
  const code = (err as { code?: string }).code ?? '';
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT') return 'timeout';
  if (code === 'ECONNREFUSED') return 'refused';
  if (code === 'ECONNRESET' || code === 'UND_ERR_SOCKET' || code === 'EPIPE') return 'reset';
  return 'error';
}

function sleepUntil(at: number): Promise<void> {
  const ms = at - now();
  return ms > 0 ? new Promise((r) => setTimeout(r, Math.ceil(ms))) : Promise.resolve();
}

export interface RunningEngine {
  done: Promise<void>;
  stop(): void;
}

export function startEngine(spec: EngineSpec, onTick: (t: Tick) => void): RunningEngine {
  const engine = new Engine(spec);
  return { done: engine.run(onTick), stop: () => engine.stop() };
}

export function runEngine(spec: EngineSpec, onTick: (t: Tick) => void): Promise<void> {
  return startEngine(spec, onTick).done;
}
