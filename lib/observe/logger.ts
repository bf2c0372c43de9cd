/**
 * pino JSON logs to stdout (unbuffered: pino writes synchronously to fd 1 by default, so a crash loses nothing).
 */
import pino, { type Logger } from 'pino';

export type { Logger };

export function createLogger(level: string = 'info', bindings: Record<string, unknown> = {}): Logger {
  return pino({
    level,
    base: { pid: process.pid, ...bindings },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  });
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
