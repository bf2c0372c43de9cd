/**
 * The Dockerfile, checked without a Docker engine: its shape is read and asserted, then its steps are
 * replayed in a temporary directory (each stage's filesystem root is a folder there): the COPYs copy the
 * same files (honouring .dockerignore), `npm run build` compiles them, `npm ci --omit=dev` installs the
 * production dependencies for real, then the ENTRYPOINT + CMD start as the image's USER with the image's ENV,
 * and the HEALTHCHECK command is run as Docker would.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, relative } from 'node:path';
import { repoRoot } from '../helpers/repo';
import { freePort, waitFor } from '../helpers/ports';
import { copyArgs, envPairs, execForm, healthcheck, readDockerfile, type Stage } from './dockerfile';
import { isIgnored, readDockerignore } from './dockerignore';
import { DEFAULT_PROXY_UID } from '../../lib/intercept/rules';

const root = repoRoot();
const dockerfile = readDockerfile(join(root, 'Dockerfile'));
const ignoreRules = readDockerignore(join(root, '.dockerignore'));

function stage(alias: string): Stage {
  const s = dockerfile.find((x) => x.alias === alias);
  assert.ok(s, `no stage "${alias}" in the Dockerfile`);
  return s;
}

function args(s: Stage, name: string): string[] {
  return s.instructions.filter((i) => i.name === name).map((i) => i.args);
}

function last(s: Stage, name: string): string {
  const all = args(s, name);
  assert.ok(all.length > 0, `no ${name} in stage ${s.alias}`);
  return all[all.length - 1];
}

test('the Dockerfile is multi-stage on a supported Node LTS (22 or 24) slim, production-only, non-root, with MALLOC_ARENA_MAX and iptables', () => {
  assert.equal(dockerfile.length, 2, 'a build stage and a runtime stage');
  for (const s of dockerfile) {
    assert.match(s.base, /^node:(22|24)[-.\w]*-slim$/, 'a Node 22 or 24 LTS slim tag (Node 20 is end of life)');
    assert.ok(!s.base.includes('@sha256'), 'a tag without a digest');
  }
  const build = stage('build');
  const runtime = dockerfile[dockerfile.length - 1];
  assert.equal(runtime.alias, 'runtime');
  assert.ok(args(build, 'RUN').some((r) => /^npm ci\b/.test(r)), 'build stage installs with npm ci');
  assert.ok(args(build, 'RUN').includes('npm run build'), 'build stage runs npm run build');
  assert.ok(args(runtime, 'RUN').some((r) => /\bnpm ci\b[^&]*--omit=dev/.test(r)), 'runtime installs production dependencies only');
  assert.ok(args(runtime, 'RUN').some((r) => /apt-get install[^&]*\biptables\b/.test(r)), 'iptables for the intercept step');
  const env = Object.assign({}, ...args(runtime, 'ENV').map(envPairs)) as Record<string, string>;
  assert.equal(env.MALLOC_ARENA_MAX, '2');
  assert.equal(env.NODE_ENV, 'production');
  assert.equal(env.NODE_OPTIONS, undefined, 'NODE_OPTIONS left alone');
  const user = last(runtime, 'USER');
  assert.match(user, /^\d+(:\d+)?$/, 'a numeric USER, so runAsNonRoot can check it');
  assert.equal(Number(user.split(':')[0]), DEFAULT_PROXY_UID, 'the image uid is intercept --proxy-uid default');
  assert.notEqual(Number(user.split(':')[0]), 0);
  assert.deepEqual(execForm(last(runtime, 'ENTRYPOINT')), ['node', '/app/dist/cmd/bridge-sidecar.js']);
  assert.deepEqual(execForm(last(runtime, 'CMD')), ['serve']);
  const hc = healthcheck(last(runtime, 'HEALTHCHECK'));
  assert.equal(hc.command[0], 'node', 'no curl in the slim image: node does the check');
  assert.ok(hc.command.join(' ').includes('/healthz'), 'the HEALTHCHECK asks the admin /healthz');
  assert.ok(args(runtime, 'COPY').some((c) => c.startsWith('--from=build') && c.includes('dist')), 'dist/ comes from the build stage');
  assert.ok(args(runtime, 'COPY').some((c) => c.startsWith('examples/policy.yaml ')), 'the example policy is in the image');
});

test('.dockerignore keeps local state out of the context but none of what the Dockerfile copies', () => {
  for (const p of ['node_modules', 'node_modules/x/index.js', '.git', 'dist/cmd/serve.js', '.build/k8s/x.js']) {
    assert.ok(isIgnored(ignoreRules, p), `${p} should be ignored`);
  }
  for (const s of dockerfile) {
    for (const c of args(s, 'COPY')) {
      const { from, sources } = copyArgs(c);
      if (from) continue;
      for (const src of sources) {
        assert.ok(existsSync(join(root, src)), `COPY source ${src} exists`);
        assert.ok(!isIgnored(ignoreRules, src), `COPY source ${src} is not excluded by .dockerignore`);
      }
    }
  }
});

// ---- the replay --------------------------------------------------------------------------------------------

interface Replayed {
  readonly rootDir: string;
  workdir: string;
  env: Record<string, string>;
  user: string | null;
}

function copyFromContext(src: string, dest: string): void {
  cpSync(join(root, src), dest, {
    recursive: true,
    filter: (from) => {
      const rel = relative(root, from).split('\\').join('/');
      return rel === '' || !isIgnored(ignoreRules, rel);
    },
  });
}

function run(cmd: string, argv: string[], cwd: string): void {
  const r = spawnSync(cmd, argv, { cwd, encoding: 'utf8', timeout: 300_000, env: process.env });
  assert.equal(r.status, 0, `${cmd} ${argv.join(' ')} failed in ${cwd}:\n${r.stdout}\n${r.stderr}`);
}

/** Replays one RUN line, command by command; a command the replay does not know fails the test. */
function replayRun(line: string, st: Replayed): void {
  const here = join(st.rootDir, st.workdir);
  for (const cmd of line.split('&&').map((c) => c.trim())) {
    if (/^npm ci\b/.test(cmd) && !cmd.includes('--omit=dev')) {
      // The build stage's full install: the repository's node_modules came from the same lockfile.
      symlinkSync(join(root, 'node_modules'), join(here, 'node_modules'), 'dir');
    } else if (cmd === 'npm run build') {
      const pkg = JSON.parse(readFileSync(join(here, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
      assert.equal(pkg.scripts.build, 'tsc -p tsconfig.json', 'the replay runs the build script as package.json says');
      run(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], here);
    } else if (/^npm ci\b.*--omit=dev/.test(cmd)) {
      // Real install of the production dependencies (offline when the npm cache has them).
      run('npm', [...cmd.split(/\s+/).slice(1), '--prefer-offline'], here);
    } else if (cmd === 'npm cache clean --force' || cmd === 'rm -rf /var/lib/apt/lists/*' || cmd === 'apt-get update') {
      // Image size housekeeping: nothing to replay (and the shared npm cache must stay).
    } else if (/^apt-get install\b/.test(cmd)) {
      for (const pkg of cmd.split(/\s+/).slice(2).filter((w) => !w.startsWith('-'))) {
        assert.equal(pkg, 'iptables', `unexpected Debian package ${pkg}: teach the replay about it`);
        const which = spawnSync('sh', ['-c', 'command -v iptables-restore'], { encoding: 'utf8' });
        assert.equal(which.status, 0, 'iptables-restore is installed here as in the image');
      }
    } else if (/^(groupadd|useradd)\b/.test(cmd)) {
      assert.ok(cmd.includes(`--uid ${DEFAULT_PROXY_UID}`) || cmd.includes(`--gid ${DEFAULT_PROXY_UID}`), `${cmd}: uid/gid ${DEFAULT_PROXY_UID}`);
    } else if (/^mkdir -p\b/.test(cmd)) {
      for (const d of cmd.split(/\s+/).slice(2)) mkdirSync(join(st.rootDir, d), { recursive: true });
    } else if (/^chown\b/.test(cmd)) {
      const [, owner, ...paths] = cmd.split(/\s+/);
      const [uid, gid] = owner.split(':').map(Number);
      if (process.getuid?.() === 0) for (const p of paths) chownSync(join(st.rootDir, p), uid, gid);
    } else {
      assert.fail(`RUN ${cmd}: the replay does not know this step; add it to test/k8s/dockerfile.test.ts`);
    }
  }
}

function replayStage(s: Stage, dir: string, stages: Map<string, Replayed>): Replayed {
  const st: Replayed = { rootDir: dir, workdir: '/', env: {}, user: null };
  mkdirSync(dir, { recursive: true });
  const at = (p: string): string => (p.startsWith('/') ? join(st.rootDir, p) : join(st.rootDir, st.workdir, p));
  for (const ins of s.instructions) {
    switch (ins.name) {
      case 'WORKDIR':
        st.workdir = ins.args;
        mkdirSync(at('.'), { recursive: true });
        break;
      case 'COPY': {
        const { from, sources, dest } = copyArgs(ins.args);
        const intoDir = dest.endsWith('/') || sources.length > 1;
        for (const src of sources) {
          if (from) {
            const other = stages.get(from);
            assert.ok(other, `COPY --from=${from}: no such stage`);
            cpSync(join(other.rootDir, src), at(dest), { recursive: true });
          } else {
            const isDir = statSync(join(root, src)).isDirectory();
            const target = intoDir && !isDir ? join(at(dest), basename(src)) : at(dest);
            mkdirSync(isDir ? target : join(target, '..'), { recursive: true });
            copyFromContext(src, target);
          }
        }
        break;
      }
      case 'RUN':
        replayRun(ins.args, st);
        break;
      case 'ENV':
        Object.assign(st.env, envPairs(ins.args));
        break;
      case 'USER':
        st.user = ins.args;
        break;
      case 'EXPOSE': case 'HEALTHCHECK': case 'ENTRYPOINT': case 'CMD': case 'ARG': case 'LABEL':
        break;
      default:
        assert.fail(`line ${ins.line}: ${ins.name} is not replayed`);
    }
  }
  return st;
}

function startProcess(argv: string[], cwd: string, env: Record<string, string>, uid: number | undefined): { child: ChildProcess; out: string[] } {
  const out: string[] = [];
  const child = spawn(argv[0], argv.slice(1), { cwd, env, uid, gid: uid, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout?.setEncoding('utf8').on('data', (d: string) => out.push(d));
  child.stderr?.setEncoding('utf8').on('data', (d: string) => out.push(d));
  return { child, out };
}

function runHealthcheck(command: string[], env: Record<string, string>, uid: number | undefined): number | null {
  const r = spawnSync(command[0] === 'node' ? process.execPath : command[0], command.slice(1), { env, uid, gid: uid, timeout: 20_000 });
  return r.status;
}

test('replaying the Dockerfile outside Docker gives an image that serves and passes its HEALTHCHECK', { timeout: 600_000 }, async (t) => {
  const tmp = mkdtempSync(join(tmpdir(), 'bridge-k8s-image-'));
  chmodSync(tmp, 0o755); // the image's USER must be able to read what root copied
  t.after(() => rmSync(tmp, { recursive: true, force: true }));

  const replayed = new Map<string, Replayed>();
  for (const s of dockerfile) replayed.set(s.alias ?? String(replayed.size), replayStage(s, join(tmp, s.alias ?? String(replayed.size)), replayed));
  const runtime = replayed.get('runtime');
  assert.ok(runtime);
  const rt = dockerfile[dockerfile.length - 1];
  const app = join(runtime.rootDir, runtime.workdir);
  assert.ok(existsSync(join(app, 'dist', 'cmd', 'bridge-sidecar.js')), 'dist/ was copied from the build stage');
  assert.ok(existsSync(join(app, 'node_modules', 'pino')), 'production dependencies installed');
  assert.ok(!existsSync(join(app, 'node_modules', 'typescript')), 'no dev dependencies in the runtime stage');

  // The image runs as its USER (when this test can switch to it) with exactly its ENV on the default PATH.
  const uid = process.getuid?.() === 0 && runtime.user ? Number(runtime.user.split(':')[0]) : undefined;
  const mapPath = (a: string): string => (a.startsWith('/') && existsSync(join(runtime.rootDir, a)) ? join(runtime.rootDir, a) : a);
  const entry = [...execForm(last(rt, 'ENTRYPOINT')), ...execForm(last(rt, 'CMD'))].map((a, i) => (i === 0 && a === 'node' ? process.execPath : mapPath(a)));

  // The policy baked into the image is valid.
  const shipped = mapPath(runtime.env.BRIDGE_SIDECAR_POLICY);
  assert.ok(existsSync(shipped), `the image's default policy ${runtime.env.BRIDGE_SIDECAR_POLICY} exists`);
  const validate = spawnSync(process.execPath, [entry[1], 'validate', shipped], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '', ...runtime.env } });
  assert.equal(validate.status, 0, `the image's policy validates:\n${validate.stdout}${validate.stderr}`);

  // Serve a minimal policy on free ports (the shipped one uses the fixed ports 15006/9901).
  const [listen, admin, upstream] = [await freePort(), await freePort(), await freePort()];
  const policyFile = join(runtime.rootDir, 'etc', 'bridge-sidecar', 'test-policy.yaml');
  writeFileSync(policyFile, [
    'version: 1',
    `server: { listen: "127.0.0.1:${listen}", admin_listen: "127.0.0.1:${admin}", workers: 0 }`,
    `upstream: { url: "http://127.0.0.1:${upstream}" }`,
    '',
  ].join('\n'));
  chmodSync(policyFile, 0o644);
  const env = { PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin', ...runtime.env, BRIDGE_SIDECAR_POLICY: policyFile, BRIDGE_SIDECAR_ADMIN_PORT: String(admin) };
  const hc = healthcheck(last(rt, 'HEALTHCHECK'));

  assert.notEqual(runHealthcheck(hc.command, env, uid), 0, 'the HEALTHCHECK fails while nothing listens');
  const { child, out } = startProcess(entry, app, env, uid);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  t.after(async () => { if (child.exitCode === null) { child.kill('SIGKILL'); await exited; } });

  await waitFor('the sidecar to log "listening"', () => {
    if (child.exitCode !== null) throw new Error(`exited ${child.exitCode}:\n${out.join('')}`);
    return out.join('').includes('listening');
  }, 60_000);
  const firstLine = out.join('').split('\n').find((l) => l.trim() !== '') ?? '';
  assert.doesNotThrow(() => JSON.parse(firstLine), `logs are JSON lines on stdout: ${firstLine}`);
  await waitFor('the HEALTHCHECK to pass', () => runHealthcheck(hc.command, env, uid) === 0, 30_000, 250);

  child.kill('SIGTERM');
  await exited;
  assert.notEqual(runHealthcheck(hc.command, env, uid), 0, 'the HEALTHCHECK fails once the sidecar is gone');
});
