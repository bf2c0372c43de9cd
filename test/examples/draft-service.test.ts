/**
 * The example draft service over real HTTP: the API the sidecar is built for (writes, reads, JSON-RPC,
 * background saves, idempotency, errors), the load knobs (service time, concurrency cap), the extras other
 * tests use (SSE, downloads, echo, status, slow, headers, WebSocket) and the CLI.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import WebSocket from 'ws';
import { startDraftService, type DraftService, type DraftServiceOptions } from '../../examples/draft-service';
import { parseDurationMs } from '../../examples/draft-service/main';
import { buildRoot } from '../helpers/repo';
import { sleep, waitFor } from '../helpers/ports';

const services: DraftService[] = [];
after(async () => {
  await Promise.all(services.map((s) => s.close()));
});

async function start(opts: DraftServiceOptions = {}): Promise<DraftService> {
  const s = await startDraftService({ seedDrafts: 50, ...opts });
  services.push(s);
  return s;
}

type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

async function post(svc: DraftService, path: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: Json; headers: Headers }> {
  const res = await fetch(svc.url + path, { method: 'POST', body: typeof body === 'string' ? body : JSON.stringify(body), headers: { 'content-type': 'application/json', ...headers } });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : null, headers: res.headers };
}

async function get(svc: DraftService, path: string, headers: Record<string, string> = {}): Promise<{ status: number; json: Json; headers: Headers; bytes: number }> {
  const res = await fetch(svc.url + path, { headers });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : null, headers: res.headers, bytes: Buffer.byteLength(text) };
}

async function rpc(svc: DraftService, body: unknown): Promise<{ status: number; json: Json }> {
  const r = await post(svc, '/mcp', body);
  return { status: r.status, json: r.json };
}

test('health, static type lists, 404 and 405 as JSON', async () => {
  const svc = await start();
  assert.deepEqual((await get(svc, '/health')).json, { status: 'ok' });
  for (const path of ['/get_font_types', '/get_transition_types', '/get_mask_types', '/get_intro_animation_types', '/get_audio_effect_types']) {
    const r = await get(svc, path);
    assert.equal(r.status, 200, path);
    assert.equal(r.json.success, true);
    assert.ok(Array.isArray(r.json.output) && r.json.output.length > 5, path);
    assert.equal(typeof r.json.output[0].name, 'string');
    assert.match(r.headers.get('content-type') ?? '', /application\/json/);
  }
  const missing = await get(svc, '/no/such/path');
  assert.equal(missing.status, 404);
  assert.equal(missing.json.success, false);
  const head = await fetch(svc.url + '/get_font_types', { method: 'HEAD' });
  assert.equal(head.status, 200, 'HEAD works on GET routes, as in Flask');
  assert.equal(await head.text(), '');
  const wrongMethod = await post(svc, '/get_font_types', {});
  assert.equal(wrongMethod.status, 405);
  assert.equal(wrongMethod.headers.get('allow'), 'GET');
});

test('create_draft owns the draft by X-User-Id; query_script is 5-11 KB and changes when clips are added', async () => {
  const svc = await start();
  const created = await post(svc, '/mcp/create_draft', { width: 1920, height: 1080, project_name: 'Trip' }, { 'x-user-id': 'alice' });
  assert.equal(created.status, 200);
  assert.equal(created.json.success, true);
  const id: string = created.json.output.draft_id;
  assert.match(id, /^dft_\d{6}$/);

  const first = await fetch(svc.url + '/query_script', { method: 'POST', body: JSON.stringify({ draft_id: id, force_update: false }) });
  const firstText = await first.text();
  const size = Buffer.byteLength(firstText);
  assert.ok(size >= 5 * 1024 && size <= 11 * 1024, `new draft is ${size} bytes`);
  const doc = JSON.parse(firstText).output;
  assert.equal(doc.draft_id, id);
  assert.equal(doc.user_id, 'alice');
  assert.deepEqual(doc.canvas_config, { width: 1920, height: 1080, ratio: '16:9' });
  assert.equal(doc.tracks.length, 0);

  const added = await post(svc, '/mcp/add_video', { draft_id: id, video_url: 'https://cdn.example/a.mp4', start: 0, end: 4, volume: 0.5 });
  assert.equal(added.json.success, true);
  assert.equal(added.json.output.draft_id, id);
  const clipId: string = added.json.output.clip_id;
  for (const [path, body] of [
    ['/mcp/add_text', { draft_id: id, text: 'Hello', start: 1, end: 3 }],
    ['/mcp/add_audio', { draft_id: id, audio_url: 'https://cdn.example/a.mp3', start: 0, end: 4, volume: 0.3 }],
    ['/mcp/add_image', { draft_id: id, image_url: 'https://cdn.example/a.jpg', start: 4, end: 6 }],
  ] as const) {
    const r = await post(svc, path, body);
    assert.equal(r.json.success, true, path);
    assert.equal(r.json.output.draft_id, id, path);
  }
  const after = await post(svc, '/query_script', { draft_id: id, force_update: false });
  const afterSize = Buffer.byteLength(JSON.stringify(after.json));
  assert.ok(afterSize > size, 'draft grew');
  const segments = after.json.output.tracks.flatMap((t: Json) => t.segments);
  assert.equal(segments.length, 4);
  assert.ok(segments.some((s: Json) => s.id === clipId));
  assert.equal(after.json.output.duration, 6_000_000);
  assert.equal(after.json.output.materials.videos[0].path, 'https://cdn.example/a.mp4');
});

test('pre-seeded drafts exist, are 5-11 KB and stable; a write with an unknown draft_id creates a new draft', async () => {
  const svc = await start({ seedDrafts: 20 });
  for (const n of [1, 7, 20]) {
    const id = `dft_${String(n).padStart(6, '0')}`;
    const a = await fetch(svc.url + '/query_script', { method: 'POST', body: JSON.stringify({ draft_id: id, force_update: false }) }).then((r) => r.text());
    const b = await fetch(svc.url + '/query_script', { method: 'POST', body: JSON.stringify({ draft_id: id, force_update: false }) }).then((r) => r.text());
    assert.equal(a, b);
    const size = Buffer.byteLength(a);
    assert.ok(size >= 5 * 1024 && size <= 11 * 1024, `${id} is ${size} bytes`);
    assert.match(JSON.parse(a).output.user_id, /^user_\d{3}$/);
  }
  const beyond = await post(svc, '/query_script', { draft_id: 'dft_000021' });
  assert.deepEqual(beyond.json.success, false);

  const orphan = await post(svc, '/mcp/add_video', { draft_id: 'dft_unknown', video_url: 'https://cdn.example/b.mp4' }, { 'x-user-id': 'bob' });
  assert.equal(orphan.json.success, true);
  const newId: string = orphan.json.output.draft_id;
  assert.notEqual(newId, 'dft_unknown');
  const script = await post(svc, '/query_script', { draft_id: newId });
  assert.equal(script.json.output.user_id, 'bob');
  assert.equal(script.json.output.tracks[0].segments.length, 1);
});

test('errors: HTTP 200 success:false for unknown drafts and bad arguments, 400 for malformed JSON', async () => {
  const svc = await start();
  const unknown = await post(svc, '/query_script', { draft_id: 'dft_nope', force_update: false });
  assert.equal(unknown.status, 200);
  assert.equal(unknown.json.success, false);
  assert.match(unknown.json.error, /not found/);

  const noUrl = await post(svc, '/mcp/add_video', { draft_id: 'dft_000001' });
  assert.equal(noUrl.status, 200);
  assert.deepEqual(noUrl.json, { success: false, error: 'video_url is required' });

  const badTimes = await post(svc, '/mcp/add_text', { text: 'x', start: 5, end: 1 });
  assert.equal(badTimes.json.success, false);

  const badSave = await post(svc, '/mcp/save_draft', { draft_id: 'dft_nope' });
  assert.equal(badSave.json.success, false);

  const malformed = await post(svc, '/query_script', '{"draft_id": ');
  assert.equal(malformed.status, 400);
  assert.equal(malformed.json.success, false);
  assert.match(malformed.json.error, /malformed JSON/);

  const notObject = await post(svc, '/mcp/create_draft', '[1,2]');
  assert.equal(notObject.status, 400);

  const unknownTask = await post(svc, '/query_draft_status', { task_id: 'task_nope' });
  assert.equal(unknownTask.status, 200);
  assert.equal(unknownTask.json.success, false);
});

test('patterns: list, filter by category, get by id, 404 JSON for an unknown id', async () => {
  const svc = await start();
  const list = await get(svc, '/api/patterns/list');
  assert.equal(list.json.success, true);
  const patterns = list.json.output.patterns;
  assert.ok(patterns.length >= 10);
  const commerce = await get(svc, '/api/patterns/list?category=commerce');
  assert.ok(commerce.json.output.patterns.length > 0);
  assert.ok(commerce.json.output.patterns.every((p: Json) => p.category === 'commerce'));
  const one = await get(svc, `/api/patterns/get/${patterns[0].id}`);
  assert.equal(one.status, 200);
  assert.equal(one.json.output.id, patterns[0].id);
  assert.ok(one.json.output.slots.length > 0);
  const none = await get(svc, '/api/patterns/get/tpl_9999');
  assert.equal(none.status, 404);
  assert.equal(none.json.success, false);
});

test('save_draft answers at once with a task id; query_draft_status progresses step by step, then completes', async () => {
  const svc = await start({ saveDurationMs: 1500, progressStepMs: 500 });
  const save = await post(svc, '/mcp/save_draft', { draft_id: 'dft_000003' });
  assert.equal(save.json.success, true);
  const taskId: string = save.json.output.task_id;
  assert.match(taskId, /^task_/);

  const seen: number[] = [];
  let final: Json = null;
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const st = await post(svc, '/query_draft_status', { task_id: taskId });
    assert.equal(st.json.success, true);
    const out = st.json.output;
    assert.equal(out.draft_id, 'dft_000003');
    if (seen[seen.length - 1] !== out.progress) seen.push(out.progress);
    if (out.done) {
      final = out;
      break;
    }
    assert.equal(out.status, 'processing');
    assert.ok(out.progress < 100);
    await sleep(100);
  }
  assert.ok(final, 'save completed');
  assert.equal(final.status, 'completed');
  assert.equal(final.progress, 100);
  assert.ok(seen.length >= 3, `progress moved through steps: ${seen.join(',')}`);
  for (let i = 1; i < seen.length; i++) assert.ok(seen[i]! > seen[i - 1]!, `progress only rises: ${seen.join(',')}`);
});

test('X-Idempotency-Key: the same key replays the first answer without a second effect', async () => {
  const svc = await start();
  const created = await post(svc, '/mcp/create_draft', { project_name: 'idem' });
  const id: string = created.json.output.draft_id;
  const body = { draft_id: id, video_url: 'https://cdn.example/c.mp4', start: 0, end: 2 };
  const a = await post(svc, '/mcp/add_video', body, { 'x-idempotency-key': 'k-1', 'x-api-key': 'secret' });
  const b = await post(svc, '/mcp/add_video', body, { 'x-idempotency-key': 'k-1', 'x-api-key': 'secret' });
  assert.deepEqual(b.json, a.json);
  assert.equal(b.headers.get('x-idempotent-replay'), 'true');
  assert.equal(a.headers.get('x-idempotent-replay'), null);
  let script = await post(svc, '/query_script', { draft_id: id });
  assert.equal(script.json.output.tracks[0].segments.length, 1);

  const c = await post(svc, '/mcp/add_video', body, { 'x-idempotency-key': 'k-2' });
  assert.notEqual(c.json.output.clip_id, a.json.output.clip_id);
  script = await post(svc, '/query_script', { draft_id: id });
  assert.equal(script.json.output.tracks[0].segments.length, 2);

  // create_draft too: a retried create must not make a second draft
  const d1 = await post(svc, '/mcp/create_draft', { project_name: 'once' }, { 'x-idempotency-key': 'create-1' });
  const d2 = await post(svc, '/mcp/create_draft', { project_name: 'once' }, { 'x-idempotency-key': 'create-1' });
  assert.equal(d2.json.output.draft_id, d1.json.output.draft_id);
});

test('idempotent replays expire after the configured time', async () => {
  const svc = await start({ idempotencyTtlMs: 200 });
  const a = await post(svc, '/mcp/create_draft', {}, { 'x-idempotency-key': 'short' });
  await sleep(400);
  const b = await post(svc, '/mcp/create_draft', {}, { 'x-idempotency-key': 'short' });
  assert.notEqual(b.json.output.draft_id, a.json.output.draft_id);
});

test('apiKey option: writes without the right X-Api-Key get 401, reads do not need it', async () => {
  const svc = await start({ apiKey: 'k3y' });
  assert.equal((await post(svc, '/mcp/create_draft', {})).status, 401);
  assert.equal((await post(svc, '/mcp/create_draft', {}, { 'x-api-key': 'wrong' })).status, 401);
  assert.equal((await post(svc, '/mcp/create_draft', {}, { 'x-api-key': 'k3y' })).json.success, true);
  assert.equal((await post(svc, '/query_script', { draft_id: 'dft_000001' })).json.success, true);
});

test('JSON-RPC 2.0 on /mcp: tools/list, tools/call, capcut_* methods, batches, notifications and errors', async () => {
  const svc = await start();
  const list = await rpc(svc, { jsonrpc: '2.0', id: 1, method: 'tools/list' });
  assert.equal(list.status, 200);
  assert.equal(list.json.id, 1);
  const names = list.json.result.tools.map((t: Json) => t.name);
  for (const n of ['capcut_create_draft', 'capcut_add_video', 'capcut_add_text', 'capcut_add_audio', 'capcut_add_image', 'capcut_save_draft', 'capcut_query_script']) assert.ok(names.includes(n), n);
  assert.equal(list.json.result.tools[0].inputSchema.type, 'object');

  const call = await rpc(svc, { jsonrpc: '2.0', id: 'a', method: 'tools/call', params: { name: 'capcut_create_draft', arguments: { width: 1080, height: 1080 } } });
  assert.equal(call.json.id, 'a');
  assert.equal(call.json.result.isError, false);
  const id: string = call.json.result.structuredContent.output.draft_id;
  assert.equal(JSON.parse(call.json.result.content[0].text).output.draft_id, id);

  const direct = await rpc(svc, { jsonrpc: '2.0', id: 2, method: 'capcut_add_video', params: { draft_id: id, video_url: 'https://cdn.example/v.mp4', start: 0, end: 1 } });
  assert.equal(direct.json.result.success, true);
  const script = await rpc(svc, { jsonrpc: '2.0', id: 3, method: 'capcut_query_script', params: { draft_id: id } });
  assert.equal(script.json.result.output.tracks[0].segments.length, 1);

  const failing = await rpc(svc, { jsonrpc: '2.0', id: 4, method: 'tools/call', params: { name: 'capcut_query_script', arguments: { draft_id: 'dft_nope' } } });
  assert.equal(failing.json.result.isError, true);

  const unknownMethod = await rpc(svc, { jsonrpc: '2.0', id: 5, method: 'capcut_fly_to_moon' });
  assert.equal(unknownMethod.status, 200);
  assert.equal(unknownMethod.json.error.code, -32601);
  assert.equal(unknownMethod.json.id, 5);

  const unknownTool = await rpc(svc, { jsonrpc: '2.0', id: 6, method: 'tools/call', params: { name: 'nope' } });
  assert.equal(unknownTool.json.error.code, -32602);

  const parseError = await rpc(svc, '{"jsonrpc":"2.0", "id": 7, "method": ');
  assert.equal(parseError.status, 400);
  assert.equal(parseError.json.error.code, -32700);
  assert.equal(parseError.json.id, null);

  const invalid = await rpc(svc, { id: 8, method: 'tools/list' });
  assert.equal(invalid.json.error.code, -32600);

  const batch = await rpc(svc, [{ jsonrpc: '2.0', id: 9, method: 'ping' }, { jsonrpc: '2.0', method: 'notifications/initialized' }, { jsonrpc: '2.0', id: 10, method: 'initialize', params: {} }]);
  assert.equal(batch.json.length, 2);
  assert.deepEqual(batch.json.map((r: Json) => r.id), [9, 10]);
  assert.ok(batch.json[1].result.protocolVersion);

  const notification = await post(svc, '/mcp', { jsonrpc: '2.0', method: 'notifications/initialized' });
  assert.equal(notification.status, 202);
});

test('service time: default and per-request X-Service-Time-Ms delay answers at least that long', async () => {
  const svc = await start({ serviceTimeMs: 150 });
  let t0 = performance.now();
  await get(svc, '/get_font_types');
  assert.ok(performance.now() - t0 >= 140, 'default service time applied');
  t0 = performance.now();
  await post(svc, '/query_script', { draft_id: 'dft_000001' }, { 'x-service-time-ms': '400' });
  assert.ok(performance.now() - t0 >= 390, 'header override applied');
  // /health is not a draft-service call: no service time, so it answers while others are slow
  const slow = post(svc, '/query_script', { draft_id: 'dft_000001' }, { 'x-service-time-ms': '1500' });
  await waitFor('slow call arrived', () => svc.stats().inFlight === 1, 5000, 5);
  const health = await get(svc, '/health');
  assert.equal(health.status, 200);
  assert.equal(svc.stats().inFlight, 1, 'the slow call is still being worked on when /health answers');
  await slow;
});

test('maxConcurrency: excess calls wait in a FIFO and are served in arrival order', async () => {
  const svc = await start({ maxConcurrency: 2, serviceTimeMs: 300 });
  const order: number[] = [];
  const calls: Promise<void>[] = [];
  for (let i = 0; i < 6; i++) {
    calls.push(get(svc, `/api/patterns/list?category=c${i}`).then(() => { order.push(i); }));
    // make the arrival order deterministic
    await waitFor(`request ${i} arrived`, () => svc.stats().requests === i + 1, 5000, 5);
  }
  const queued = await waitFor('4 calls queued', async () => {
    const s = (await get(svc, '/__stats')).json;
    return s.queued === 4 ? s : null;
  }, 5000, 10);
  assert.equal(queued.inFlight, 6);
  await Promise.all(calls);
  assert.deepEqual(order.slice(0, 2).sort(), [0, 1]);
  assert.deepEqual(order.slice(2, 4).sort(), [2, 3]);
  assert.deepEqual(order.slice(4).sort(), [4, 5]);
  assert.equal(svc.stats().queued, 0);
  assert.equal(svc.stats().peakInFlight, 6);
});

test('stats() and /__stats count requests per path; POST /__stats resets them', async () => {
  const svc = await start();
  await get(svc, '/get_font_types');
  await get(svc, '/get_font_types');
  await post(svc, '/query_script', { draft_id: 'dft_000001' });
  await get(svc, '/get_font_types?x=1');
  const s = svc.stats();
  assert.equal(s.requests, 4);
  assert.deepEqual(s.byPath, { '/get_font_types': 3, '/query_script': 1 });
  const viaHttp = (await get(svc, '/__stats')).json;
  assert.equal(viaHttp.requests, 4, '/__stats does not count itself');
  await post(svc, '/__stats', {});
  assert.equal(svc.stats().requests, 0);
  await get(svc, '/health');
  svc.resetStats();
  assert.deepEqual(svc.stats().byPath, {});
});

test('extras: SSE arrives event by event', async () => {
  const svc = await start();
  const res = await fetch(svc.url + '/stream/sse?events=3&interval_ms=400');
  assert.equal(res.headers.get('content-type'), 'text/event-stream');
  const reader = res.body!.getReader();
  const first = Buffer.from((await reader.read()).value!).toString();
  assert.match(first, /^id: 1\nevent: progress\ndata: \{"seq":1/);
  assert.doesNotMatch(first, /id: 3/, 'the first read did not wait for the whole stream');
  let rest = '';
  for (let i = 0; i < 10; i++) {
    const r = await reader.read();
    if (r.done) break;
    rest += Buffer.from(r.value).toString();
  }
  assert.match(rest, /id: 2\n/);
  assert.match(rest, /id: 3\n/);
});

test('extras: download streams N bytes; echo, status, slow and headers', async () => {
  const svc = await start();
  const big = await fetch(svc.url + '/download?bytes=3000000');
  assert.equal(big.headers.get('content-length'), '3000000');
  assert.equal((await big.arrayBuffer()).byteLength, 3_000_000);
  const chunked = await fetch(svc.url + '/download?bytes=100000&chunked=1');
  assert.equal(chunked.headers.get('content-length'), null);
  assert.equal((await chunked.arrayBuffer()).byteLength, 100_000);

  const echo = await fetch(svc.url + '/echo?a=1', { method: 'PUT', body: 'hello', headers: { 'x-test': 'yes' } }).then((r) => r.json()) as Json;
  assert.equal(echo.method, 'PUT');
  assert.equal(echo.url, '/echo?a=1');
  assert.equal(echo.body, 'hello');
  assert.equal(echo.body_bytes, 5);
  assert.equal(echo.headers['x-test'], 'yes');

  assert.equal((await get(svc, '/status/503')).status, 503);
  assert.equal((await fetch(svc.url + '/status/204')).status, 204);
  assert.equal((await get(svc, '/status/42')).status, 400);

  const t0 = performance.now();
  const slow = await get(svc, '/slow?ms=300');
  assert.ok(performance.now() - t0 >= 290);
  assert.equal(slow.json.slept_ms, 300);

  const h1 = await get(svc, '/headers?h=Cache-Control:max-age%3D60&h=ETag:%22v1%22&pad=2000');
  assert.equal(h1.headers.get('cache-control'), 'max-age=60');
  assert.equal(h1.headers.get('etag'), '"v1"');
  assert.ok(h1.bytes > 2000);
  const h2 = await get(svc, '/headers?h=Cache-Control:no-store');
  assert.equal(h2.json.seq, h1.json.seq + 1, 'each answer is new, so caches can be told apart from upstream');
});

test('extras: WebSocket echo on /ws (text, binary, ping, close)', async () => {
  const svc = await start();
  const ws = new WebSocket(svc.url.replace('http', 'ws') + '/ws');
  const messages: Array<{ data: Buffer; binary: boolean }> = [];
  ws.on('message', (data, binary) => messages.push({ data: data as Buffer, binary }));
  await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject); });
  ws.send('hello');
  const big = Buffer.alloc(70_000, 7);
  ws.send(big);
  const pong = new Promise<Buffer>((resolve) => ws.once('pong', resolve));
  ws.ping(Buffer.from('p'));
  assert.equal((await pong).toString(), 'p');
  await waitFor('two echoes', () => messages.length === 2, 5000);
  assert.equal(messages[0]!.data.toString(), 'hello');
  assert.equal(messages[0]!.binary, false);
  assert.ok(messages[1]!.binary);
  assert.ok(Buffer.compare(messages[1]!.data, big) === 0);
  const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
  ws.close(1000);
  assert.equal(await closed, 1000);
  assert.equal(svc.stats().byPath['/ws'], 1);
});

test('close() ends open keep-alive, SSE and WebSocket connections', async () => {
  const svc = await startDraftService({ seedDrafts: 1 });
  const ws = new WebSocket(svc.url.replace('http', 'ws') + '/ws');
  await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject); });
  const sse = await fetch(svc.url + '/stream/sse?events=1000&interval_ms=1000');
  const reader = sse.body!.getReader();
  await reader.read();
  const wsClosed = new Promise<void>((resolve) => ws.once('close', () => resolve()));
  await svc.close();
  await wsClosed;
  // the stream must end (done or error) instead of waiting for the 1000 events it was promised
  const drain = async () => { for (let i = 0; i < 1000; i++) if ((await reader.read()).done) return; };
  const ended = await Promise.race([drain().then(() => true, () => true), sleep(5000).then(() => false)]);
  assert.ok(ended, 'the SSE stream was closed by close()');
});

test('CLI: main.js --port 0 --service-time 5ms prints a listening line, serves, exits 0 on SIGTERM', async (t) => {
  assert.equal(parseDurationMs('5ms'), 5);
  assert.equal(parseDurationMs('0.2s'), 200);
  assert.equal(parseDurationMs('1m'), 60_000);
  assert.equal(parseDurationMs('7'), 7);
  assert.throws(() => parseDurationMs('fast'));

  const child = spawn(process.execPath, [join(buildRoot(), 'examples', 'draft-service', 'main.js'), '--port', '0', '--service-time', '5ms', '--max-concurrency', '4', '--seed-drafts', '10'], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  const lines = createInterface({ input: child.stdout! });
  const first = await new Promise<string>((resolve, reject) => {
    lines.once('line', resolve);
    child.once('exit', (code) => reject(new Error(`exited ${code}`)));
  });
  const ready = JSON.parse(first);
  assert.match(ready.msg, /listening/);
  const health = await fetch(`http://127.0.0.1:${ready.port}/health`).then((r) => r.json());
  assert.deepEqual(health, { status: 'ok' });
  const script = await fetch(`http://127.0.0.1:${ready.port}/query_script`, { method: 'POST', body: '{"draft_id":"dft_000010"}' }).then((r) => r.json()) as Json;
  assert.equal(script.success, true);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  assert.equal(await exited, 0);
});
