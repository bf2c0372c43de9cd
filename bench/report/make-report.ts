#!/usr/bin/env node
/**
 * Makes the committed performance report bench/report/: the example draft service behind bridge-sidecar
 * with examples/policy.yaml, driven by `bridge-sidecar loadtest` at the `steps` profile with the mix
 * bench/report/draft-mix.yaml.
 *
 *   node dist/bench/report/make-report.js [--steps 100,500,1000,2000,5000] [--duration 10s] [--pause 3s]
 *       [--service-time 10ms] [--max-concurrency 16] [--connections 400] [--threads 1] [--quiet-below 1.5]
 *       [--out bench/report/report.md]
 *
 * --rerender writes the files again from the last run's JSON (after a change to the report code), without a run.
 * It first waits (up to 20 min) for the 1-minute load average to fall below --quiet-below.
 *
 * It starts, all on 127.0.0.1 with free ports: a redis-server (the policy's L2 tier, cluster-wide limits and
 * invalidation need one), the draft service (a fixed service time and a concurrency limit stand in for the
 * real service's work), and `bridge-sidecar serve` with a copy of examples/policy.yaml in which only what
 * cannot be the same on a shared machine is changed: listen and admin ports, upstream and redis URLs, the
 * L3 cache directory and the admin token file. Everything it starts is stopped before it exits.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, closeSync } from 'node:fs';
import { tmpdir, loadavg } from 'node:os';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { parseDocument } from 'yaml';
import { freePort, waitForHttp } from '../lib/proc';
import { startDraftServiceProcess, BUILD_ROOT } from '../lib/services';
import { repoRoot } from '../results';
import { waitForQuiet } from '../lib/machine';
import { startRedis } from '../../test/helpers/redis';
import { parseDuration } from '../../lib/policy/units';
import { loadMixFile } from '../../lib/loadtest/mix';
import { runProfile, type RunSettings, type SoakInterval, type StepResult } from '../../lib/loadtest/profiles';
import { describeEnvironment, type Environment } from '../../lib/loadtest/environment';
import { stepFromJson, writeReport } from '../../lib/loadtest/report';
import { ProgressLine } from '../../lib/loadtest/progress';

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      steps: { type: 'string', default: '100,500,1000,2000,5000' },
      duration: { type: 'string', default: '10s' },
      pause: { type: 'string', default: '3s' },
      'service-time': { type: 'string', default: '10ms' },
      'max-concurrency': { type: 'string', default: '16' },
      connections: { type: 'string', default: '400' },
      threads: { type: 'string', default: '1' },
      'quiet-below': { type: 'string', default: '1.5' },
      rerender: { type: 'boolean' },
      out: { type: 'string' },
      help: { type: 'boolean' },
    },
  });
  if (values.help) {
    process.stdout.write(readFileSync(__filename, 'utf8').split('*/')[0] + '*/\n');
    return 0;
  }
  const root = repoRoot();
  const out = values.out ?? join(root, 'bench', 'report', 'report.md');
  const mixFile = join(root, 'bench', 'report', 'draft-mix.yaml');
  const log = (s: string) => process.stdout.write(s + '\n');
  if (values.rerender) {
    // write the Markdown, SVG and JSON again from the JSON of the last run, with the current report code
    const json = JSON.parse(readFileSync(out.replace(/\.md$/i, '') + '.json', 'utf8')) as {
      generatedAt: string; command: string; notes: string[]; version: string; environment: Environment; settings: RunSettings;
      steps: StepResult[]; intervals: SoakInterval[];
    };
    writeReport(out, { generatedAt: new Date(json.generatedAt), command: json.command, notes: json.notes, environment: json.environment,
      run: { settings: json.settings, steps: json.steps.map(stepFromJson), intervals: json.intervals.map((i) => ({ ...i, refusedRate: i.refusedRate ?? 0 })) },
      version: json.version });
    log(`re-rendered ${out}`);
    return 0;
  }
  // figures taken while others load the machine measure them too: wait (up to 20 min) for a quiet moment
  await waitForQuiet(Number(values['quiet-below']), 20 * 60_000, log);
  const loadAtStart = loadavg()[0];
  log(`load average ${loadAtStart.toFixed(2)}`);

  const tmp = mkdtempSync(join(tmpdir(), 'loadtest-report-'));
  const stops: (() => Promise<void>)[] = [];
  let sidecar: ChildProcess | null = null;
  try {
    const redis = await startRedis();
    stops.push(() => redis.stop());
    const service = await startDraftServiceProcess({ serviceTime: values['service-time'], maxConcurrency: Number(values['max-concurrency']) });
    stops.push(() => service.stop());

    const port = await freePort();
    const adminPort = await freePort();
    const doc = parseDocument(readFileSync(join(root, 'examples', 'policy.yaml'), 'utf8'));
    const tokenFile = join(tmp, 'admin-token');
    writeFileSync(tokenFile, 'loadtest-report-token\n', { mode: 0o600 });
    doc.setIn(['server', 'listen'], `127.0.0.1:${port}`);
    doc.setIn(['server', 'admin_listen'], `127.0.0.1:${adminPort}`);
    doc.setIn(['server', 'admin_token_file'], tokenFile);
    doc.setIn(['upstream', 'url'], service.url);
    doc.setIn(['redis', 'url'], redis.url);
    doc.setIn(['cache', 'l3', 'path'], join(tmp, 'l3'));
    const policyFile = join(tmp, 'policy.yaml');
    writeFileSync(policyFile, doc.toString());

    // the sidecar's (info-level access) log goes to a file, not through this process
    const logFd = openSync(join(tmp, 'sidecar.log'), 'a');
    sidecar = spawn(process.execPath, [join(BUILD_ROOT, 'cmd', 'bridge-sidecar.js'), 'serve', '--policy', policyFile], { stdio: ['ignore', logFd, logFd] });
    closeSync(logFd);
    const sc = sidecar;
    stops.push(async () => {
      if (sc.exitCode !== null || sc.signalCode !== null) return;
      const exited = new Promise((r) => sc.once('exit', r));
      sc.kill('SIGTERM');
      const t = setTimeout(() => sc.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(t);
    });
    try {
      await waitForHttp(`http://127.0.0.1:${adminPort}/readyz`, { timeoutMs: 60_000 });
    } catch (e) {
      log(readFileSync(join(tmp, 'sidecar.log'), 'utf8').slice(-4000));
      throw e;
    }
    log(`sidecar ready on ${port} (admin ${adminPort}), upstream ${service.url}, redis ${redis.url}`);

    const rates = values.steps.split(',').map(Number);
    const settings: RunSettings = {
      profile: 'steps',
      target: `http://127.0.0.1:${port}/`,
      mixFile,
      mix: loadMixFile(mixFile),
      basePath: '/',
      connections: Number(values.connections),
      threads: Number(values.threads),
      durationMs: parseDuration(values.duration),
      pauseMs: parseDuration(values.pause),
      rates,
      timeoutMs: 10_000,
      reportEveryMs: 60_000,
      metricsUrl: `http://127.0.0.1:${adminPort}/metrics`,
      pid: null,
    };
    const run = await runProfile(settings, { log, progress: ProgressLine.forStdout() });
    const loadtestLine = ['bridge-sidecar loadtest --target', settings.target, '--profile steps --steps', values.steps, '--duration', values.duration,
      '--pause', values.pause, '--connections', values.connections, '--threads', values.threads, '--mix', relative(root, mixFile),
      '--metrics', settings.metricsUrl!, '--report', relative(root, out)].join(' ');
    const command = [`node dist/bench/report/make-report.js ${process.argv.slice(2).join(' ')}`.trimEnd(), '# which ran, with the ports it picked:', loadtestLine].join('\n');
    const notes = [
      'Set-up (all on this machine, 127.0.0.1, free ports): a redis-server; the example draft service with ' +
        `--service-time ${values['service-time']} --max-concurrency ${values['max-concurrency']} (every call but /health takes that long, at most that many at once); ` +
        '`bridge-sidecar serve` with examples/policy.yaml, changed only where a shared machine needs it: listen and admin ports, upstream and redis URLs, the L3 directory and the admin token file.',
      `Steps of ${values.duration} with ${values.pause} pauses: shorter than the guide's 60 s and 30 s, so the whole run fits in a couple of minutes.`,
      `Load average (1 min) ${loadAtStart.toFixed(2)} at the start and ${loadavg()[0].toFixed(2)} at the end: other work on this shared 2-core machine competes with the sidecar, the service and the generator, and shows up as latency.`,
    ];
    const files = writeReport(out, { generatedAt: new Date(), command, notes, environment: describeEnvironment(new URL(settings.target)), run, version: packageVersion(root) });
    log(`report: ${files.markdown}`);
    return 0;
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
    rmSync(tmp, { recursive: true, force: true });
  }
}

function packageVersion(root: string): string {
  return (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
}

main().then((code) => (process.exitCode = code), (e: unknown) => {
  process.stderr.write(`make-report: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
  process.exitCode = 1;
});
