import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  DURATION_PATTERN, PERCENT_PATTERN, SIZE_PATTERN, formatSize, parseDuration, parseRatio, parseSize, UnitError,
} from '../../lib/policy/units';

test('sizes: binary units, plain integers are bytes, case-insensitive, decimals round down', () => {
  assert.equal(parseSize('64KB'), 64 * 1024);
  assert.equal(parseSize('256MB'), 256 * 1024 * 1024);
  assert.equal(parseSize('10GB'), 10 * 1024 ** 3);
  assert.equal(parseSize('2TB'), 2 * 1024 ** 4);
  assert.equal(parseSize('512B'), 512);
  assert.equal(parseSize('1kb'), 1024);
  assert.equal(parseSize('1.5KB'), 1536);
  assert.equal(parseSize('0.3KB'), 307);
  assert.equal(parseSize(4096), 4096);
  assert.equal(parseSize('4096'), 4096);
  assert.equal(parseSize(0), 0);
});

test('sizes: bad values throw UnitError with the expected forms', () => {
  for (const bad of ['', 'MB', '10 XB', '-1KB', '1e3', '10MiB', -5, 1.5, NaN, true, null, {}, '10 GB extra']) {
    assert.throws(() => parseSize(bad), (e: unknown) => e instanceof UnitError && /64KB, 256MB, 10GB/.test((e as Error).message), String(bad));
  }
});

test('durations: ms/s/m/h/d, compounds, plain numbers are seconds, result in ms', () => {
  assert.equal(parseDuration('100ms'), 100);
  assert.equal(parseDuration('30s'), 30_000);
  assert.equal(parseDuration('5m'), 300_000);
  assert.equal(parseDuration('24h'), 86_400_000);
  assert.equal(parseDuration('1d'), 86_400_000);
  assert.equal(parseDuration('1h30m'), 5_400_000);
  assert.equal(parseDuration('1m5s'), 65_000);
  assert.equal(parseDuration('1.5s'), 1500);
  assert.equal(parseDuration(30), 30_000, 'a plain number is seconds');
  assert.equal(parseDuration('30'), 30_000);
  assert.equal(parseDuration(0.25), 250);
  assert.equal(parseDuration(0), 0);
});

test('durations: bad values throw UnitError', () => {
  for (const bad of ['', 's', '5 minutes', '5min', '-1s', '1w', '10ms5', -1, Infinity, NaN, false, [], '5M']) {
    assert.throws(() => parseDuration(bad), (e: unknown) => e instanceof UnitError && /100ms, 30s, 5m, 24h/.test((e as Error).message), String(bad));
  }
});

test('ratios: percentages and 0..1 numbers', () => {
  assert.equal(parseRatio('80%'), 0.8);
  assert.equal(parseRatio('100%'), 1);
  assert.equal(parseRatio('0%'), 0);
  assert.equal(parseRatio('12.5%'), 0.125);
  assert.equal(parseRatio(0.01), 0.01);
  assert.equal(parseRatio(1), 1);
  for (const bad of ['101%', '80', 'eighty%', 1.01, -0.1, '-5%', null, '%']) {
    assert.throws(() => parseRatio(bad), UnitError, String(bad));
  }
});

test('formatSize picks the largest exact unit', () => {
  assert.equal(formatSize(256 * 1024 * 1024), '256MB');
  assert.equal(formatSize(1024), '1KB');
  assert.equal(formatSize(1500), '1500B');
  assert.equal(formatSize(1024 ** 4), '1TB');
});

/** The schema publishes the units' patterns: an editor must accept exactly what the loader parses. */
test('published patterns agree with the parsers on random strings', () => {
  const size = new RegExp(SIZE_PATTERN, 'u');
  const duration = new RegExp(DURATION_PATTERN, 'u');
  const percent = new RegExp(PERCENT_PATTERN, 'u');
  const accepts = (f: (v: unknown) => number, v: string) => {
    try {
      f(v);
      return true;
    } catch (e) {
      if (e instanceof UnitError) return false;
      throw e;
    }
  };
  const piece = fc.constantFrom('0', '1', '5', '12', '100', '.', '.5', 'ms', 's', 'm', 'h', 'd', 'B', 'KB', 'kb', 'MB', 'GB', 'TB', '%', ' ', 'x', '-');
  const candidate = fc.array(piece, { minLength: 1, maxLength: 6 }).map((a) => a.join(''));
  fc.assert(
    fc.property(candidate, (s) => {
      assert.equal(size.test(s), accepts(parseSize, s), `size ${JSON.stringify(s)}`);
      assert.equal(duration.test(s), accepts(parseDuration, s), `duration ${JSON.stringify(s)}`);
      assert.equal(percent.test(s), accepts(parseRatio, s), `percent ${JSON.stringify(s)}`);
    }),
    { numRuns: 2000, seed: 42 },
  );
});
