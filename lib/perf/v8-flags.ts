/**
 * V8 flags for a worker's first seconds (`server.jit_warmup.eager_baseline`, on by default).
 *
 * V8 runs a function in its interpreter (Ignition) until the function has been called often enough, then
 * compiles it to baseline code (Sparkplug), and later, when hot, to optimised code (TurboFan). In a fresh
 * worker that means the JIT warm-up's synthetic requests and the first real ones run interpreted code, and the
 * warm-up's time bound fits fewer of them. `--always-sparkplug` compiles every function to baseline code when
 * it is first compiled (Sparkplug compiles straight from the bytecode, without optimising, so it is cheap),
 * and tier-up to optimised code is unchanged. bench/startup.ts, 5 runs each, warm-up on: p99 of the first 3 s
 * after /readyz 164 ms without it, 31 ms with it (bench/RESULTS.md, "Start-up").
 *
 *   - worker processes: the flag goes into the worker's execArgv at fork (workerExecArgv);
 *   - single process (server.workers: 0): applyV8Flags sets it at run time, right after the policy is read,
 *     so it applies to the functions first compiled after that (the request path is compiled at its first use).
 *
 * Read at start, like `queues.worker_threads`: a reload changes it for workers started afterwards.
 */
import { setFlagsFromString } from 'node:v8';
import type { Policy } from '../policy/types';

const EAGER_BASELINE = '--always-sparkplug';

/** The flags applyV8Flags set in this process at run time (single-process mode). */
const setAtRunTime: string[] = [];

/** The V8 flags the policy asks for (an operator's own `--no-always-sparkplug` on the command line wins). */
export function v8FlagsFor(policy: Policy, execArgv: readonly string[] = process.execArgv): string[] {
  const w = policy.server.jit_warmup;
  if (!w.eager_baseline || execArgv.some((a) => a === EAGER_BASELINE || a === '--no-always-sparkplug')) return [];
  return [EAGER_BASELINE];
}

/** The execArgv for a forked worker: this process's own arguments, plus the policy's V8 flags. */
export function workerExecArgv(policy: Policy, execArgv: readonly string[] = process.execArgv): string[] {
  return [...execArgv, ...v8FlagsFor(policy, execArgv)];
}

/** Single-process mode: set the policy's V8 flags in this process. Returns the flags set. */
export function applyV8Flags(policy: Policy): string[] {
  const flags = v8FlagsFor(policy);
  for (const f of flags) {
    setFlagsFromString(f);
    setAtRunTime.push(f);
  }
  return flags;
}

/** The flags of this module that this process runs with (from its command line or set at run time), for its log. */
export function activeV8Flags(execArgv: readonly string[] = process.execArgv): string[] {
  return [...new Set([...execArgv.filter((a) => a === EAGER_BASELINE), ...setAtRunTime])];
}
