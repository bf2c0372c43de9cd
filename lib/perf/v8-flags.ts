/**
 * V8 flags: one for the whole life of a process that serves requests (`server.v8_polymorphic_maps`), and one for
 * the JIT warm-up's second (`server.jit_warmup.eager_baseline`, on by default).
 *
 * Polymorphic property accesses. V8 keeps, at each property access in compiled code, the object shapes ("maps")
 * it has met there, up to 4 by default; past that the site turns megamorphic and every access goes through a
 * generic stub-cache lookup. A proxy's request path runs node's HTTP and stream code over many kinds of objects
 * (client and upstream sockets, requests and responses of the listener and the warm-up's copy, zlib and file
 * streams), so sites inside node's own `parserOnIncoming`, `resOnFinish`, `OutgoingMessage.end` or
 * `IncomingMessage` go megamorphic once a worker has seen ordinary mixed traffic, while a one-route toy server's
 * stay monomorphic. With room for 16 shapes they stay polymorphic: an L1 hit cost 25–26 µs of CPU against
 * 27–30 µs, a pass-through 57 against 61 µs (bench/RESULTS.md, "Performance pass (issue 19)", session 19). The
 * flag only changes when an access site gives up its inline checks; it is set when the worker starts, before the
 * request path is first compiled. An operator's own flag on node's command line wins.
 *
 * V8 runs a function in its interpreter (Ignition) until the function has been called often enough, then
 * compiles it to baseline code (Sparkplug), and later, when hot, to optimised code (TurboFan). In a fresh
 * worker that means the warm-up's synthetic requests run interpreted code, and its time bound fits fewer of them.
 * `--always-sparkplug` compiles every function to baseline code when it is first compiled (Sparkplug compiles
 * straight from the bytecode, without optimising, so it is cheap); tier-up to optimised code is unchanged.
 *
 * The flag is on only while the warm-up runs: set at run time as it starts (the request path's functions are
 * first met then) and cleared as it ends. Kept on for the process's life (from the worker's command line, as
 * before), it cost every later request: functions that never ran in the interpreter reached TurboFan with
 * feedback that made worse code. In node's own `process.nextTick`, the tick object's computed keys went through
 * a runtime call on every tick (`Runtime_DefineKeyedOwnPropertyInLiteral`), and the megamorphic property loads
 * grew; a steady L1-hit load spent about 6 % of its samples more (bench/RESULTS.md, "Start-up", session 11).
 *
 * A function compiled while the flag is on keeps its baseline code; what is compiled afterwards starts in the
 * interpreter as usual.
 */
import { setFlagsFromString } from 'node:v8';
import type { Policy } from '../policy/types';

const EAGER_BASELINE = '--always-sparkplug';
const POLYMORPHIC_MAPS = '--max-valid-polymorphic-map-count';

/** Whether node's command line sets `flag` itself (`--flag`, `--no-flag`, `--flag=value`; V8 reads `_` as `-`). */
function onCommandLine(execArgv: readonly string[], flag: string): boolean {
  const negated = '--no-' + flag.slice(2);
  return execArgv.some((raw) => {
    const a = raw.replace(/_/g, '-');
    return a === flag || a === negated || a.startsWith(flag + '=');
  });
}

/** The V8 flags for the whole life of a process that serves requests (none when node's command line sets its own). */
export function steadyV8FlagsFor(policy: Policy, execArgv: readonly string[] = process.execArgv): string[] {
  return onCommandLine(execArgv, POLYMORPHIC_MAPS) ? [] : [`${POLYMORPHIC_MAPS}=${policy.server.v8_polymorphic_maps}`];
}

/** Set the steady flags in this process: before the request path is first compiled (see above). */
export function applySteadyV8Flags(policy: Policy): string[] {
  const flags = steadyV8FlagsFor(policy);
  for (const f of flags) setFlagsFromString(f);
  return flags;
}

/** The V8 flags the policy asks for during the warm-up (an operator's own flag on the command line wins). */
export function v8FlagsFor(policy: Policy, execArgv: readonly string[] = process.execArgv): string[] {
  const w = policy.server.jit_warmup;
  if (!w.eager_baseline || onCommandLine(execArgv, EAGER_BASELINE)) return [];
  return [EAGER_BASELINE];
}

/** Set `flags` (from v8FlagsFor) in this process, or (on = false) clear them again. */
export function setV8Flags(flags: readonly string[], on: boolean): void {
  for (const f of flags) setFlagsFromString(on ? f : '--no-' + f.slice(2));
}
