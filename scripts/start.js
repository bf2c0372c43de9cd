#!/usr/bin/env node
/**
 * `npm start`: bootstrap (install; compile cmd/, lib/ and examples/ when stale, not test/ or bench/), then run
 * `bridge-sidecar demo` as a child and stay its parent until it exits, with its exit status.
 *
 * Why a launcher: npm forwards SIGTERM/SIGINT only to its direct child, and that used to be a `sh -c` that dies
 * without passing the signal on, so `kill -TERM <npm start pid>` left the sidecar's primary and workers holding
 * ports 15006, 9901 and 9101. package.json runs this with `exec node ...` so it IS npm's direct child; it passes
 * SIGTERM, SIGINT and SIGHUP to the sidecar and waits for it (the sidecar drains, its cluster workers and the
 * example draft service go with it). If npm itself disappears without passing a signal (kill -9), the launcher
 * notices its parent changed and stops the sidecar the same way.
 */
'use strict';
const { spawn } = require('node:child_process');
const { join } = require('node:path');
const { bootstrap } = require('./bootstrap');

const root = join(__dirname, '..');
bootstrap({ target: 'start' });

const child = spawn(process.execPath, [join(root, 'dist', 'cmd', 'bridge-sidecar.js'), 'demo', ...process.argv.slice(2)], {
  cwd: root,
  stdio: 'inherit',
});

const forward = (signal) => {
  if (child.exitCode === null && child.signalCode === null) child.kill(signal);
};
for (const s of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(s, () => forward(s));

const parent = process.ppid;
const orphanCheck = setInterval(() => {
  if (process.ppid !== parent) forward('SIGTERM');
}, 500);
orphanCheck.unref();

child.on('exit', (code, signal) => {
  clearInterval(orphanCheck);
  process.exitCode = code ?? (signal ? 128 + (require('node:os').constants.signals[signal] ?? 1) : 1);
});
