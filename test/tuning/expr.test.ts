import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { FIGURE_NAMES, formatTrigger, MAX_NESTING, parseTrigger, TriggerError, type Figures } from '../../lib/tuning/expr';
import { figures } from './util';

test('the contract\'s triggers parse and fire on the figures they name', () => {
  const mem = parseTrigger('memory_usage > 85%');
  assert.equal(mem.evaluate(figures({ memory_usage: 0.9 })), true);
  assert.equal(mem.evaluate(figures({ memory_usage: 0.85 })), false);
  const wait = parseTrigger('connection_wait_time > 100ms');
  assert.equal(wait.evaluate(figures({ connection_wait_time: 150 })), true);
  assert.equal(wait.evaluate(figures({ connection_wait_time: 100 })), false);
  const queue = parseTrigger('queue_length > 500');
  assert.equal(queue.evaluate(figures({ queue_length: 501 })), true);
  assert.equal(queue.evaluate(figures({ queue_length: 500 })), false);
  assert.deepEqual(parseTrigger('memory_usage > 85% and queue_length > 100').figures, ['memory_usage', 'queue_length']);
});

test('units: % and plain ratios, ms/s/m, sizes for memory_usage; every comparison operator', () => {
  const f = figures({ memory_usage: 0.5, memory_bytes: 600 * 1024 ** 2, p99_latency: 1500, error_rate: 0.02, cache_hit_ratio: 0.4, cpu_usage: 0.7 });
  const cases: Array<[string, boolean]> = [
    ['memory_usage >= 50%', true], ['memory_usage >= 0.5', true], ['memory_usage > .5', false], ['memory_usage == 50 %', true],
    ['p99_latency > 1s', true], ['p99_latency > 1.5s', false], ['p99_latency >= 1500ms', true], ['p99_latency < 1 m', true],
    ['p99_latency != 1500 ms', false], ['memory_usage > 512MB', true], ['memory_usage > 1GB', false], ['memory_usage < 614400KB', false],
    ['error_rate > 1%', true], ['error_rate <= 0.02', true], ['cache_hit_ratio < 50%', true], ['cpu_usage > 70%', false],
    // a number on the left is the same comparison turned around
    ['85% < memory_usage', false], ['100ms < p99_latency', true], ['0.3 <= cache_hit_ratio', true],
  ];
  for (const [src, want] of cases) assert.equal(parseTrigger(src).evaluate(f), want, src);
});

test('and binds tighter than or; not and parentheses; keywords in any case', () => {
  const f = figures({ queue_length: 10, error_rate: 0.5, memory_usage: 0.1 });
  assert.equal(parseTrigger('queue_length > 100 and error_rate > 10% or memory_usage < 20%').evaluate(f), true);
  assert.equal(parseTrigger('queue_length > 100 and (error_rate > 10% or memory_usage < 20%)').evaluate(f), false);
  assert.equal(parseTrigger('not queue_length > 100').evaluate(f), true);
  assert.equal(parseTrigger('NOT (queue_length > 5 AND error_rate > 0.4)').evaluate(f), false);
  assert.equal(parseTrigger('not not queue_length > 5').evaluate(f), true);
  assert.equal(formatTrigger(parseTrigger('queue_length > 1 and (error_rate > 1% or memory_usage < 2%)').root),
    'queue_length > 1 and (error_rate > 1% or memory_usage < 2%)');
});

test('an unknown figure (null) makes a comparison unknown; and/or follow three-valued logic; unknown never fires', () => {
  const f = figures({ cache_hit_ratio: null, queue_length: 10 });
  assert.equal(parseTrigger('cache_hit_ratio < 50%').evaluate(f), null);
  assert.equal(parseTrigger('not cache_hit_ratio < 50%').evaluate(f), null);
  assert.equal(parseTrigger('cache_hit_ratio < 50% and queue_length > 100').evaluate(f), false);
  assert.equal(parseTrigger('cache_hit_ratio < 50% and queue_length > 1').evaluate(f), null);
  assert.equal(parseTrigger('cache_hit_ratio < 50% or queue_length > 1').evaluate(f), true);
  assert.equal(parseTrigger('cache_hit_ratio < 50% or queue_length > 100').evaluate(f), null);
});

test('parse errors name the problem and the column inside the expression', () => {
  const cases: Array<[string, number, RegExp]> = [
    ['memry_usage > 85%', 1, /unknown figure "memry_usage" \(did you mean "memory_usage"\?\)/],
    ['memory_usage > 85% and queu_length > 100', 24, /did you mean "queue_length"/],
    ['bogus > 1', 1, /unknown figure "bogus" \(expected one of: memory_usage, cpu_usage/],
    ['p99_latency > 5%', 16, /p99_latency is compared with a time \(like 100ms or 2s\), not with "%"/],
    ['connection_wait_time > 100', 24, /connection_wait_time is a time: give the number a unit/],
    ['queue_length > 5ms', 17, /queue_length is compared with a plain number/],
    ['memory_usage > 85', 16, /memory_usage is a ratio: write 85% or a number between 0 and 1/],
    ['error_rate > 150%', 14, /cannot be above 100%/],
    ['memory_usage > 85x', 18, /unknown unit "x"/],
    ['memory_usage = 85%', 14, /"=" is not a comparison: write ==/],
    ['memory_usage > 85% && queue_length > 1', 20, /write "and" instead of "&&"/],
    ['memory_usage > 85% || queue_length > 1', 20, /write "or" instead of "\|\|"/],
    ['!queue_length > 1', 1, /write "not" instead of "!"/],
    ['queue_length >', 15, /expected a number after the comparison, found the end of the trigger/],
    ['queue_length 5', 14, /expected a comparison \(> >= < <= == !=\) after "queue_length", found "5"/],
    ['(queue_length > 5', 18, /missing "\)" to close the "\(" at column 1/],
    ['queue_length > 5)', 17, /unexpected "\)" \(a "\)" without its "\("\)/],
    ['queue_length > 5 queue_length > 6', 18, /join conditions with "and" or "or"/],
    ['queue_length > 5 and', 21, /expected a condition like "memory_usage > 85%", found the end/],
    ['> 5', 1, /expected a figure before ">"/],
    ['5 > 3', 5, /expected a figure/],
    ['queue_length > error_rate', 16, /compare queue_length with a number, not with another figure/],
    ['queue_length > 5 # comment', 18, /unexpected character "#"/],
    ['queue_length > 1.2.3', 19, /unexpected "\." after "1\.2"/],
    ['   ', 1, /must be a condition like/],
    [`queue_length > ${'9'.repeat(400)}`, 16, /too large/],
  ];
  for (const [src, col, re] of cases) {
    assert.throws(() => parseTrigger(src), (e: unknown) => {
      assert.ok(e instanceof TriggerError, `${src}: ${String(e)}`);
      assert.match(e.message, re, src);
      assert.equal(e.col, col, `${src}: ${e.message}`);
      return true;
    }, src);
  }
});

test('nesting and length are bounded', () => {
  const deep = '('.repeat(MAX_NESTING + 5) + 'queue_length > 1' + ')'.repeat(MAX_NESTING + 5);
  assert.throws(() => parseTrigger(deep), (e: unknown) => e instanceof TriggerError && /nested more than/.test(e.message));
  const ok = '('.repeat(MAX_NESTING - 1) + 'queue_length > 1' + ')'.repeat(MAX_NESTING - 1);
  assert.equal(parseTrigger(ok).evaluate(figures({ queue_length: 2 })), true);
  assert.throws(() => parseTrigger('queue_length > 1 or '.repeat(60) + 'queue_length > 1'), (e: unknown) => e instanceof TriggerError && /at most 1000 characters/.test(e.message));
});

test('fuzz: any input either parses or throws a TriggerError positioned inside (or just after) it', () => {
  const alphabet = fc.constantFrom(...'()<>=!&|%. _\t9085msMBKGabdnortqueu'.split(''), 'and', 'or', 'not', 'queue_length', 'memory_usage', 'p99_latency', '85%', '100ms', '>=', '==');
  const tokenSoup = fc.array(alphabet, { maxLength: 40 }).map((a) => a.join(''));
  fc.assert(fc.property(fc.oneof(fc.string({ maxLength: 60 }), fc.string({ unit: 'grapheme', maxLength: 30 }), tokenSoup), (src) => {
    try {
      parseTrigger(src);
    } catch (e) {
      if (!(e instanceof TriggerError)) throw e;
      assert.ok(Number.isInteger(e.index) && e.index >= 0 && e.index <= src.length, `index ${e.index} for ${JSON.stringify(src)}`);
    }
  }), { numRuns: 3000 });
});

type Ast = { k: 'cmp'; figure: string; op: string; n: number } | { k: 'and' | 'or'; l: Ast; r: Ast } | { k: 'not'; a: Ast };

test('fuzz: generated expressions parse and evaluate like the tree they were printed from', () => {
  const counts = ['queue_length'];
  const ops = ['>', '>=', '<', '<=', '==', '!='];
  const { ast } = fc.letrec<{ ast: Ast }>((tie) => ({
    ast: fc.oneof({ depthSize: 'small', withCrossShrink: true },
      fc.record({ k: fc.constant('cmp' as const), figure: fc.constantFrom(...counts), op: fc.constantFrom(...ops), n: fc.integer({ min: 0, max: 20 }) }),
      fc.record({ k: fc.constantFrom('and' as const, 'or' as const), l: tie('ast') as fc.Arbitrary<Ast>, r: tie('ast') as fc.Arbitrary<Ast> }),
      fc.record({ k: fc.constant('not' as const), a: tie('ast') as fc.Arbitrary<Ast> })),
  }));
  const print = (a: Ast): string => a.k === 'cmp' ? `${a.figure} ${a.op} ${a.n}` : a.k === 'not' ? `not (${print(a.a)})` : `(${print(a.l)}) ${a.k} (${print(a.r)})`;
  const evalAst = (a: Ast, q: number): boolean => {
    if (a.k === 'not') return !evalAst(a.a, q);
    if (a.k === 'and') return evalAst(a.l, q) && evalAst(a.r, q);
    if (a.k === 'or') return evalAst(a.l, q) || evalAst(a.r, q);
    if (a.k !== 'cmp') throw new Error('unreachable');
    return ({ '>': q > a.n, '>=': q >= a.n, '<': q < a.n, '<=': q <= a.n, '==': q === a.n, '!=': q !== a.n } as Record<string, boolean>)[a.op];
  };
  const depth = (a: Ast): number => a.k === 'cmp' ? 0 : a.k === 'not' ? 1 + depth(a.a) : 1 + Math.max(depth(a.l), depth(a.r));
  fc.assert(fc.property(ast, fc.integer({ min: 0, max: 20 }), (a, q) => {
    const src = print(a);
    fc.pre(src.length <= 1000 && depth(a) < MAX_NESTING / 2);
    assert.equal(parseTrigger(src).evaluate(figures({ queue_length: q })), evalAst(a, q), src);
  }), { numRuns: 500 });
});

test('every figure name is accepted with a value of its kind', () => {
  const sample: Record<string, string> = {
    memory_usage: '80%', cpu_usage: '0.5', connection_wait_time: '10ms', queue_length: '3', error_rate: '1%', p99_latency: '2s', cache_hit_ratio: '90%',
  };
  for (const name of FIGURE_NAMES) {
    const t = parseTrigger(`${name} > ${sample[name]}`);
    assert.deepEqual(t.figures, [name]);
    const all: Figures = figures({});
    assert.equal(typeof t.evaluate(all), 'boolean', name);
  }
});
