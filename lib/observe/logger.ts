/**
 * pino logs to stdout. JSON (one object per line, what Kubernetes and log shippers read) is written
 * synchronously (a crash loses nothing), except access lines, which are batched (accessLoggerFor). On a terminal
 * (or with `server.log_format: pretty`) lines are made readable by pino-pretty in pino's transport thread
 * (pretty-transport.ts), so the request path pays no more than for JSON.
 */
import pino, { type DestinationStream, type Logger } from 'pino';

export type { Logger };

export type LogFormat = 'auto' | 'json' | 'pretty';

/** `auto` is pretty exactly when stdout is a terminal (cluster workers share the primary's stdout). */
export function resolveLogFormat(format: LogFormat, stdoutIsTTY = process.stdout.isTTY === true): 'json' | 'pretty' {
  return format === 'auto' ? (stdoutIsTTY ? 'pretty' : 'json') : format;
}

let format: 'json' | 'pretty' = resolveLogFormat('auto');
let prettyStream: DestinationStream | null = null;

/**
 * Chosen once per process before its loggers are made (the policy's server.log_format, read at start). Loggers
 * already made keep their format.
 */
export function setLogFormat(f: LogFormat): void {
  format = resolveLogFormat(f);
}

/** One transport thread per process, shared by every logger, so lines keep their order. */
function prettyDestination(): DestinationStream {
  // NO_COLOR (https://no-color.org) turns the colours off
  prettyStream ??= pino.transport({ target: require.resolve('./pretty-transport'), options: { colorize: !process.env.NO_COLOR } });
  return prettyStream;
}

const OPTIONS = {
  timestamp: pino.stdTimeFunctions.isoTime,
  formatters: { level: (label: string) => ({ level: label }) },
};

/** Loggers made here write to stdout, so their access lines may take the batched path (accessLoggerFor). */
const toStdout = new WeakMap<Logger, Record<string, unknown>>();

export function createLogger(level: string = 'info', bindings: Record<string, unknown> = {}): Logger {
  const base = { pid: process.pid, ...bindings };
  const log = format === 'pretty' ? pino({ level, base, ...OPTIONS }, prettyDestination()) : pino({ level, base, ...OPTIONS });
  toStdout.set(log, base);
  return log;
}

/**
 * Access lines (one per request) go out in batches, like NGINX's `access_log ... buffer= flush=`: one write of up
 * to 8 KB instead of one write per line, and at most ~100 ms later. Why: a synchronous write per request cost
 * 45-60 µs here (more than the whole L1 hit it describes). Every other line (warn, error, the slow-request
 * warning, lifecycle) stays synchronous. The batch is flushed on exit; a `kill -9` can lose its last ~100 ms.
 * All writes happen on the main thread (sync sonic-boom), so lines from both paths never interleave mid-line.
 * A logger not made by createLogger (a test's own stream) is used as it is.
 */
export function accessLoggerFor(log: Logger): Logger {
  const base = toStdout.get(log);
  if (base === undefined) return log;
  // the transport thread already takes writes off the request path (and keeps the order with other lines)
  return pino({ level: 'info', base, ...OPTIONS }, format === 'pretty' ? prettyDestination() : accessDestination());
}

/** How long an access line may wait in the batch (nginx's `flush=`). */
export const ACCESS_FLUSH_MS = 100;

/**
 * stdout with the access batch, flushed ACCESS_FLUSH_MS after the first line that went into it. sonic-boom's own
 * periodicFlush would be a timer every 100 ms for the life of the process, lines or not: ten wake-ups a second in
 * an idle worker (and in every worker at log_level warn, which writes no access line at all).
 */
class AccessBatch implements DestinationStream {
  private timer: NodeJS.Timeout | null = null;
  constructor(private readonly out: ReturnType<typeof pino.destination>) {
    // lines of the last ~100 ms still go out when the process exits before the flush (a short drain, an exit
    // after an error): pino registers no exit flush for a sync destination
    process.once('exit', () => {
      this.cancelTimer();
      if (this.open()) {
        try { this.out.flushSync(); } catch { /* stdout gone: nothing to save the lines to */ }
      }
    });
  }

  write(line: string): boolean {
    const ok = this.out.write(line);
    if (this.timer === null) {
      this.timer = setTimeout(flushBatch, ACCESS_FLUSH_MS, this);
      this.timer.unref();
    }
    return ok;
  }

  flushNow(): void {
    this.timer = null;
    if (this.open()) this.out.flush();
  }

  private cancelTimer(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  /** A closed stdout has nothing to write to. */
  private open(): boolean {
    return !(this.out as unknown as { destroyed: boolean }).destroyed;
  }

  /** pino's logger.flush() */
  flush(cb?: (err?: Error) => void): void {
    this.out.flush(cb);
  }
}

function flushBatch(b: AccessBatch): void {
  b.flushNow();
}

let sharedAccessDestination: AccessBatch | null = null;

function accessDestination(): DestinationStream {
  sharedAccessDestination ??= new AccessBatch(pino.destination({ dest: 1, sync: true, minLength: 8192 }));
  return sharedAccessDestination;
}

/** A logger that drops everything (benchmarks of components, tests that do not read logs). */
export const silentLogger: Logger = pino({ level: 'silent' });

/**
 * Lines operators and tooling always need (the "listening" line with the bound ports, shutdown complete),
 * written at info even when log_level is warn or error.
 */
export function announce(log: Logger, obj: Record<string, unknown>, msg: string): void {
  if (log.isLevelEnabled('info')) log.info(obj, msg);
  else log.child({}, { level: 'info' }).info(obj, msg);
}
