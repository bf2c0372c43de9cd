/**
 * Worker processes (node:cluster): the primary restarts a crashed worker, /metrics sums all workers, and SIGTERM
 * under load drains without failing a request that was accepted.
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { request, Agent } from 'node:http';
import { startDraftService, type DraftService } from '../../examples/draft-service';
import { startSidecar, basicPolicy } from '../helpers/sidecar';
import { waitFor, sleep } from '../helpers/ports';

function get(url: string, agent: Agent | false = false): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

function sumSeries(metrics: string, name: string, labelFilter = ''): number {
  let sum = 0;
  for (const line of metrics.split('\n')) {
    if (line.startsWith(name) && (line[name.length] === '{' || line[name.length] === ' ') && line.includes(labelFilter)) {
      sum += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  return sum;
}

let upstream: DraftService;
before(async () => {
  upstream = await startDraftService({ port: 0, host: '127.0.0.1' });
});
after(async () => {
  await upstream.close();
});

test('with 2 workers, /metrics shows the sum over both, and a killed worker is replaced', async () => {
  const sc = await startSidecar(basicPolicy(upstream.port, '', { workers: 2 }));
  try {
    const workerPids = new Set<number>();
    await waitFor('two workers logging', () => {
      for (const l of sc.logs) if (l.role === 'worker' && typeof l.pid === 'number') workerPids.add(l.pid);
      return workerPids.size >= 2 || sc.logs.some((l) => l.msg === 'listening');
    });
    const N = 60;
    for (let i = 0; i < N; i++) assert.equal((await get(`${sc.url}/get_font_types`)).status, 200);
    const m = (await get(`${sc.adminUrl}/metrics`)).body;
    assert.equal(sumSeries(m, 'bridge_sidecar_http_requests_total', 'endpoint="other"'), N);
    assert.equal(sumSeries(m, 'bridge_sidecar_http_request_duration_seconds_count'), N);

    // find a worker pid from the access log and kill it
    await sc.waitForLog((l) => l.role === 'worker' && l.msg === 'access', 5_000); // written in batches
    const pid = sc.logs.find((l) => l.role === 'worker' && l.msg === 'access')?.pid as number;
    assert.ok(pid, 'an access log line from a worker');
    process.kill(pid, 'SIGKILL');
    await sc.waitForLog((l) => l.msg === 'worker exited unexpectedly: restarting it');
    await waitFor('readyz after restart', async () => (await get(`${sc.adminUrl}/readyz`)).status === 200, 15_000);
    for (let i = 0; i < 20; i++) assert.equal((await get(`${sc.url}/get_font_types`)).status, 200);
    const m2 = (await get(`${sc.adminUrl}/metrics`)).body;
    assert.equal(sumSeries(m2, 'bridge_sidecar_worker_restarts_total'), 1);
  } finally {
    assert.equal(await sc.stop(), 0);
  }
});

/**
 * `clients` loops send requests until 100 ms after SIGTERM (when the endpoint removal reaches them); every request
 * sent before that must complete. ECONNREFUSED is allowed (never accepted: the client moves on to another pod).
 */
async function sigtermUnderLoad(workers: number, clients: number, agent: Agent | false, path: string): Promise<void> {
  const sc = await startSidecar(basicPolicy(upstream.port, '', { workers, drain_timeout: '20s' }));
  let ok = 0;
  let refused = 0;
  const failures: string[] = [];
  let stop = false;
  // After SIGTERM the pod's endpoint is removed and clients stop opening requests to it (what a Service does);
  // requests already sent, and those sent in the 100 ms before that, must all complete.
  let endpointRemoved = false;
  const loop = async () => {
    for (let i = 0; i < 2000 && !stop && !endpointRemoved; i++) {
      try {
        const r = await get(`${sc.url}${path}`, agent);
        if (r.status === 200) ok++;
        else failures.push(`status ${r.status}`);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        // refused = never accepted (the listener is closed): a client moves on to another pod
        if (code === 'ECONNREFUSED') { refused++; await sleep(20); }
        else failures.push(String(code ?? e));
      }
    }
  };
  const loops = Array.from({ length: clients }, loop);
  await sleep(800);
  sc.proc.kill('SIGTERM');
  await sleep(100);
  endpointRemoved = true;
  // readiness flips as soon as the signal is handled (the admin port stays up while draining); on a busy
  // machine that may take longer than the 100 ms above, so wait for the primary to say it is draining
  await sc.waitForLog((l) => l.msg === 'shutting down: draining in-flight requests', 30_000);
  const ready = await get(`${sc.adminUrl}/readyz`).catch(() => ({ status: 0, body: '' }));
  assert.ok(ready.status === 503 || ready.status === 0, `readyz during drain: ${ready.status}`);
  const code = await sc.exited;
  stop = true;
  await Promise.all(loops);
  if (agent) agent.destroy();
  assert.equal(code, 0);
  assert.deepEqual(failures, []);
  assert.ok(ok > clients, `requests completed: ${ok} (refused: ${refused})`);
  await sc.stop();
}

for (const workers of [0, 2]) {
  test(`SIGTERM under load (workers: ${workers}): readyz turns 503 at once, every accepted request completes, exit 0`, async () => {
    // 16 keep-alive clients sending slow-ish requests
    await sigtermUnderLoad(workers, 16, new Agent({ keepAlive: true, maxSockets: 16 }), '/slow?ms=150');
  });
  test(`SIGTERM while clients open a connection per request (workers: ${workers}): no accepted connection is reset`, async () => {
    // every request on a new connection, so connections keep arriving around SIGTERM: a listener closed under
    // them resets those accepted but not yet served (the kernel's accept queue; with workers, also the
    // primary's queue of connections not yet handed to a worker)
    await sigtermUnderLoad(workers, 32, false, '/slow?ms=20');
  });
}
