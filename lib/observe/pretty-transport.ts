/**
 * The pino transport for readable terminal logs: pino-pretty (the pino ecosystem's formatter), run by pino in a
 * worker thread, so the request path only serializes the JSON line it always did and never waits for the
 * formatting. Options that are functions cannot cross into that thread, hence this module: pino loads it there.
 *
 * A line reads `[15:02:11.481] INFO: w1 POST /query_script 200 12.4 ms route=query_script cache="hit; detail=l1"`:
 * time, level, who (primary, worker n), the message, then the fields that are set, as key=value. An error
 * object shows its message, never its stack (a stack trace per event floods a terminal).
 */
import pretty from 'pino-pretty';

type LogObject = Record<string, unknown>;

/** Fields that the line's start already shows, or that say nothing on a terminal. */
const SHOWN = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'role', 'worker']);
/** An access line: its start says it all, then what explains the outcome (trace ids and the client stay in JSON). */
const ACCESS_SHOWN = new Set([...SHOWN, 'method', 'path', 'status', 'duration_ms', 'client', 'trace_id']);

function value(v: unknown): string {
  if (typeof v === 'string') return /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v);
  if (typeof v === 'object' && v !== null && typeof (v as { message?: unknown }).message === 'string') {
    return JSON.stringify((v as { message: string }).message);
  }
  return typeof v === 'object' ? JSON.stringify(v) : String(v);
}

function fields(log: LogObject, shown: Set<string>): string {
  let out = '';
  for (const [k, v] of Object.entries(log)) {
    if (shown.has(k) || v === null || v === undefined) continue;
    out += ` ${k}=${value(v)}`;
  }
  return out;
}

/** The text after `[time] LEVEL:` for one log object. */
export function formatLine(log: LogObject): string {
  // a component's own `role` (e.g. a Redis connection's) may replace the process's: the worker id stays
  const who = log.worker !== undefined ? `w${String(log.worker)} ` : typeof log.role === 'string' ? `${log.role} ` : '';
  const msg = typeof log.msg === 'string' ? log.msg : '';
  if (msg === 'access') {
    return `${who}${String(log.method)} ${String(log.path)} ${String(log.status)} ${String(log.duration_ms)} ms${fields(log, ACCESS_SHOWN)}`;
  }
  return `${who}${msg}${fields(log, SHOWN)}`;
}

export default function prettyTransport(opts: { colorize?: boolean } = {}) {
  return pretty({
    colorize: opts.colorize ?? false,
    translateTime: 'SYS:HH:MM:ss.l',
    hideObject: true,
    ignore: 'pid,hostname',
    messageFormat: (log: LogObject) => formatLine(log),
  });
}
