/**
 * The admin port: health, readiness, metrics, the effective policy, and the bearer-token guard on endpoints that
 * change state (404 with no token file, 401 with a wrong or missing token).
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDraftService, type DraftService } from '../../examples/draft-service';
import { startSidecar, basicPolicy } from '../helpers/sidecar';

let upstream: DraftService;
before(async () => {
  upstream = await startDraftService({ port: 0, host: '127.0.0.1' });
});
after(async () => {
  await upstream.close();
});

test('healthz, readyz, metrics and policy answer as the contract says', async () => {
  const sc = await startSidecar(basicPolicy(upstream.port));
  try {
    const h = await fetch(`${sc.adminUrl}/healthz`);
    assert.equal(h.status, 200);
    const r = await fetch(`${sc.adminUrl}/readyz`);
    assert.equal(r.status, 200);
    const m = await fetch(`${sc.adminUrl}/metrics`);
    assert.equal(m.status, 200);
    assert.match(m.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const text = await m.text();
    assert.match(text, /# TYPE bridge_sidecar_http_request_duration_seconds histogram/);
    assert.match(text, /bridge_sidecar_policy_info\{version="[0-9a-f]{12}"\} 1/);
    const p = (await (await fetch(`${sc.adminUrl}/policy`)).json()) as { version: string; policy: { upstream: { port: number } } };
    assert.match(p.version, /^[0-9a-f]{12}$/);
    assert.equal(p.policy.upstream.port, upstream.port);
    assert.equal((await fetch(`${sc.adminUrl}/nope`)).status, 404);
    assert.equal((await fetch(`${sc.adminUrl}/healthz`, { method: 'DELETE' })).status, 405);
  } finally {
    await sc.stop();
  }
});

test('guarded endpoints: 404 without a token file, 401 with a wrong or missing token, 200 with the token', async () => {
  const noToken = await startSidecar(basicPolicy(upstream.port, 'cache: { l1: {} }'));
  try {
    const r = await fetch(`${noToken.adminUrl}/admin/purge`, { method: 'POST', body: '{"pattern":"*"}' });
    assert.equal(r.status, 404);
  } finally {
    await noToken.stop();
  }
  const dir = mkdtempSync(join(tmpdir(), 'bs-token-'));
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, 's3cret-token\n');
  const sc = await startSidecar(basicPolicy(upstream.port, 'cache: { l1: {} }', { admin_token_file: tokenFile }));
  try {
    const none = await fetch(`${sc.adminUrl}/admin/purge`, { method: 'POST', body: '{"pattern":"*"}' });
    assert.equal(none.status, 401);
    assert.match(none.headers.get('www-authenticate') ?? '', /^Bearer/);
    const wrong = await fetch(`${sc.adminUrl}/admin/purge`, { method: 'POST', body: '{"pattern":"*"}', headers: { authorization: 'Bearer s3cret-tokeN' } });
    assert.equal(wrong.status, 401);
    const ok = await fetch(`${sc.adminUrl}/admin/purge`, { method: 'POST', body: '{"pattern":"*"}', headers: { authorization: 'Bearer s3cret-token' } });
    assert.equal(ok.status, 200);
    assert.equal(typeof ((await ok.json()) as { purged: number }).purged, 'number');
    const bad = await fetch(`${sc.adminUrl}/admin/purge`, { method: 'POST', body: 'not json', headers: { authorization: 'Bearer s3cret-token' } });
    assert.equal(bad.status, 400);
    // the token is re-read on use: rotating the Secret takes effect at once
    writeFileSync(tokenFile, 'rotated\n');
    assert.equal((await fetch(`${sc.adminUrl}/admin/purge`, { method: 'POST', body: '{"pattern":"*"}', headers: { authorization: 'Bearer s3cret-token' } })).status, 401);
    assert.equal((await fetch(`${sc.adminUrl}/admin/purge`, { method: 'POST', body: '{"pattern":"*"}', headers: { authorization: 'Bearer rotated' } })).status, 200);
  } finally {
    await sc.stop();
  }
});

/**
 * A body over the limit sent whole by a client that writes it all before it reads (curl, fetch): the answer must
 * reach it. Destroying the connection, or closing it with the rest of the body unread (the kernel then resets
 * it), loses the 413 behind an ECONNRESET, the way nginx's lingering close exists to prevent.
 */
export async function postBig(url: string, bytes: number, headers: Record<string, string> = {}, chunked = false): Promise<{ status: number; body: string }> {
  const { request } = await import('node:http');
  // chunked: no Content-Length, so node sends Transfer-Encoding: chunked (a streamed body of unknown size)
  const length: Record<string, string> = chunked ? {} : { 'content-length': String(bytes) };
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers: { 'content-type': 'application/json', ...length, ...headers } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    // the whole body, in 64 KB writes, before anything is read (the answer comes while it is still sending)
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    let left = bytes;
    const write = (): void => {
      while (left > 0) {
        const n = Math.min(left, chunk.length);
        left -= n;
        if (!req.write(n === chunk.length ? chunk : chunk.subarray(0, n))) { req.once('drain', write); return; }
      }
      req.end();
    };
    write();
  });
}

/**
 * A chunked body sent in steps: 4 KB, then (once the answer has arrived) `more` bytes in 64 KB chunks and the
 * last chunk. What the client saw: the answer, and whether its connection ended cleanly or was reset under it.
 */
async function chunkedAfterAnswer(port: number, more: number): Promise<{ answer: string; error: string | null }> {
  const { connect } = await import('node:net');
  const chunk = (n: number): string => `${n.toString(16)}\r\n${' '.repeat(n)}\r\n`;
  return new Promise((resolve) => {
    const sock = connect(port, '127.0.0.1');
    let answer = '';
    let error: string | null = null;
    let sentRest = false;
    sock.setEncoding('utf8');
    sock.on('error', (e: NodeJS.ErrnoException) => { error = e.code ?? e.message; });
    sock.on('close', () => resolve({ answer, error }));
    sock.on('data', (d: string) => {
      answer += d;
      if (sentRest || !answer.includes('\r\n\r\n')) return;
      // the head is here: the client goes on sending, as one that writes its whole body first would
      sentRest = true;
      let left = more;
      const write = (): void => {
        while (left > 0) {
          const n = Math.min(left, 64 * 1024);
          left -= n;
          if (!sock.write(chunk(n))) { sock.once('drain', write); return; }
        }
        sock.write('0\r\n\r\n');
      };
      write();
    });
    sock.write(`POST /add_text HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n${chunk(4096)}`);
  });
}

test('a streamed body refused part-way is read to its end before the connection closes (lingering close), so the client is not reset', async () => {
  const sc = await startSidecar(basicPolicy(upstream.port, '', { client_max_body_size: '1KB' }));
  try {
    const { answer, error } = await chunkedAfterAnswer(sc.port, 2 * 1024 * 1024);
    assert.match(answer, /^HTTP\/1\.1 413 /);
    assert.match(answer, /connection: close/i);
    assert.match(answer, /client_max_body_size/);
    // without the lingering close the sidecar closes with the body unread: the kernel resets the connection
    assert.equal(error, null, 'the connection ended cleanly, not reset while the client was still sending');
    // the sidecar is fine afterwards
    assert.equal((await fetch(`${sc.url}/get_draft?draft_id=x`)).status < 500, true);
  } finally {
    await sc.stop();
  }
});

test('a body over the admin limit gets its 413, not a reset connection', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'bs-token-'));
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, 's3cret-token\n');
  const sc = await startSidecar(basicPolicy(upstream.port, 'cache: { l1: {} }', { admin_token_file: tokenFile }));
  try {
    for (const size of [2 * 1024 * 1024, 6 * 1024 * 1024]) {
      const r = await postBig(`${sc.adminUrl}/admin/purge`, size, { authorization: 'Bearer s3cret-token' });
      assert.equal(r.status, 413, `${size} bytes`);
      assert.match(r.body, /body over 1 MB/);
    }
    // the admin port still answers
    assert.equal((await fetch(`${sc.adminUrl}/healthz`)).status, 200);
  } finally {
    await sc.stop();
  }
});

test('a body over client_max_body_size on the proxy port gets its 413, not a reset connection', async () => {
  const sc = await startSidecar(basicPolicy(upstream.port, '', { client_max_body_size: '1KB' }));
  try {
    const r = await postBig(`${sc.url}/add_text`, 4 * 1024 * 1024);
    assert.equal(r.status, 413);
    assert.match(r.body, /client_max_body_size/);
    // a streamed (chunked) body is refused part-way too, while the client is still sending
    const streamed = await postBig(`${sc.url}/add_text`, 4 * 1024 * 1024, {}, true);
    assert.equal(streamed.status, 413);
    assert.match(streamed.body, /client_max_body_size/);
  } finally {
    await sc.stop();
  }
});
