/**
 * Secrets stay out of the admin port: GET /policy masks a password in a URL and any secret value, and the
 * Redis password comes from a Secret (redis.password_file, or $BRIDGE_SIDECAR_REDIS_PASSWORD) so it is never
 * in the policy ConfigMap at all. Against a real redis-server that requires a password.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REDACTED, redactSecrets, redactUrl } from '../../lib/util/redact';
import { startRedis, REDIS_CLI, type RedisInstance } from '../helpers/redis';
import { basicPolicy, startSidecar, type SidecarProcess } from '../helpers/sidecar';
import { freePort } from '../helpers/ports';

const PASSWORD = 'pa55-w0rd-only-in-the-secret';

test('redactSecrets: URL passwords and secret values masked, paths and everything else kept, input unchanged', () => {
  const input = {
    redis: { url: 'redis://:hunter2@redis:6379/0', password_file: '/var/run/secrets/redis/password', password: 'from-file' },
    tracing: { endpoint: 'https://user:tok3n@collector:4318/v1/traces' },
    upstream: { url: 'http://127.0.0.1:9101' },
    server: { admin_token_file: '/var/run/secrets/bridge-sidecar/token', token: 'abc' },
    list: ['rediss://default:pw@host:6380', 'plain'],
    count: 3,
  };
  const copy = structuredClone(input);
  const out = redactSecrets(input);
  assert.deepEqual(input, copy, 'the input is not changed');
  assert.deepEqual(out, {
    redis: { url: `redis://:${REDACTED}@redis:6379/0`, password_file: '/var/run/secrets/redis/password', password: REDACTED },
    tracing: { endpoint: `https://user:${REDACTED}@collector:4318/v1/traces` },
    upstream: { url: 'http://127.0.0.1:9101' },
    server: { admin_token_file: '/var/run/secrets/bridge-sidecar/token', token: REDACTED },
    list: [`rediss://default:${REDACTED}@host:6380`, 'plain'],
    count: 3,
  });
  assert.equal(redactUrl('redis://redis:6379/0'), 'redis://redis:6379/0', 'no password, nothing to mask');
});

describe('the Redis password from a Secret, never shown', () => {
  let redis: RedisInstance;
  let dir = '';
  const running: SidecarProcess[] = [];

  before(async () => {
    redis = await startRedis();
    const set = spawnSync(REDIS_CLI, ['-p', String(redis.port), 'CONFIG', 'SET', 'requirepass', PASSWORD], { encoding: 'utf8' });
    assert.match(set.stdout, /OK/, set.stderr);
    dir = mkdtempSync(join(tmpdir(), 'bridge-redis-secret-'));
  });
  after(async () => {
    await Promise.all(running.map((s) => s.stop()));
    await redis?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const policyWith = (redisYaml: string): string => basicPolicy(9, [
    'redis:', ...redisYaml.split('\n').map((l) => `  ${l}`),
    'rate_limiting:', '  scope: cluster', '  global: { requests_per_second: 1000, burst_size: 100 }',
  ].join('\n'));

  async function start(policy: string, env: Record<string, string> = {}): Promise<SidecarProcess> {
    const s = await startSidecar(policy, { env });
    running.push(s);
    return s;
  }

  async function policyBody(s: SidecarProcess): Promise<string> {
    const r = await fetch(`${s.adminUrl}/policy`);
    assert.equal(r.status, 200);
    return r.text();
  }

  const assertNoPassword = (s: SidecarProcess, text: string): void => {
    assert.ok(!text.includes(PASSWORD), 'the password is not in GET /policy');
    assert.ok(!JSON.stringify(s.logs).includes(PASSWORD) && !s.stderr.join('').includes(PASSWORD), 'nor in the logs');
  };

  test('redis.password_file: connects (AUTH) with the file content; /policy shows the path only', async () => {
    const file = join(dir, 'password');
    writeFileSync(file, PASSWORD + '\n');
    const s = await start(policyWith(`url: redis://127.0.0.1:${redis.port}/0\npassword_file: ${file}`), { BRIDGE_SIDECAR_REDIS_PASSWORD: '' });
    await s.waitForLog((l) => l.msg === 'redis connected', 20_000);
    const body = await policyBody(s);
    assert.equal((JSON.parse(body) as { policy: { redis: { password_file: string } } }).policy.redis.password_file, file);
    assertNoPassword(s, body);
  });

  test('$BRIDGE_SIDECAR_REDIS_PASSWORD (an env var from a secretKeyRef) works the same', async () => {
    const s = await start(policyWith(`url: redis://127.0.0.1:${redis.port}/0`), { BRIDGE_SIDECAR_REDIS_PASSWORD: PASSWORD });
    await s.waitForLog((l) => l.msg === 'redis connected', 20_000);
    assertNoPassword(s, await policyBody(s));
  });

  test('a password written into redis.url still works, and GET /policy and the logs mask it', async () => {
    const s = await start(policyWith(`url: "redis://:${PASSWORD}@127.0.0.1:${redis.port}/0"`));
    const connected = await s.waitForLog((l) => l.msg === 'redis connected', 20_000);
    assert.equal(connected.redis, `redis://:${REDACTED}@127.0.0.1:${redis.port}/0`);
    const body = await policyBody(s);
    assert.ok(body.includes(`redis://:${REDACTED}@127.0.0.1:${redis.port}/0`), body);
    assertNoPassword(s, body);
  });
});

test('server.metrics_listen serves GET /metrics alone (what the chart Service exposes), the admin port keeps the rest', async () => {
  const metricsPort = await freePort();
  const s = await startSidecar(basicPolicy(9, '', { metrics_listen: `127.0.0.1:${metricsPort}` }));
  try {
    const metrics = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
    assert.equal(metrics.status, 200);
    assert.match(await metrics.text(), /^# HELP bridge_sidecar_/m);
    for (const path of ['/policy', '/healthz', '/readyz', '/admin/purge', '/']) {
      assert.equal((await fetch(`http://127.0.0.1:${metricsPort}${path}`)).status, 404, `${path} is not on the metrics listener`);
    }
    assert.equal((await fetch(`${s.adminUrl}/policy`)).status, 200, 'still on the admin port');
  } finally {
    await s.stop();
  }
});
