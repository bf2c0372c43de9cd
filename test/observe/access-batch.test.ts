/**
 * Access lines are batched (lib/observe/logger.ts accessLoggerFor): a line still reaches stdout about 100 ms after
 * it was logged, with nothing more logged and the process alive, or at once when the process exits first; and a
 * worker that logs nothing does not wake up ten times a second to flush an empty batch.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';

const LOGGER = join(__dirname, '..', '..', 'lib', 'observe', 'logger.js');

/** A process with an access logger: idle for 1 s (its main thread's wake-ups counted), then one access line, then alive 1.5 s more. */
const CHILD = `
const fs = require('node:fs');
const { createLogger, accessLoggerFor } = require(${JSON.stringify(LOGGER)});
const wakeups = () => +/voluntary_ctxt_switches:\\s+(\\d+)/.exec(fs.readFileSync('/proc/self/task/' + process.pid + '/status', 'utf8'))[1];
const access = accessLoggerFor(createLogger('warn'));
setTimeout(() => {
  const before = wakeups();
  setTimeout(() => {
    process.stderr.write('idle wakeups ' + (wakeups() - before) + '\\n');
    access.info({ path: '/get_font_types', status: 200 }, 'request');
    setTimeout(() => process.stderr.write('exiting\\n'), 1500);
  }, 1000);
}, 300);
`;

test('an access line is flushed ~100 ms after it was logged; an idle logger does not wake the process', async () => {
  const child = spawn(process.execPath, ['-e', CHILD], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  let lineBeforeExit: boolean | null = null;
  child.stdout.on('data', (d: Buffer) => {
    if (lineBeforeExit === null && d.toString().includes('/get_font_types')) lineBeforeExit = !stderr.includes('exiting');
  });
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  const code = await new Promise<number | null>((r) => child.on('exit', r));
  assert.equal(code, 0, stderr);
  assert.equal(lineBeforeExit, true, `the access line reached stdout while the process was still running (${stderr})`);
  const idle = Number(/idle wakeups (\d+)/.exec(stderr)?.[1]);
  // one wake-up is the test's own timer; a 100 ms flush timer made it 10 or more
  assert.ok(Number.isFinite(idle) && idle < 6, `wake-ups of the idle main thread in 1 s: ${idle}`);
});

test('access lines logged just before the process exits are written, not lost with the batch', async () => {
  const script = `
const { createLogger, accessLoggerFor } = require(${JSON.stringify(LOGGER)});
const access = accessLoggerFor(createLogger('warn'));
for (let i = 0; i < 3; i++) access.info({ path: '/last-' + i, status: 200 }, 'request');
process.exit(0);
`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  assert.equal(await new Promise<number | null>((r) => child.on('exit', r)), 0);
  assert.deepEqual(out.trim().split('\n').map((l) => (JSON.parse(l) as { path: string }).path), ['/last-0', '/last-1', '/last-2']);
});
