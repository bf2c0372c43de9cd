/**
 * The real CapCutAPI draft service and its MCP bridge (../shared/capcut-service/, beside the repository), as
 * child processes: each started with the scripts that come with it, on a free port, from a fresh work
 * directory (so a fresh sqlite database: the service slows down as its database grows). Used by the e2e test
 * and the real-service benchmark. There is no fallback: without the service, they fail and say why.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { repoRoot } from '../results';
import { freePort, startProcess, waitForHttp, type Proc } from './proc';

const INSTALL = 'apt-get install -y python3-flask python3-psutil python3-requests python3-imageio python3-aiohttp';

/**
 * Where the main checkout is when `repo` is a git worktree (its `.git` is a file naming
 * `<main>/.git/worktrees/<name>`), else null.
 */
function mainCheckoutOf(repo: string): string | null {
  const dotGit = join(repo, '.git');
  if (!existsSync(dotGit) || statSync(dotGit).isDirectory()) return null;
  const m = /^gitdir:\s*(.+?)[\\/]\.git[\\/]worktrees[\\/]/m.exec(readFileSync(dotGit, 'utf8'));
  return m ? m[1]! : null;
}

/**
 * `<repo>/../shared/capcut-service` (CI clones the repository with shared/ beside it; from a git worktree, beside
 * its main checkout), or $CAPCUT_SERVICE_DIR. Throws, saying what is missing, when it is not there.
 */
export function capcutServiceDir(): string {
  const repo = repoRoot();
  const main = mainCheckoutOf(repo);
  const candidates = process.env.CAPCUT_SERVICE_DIR
    ? [process.env.CAPCUT_SERVICE_DIR]
    : [resolve(repo, '..', 'shared', 'capcut-service'), ...(main ? [resolve(main, '..', 'shared', 'capcut-service')] : [])];
  const found = candidates.find((d) => existsSync(join(d, 'start.sh')));
  if (found === undefined) {
    throw new Error(`the real draft service is missing: no ${candidates.map((d) => join(d, 'start.sh')).join(' or ')}. Clone the repository `
      + `with shared/ beside it (or set CAPCUT_SERVICE_DIR), and install its Python packages: ${INSTALL}`);
  }
  for (const f of ['start-mcp-bridge.sh', 'service/capcut_server.py']) {
    if (!existsSync(join(found, f))) throw new Error(`the real draft service is incomplete: ${join(found, f)} does not exist`);
  }
  return found;
}

export interface CapcutProcess {
  readonly port: number;
  readonly url: string;
  /** The Python process (the scripts exec it), for /proc/<pid>/stat. */
  readonly pid: number;
  readonly proc: Proc;
  readonly workDir: string;
  stop(): Promise<void>;
}

async function launch(name: string, script: string, args: (port: number, work: string) => string[], readyPath: string): Promise<CapcutProcess> {
  const port = await freePort();
  const workDir = mkdtempSync(join(tmpdir(), `${name}-`));
  const proc = startProcess(name, join(capcutServiceDir(), script), args(port, workDir));
  try {
    await waitForHttp(`http://127.0.0.1:${port}${readyPath}`, { proc, timeoutMs: 60_000 });
  } catch (e) {
    await proc.stop();
    rmSync(workDir, { recursive: true, force: true });
    const out = proc.output();
    throw new Error(`${name} did not start (${e instanceof Error ? e.message : String(e)}). ${/missing/.test(out) ? INSTALL : ''}\n${out.slice(-2000)}`);
  }
  return {
    port, url: `http://127.0.0.1:${port}`, pid: proc.child.pid!, proc, workDir,
    async stop() {
      await proc.stop();
      rmSync(workDir, { recursive: true, force: true });
    },
  };
}

/** The draft service (start.sh PORT 127.0.0.1 WORKDIR), ready once GET /get_mask_types answers. */
export function startCapcutService(): Promise<CapcutProcess> {
  return launch('capcut-service', 'start.sh', (port, work) => [String(port), '127.0.0.1', work], '/get_mask_types');
}

/** The MCP bridge (start-mcp-bridge.sh PORT SERVICE_URL WORKDIR) in front of `serviceUrl`, ready once GET /mcp answers. */
export function startCapcutBridge(serviceUrl: string): Promise<CapcutProcess> {
  return launch('capcut-mcp-bridge', 'start-mcp-bridge.sh', (port, work) => [String(port), serviceUrl, work], '/mcp');
}
