/**
 * Podman for the image test, as root, with the settings this kind of machine needs: runc (crun fails here)
 * and explicit rlimits no higher than the ones podman itself may grant (it cannot raise a hard limit without
 * CAP_SYS_RESOURCE, and conmon runs with nproc = kernel.pid_max).
 *
 * No registry is reachable from the tests, so the Dockerfile's base image (node:<major>-bookworm-slim) is
 * made locally: Debian bookworm from debootstrap --variant=minbase (the root filesystem tarball is cached
 * under /var/cache/bridge-sidecar-test, one per day) plus this machine's node and npm, tagged under the
 * base image's name. A real image of that name, if present, is used as it is.
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

export const CACHE_DIR = '/var/cache/bridge-sidecar-test';
const STAND_IN_LABEL = 'dev.bridge-sidecar.test.stand-in';

function hardLimit(name: string): number {
  const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith(name));
  const hard = line?.trim().split(/\s{2,}/)[2];
  return hard === undefined || hard === 'unlimited' ? Infinity : Number(hard);
}

/** --ulimit flags: 65536 where allowed, else the most this process (and conmon) may set. */
export function ulimitFlags(): string[] {
  const pidMax = Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8').trim());
  const nofile = Math.min(65536, hardLimit('Max open files'));
  const nproc = Math.min(65536, hardLimit('Max processes'), pidMax);
  return ['--ulimit', `nofile=${nofile}:${nofile}`, '--ulimit', `nproc=${nproc}:${nproc}`];
}

export interface Run { status: number | null; stdout: string; stderr: string }

let confFile: string | null = null;
/**
 * A containers.conf for every podman call: runc, and default rlimits that podman can set (the pod's infra
 * container takes them from here; `podman pod create` has no --ulimit).
 */
function containersConf(): string {
  if (confFile) return confFile;
  const dir = mkdtempSync(join(tmpdir(), 'bridge-podman-conf-'));
  const limits = ulimitFlags().filter((_, i) => i % 2 === 1).map((l) => JSON.stringify(l));
  writeFileSync(join(dir, 'containers.conf'), `[containers]\ndefault_ulimits = [${limits.join(', ')}]\n[engine]\nruntime = "runc"\n`);
  confFile = join(dir, 'containers.conf');
  return confFile;
}

/** podman with the runtime flag; throws with podman's output unless allowFail. */
export function podman(args: string[], opts: { allowFail?: boolean; timeoutMs?: number; input?: string } = {}): Run {
  const r: SpawnSyncReturns<string> = spawnSync('podman', ['--runtime', 'runc', ...args], {
    encoding: 'utf8', timeout: opts.timeoutMs ?? 120_000, input: opts.input, maxBuffer: 64 * 1024 * 1024,
    env: { ...process.env, CONTAINERS_CONF: containersConf() },
  });
  if (r.error) throw new Error(`podman ${args.join(' ')}: ${r.error.message}`);
  const out = { status: r.status, stdout: r.stdout, stderr: r.stderr };
  if (!opts.allowFail && r.status !== 0) throw new Error(`podman ${args.slice(0, 3).join(' ')} ... failed (${r.status}):\n${r.stderr.slice(-4000)}\n${r.stdout.slice(-2000)}`);
  return out;
}

/** Fails loudly (never skips) when podman is missing: CI installs it (.ci/run). */
export function requirePodman(): void {
  for (const [bin, args] of [['podman', ['--version']], ['runc', ['--version']], ['catatonit', ['--version']], ['debootstrap', ['--version']]] as const) {
    const r = spawnSync(bin, args, { encoding: 'utf8' });
    if (r.error && (r.error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new Error(`${bin} is not installed: this test builds and runs the image with podman (apt-get install podman buildah runc catatonit debootstrap; .ci/run does)`);
    }
  }
}

export function imageExists(ref: string): boolean {
  return podman(['image', 'exists', ref], { allowFail: true }).status === 0;
}

function today(): string {
  return new Date().toISOString().slice(0, 10).replace(/-/g, '');
}

/** The debootstrap root filesystem as a tarball, made once a day (it takes minutes). */
export function debianRootfsTarball(log: (s: string) => void): string {
  const tarball = join(CACHE_DIR, `debian-bookworm-minbase-${today()}.tar`);
  if (existsSync(tarball)) return tarball;
  mkdirSync(CACHE_DIR, { recursive: true });
  const work = mkdtempSync(join(CACHE_DIR, 'rootfs-'));
  try {
    log(`debootstrap --variant=minbase bookworm (cached afterwards as ${tarball})`);
    const mirror = process.env.BRIDGE_SIDECAR_DEBIAN_MIRROR ?? 'http://deb.debian.org/debian';
    const d = spawnSync('debootstrap', ['--variant=minbase', 'bookworm', work, mirror], { encoding: 'utf8', timeout: 900_000 });
    if (d.error || d.status !== 0) throw new Error(`debootstrap failed (is it installed? .ci/run installs it): ${d.error?.message ?? d.stderr.slice(-2000) + d.stdout.slice(-2000)}`);
    const partial = `${tarball}.partial`;
    const t = spawnSync('tar', ['-C', work, '-cf', partial, '.'], { encoding: 'utf8' });
    if (t.status !== 0) throw new Error(`tar of the root filesystem failed: ${t.stderr}`);
    renameSync(partial, tarball);
    return tarball;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * Makes `baseRef` (e.g. node:22-bookworm-slim) available locally. Returns a note on what it is.
 */
export function ensureBaseImage(baseRef: string, log: (s: string) => void): string {
  const full = baseRef.includes('/') ? baseRef : `docker.io/library/${baseRef}`;
  if (imageExists(full)) {
    const labels = podman(['image', 'inspect', '--format', '{{json .Labels}}', full]).stdout;
    return labels.includes(STAND_IN_LABEL) ? `${full}: local stand-in (Debian minbase + node ${process.version})` : `${full}: the real image`;
  }
  const debian = `localhost/bridge-sidecar-test/debian-minbase:${today()}`;
  if (!imageExists(debian)) {
    const tarball = debianRootfsTarball(log);
    podman(['import', tarball, debian], { timeoutMs: 300_000 });
  }
  const ctx = mkdtempSync(join(tmpdir(), 'bridge-base-'));
  try {
    copyFileSync(process.execPath, join(ctx, 'node'));
    const npmDir = join(dirname(dirname(process.execPath)), 'lib', 'node_modules', 'npm');
    if (!existsSync(npmDir)) throw new Error(`npm not found at ${npmDir}: the stand-in base image needs this machine's npm`);
    cpSync(npmDir, join(ctx, 'npm'), { recursive: true });
    writeFileSync(join(ctx, 'Containerfile'), [
      `FROM ${debian}`,
      'COPY node /usr/local/bin/node',
      'COPY npm /usr/local/lib/node_modules/npm',
      'RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx && node --version',
      'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      `LABEL ${STAND_IN_LABEL}=true`,
      'CMD ["node"]',
      '',
    ].join('\n'));
    log(`building the stand-in ${full}`);
    podman(['build', ...ulimitFlags(), '--network', 'none', '-t', full, '-f', join(ctx, 'Containerfile'), ctx], { timeoutMs: 300_000 });
  } finally {
    rmSync(ctx, { recursive: true, force: true });
  }
  return `${full}: local stand-in (Debian minbase + node ${process.version})`;
}

export const TEST_IMAGE = 'localhost/bridge-sidecar:podman-test';

/**
 * `podman build` of the repository's Dockerfile into TEST_IMAGE, on the base image made or found by
 * ensureBaseImage. --network host: the build's apt-get and npm reach the mirrors the host uses; the host's
 * npm cache is mounted so packages are not downloaded again. Layers are cached by podman: a rebuild with no
 * change takes seconds.
 */
export function buildImage(repo: string, log: (s: string) => void): string[] {
  const notes: string[] = [];
  const dockerfile = join(repo, 'Dockerfile');
  const base = /^FROM\s+(\S+)/m.exec(readFileSync(dockerfile, 'utf8'))?.[1];
  if (!base) throw new Error(`${dockerfile}: no FROM line`);
  notes.push(ensureBaseImage(base, log));
  const npmCache = spawnSync('npm', ['config', 'get', 'cache'], { encoding: 'utf8' }).stdout.trim();
  log(`podman build -t ${TEST_IMAGE} ${repo}`);
  podman(['build', '--format', 'docker', '--network', 'host', ...ulimitFlags(), ...(npmCache && existsSync(npmCache) ? ['--volume', `${npmCache}:/root/.npm`] : []),
    '-t', TEST_IMAGE, '-f', dockerfile, repo], { timeoutMs: 1_800_000 });
  return notes;
}
