/**
 * Memory pressure in steps, after Envoy's overload manager: every `memory.check_interval` each worker reads the
 * pod's working set against its cgroup limit (lib/observe/resources.ts) and moves between three states:
 *
 *   normal ──(≥ gc_threshold)──▶ shrink_cache ──(≥ connection_threshold)──▶ refuse_connections
 *          ◀─(< gc_threshold − recover_margin)─   ◀─(< connection_threshold − recover_margin)─
 *
 *  - shrink_cache: L1 admits no new entries and its budget is halved each interval (not below
 *    `l1_floor` × cache.l1.size) while the figure stays above gc_threshold;
 *  - refuse_connections: the worker closes new connections at once and its idle keep-alive ones; requests on
 *    busy connections are still answered (the pod goes unready, see /readyz, so traffic moves elsewhere).
 * Going up passes through each state in order (both steps in one interval if the figure jumped); going down is
 * one step per interval, each only below its threshold minus the margin, so a figure hovering at a threshold
 * does not flap. Every step is logged, counted and reported to the primary for /readyz.
 */
import type { MemoryPolicy } from '../policy/types';
import type { Logger } from '../observe/logger';

export const OVERLOAD_STATES = ['normal', 'shrink_cache', 'refuse_connections'] as const;
export type OverloadState = (typeof OVERLOAD_STATES)[number];

/** What a step does to the worker; implemented by the worker over its cache and listener. */
export interface OverloadActions {
  /** L1 admission on/off. */
  admitCache(on: boolean): void;
  /** Bytes L1 holds, and its budget now. */
  cacheFigures(): { bytes: number; capacity: number; configured: number } | null;
  /** Set L1's budget (bytes), or back to the policy's size (null). */
  resizeCache(bytes: number | null): void;
  /** Refuse new connections and close idle keep-alive ones (true), or accept again (false). */
  refuseConnections(on: boolean): void;
}

export interface OverloadStep {
  from: OverloadState;
  to: OverloadState;
  memoryRatio: number;
}

export class OverloadManager {
  private level = 0;
  private ratio = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private policy: MemoryPolicy,
    private readonly readRatio: () => number,
    private readonly actions: OverloadActions,
    private readonly log: Logger,
    private readonly onStep: (step: OverloadStep) => void,
  ) {}

  get state(): OverloadState {
    return OVERLOAD_STATES[this.level]!;
  }

  get memoryRatio(): number {
    return this.ratio;
  }

  start(): void {
    this.stop();
    this.timer = setInterval(() => this.tick(), this.policy.check_interval);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /** A reload: new thresholds; the current state stays until the next reading says otherwise. */
  configure(policy: MemoryPolicy): void {
    const interval = policy.check_interval !== this.policy.check_interval;
    this.policy = policy;
    if (interval && this.timer !== null) this.start();
  }

  /** Leave every step (the memory section was removed): back to normal at once. */
  reset(): void {
    while (this.level > 0) this.step(this.level - 1);
  }

  tick(): void {
    let r: number;
    try {
      r = this.readRatio();
    } catch (err) {
      this.log.warn({ err: err instanceof Error ? err.message : String(err) }, 'overload: memory figure unreadable; state kept');
      return;
    }
    this.ratio = r;
    const p = this.policy;
    if (r >= p.gc_threshold && this.level < 1) this.step(1);
    if (r >= p.connection_threshold && this.level < 2) this.step(2);
    if (this.level === 2 && r < p.connection_threshold - p.recover_margin) this.step(1);
    else if (this.level === 1 && r < p.gc_threshold - p.recover_margin) this.step(0);
    if (this.level >= 1 && r >= p.gc_threshold) this.shrinkCache();
  }

  private step(to: number): void {
    const from = this.level;
    this.level = to;
    if (to === 1 && from === 0) this.actions.admitCache(false);
    if (to === 2) this.actions.refuseConnections(true);
    if (to === 1 && from === 2) this.actions.refuseConnections(false);
    if (to === 0) {
      this.actions.resizeCache(null);
      this.actions.admitCache(true);
    }
    const s: OverloadStep = { from: OVERLOAD_STATES[from]!, to: OVERLOAD_STATES[to]!, memoryRatio: this.ratio };
    const fields = { overload: { from: s.from, to: s.to }, memory_ratio: Math.round(this.ratio * 1000) / 1000 };
    if (to > from) this.log.warn(fields, `overload: memory at ${(this.ratio * 100).toFixed(1)}% of the limit, ${s.to}`);
    else this.log.info(fields, `overload: memory at ${(this.ratio * 100).toFixed(1)}% of the limit, back to ${s.to}`);
    this.onStep(s);
  }

  /** Halve L1's budget toward its floor: entries go least recently used first. */
  private shrinkCache(): void {
    const c = this.actions.cacheFigures();
    if (c === null) return;
    const floor = Math.floor(c.configured * this.policy.l1_floor);
    const next = Math.max(floor, Math.floor(Math.min(c.capacity, c.bytes) / 2));
    if (next < c.capacity) this.actions.resizeCache(next);
  }
}
