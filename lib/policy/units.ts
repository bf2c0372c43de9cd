/**
 * The policy's units, parsed once at load time into plain numbers.
 *
 *   sizes      `64KB`, `256MB`, `10GB`, `1.5GB`, `512B`, or a plain integer (bytes). Binary: 1KB = 1024 bytes.
 *              Unit letters are case-insensitive (`256mb` is 256MB); decimals round down to whole bytes.
 *   durations  `100ms`, `30s`, `5m`, `24h`, `1d`, compounds like `1h30m`, or a plain number, which is SECONDS
 *              (as in the guide's Python, `timeout = 30`). Result in milliseconds, rounded to whole ms.
 *   ratios     `80%` or a number 0..1. Result 0..1.
 *
 * The regular expressions are exported because the JSON Schema (schema.ts) publishes the same patterns,
 * so an editor accepts exactly what the loader accepts.
 */

const SIZE_UNITS: Readonly<Record<string, number>> = {
  b: 1,
  kb: 1024,
  mb: 1024 ** 2,
  gb: 1024 ** 3,
  tb: 1024 ** 4,
};

const DURATION_UNITS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/** JSON-Schema-compatible patterns (no flags, so case-insensitivity is spelled out). */
export const SIZE_PATTERN = '^[0-9]+(\\.[0-9]+)?\\s*([bB]|[kKmMgGtT][bB])?$';
export const DURATION_PATTERN = '^([0-9]+(\\.[0-9]+)?(ms|s|m|h|d))+$|^[0-9]+(\\.[0-9]+)?$';
export const PERCENT_PATTERN = '^(100(\\.0+)?|[0-9]{1,2}(\\.[0-9]+)?)\\s*%$';

const SIZE_RE = /^([0-9]+(?:\.[0-9]+)?)\s*(b|kb|mb|gb|tb)?$/i;
const DURATION_PART_RE = /([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)/g;
const DURATION_WHOLE_RE = /^(?:[0-9]+(?:\.[0-9]+)?(?:ms|s|m|h|d))+$/;
const PLAIN_NUMBER_RE = /^[0-9]+(?:\.[0-9]+)?$/;
const PERCENT_RE = /^([0-9]+(?:\.[0-9]+)?)\s*%$/;

export class UnitError extends Error {}

/** Bytes from a size (`256MB`) or a non-negative integer. Throws UnitError. */
export function parseSize(v: unknown): number {
  if (typeof v === 'number') {
    if (Number.isSafeInteger(v) && v >= 0) return v;
    throw new UnitError(`size ${v} must be a whole number of bytes or a string like 64KB, 256MB, 10GB`);
  }
  if (typeof v === 'string') {
    const m = SIZE_RE.exec(v);
    if (m) {
      const bytes = Math.floor(Number(m[1]) * SIZE_UNITS[(m[2] ?? 'b').toLowerCase()]);
      if (Number.isSafeInteger(bytes)) return bytes;
    }
  }
  throw new UnitError(`${JSON.stringify(v)} is not a size: expected a size like 64KB, 256MB, 10GB or a number of bytes`);
}

/** Milliseconds from a duration (`30s`, `1h30m`) or a non-negative number of seconds. Throws UnitError. */
export function parseDuration(v: unknown): number {
  if (typeof v === 'number') {
    if (Number.isFinite(v) && v >= 0) return Math.round(v * 1000);
    throw new UnitError(`duration ${v} must be a non-negative number of seconds or a string like 100ms, 30s, 5m, 24h`);
  }
  if (typeof v === 'string') {
    const s = v;
    if (PLAIN_NUMBER_RE.test(s)) return Math.round(Number(s) * 1000);
    if (DURATION_WHOLE_RE.test(s)) {
      let ms = 0;
      for (const m of s.matchAll(DURATION_PART_RE)) ms += Number(m[1]) * DURATION_UNITS[m[2]];
      ms = Math.round(ms);
      if (Number.isSafeInteger(ms)) return ms;
    }
  }
  throw new UnitError(`${JSON.stringify(v)} is not a duration: expected a duration like 100ms, 30s, 5m, 24h or a number of seconds`);
}

/** A ratio 0..1 from `80%` or a number 0..1. Throws UnitError. */
export function parseRatio(v: unknown): number {
  if (typeof v === 'number') {
    if (v >= 0 && v <= 1) return v;
    throw new UnitError(`ratio ${v} must be between 0 and 1, or a percentage like 80%`);
  }
  if (typeof v === 'string') {
    const m = PERCENT_RE.exec(v);
    if (m) {
      const pct = Number(m[1]);
      if (pct <= 100) return pct / 100;
    }
  }
  throw new UnitError(`${JSON.stringify(v)} is not a ratio: expected a percentage like 80% or a number between 0 and 1`);
}

/** Format bytes for summaries: 268435456 -> "256MB". */
export function formatSize(bytes: number): string {
  for (const [unit, n] of [['TB', 1024 ** 4], ['GB', 1024 ** 3], ['MB', 1024 ** 2], ['KB', 1024]] as const) {
    if (bytes >= n && bytes % n === 0) return `${bytes / n}${unit}`;
  }
  return `${bytes}B`;
}
