/**
 * Strict HTTP-date and Age parsing (RFC 9110 §5.6.7, RFC 9111 §5.1 and §5.3).
 *
 * Why not Date.parse: it accepts almost anything ("0", "tomorrow", ISO strings), so a malformed Expires read
 * as a date in the future kept an answer fresh that the origin meant as already expired, and it reads the
 * two-digit years of RFC 850 dates as 19xx. Here only the three forms HTTP defines are dates; everything
 * else is "not a date", which for Expires means already expired (RFC 9111 §5.3).
 */

const MONTHS: Readonly<Record<string, number>> = {
  Jan: 0, Feb: 1, Mar: 2, Apr: 3, May: 4, Jun: 5, Jul: 6, Aug: 7, Sep: 8, Oct: 9, Nov: 10, Dec: 11,
};
const MONTH = '(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)';
const TIME = '(\\d{2}):(\\d{2}):(\\d{2})';

/** Sun, 06 Nov 1994 08:49:37 GMT */
const IMF_FIXDATE = new RegExp(`^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\\d{2}) ${MONTH} (\\d{4}) ${TIME} GMT$`);
/** Sunday, 06-Nov-94 08:49:37 GMT */
const RFC850 = new RegExp(`^(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), (\\d{2})-${MONTH}-(\\d{2}) ${TIME} GMT$`);
/** Sun Nov  6 08:49:37 1994 */
const ASCTIME = new RegExp(`^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) ${MONTH} ( \\d|\\d{2}) ${TIME} (\\d{4})$`);

const YEAR_MS = 365.2425 * 24 * 3600 * 1000;

/**
 * An HTTP-date as epoch ms, or NaN when the value is not one of the three forms (or names a day that does not
 * exist, e.g. 31 Feb). `now` decides the century of an RFC 850 two-digit year: a date that would be more than
 * 50 years in the future is the most recent past year with those digits (RFC 9110 §5.6.7).
 */
export function parseHttpDate(value: string | undefined, now: number = Date.now()): number {
  if (value === undefined) return NaN;
  let m = IMF_FIXDATE.exec(value);
  if (m !== null) return utc(Number(m[3]), m[2], Number(m[1]), m[4], m[5], m[6]);
  m = RFC850.exec(value);
  if (m !== null) {
    const yy = Number(m[3]);
    const thisYear = new Date(now).getUTCFullYear();
    let year = thisYear - (thisYear % 100) + yy;
    const t = utc(year, m[2], Number(m[1]), m[4], m[5], m[6]);
    if (Number.isNaN(t)) return NaN;
    if (t - now <= 50 * YEAR_MS) return t;
    year -= 100;
    return utc(year, m[2], Number(m[1]), m[4], m[5], m[6]);
  }
  m = ASCTIME.exec(value);
  if (m !== null) return utc(Number(m[6]), m[1], Number(m[2].trim()), m[3], m[4], m[5]);
  return NaN;
}

function utc(year: number, month: string, day: number, hh: string, mm: string, ss: string): number {
  const mo = MONTHS[month];
  const h = Number(hh);
  const mi = Number(mm);
  // 60 is a leap second (RFC 5322 allows it); it is read as the last second of that minute
  const s = Math.min(Number(ss), 59);
  if (h > 23 || mi > 59 || Number(ss) > 60 || day < 1) return NaN;
  const t = Date.UTC(year, mo, day, h, mi, s);
  // Date.UTC rolls 31 Feb over into March: such a day does not exist
  if (new Date(t).getUTCDate() !== day) return NaN;
  return t;
}

/**
 * Expires as epoch ms; NaN means "already expired": a value that is not an HTTP-date, or more than one Expires
 * field line (or a list), since the origin's intent is then unknown.
 */
export function parseExpires(value: string | string[] | undefined, now: number = Date.now()): number {
  if (value === undefined) return NaN;
  if (Array.isArray(value)) return value.length === 1 ? parseHttpDate(value[0], now) : NaN;
  return parseHttpDate(value, now);
}

const MAX_AGE_SECONDS = 2 ** 31;

/**
 * Age in seconds, or null when it is to be ignored. Age is a non-negative integer (RFC 9111 §5.1); for a
 * list (several lines, or "7200, 0") the first member counts; anything else ("7200.0", "-1", "soon") is
 * ignored, as if absent.
 */
export function parseAge(value: string | string[] | undefined): number | null {
  if (value === undefined) return null;
  const line = Array.isArray(value) ? value[0] : value;
  if (line === undefined) return null;
  const comma = line.indexOf(',');
  const member = (comma === -1 ? line : line.slice(0, comma)).trim();
  if (!/^\d+$/.test(member)) return null;
  return Math.min(Number(member), MAX_AGE_SECONDS);
}
