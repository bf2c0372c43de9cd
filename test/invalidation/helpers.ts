/**
 * Shared by the invalidation and warm-up tests: HTTP on fresh connections (so requests spread over the
 * workers of a sidecar), a policy in front of the example draft service, admin calls with the token.
 */
import http from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { TestContext } from 'node:test';
import { spawnSync } from 'node:child_process';
import { basicPolicy } from '../helpers/sidecar';
import { REDIS_CLI } from '../helpers/redis';
import { tempDir as makeTempDir } from '../helpers/temp-dir';

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export function request(base: string, opts: { method?: string; path: string; body?: string; headers?: Record<string, string> }): Promise<Reply> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...opts.headers };
    if (opts.body !== undefined) {
      headers['content-type'] ??= 'application/json';
      headers['content-length'] = String(Buffer.byteLength(opts.body));
    }
    const req = http.request({ host: u.hostname, port: Number(u.port), method: opts.method ?? 'GET', path: opts.path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.setTimeout(30_000, () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end(opts.body);
  });
}

export const queryScript = (base: string, draftId: string, userId = '7'): Promise<Reply> =>
  request(base, { method: 'POST', path: '/query_script', body: JSON.stringify({ draft_id: draftId, force_update: false }), headers: { 'x-user-id': userId } });

export const addVideo = (base: string, draftId: string, userId = '7'): Promise<Reply> =>
  request(base, { method: 'POST', path: '/add_video', body: JSON.stringify({ draft_id: draftId, video_url: 'https://v.example.invalid/a.mp4', start: 0, end: 3 }), headers: { 'x-user-id': userId } });

export const userDrafts = (base: string, userId: string): Promise<Reply> =>
  request(base, { path: '/get_font_types', headers: { 'x-user-id': userId } });

export const pattern = (base: string, id: string): Promise<Reply> => request(base, { path: `/api/drafts/preview/${id}` });

export function cacheStatus(r: Reply): string {
  return String(r.headers['cache-status'] ?? '');
}

export function isHit(r: Reply): boolean {
  return /^bridge-sidecar; hit\b/.test(cacheStatus(r));
}

export function tempDir(t: TestContext, prefix = 'bridge-inv-'): string {
  return makeTempDir(t, prefix);
}

/** A token file for the admin endpoints; returns [path, token]. */
export function tokenFile(dir: string): [string, string] {
  const token = randomBytes(12).toString('hex');
  const f = join(dir, 'admin-token');
  writeFileSync(f, token + '\n');
  return [f, token];
}

export function admin(adminUrl: string, token: string, path: string, body: unknown): Promise<Reply> {
  return request(adminUrl, { method: 'POST', path, body: JSON.stringify(body), headers: { authorization: `Bearer ${token}` } });
}

export interface DraftPolicyOptions {
  redis?: string | null;
  cluster?: string[] | null;
  keyPrefix?: string;
  l3Dir?: string | null;
  cascade?: boolean;
  async?: boolean;
  workers?: number;
  tokenFile?: string | null;
  extraCache?: string;
  extraTop?: string;
}

/**
 * The contract's invalidation section in front of the example draft service, with routes whose keys the
 * three patterns cover: draft:{draft_id}:script (query_script, which also remembers user_id for cascades),
 * user:{user_id}:drafts:list (a per-user read), template:{template_id}:pattern.
 */
export function draftPolicy(upPort: number, o: DraftPolicyOptions = {}): string {
  const redis = o.cluster ? `redis: { cluster: [${o.cluster.map((s) => JSON.stringify(s)).join(', ')}], key_prefix: "${o.keyPrefix ?? 'inv:'}", command_timeout: 500ms }`
    : o.redis ? `redis: { url: "${o.redis}", key_prefix: "${o.keyPrefix ?? 'inv:'}", command_timeout: 500ms }` : '';
  const server: Record<string, string | number> = { workers: o.workers ?? 0 };
  if (o.tokenFile) server.admin_token_file = o.tokenFile;
  const shared = o.redis || o.cluster;
  return basicPolicy(upPort, `
${redis}
routes:
  - name: query_script
    match: { method: POST, path: /query_script, body: { force_update: false } }
    params: { draft_id: body.draft_id, user_id: header.x-user-id }
    cache: { key: "draft:{draft_id}:script", ttl: 5m, store_if: { "response.success": true } }
  - name: user_drafts
    match: { method: GET, path: /get_font_types }
    params: { user_id: header.x-user-id }
    cache: { key: "user:{user_id}:drafts:list", ttl: 5m }
  - name: pattern_get
    match: { method: GET, path: "/api/drafts/preview/{template_id}" }
    params: { template_id: path.template_id }
    cache: { key: "template:{template_id}:pattern", ttl: 1h }
  - name: create_draft
    match: { method: POST, path: /create_draft }
    params: { draft_id: response.output.draft_id, user_id: header.x-user-id }
    priority: high
    emits: [draft_updated]
  - name: add_video
    match: { method: POST, path: /add_video }
    params: { draft_id: body.draft_id, user_id: header.x-user-id }
    priority: high
    emits: [draft_updated]
${o.extraTop ?? ''}
cache:
  l1: { size: 16MB }
${shared ? '  l2: { ttl: 1h }' : ''}
${o.l3Dir ? `  l3: { path: "${o.l3Dir}", size: 64MB }` : ''}
  invalidation:
    triggers: [draft_updated, template_modified, user_preference_changed]
    patterns: ["draft:{draft_id}:*", "user:{user_id}:drafts:*", "template:{template_id}:*"]
    cascade: ${o.cascade ?? true}
    async: ${o.async ?? true}
${o.extraCache ?? ''}
`, server);
}

/** Whether L2's tag index (lib/cache/l2.ts) lists a key under this readable name (-c: follows Cluster redirects). */
export function inL2(port: number, readable: string, prefix = 'inv:'): boolean {
  const r = spawnSync(REDIS_CLI, ['-c', '-p', String(port), 'smembers', `${prefix}ct:${readable}`], { encoding: 'utf8' });
  return r.stdout.trim() !== '';
}

/**
 * How long a test waits for an invalidation to reach another pod: the point of those tests is that it does,
 * not how fast (a busy 2-core machine once took over 1 s); bench/invalidation.ts measures the delay.
 */
export const PROPAGATION_MARGIN_MS = 15_000;
