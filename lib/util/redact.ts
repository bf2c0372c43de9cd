/**
 * Secrets out of what the admin port shows (GET /policy, the status page) and what the logs print: the
 * password in a URL (`redis://:s3cret@redis:6379/0` -> `redis://:REDACTED@redis:6379/0`), and the value of any
 * key that holds a secret itself (a password, token or secret read from a file or the environment). Paths to
 * secret files (`*_file`) are kept: they say where the secret is, not what it is.
 */
export const REDACTED = 'REDACTED';

const SECRET_KEY = /(^|_)(password|passwd|secret|token|api_key|apikey|authorization|credentials?)$/i;
// scheme://user:password@ (the password part only; a user name alone is not a secret)
const URL_PASSWORD = /\b([a-z][a-z0-9+.-]*:\/\/[^\s:/@]*:)([^\s@/]*)@/gi;

/** A string with any URL password masked. */
export function redactUrl(text: string): string {
  return text.replace(URL_PASSWORD, (_m, head: string, pass: string) => (pass === '' ? `${head}@` : `${head}${REDACTED}@`));
}

/** A deep copy of `value` with the secrets masked; the input is never changed. */
export function redactSecrets<T>(value: T): T {
  return walk(value, '') as T;
}

function walk(value: unknown, key: string): unknown {
  if (typeof value === 'string') return SECRET_KEY.test(key) && value !== '' ? REDACTED : redactUrl(value);
  if (Array.isArray(value)) return value.map((v) => walk(v, ''));
  if (value instanceof Map) return new Map([...value].map(([k, v]) => [k, walk(v, String(k))]));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = SECRET_KEY.test(k) && v !== null && v !== undefined && typeof v !== 'object' ? REDACTED : walk(v, k);
    return out;
  }
  return value;
}
