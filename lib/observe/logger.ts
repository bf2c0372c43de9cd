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
