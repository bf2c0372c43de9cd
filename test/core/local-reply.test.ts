/**
 * local_reply: the sidecar's own answers (429, 413, 502, 503, 504) in the upstream's error shape, globally or per
 * route, with JSON-escaped substitutions; problem+json stays the default.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startDraftService } from '../../examples/draft-service';
import { LocalReply } from '../../lib/server/local-reply';
import { basicPolicy, startSidecar } from '../helpers/sidecar';
import { freePort } from '../helpers/ports';

const DRAFT_SHAPE = `local_reply: { content_type: application/json, body: '{"success": false, "error": "{detail}", "output": "", "code": {status}}' }`;

test('templates: placeholders filled, JSON-escaped for a JSON content type, raw otherwise', () => {
  const f = { status: 429, type: 'https://x/t', title: 'Too Many Requests', detail: 'say "hi"\n\\ {detail}' };
  const json = new LocalReply('application/json; charset=utf-8', '{"success": false, "error": "{detail}", "code": {status}, "t": "{title}"}');
  const parsed = JSON.parse(json.render(f)) as { error: string; code: number; t: string };
  assert.deepEqual(parsed, { success: false, error: 'say "hi"\n\\ {detail}', code: 429, t: 'Too Many Requests' });
  assert.equal(new LocalReply('text/plain', '{status} {title}: {detail}').render(f), '429 Too Many Requests: say "hi"\n\\ {detail}');
  assert.equal(new LocalReply('application/problem+json', '{"d":"{detail}"}').render({ ...f, detail: '"' }), '{"d":"\\""}');
});

test('a 429, a 413 and a 502 in the global template; a route\'s own template wins; no template: problem+json', async (t) => {
  const svc = await startDraftService({ seedDrafts: 1 });
  t.after(() => svc.close());
  const sc = await startSidecar(basicPolicy(svc.port, `
${DRAFT_SHAPE}
routes:
  - name: lists
    match: { method: GET, path: /get_mask_types }
    local_reply: { content_type: text/plain, body: "{status}: {title}" }
rate_limiting:
  identity: { header: x-user-id }
  per_user: { requests_per_minute: 60, burst_size: 1 }
`, { client_max_body_size: '1KB' }));
  t.after(() => sc.stop());

  const post = (user: string) => fetch(sc.url + '/query_script', { method: 'POST', body: '{"draft_id":"dft_000001","force_update":false}', headers: { 'x-user-id': user } });
  assert.equal((await post('a')).status, 200);
  const limited = await post('a');
  assert.equal(limited.status, 429);
  assert.match(limited.headers.get('content-type') ?? '', /^application\/json/);
  assert.ok(Number(limited.headers.get('retry-after')) >= 1, 'the headers stay');
  const body = (await limited.json()) as { success: boolean; error: string; output: string; code: number };
  assert.equal(body.success, false, 'a draft-service client reads success:false');
  assert.equal(body.code, 429);
  assert.match(body.error, /per-user limit/);

  const big = await fetch(sc.url + '/add_text', { method: 'POST', body: JSON.stringify({ text: 'x'.repeat(4000) }), headers: { 'x-user-id': 'b' } });
  assert.equal(big.status, 413);
  assert.equal(((await big.json()) as { success: boolean }).success, false);

  const list = await fetch(sc.url + '/get_mask_types', { headers: { 'x-user-id': 'a' } });
  assert.equal(list.status, 429);
  assert.match(list.headers.get('content-type') ?? '', /^text\/plain/);
  assert.equal(await list.text(), '429: Too Many Requests');

  const dead = await startSidecar(basicPolicy(await freePort(), DRAFT_SHAPE));
  t.after(() => dead.stop());
  const r502 = await fetch(dead.url + '/create_draft', { method: 'POST', body: '{}' });
  assert.equal(r502.status, 502);
  const b502 = (await r502.json()) as { success: boolean; error: string };
  assert.equal(b502.success, false);
  assert.match(b502.error, /could not be reached/);

  const plain = await startSidecar(basicPolicy(await freePort()));
  t.after(() => plain.stop());
  const p502 = await fetch(plain.url + '/create_draft', { method: 'POST', body: '{}' });
  assert.equal(p502.headers.get('content-type'), 'application/problem+json', 'without a template: problem+json');
});
