/**
 * Admission to the upstream: at most `limit` requests in flight; the rest wait in the FIFO of their priority
 * class and are dequeued weighted-fair (smooth weighted round-robin over the non-empty classes, as nginx does
 * for upstream weights): under sustained overload the classes get upstream slots in the ratio of their
 * weights, and a class with any weight is never starved.
 *
 * Refusals (ShedError): class_full (its class is at max_size), queue_full (all classes together are at
 * max_queue_size and there is no lower-priority request to displace), displaced (a newer request of a higher
 * class took this one's place: the newest waiter of the lowest non-empty class below the newcomer goes),
 * queue_timeout (waited queue_timeout), client_gone (the client hung up while queued).
 *
 * The scheduler is the long-lived state of the queue stage: policy reloads call configure() and the waiters
 * stay where they are; new sizes, weights, timeout and limit apply to them in place.
 */
import type { Counter, Gauge } from 'prom-client';
import type { FastHistogram } from '../../observe/fast-metrics';
import { PRIORITIES, type Priority } from '../../policy/types';
import { ShedError, type Release } from '../../core/stage';
import { GradientLimiter, type GradientOptions } from './gradient';
import type { QueueSettings } from './settings';
import { retryAfterSeconds } from './shed';
import { ClassQueue, Waiter, type Hangup } from './waiters';
import type { ShedReason } from '../../observe/label-values';

export interface QueueMetrics {
  readonly queueLength: Gauge<'priority'>;
  /** Observed for every request that passes the queue, so kept in plain numbers (fast-metrics.ts). */
  readonly queueWait: FastHistogram;
  readonly shed: Counter<'reason'>;
  /** bridge_sidecar_concurrency_limit: the limit in force (fixed share or adaptive). */
  readonly concurrencyLimit?: Gauge<string> | null;
  /** The adaptive limiter's view of the upstream (seconds), like Envoy's min_rtt_msecs / sample_rtt_msecs. */
  readonly minRtt?: Gauge<string> | null;
  readonly sampleRtt?: Gauge<string> | null;
}

export interface SchedulerOptions {
  now?: () => number;
  metrics?: QueueMetrics | null;
  /** Options for the adaptive limiter when max_in_flight is 'auto' (tests shorten its windows). */
  gradient?: GradientOptions;
}

interface Child {
  inc(v?: number): void;
}

export class AdmissionScheduler {
  private readonly now: () => number;
  private readonly classes: Record<Priority, ClassQueue>;
  /** High to low. */
  private readonly order: readonly ClassQueue[];
  private settings: QueueSettings | null = null;
  private fixedLimit = Infinity;
  private limiter: GradientLimiter | null = null;
  private readonly gradientOptions: GradientOptions;
  private timer: NodeJS.Timeout | null = null;
  private timerAt = Infinity;
  private reportedLimit = NaN;
  /** EWMA of upstream latency, for Retry-After estimates. */
  private avgLatencyMs = 100;

  inFlight = 0;
  queued = 0;

  private readonly lengthGauges: Record<Priority, { set(v: number): void }> | null;
  private readonly waitHistograms: Record<Priority, { observe(v: number): void }> | null;
  private readonly shedCounter: Counter<'reason'> | null;
  private readonly shedChildren = new Map<string, Child>();
  private readonly limitGauge: Gauge<string> | null;
  private readonly minRttGauge: Gauge<string> | null;
  private readonly sampleRttGauge: Gauge<string> | null;
  private limiterUpdates = -1;

  constructor(opts: SchedulerOptions = {}) {
    this.now = opts.now ?? (() => performance.now());
    this.gradientOptions = { ...opts.gradient, now: opts.gradient?.now ?? this.now };
    this.order = PRIORITIES.map((p, i) => new ClassQueue(p, i));
    this.classes = { high: this.order[0], medium: this.order[1], low: this.order[2] };
    const m = opts.metrics ?? null;
    this.lengthGauges = m ? { high: m.queueLength.labels('high'), medium: m.queueLength.labels('medium'), low: m.queueLength.labels('low') } : null;
    this.waitHistograms = m ? { high: m.queueWait.cell(['high']), medium: m.queueWait.cell(['medium']), low: m.queueWait.cell(['low']) } : null;
    this.shedCounter = m ? m.shed : null;
    this.limitGauge = m?.concurrencyLimit ?? null;
    this.minRttGauge = m?.minRtt ?? null;
    this.sampleRttGauge = m?.sampleRtt ?? null;
  }

  /** The limit in force: Infinity when the queue stage is off. */
  get limit(): number {
    if (this.settings === null) return Infinity;
    return this.limiter ? this.limiter.limit : this.fixedLimit;
  }

  /** The adaptive limiter when max_in_flight is 'auto' (for tests and /debug). */
  get adaptive(): GradientLimiter | null {
    return this.limiter;
  }

  lengthOf(p: Priority): number {
    return this.classes[p].length;
  }

  /** Apply a policy (or null: queueing off, everyone waiting is admitted). Waiters are kept. */
  configure(s: QueueSettings | null): void {
    this.settings = s;
    if (s === null) {
      this.limiter = null;
      this.fixedLimit = Infinity;
    } else {
      for (const q of this.order) {
        q.weight = s.classes[q.priority].weight;
        q.maxSize = s.classes[q.priority].maxSize;
      }
      if (s.maxInFlight === 'auto') {
        if (this.limiter) this.limiter.setBounds(s.autoMin, s.autoMax);
        else this.limiter = new GradientLimiter({ ...this.gradientOptions, minLimit: s.autoMin, maxLimit: s.autoMax });
      } else {
        this.limiter = null;
        this.fixedLimit = Math.max(1, s.maxInFlight);
      }
    }
    this.reportLimit();
    this.pump();
    // the timeout may have changed: re-arm from scratch
    this.clearTimer();
    this.armTimer();
  }

  /**
   * Ask for an upstream slot. A Release when one is free now (nothing queued ahead), else a promise that
   * resolves when the request is dequeued, or rejects with ShedError.
   */
  acquire(priority: Priority, res: Hangup | null): Release | Promise<Release> {
    const s = this.settings;
    if (s === null) return this.admit();
    if (this.queued === 0 && this.inFlight < this.limit) {
      if (this.waitHistograms !== null) (this.waitHistograms[priority] ?? this.waitHistograms.medium).observe(0);
      return this.admit();
    }
    if (res !== null && res.destroyed) return this.refuse('client_gone', 1);
    const q = this.classes[priority] ?? this.classes.medium;
    if (q.length >= q.maxSize) return this.refuse('class_full', this.retryAfter());
    if (this.queued >= s.maxQueueSize && !this.displaceBelow(q.rank)) return this.refuse('queue_full', this.retryAfter());

    const w = new Waiter(q.priority, this.now(), res);
    const promise = new Promise<Release>((resolve, reject) => {
      w.resolve = resolve;
      w.reject = reject;
    });
    q.push(w);
    this.queued++;
    this.lengthGauges?.[q.priority].set(q.length);
    if (res !== null) {
      const onClose = () => this.gone(w);
      w.onClose = onClose;
      res.once('close', onClose);
    }
    this.armTimer();
    return promise;
  }

  /** Shutdown: everyone still waiting is refused. */
  close(): void {
    this.clearTimer();
    for (const q of this.order) {
      for (let w = q.head; w !== null; w = q.head) {
        this.leave(w);
        w.reject(new ShedError('shutdown', 1));
      }
    }
  }

  // --- admission and release -------------------------------------------------------------------------------

  private admit(): Release {
    this.inFlight++;
    const startedAt = this.now();
    let done = false;
    return (outcome) => {
      if (done) return;
      done = true;
      this.released(startedAt, outcome.ok, outcome.latencyMs);
    };
  }

  private released(startedAt: number, ok: boolean, latencyMs: number): void {
    const inFlight = this.inFlight;
    this.inFlight = inFlight - 1;
    if (ok && latencyMs > 0) {
      this.avgLatencyMs += (latencyMs - this.avgLatencyMs) * 0.1;
      if (this.limiter) {
        this.limiter.onSample(latencyMs, startedAt, inFlight);
        if (this.limiter.limit !== this.reportedLimit) this.reportLimit();
        if (this.limiter.updates !== this.limiterUpdates) this.reportRtt(this.limiter);
      }
    }
    this.pump();
  }

  /** Fill free slots from the queues, weighted-fair. */
  private pump(): void {
    if (this.queued === 0) return;
    const limit = this.limit;
    let now = -1;
    while (this.queued > 0 && this.inFlight < limit) {
      const q = this.pick();
      const w = q.head!;
      this.leave(w);
      if (now < 0) now = this.now();
      this.waitHistograms?.[q.priority].observe((now - w.enqueuedAt) / 1000);
      w.resolve(this.admit());
    }
    if (this.queued === 0) this.clearTimer();
  }

  /**
   * Smooth weighted round-robin over the non-empty classes: each gains its weight in credit, the richest is
   * served and pays the sum. Over any stretch where the same classes are waiting, class i is served
   * weight_i / sum(weights) of the time, interleaved (3:2:1 gives H M H L M H, not H H H M M L).
   */
  private pick(): ClassQueue {
    let best: ClassQueue | null = null;
    let total = 0;
    for (const q of this.order) {
      if (q.length === 0) {
        q.current = 0; // an idle class does not bank credit to burst with later
        continue;
      }
      q.current += q.weight;
      total += q.weight;
      if (best === null || q.current > best.current) best = q;
    }
    best!.current -= total;
    return best!;
  }

  // --- leaving the queue -----------------------------------------------------------------------------------

  private leave(w: Waiter): void {
    const q = w.queue;
    if (q === null) return;
    q.remove(w);
    this.queued--;
    this.lengthGauges?.[q.priority].set(q.length);
    if (w.onClose !== null && w.res !== null) w.res.removeListener('close', w.onClose);
    w.onClose = null;
  }

  private gone(w: Waiter): void {
    if (w.queue === null) return;
    this.leave(w);
    this.countShed('client_gone');
    w.reject(new ShedError('client_gone', 1));
  }

  /** Make room for a request of class rank `rank` by refusing the newest waiter of the lowest class below it. */
  private displaceBelow(rank: number): boolean {
    for (let i = this.order.length - 1; i > rank; i--) {
      const q = this.order[i];
      if (q.length === 0) continue;
      const victim = q.tail!;
      this.leave(victim);
      this.countShed('displaced');
      victim.reject(new ShedError('displaced', this.retryAfter()));
      return true;
    }
    return false;
  }

  private refuse(reason: ShedReason, retryAfter: number): Promise<Release> {
    this.countShed(reason);
    return Promise.reject(new ShedError(reason, retryAfter));
  }

  /** Only reasons in SHED_REASONS: those are exported at 0 from the start. */
  private countShed(reason: ShedReason): void {
    if (this.shedCounter === null) return;
    let c = this.shedChildren.get(reason);
    if (c === undefined) {
      c = this.shedCounter.labels(reason);
      this.shedChildren.set(reason, c);
    }
    c.inc();
  }

  private retryAfter(): number {
    return retryAfterSeconds(this.queued, this.limit, this.avgLatencyMs, this.settings?.queueTimeoutMs ?? 1000);
  }

  private reportLimit(): void {
    const l = this.limit;
    this.reportedLimit = l;
    this.limitGauge?.set(Number.isFinite(l) ? l : 0);
  }

  private reportRtt(l: GradientLimiter): void {
    this.limiterUpdates = l.updates;
    if (Number.isFinite(l.minRttMs)) this.minRttGauge?.set(l.minRttMs / 1000);
    if (Number.isFinite(l.sampleRttMs)) this.sampleRttGauge?.set(l.sampleRttMs / 1000);
  }

  // --- queue timeout: one timer for the oldest waiter ------------------------------------------------------

  private clearTimer(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.timerAt = Infinity;
  }

  /** Heads are the oldest of their class and all classes share one timeout: the earliest head is next to expire. */
  private armTimer(): void {
    const s = this.settings;
    if (s === null || this.queued === 0) return;
    let deadline = Infinity;
    for (const q of this.order) if (q.head !== null && q.head.enqueuedAt + s.queueTimeoutMs < deadline) deadline = q.head.enqueuedAt + s.queueTimeoutMs;
    if (this.timer !== null && this.timerAt <= deadline) return;
    this.clearTimer();
    this.timerAt = deadline;
    // not unref'd: while someone waits, their timeout must fire (close() clears it)
    this.timer = setTimeout(this.expire, Math.max(1, Math.ceil(deadline - this.now())));
  }

  private readonly expire = (): void => {
    this.timer = null;
    this.timerAt = Infinity;
    this.expireNow();
  };

  /** Refuse every waiter whose queue_timeout has passed (the timer calls this; tests with a fake clock may too). */
  expireNow(): void {
    const s = this.settings;
    if (s === null) return;
    const now = this.now();
    for (const q of this.order) {
      for (let w = q.head; w !== null && now - w.enqueuedAt >= s.queueTimeoutMs; w = q.head) {
        this.leave(w);
        this.countShed('queue_timeout');
        w.reject(new ShedError('queue_timeout', this.retryAfter()));
      }
    }
    this.armTimer();
  }
}
