/**
 * The example draft service over real HTTP: the real service's API (writes, reads, the MCP bridge,
 * background saves, errors as HTTP 200 success:false, number vs string ids, force_update) and its test helpers, the load knobs (service time, concurrency cap), the extras other
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

type Json = any;

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

const script = (r: { json: Json }): Json => JSON.parse(r.json.output);
const queryScript = (svc: DraftService, draftId: unknown, forceUpdate?: boolean) =>
  post(svc, '/query_script', forceUpdate === undefined ? { draft_id: draftId } : { draft_id: draftId, force_update: forceUpdate });

test('the ten type lists, / by Accept, no /health; unknown paths 404 and wrong methods 405 as Flask pages', async () => {
  const svc = await start();
  for (const kind of ['intro_animation', 'outro_animation', 'transition', 'mask', 'font', 'text_intro', 'text_outro', 'text_loop_anim', 'video_scene_effect', 'video_character_effect']) {
    const r = await get(svc, `/get_${kind}_types`);
    assert.equal(r.status, 200, kind);
    assert.equal(r.json.success, true);
    assert.equal(r.json.error, '');
    assert.ok(Array.isArray(r.json.output) && r.json.output.length >= 9, kind);
    assert.equal(typeof r.json.output[0].name, 'string');
    assert.match(r.headers.get('content-type') ?? '', /application\/json/);
  }
  assert.equal((await get(svc, '/get_font_types')).json.output.length, 335, 'as many fonts as the real service lists');
  assert.equal((await get(svc, '/', { accept: 'application/json' })).json.output.version, '1.1.0');
  assert.match((await fetch(svc.url + '/')).headers.get('content-type') ?? '', /text\/html/);
  for (const path of ['/health', '/api/patterns/list', '/mcp/add_video', '/get_filter_types']) {
    const r = await fetch(svc.url + path);
    assert.equal(r.status, 404, path);
    assert.match(await r.text(), /404 Not Found/);
  }
  const head = await fetch(svc.url + '/get_font_types', { method: 'HEAD' });
  assert.equal(head.status, 200, 'HEAD works on GET routes, as in Flask');
  assert.equal(await head.text(), '');
  const wrongMethod = await fetch(svc.url + '/get_font_types', { method: 'POST', body: '{}' });
  assert.equal(wrongMethod.status, 405);
  assert.match(wrongMethod.headers.get('allow') ?? '', /GET/);
  assert.equal((await fetch(svc.url + '/query_script')).status, 405);
});

test('create_draft and every write answer {draft_id, draft_url}; query_script answers the draft as a JSON string', async () => {
  const svc = await start();
  const created = await post(svc, '/create_draft', { width: 1920, height: 1080 }, { 'x-user-id': 'alice' });
  assert.equal(created.status, 200);
  assert.equal(created.json.success, true);
  assert.equal(created.json.error, '');
  const id: string = created.json.output.draft_id;
  assert.match(id, /^dft_\d{6}$/);
  assert.match(created.json.output.draft_url, new RegExp(id));

  const first = await queryScript(svc, id, false);
  assert.equal(typeof first.json.output, 'string', 'the real service answers script.dumps(): a string');
  const doc = script(first);
  assert.equal(doc.draft_id, id);
  assert.equal(doc.user_id, 'alice');
  assert.deepEqual(doc.canvas_config, { width: 1920, height: 1080, ratio: '16:9' });
  assert.equal(doc.tracks.length, 0);

  for (const [path, body] of [
    ['/add_video', { draft_id: id, video_url: 'http://127.0.0.1/a.mp4', start: 0, end: 4, volume: 0.5 }],
    ['/add_text', { draft_id: id, text: 'Hello', start: 1, end: 3 }],
    ['/add_audio', { draft_id: id, audio_url: 'http://127.0.0.1/a.mp3', start: 0, end: 4, volume: 0.3 }],
    ['/add_image', { draft_id: id, image_url: 'http://127.0.0.1/a.jpg', start: 4, end: 6 }],
    ['/add_sticker', { draft_id: id, sticker_id: '7107529669750066445', start: 0, end: 2 }],
    ['/add_video_keyframe', { draft_id: id, track_name: 'video_main', property_type: 'alpha', time: 1, value: '0.5' }],
  ] as const) {
    const r = await post(svc, path, body);
    assert.equal(r.status, 200, path);
    assert.deepEqual(r.json, { error: '', output: { draft_id: id, draft_url: created.json.output.draft_url }, success: true }, path);
  }
  const after = script(await queryScript(svc, id, false));
  assert.deepEqual(after.tracks.map((t: Json) => t.name).sort(), ['audio_main', 'image_main', 'sticker_main', 'text_main', 'video_main']);
  assert.equal(after.duration, 6_000_000);
  assert.equal(after.materials.videos[0].path, 'http://127.0.0.1/a.mp4');
  assert.equal(after.keyframes.videos.length, 1);
});

test('query_script: force_update defaults to true and refreshes media metadata, which changes the draft', async () => {
  const svc = await start();
  const id: string = (await post(svc, '/create_draft', {})).json.output.draft_id;
  await post(svc, '/add_image', { draft_id: id, image_url: 'http://127.0.0.1/a.png' });
  const before = await queryScript(svc, id, false);
  assert.deepEqual([script(before).materials.images[0].width, script(before).materials.images[0].height], [0, 0]);
  const refreshed = await queryScript(svc, id);
  assert.deepEqual([script(refreshed).materials.images[0].width, script(refreshed).materials.images[0].height], [1080, 1920]);
  const afterwards = await queryScript(svc, id, false);
  assert.notEqual(afterwards.json.output, before.json.output, 'the refresh changed what force_update:false answers');
  assert.equal(afterwards.json.output, refreshed.json.output);
});

test('add_subtitle without a font and add_effect without params fail, and still change the draft', async () => {
  const svc = await start();
  const id: string = (await post(svc, '/create_draft', {})).json.output.draft_id;
  const v0 = (await queryScript(svc, id, false)).json.output;
  const sub = await post(svc, '/add_subtitle', { draft_id: id, srt: '1\n00:00:00,000 --> 00:00:01,500\nhello\n' });
  assert.equal(sub.status, 200);
  assert.equal(sub.json.success, false);
  assert.match(sub.json.error, /font_type/);
  const v1 = (await queryScript(svc, id, false)).json.output;
  assert.notEqual(v1, v0, 'the failed add_subtitle added its track');
  const fx = await post(svc, '/add_effect', { draft_id: id, effect_type: (await get(svc, '/get_video_scene_effect_types')).json.output[0].name });
  assert.equal(fx.json.success, false);
  const v2 = (await queryScript(svc, id, false)).json.output;
  assert.notEqual(v2, v1, 'the failed add_effect added its track');
  assert.ok(JSON.parse(v2).tracks.some((t: Json) => t.type === 'effect'));
  const unknown = await post(svc, '/add_effect', { draft_id: id, effect_type: 'NoSuchEffect' });
  assert.equal(unknown.json.success, false);
  assert.equal((await queryScript(svc, id, false)).json.output, v2, 'an unknown effect changes nothing');
  assert.equal((await post(svc, '/add_subtitle', { draft_id: id, font: 'x', srt: '1\n00:00:02,000 --> 00:00:03,000\nok\n' })).json.success, true);
});

test('a number draft_id is not the string draft_id; a write to an unknown id creates that draft', async () => {
  const svc = await start();
  assert.equal((await post(svc, '/create_draft', { draft_id: '4242' })).json.output.draft_id, '4242');
  assert.equal((await queryScript(svc, '4242', false)).json.success, true);
  const num = await queryScript(svc, 4242, false);
  assert.equal(num.status, 200);
  assert.equal(num.json.success, false, 'the service answers "not found" to the number');
  const w = await post(svc, '/add_text', { draft_id: 4242, text: 'n', start: 0, end: 1 });
  assert.equal(w.json.output.draft_id, 4242, 'a write with the number makes a draft of its own');
  assert.equal(script(await queryScript(svc, 4242, false)).tracks.length, 1);
  assert.equal(script(await queryScript(svc, '4242', false)).tracks.length, 0, 'the string draft did not change');

  const orphan = await post(svc, '/add_video', { draft_id: 'dft_unknown', video_url: 'http://127.0.0.1/b.mp4' }, { 'x-user-id': 'bob' });
  assert.equal(orphan.json.output.draft_id, 'dft_unknown');
  const doc = script(await queryScript(svc, 'dft_unknown', false));
  assert.equal(doc.user_id, 'bob');
  assert.equal(doc.tracks[0].segments.length, 1);
});

test('pre-seeded drafts exist and are stable', async () => {
  const svc = await start({ seedDrafts: 20 });
  for (const n of [1, 7, 20]) {
    const id = `dft_${String(n).padStart(6, '0')}`;
    const a = await fetch(svc.url + '/query_script', { method: 'POST', body: JSON.stringify({ draft_id: id, force_update: false }) }).then((r) => r.text());
    const b = await fetch(svc.url + '/query_script', { method: 'POST', body: JSON.stringify({ draft_id: id, force_update: false }) }).then((r) => r.text());
    assert.equal(a, b);
    const size = Buffer.byteLength(a);
    assert.ok(size >= 5 * 1024 && size <= 32 * 1024, `${id} is ${size} bytes`);
    assert.match(JSON.parse(JSON.parse(a).output).user_id, /^user_\d{3}$/);
  }
  assert.equal((await queryScript(svc, 'dft_000021', false)).json.success, false);
});

test('errors: HTTP 200 {error, output: "", success: false}, malformed JSON included', async () => {
  const svc = await start();
  const unknown = await queryScript(svc, 'dft_nope', false);
  assert.equal(unknown.status, 200);
  assert.deepEqual(unknown.json, { error: '草稿 dft_nope 在缓存中不存在', output: '', success: false });
  const noUrl = await post(svc, '/add_video', { draft_id: 'dft_000001' });
  assert.equal(noUrl.status, 200);
  assert.equal(noUrl.json.success, false);
  assert.equal((await post(svc, '/add_text', { draft_id: 'dft_000001' })).json.success, false);
  assert.equal((await post(svc, '/save_draft', { draft_id: 'dft_nope' })).json.success, false);
  assert.equal((await post(svc, '/add_video_keyframe', { draft_id: 'dft_000001', track_name: 'nope' })).json.success, false);
  const malformed = await post(svc, '/query_script', '{"draft_id": ');
  assert.equal(malformed.status, 200);
  assert.equal(malformed.json.success, false);
  assert.match(malformed.json.error, /400 Bad Request/);
  const unknownTask = await post(svc, '/query_draft_status', { task_id: 'task_nope' });
  assert.equal(unknownTask.status, 200);
  assert.equal(unknownTask.json.success, false);
});

test('save_draft answers at once with task_id = draft id; query_draft_status progresses step by step, then completes', async () => {
  const svc = await start({ saveDurationMs: 1500, progressStepMs: 500 });
  const save = await post(svc, '/save_draft', { draft_id: 'dft_000003' });
  assert.deepEqual(save.json, { message: 'Draft save task started successfully', success: true, task_id: 'dft_000003' });
  const seen: number[] = [];
  let final: Json = null;
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const st = (await post(svc, '/query_draft_status', { task_id: 'dft_000003' })).json;
    assert.equal(st.success, true);
    if (seen[seen.length - 1] !== st.progress) seen.push(st.progress);
    if (st.status === 'completed') {
      final = st;
      break;
    }
    assert.equal(st.status, 'processing');
    assert.ok(st.progress < 100);
    await sleep(100);
  }
  assert.ok(final, 'save completed');
  assert.equal(final.progress, 100);
  assert.ok(seen.length >= 3, `progress moved through steps: ${seen.join(',')}`);
  for (let i = 1; i < seen.length; i++) assert.ok(seen[i]! > seen[i - 1]!, `progress only rises: ${seen.join(',')}`);
});

test('X-Idempotency-Key (a test helper, not in the real service): the same key replays the first answer without a second effect', async () => {
  const svc = await start();
  const id: string = (await post(svc, '/create_draft', {})).json.output.draft_id;
  const body = { draft_id: id, video_url: 'http://127.0.0.1/c.mp4', start: 0, end: 2 };
  const a = await post(svc, '/add_video', body, { 'x-idempotency-key': 'k-1', 'x-api-key': 'secret' });
  const b = await post(svc, '/add_video', body, { 'x-idempotency-key': 'k-1', 'x-api-key': 'secret' });
  assert.deepEqual(b.json, a.json);
  assert.equal(b.headers.get('x-idempotent-replay'), 'true');
  assert.equal(a.headers.get('x-idempotent-replay'), null);
  assert.equal(script(await queryScript(svc, id, false)).tracks[0].segments.length, 1);
  await post(svc, '/add_video', body, { 'x-idempotency-key': 'k-2' });
  assert.equal(script(await queryScript(svc, id, false)).tracks[0].segments.length, 2);
  const d1 = await post(svc, '/create_draft', {}, { 'x-idempotency-key': 'create-1' });
  const d2 = await post(svc, '/create_draft', {}, { 'x-idempotency-key': 'create-1' });
  assert.equal(d2.json.output.draft_id, d1.json.output.draft_id);
});

test('idempotent replays expire after the configured time', async () => {
  const svc = await start({ idempotencyTtlMs: 200 });
  const a = await post(svc, '/create_draft', {}, { 'x-idempotency-key': 'short' });
  await sleep(400);
  const b = await post(svc, '/create_draft', {}, { 'x-idempotency-key': 'short' });
  assert.notEqual(b.json.output.draft_id, a.json.output.draft_id);
});

test('apiKey option: writes without the right X-Api-Key get 401, reads do not need it', async () => {
  const svc = await start({ apiKey: 'k3y' });
  assert.equal((await post(svc, '/create_draft', {})).status, 401);
  assert.equal((await post(svc, '/create_draft', {}, { 'x-api-key': 'wrong' })).status, 401);
  assert.equal((await post(svc, '/create_draft', {}, { 'x-api-key': 'k3y' })).json.success, true);
  assert.equal((await queryScript(svc, 'dft_000001')).json.success, true);
});

test('the MCP bridge on /mcp: initialize, tools/list, tools/call {name, arguments} as the service call, errors 400', async () => {
  const svc = await start();
  const init = await rpc(svc, { jsonrpc: '2.0', id: 0, method: 'initialize', params: {} });
  assert.equal(init.json.result.serverInfo.name, 'capcut-http-mcp-bridge');
  const list = await rpc(svc, { jsonrpc: '2.0', id: 1, method: 'tools/list' });
  assert.equal(list.status, 200);
  assert.equal(list.json.id, 1);
  assert.deepEqual(list.json.result.tools.map((t: Json) => t.name), ['create_draft', 'add_video', 'add_text', 'save_draft', 'health_check']);

  const created = await rpc(svc, { jsonrpc: '2.0', id: 'a', method: 'tools/call', params: { name: 'create_draft', arguments: { width: 1080, height: 1080 } } });
  assert.equal(created.json.id, 'a');
  const id: string = JSON.parse(created.json.result.content[0].text).output.draft_id;
  const text = await rpc(svc, { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'add_text', arguments: { draft_id: id, text: 'hi', start: 0, end: 1 } } });
  assert.equal(JSON.parse(text.json.result.content[0].text).success, true);
  assert.equal(script(await queryScript(svc, id, false)).tracks[0].name, 'text_main');
  const health = await rpc(svc, { jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'health_check', arguments: {} } });
  assert.equal(JSON.parse(health.json.result.content[0].text).status, 'unhealthy', 'the bridge asks the service for /health, which it does not have');
  const unknownTool = await rpc(svc, { jsonrpc: '2.0', id: 4, method: 'tools/call', params: { name: 'nope' } });
  assert.equal(unknownTool.json.result.isError, true);

  const unknownMethod = await rpc(svc, { jsonrpc: '2.0', id: 5, method: 'capcut_add_video' });
  assert.equal(unknownMethod.status, 400);
  assert.equal(unknownMethod.json.error.code, -32601);
  assert.equal((await rpc(svc, { id: 8, method: 'tools/list' })).json.error.code, -32600);
  const notification = await post(svc, '/mcp', { jsonrpc: '2.0', method: 'notifications/initialized' });
  assert.equal(notification.status, 204);
});

test('service time: default and per-request X-Service-Time-Ms delay answers at least that long', async () => {
  const svc = await start({ serviceTimeMs: 150 });
  let t0 = performance.now();
  await get(svc, '/get_font_types');
  assert.ok(performance.now() - t0 >= 140, 'default service time applied');
  t0 = performance.now();
  await post(svc, '/query_script', { draft_id: 'dft_000001' }, { 'x-service-time-ms': '400' });
  assert.ok(performance.now() - t0 >= 390, 'header override applied');
  // the test helpers are not draft-service calls: no service time, so /echo answers while others are slow
  const slow = post(svc, '/query_script', { draft_id: 'dft_000001' }, { 'x-service-time-ms': '1500' });
  await waitFor('slow call arrived', () => svc.stats().inFlight === 1, 5000, 5);
  const echo = await get(svc, '/echo');
  assert.equal(echo.status, 200);
  assert.equal(svc.stats().inFlight, 1, 'the slow call is still being worked on when /echo answers');
  await slow;
});

test('maxConcurrency: excess calls wait in a FIFO and are served in arrival order', async () => {
  // long enough that all six have arrived, and the stats been read, before the first two are done
  const svc = await start({ maxConcurrency: 2, serviceTimeMs: 1500 });
  const order: number[] = [];
  const calls: Promise<void>[] = [];
  for (let i = 0; i < 6; i++) {
    calls.push(get(svc, `/get_mask_types?c=${i}`).then(() => { order.push(i); }));
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
  await get(svc, '/get_mask_types');
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
  const masks = await fetch(`http://127.0.0.1:${ready.port}/get_mask_types`).then((r) => r.json()) as Json;
  assert.equal(masks.output.length, 9);
  const script = await fetch(`http://127.0.0.1:${ready.port}/query_script`, { method: 'POST', body: '{"draft_id":"dft_000010"}' }).then((r) => r.json()) as Json;
  assert.equal(script.success, true);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  assert.equal(await exited, 0);
});
