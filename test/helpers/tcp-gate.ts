/**
 * A TCP forwarder on a loopback port that a test can shut and open again: one process's link to a real server
 * (Redis) goes down while everyone else's stays up. Shut refuses new connections and closes the open ones. It
 * runs in its own process (tcp-gate-main.ts), killed by close().
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

export interface TcpGate {
  readonly port: number;
  shut(): Promise<void>;
  open(): Promise<void>;
  close(): Promise<void>;
}

export async function startTcpGate(targetPort: number): Promise<TcpGate> {
  const proc = spawn(process.execPath, [join(__dirname, 'tcp-gate-main.js'), String(targetPort)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: proc.stdout! });
  const waiting: Array<(line: string) => void> = [];
  lines.on('line', (l) => waiting.shift()?.(l));
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const next = (): Promise<string> => new Promise((resolve, reject) => {
    waiting.push(resolve);
    void exited.then(() => reject(new Error('the TCP gate exited')));
  });
  const first = await next();
  const port = Number(/^port (\d+)$/.exec(first)?.[1]);
  const command = async (c: string): Promise<void> => {
    const ack = next();
    proc.stdin!.write(c + '\n');
    if ((await ack) !== c) throw new Error(`TCP gate: ${c} not acknowledged`);
  };
  return {
    port,
    shut: () => command('shut'),
    open: () => command('open'),
    async close() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      await exited;
    },
  };
}
