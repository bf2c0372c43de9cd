import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { ProgressLine } from '../../lib/loadtest/progress';
import { Tally } from '../../lib/loadtest/tally';

test('the progress line rewrites one terminal line, fits its width and is cleared before other output', () => {
  const out = new PassThrough() as PassThrough & { columns: number };
  out.columns = 60;
  let written = '';
  out.on('data', (d: Buffer) => (written += d.toString()));
  const line = new ProgressLine(out as unknown as NodeJS.WriteStream);
  const tally = new Tally();
  tally.sent = 1234;
  tally.completed = 1200;
  line.update({ label: '[2/5] 500 req/s', elapsedMs: 2400, durationMs: 10_000, tally });
  line.update({ label: 'too soon, not drawn', elapsedMs: 2500, durationMs: 10_000, tally });
  assert.ok(written.startsWith('\r\x1b[K[2/5] 500 req/s  2/10 s  sent 1234  done 1200'), JSON.stringify(written));
  assert.ok(!written.includes('too soon'), 'redraws are rate-limited');
  assert.ok(!written.includes('\n'), 'never a new line');
  assert.ok(written.length - '\r\x1b[K'.length <= 59, 'cut to the terminal width');
  line.clear();
  assert.ok(written.endsWith('\r\x1b[K'));
});

test('no progress line unless stdout is a terminal', () => {
  assert.equal(ProgressLine.forStdout() === null, !process.stdout.isTTY);
});
