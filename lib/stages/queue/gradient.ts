/**
 * The adaptive concurrency limit behind `max_in_flight: auto`, in the spirit of Envoy's adaptive concurrency
 * filter (gradient controller) and Netflix's concurrency-limits Gradient:
 *
 *   - min-RTT probe: now and then (every probeIntervalMs, jittered) the limit drops to probeLimit until
 *     probeSamples requests that started with the upstream that quiet have finished; the fastest of them is
 *     the ideal, unqueued round-trip time (minRTT). The upstream's own queue is empty while it is measured.
 *     Between probes a window whose mean is below minRTT lowers it (the upstream got faster).
 *   - sampling: between probes the latencies of finished requests are averaged over a window (windowMs and at
 *     least minWindowSamples samples). The mean, not p90: a queue forming at the upstream moves the mean at once,
 *     and with ~10-20 samples a window a p90 is one sample and mostly noise.
 *   - update, once per window:
 *         gradient = clamp(minRTT * (1 + buffer) / sample, 0.5, 1.0)
 *         limit    = floor(limit * gradient + headroom), clamped to [min, max]
 *     headroom is 1 while the upstream shows queueing (gradient < 1), so the limit settles just above the knee,
 *     where the upstream's latency starts to grow; below the knee (gradient = 1) it is sqrt(limit), so a
 *     large upstream is found in a few seconds rather than one step at a time.
 *   - the limit only grows when it was reached during the window (an idle sidecar does not inflate it).
 *
 * No timers: windows close on the sample that ends them, with time from the injected clock, so tests can drive
 * it through simulated time.
 */

export interface GradientOptions {
  /** Clock in ms (performance.now by default). */
  now?: () => number;
  /** Random in [0,1) for probe jitter. */
  random?: () => number;
  initialLimit?: number;
  minLimit?: number;
  maxLimit?: number;
  /** Concurrency while minRTT is measured. */
  probeLimit?: number;
  /** Tolerated latency growth over minRTT before the limit backs off (0.1 = 10 %). */
  buffer?: number;
  windowMs?: number;
  minWindowSamples?: number;
  /** A window that has at least one sample closes after this long even with fewer than minWindowSamples. */
  maxWindowMs?: number;
  probeIntervalMs?: number;
  /** ± fraction of probeIntervalMs, so the workers of a pod do not probe in step. */
  probeJitter?: number;
  probeSamples?: number;
}

const DEFAULTS = {
  initialLimit: 10,
  minLimit: 1,
  maxLimit: 1000,
  probeLimit: 2,
  buffer: 0.1,
  windowMs: 100,
  minWindowSamples: 10,
  maxWindowMs: 1000,
  probeIntervalMs: 30_000,
  probeJitter: 0.15,
  probeSamples: 10,
};

type Mode = 'probe' | 'sample';

export class GradientLimiter {
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly o: typeof DEFAULTS;
  private mode: Mode = 'probe';
  /** The limit outside probes (restored after each probe). */
  private steady: number;
  private minRtt = NaN;
  private lastSample = NaN;
  private nextProbeAt = 0;
  // probe state
  private probeStartedAt = 0;
  /** Requests that started after this instant ran with at most probeLimit in flight: their latency counts. */
  private probeCleanAt = Infinity;
  private probeLatencies: number[] = [];
  // window state
  private windowStart = 0;
  private windowSum = 0;
  private windowCount = 0;
  private windowPeak = 0;
  /** Number of limit updates so far (for tests and the debug log). */
  updates = 0;

  constructor(opts: GradientOptions = {}) {
    this.now = opts.now ?? (() => performance.now());
    this.random = opts.random ?? Math.random;
    this.o = { ...DEFAULTS };
    for (const k of Object.keys(DEFAULTS) as Array<keyof typeof DEFAULTS>) {
      const v = opts[k];
      if (typeof v === 'number' && Number.isFinite(v)) this.o[k] = v;
    }
    this.o.minLimit = Math.max(1, Math.floor(this.o.minLimit));
    this.o.maxLimit = Math.max(this.o.minLimit, Math.floor(this.o.maxLimit));
    this.o.probeLimit = clamp(Math.floor(this.o.probeLimit), this.o.minLimit, this.o.maxLimit);
    this.steady = clamp(Math.floor(this.o.initialLimit), this.o.minLimit, this.o.maxLimit);
    this.startProbe(this.now());
  }

  /** The limit in force now. */
  get limit(): number {
    return this.mode === 'probe' ? this.o.probeLimit : this.steady;
  }

  get probing(): boolean {
    return this.mode === 'probe';
  }

  /** The ideal round-trip time measured by the last probe (NaN before the first one ends). */
  get minRttMs(): number {
    return this.minRtt;
  }

  /** The mean latency of the last closed window (NaN before one closed). */
  get sampleRttMs(): number {
    return this.lastSample;
  }

  /** Bounds change on reload (workers or pod maximum changed); the current limit is clamped, not reset. */
  setBounds(minLimit: number, maxLimit: number): void {
    this.o.minLimit = Math.max(1, Math.floor(minLimit));
    this.o.maxLimit = Math.max(this.o.minLimit, Math.floor(maxLimit));
    this.o.probeLimit = clamp(this.o.probeLimit, this.o.minLimit, this.o.maxLimit);
    this.steady = clamp(this.steady, this.o.minLimit, this.o.maxLimit);
  }

  /**
   * One upstream exchange ended.
   * @param latencyMs its duration
   * @param startedAt when it was admitted (same clock as `now`)
   * @param inFlight requests at the upstream just before this one ended (itself included)
   */
  onSample(latencyMs: number, startedAt: number, inFlight: number): void {
    // a zero or negative duration is an exchange that never reached the upstream (client gone): no signal
    if (!(latencyMs > 0)) return;
    const now = this.now();
    if (this.mode === 'probe') this.probeSample(latencyMs, startedAt, inFlight, now);
    else this.windowSample(latencyMs, inFlight, now);
  }

  private startProbe(now: number): void {
    this.mode = 'probe';
    this.probeStartedAt = now;
    this.probeCleanAt = Infinity;
    this.probeLatencies.length = 0;
  }

  private probeSample(latencyMs: number, startedAt: number, inFlight: number, now: number): void {
    if (startedAt >= this.probeCleanAt) this.probeLatencies.push(latencyMs);
    // once no more than probeLimit are in flight, everything admitted from now on runs at probe concurrency
    if (inFlight - 1 <= this.o.probeLimit && this.probeCleanAt === Infinity) this.probeCleanAt = now;
    if (this.probeLatencies.length < this.o.probeSamples) {
      // a probe under very light traffic must not hold the limit down forever
      if (now - this.probeStartedAt < this.o.maxWindowMs * 10 || this.probeLatencies.length === 0) return;
    }
    // the minimum: queueing, GC pauses and a busy CPU only ever add latency, so the fastest exchange of the
    // probe is the best estimate of the unqueued round trip (a median taken while the process is still cold
    // or the machine busy settles the limit well above the knee)
    let min = Infinity;
    for (const v of this.probeLatencies) if (v < min) min = v;
    this.minRtt = min;
    this.mode = 'sample';
    const jitter = 1 + this.o.probeJitter * (2 * this.random() - 1);
    this.nextProbeAt = now + this.o.probeIntervalMs * jitter;
    this.resetWindow(now);
  }

  private resetWindow(now: number): void {
    this.windowStart = now;
    this.windowSum = 0;
    this.windowCount = 0;
    this.windowPeak = 0;
  }

  private windowSample(latencyMs: number, inFlight: number, now: number): void {
    this.windowSum += latencyMs;
    this.windowCount++;
    if (inFlight > this.windowPeak) this.windowPeak = inFlight;
    const age = now - this.windowStart;
    if (!((age >= this.o.windowMs && this.windowCount >= this.o.minWindowSamples) || age >= this.o.maxWindowMs)) return;
    const sample = this.windowSum / this.windowCount;
    this.lastSample = sample;
    if (sample < this.minRtt) this.minRtt = sample; // the upstream got faster
    const gradient = clamp((this.minRtt * (1 + this.o.buffer)) / sample, 0.5, 1.0);
    const headroom = gradient >= 1 ? Math.max(1, Math.sqrt(this.steady)) : 1;
    let next = Math.floor(this.steady * gradient + headroom);
    if (this.windowPeak < this.steady && next > this.steady) next = this.steady; // not limit-bound: no evidence to grow
    this.steady = clamp(next, this.o.minLimit, this.o.maxLimit);
    this.updates++;
    if (now >= this.nextProbeAt) this.startProbe(now);
    else this.resetWindow(now);
  }
}

function clamp(v: number, lo: number, hi: number): number {
  return v < lo ? lo : v > hi ? hi : v;
}
