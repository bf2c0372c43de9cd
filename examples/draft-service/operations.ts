/**
 * The operations of the example draft service, shared by the REST paths (`/mcp/add_video`, `/query_script`, ...)
 * and the JSON-RPC endpoint (`tools/call`, `capcut_*`). Each takes the parsed arguments and answers the
 * service's envelope: `{success:true, output}` or `{success:false, error}` (the real service answers errors
 * with HTTP 200 too). Hot reads answer a pre-serialised Buffer of that envelope.
 */
import { PATTERNS, PATTERNS_BY_ID, TYPE_LISTS } from './catalog';
import type { ClipArgs, ClipKind, DraftStore } from './drafts';

export type Envelope = { success: true; output: unknown } | { success: false; error: string };
/** An envelope, or the same already serialised. */
export type Outcome = Envelope | Buffer;

export interface CallContext {
  /** From X-User-Id; owner of drafts this call creates. */
  userId: string;
}

export type Args = Record<string, unknown>;
export type Operation = (args: Args, ctx: CallContext) => Outcome;

/** Which operations change data (they accept X-Idempotency-Key). */
export const WRITE_OPERATIONS: ReadonlySet<string> = new Set(['create_draft', 'add_video', 'add_text', 'add_audio', 'add_image', 'save_draft']);

const fail = (error: string): Envelope => ({ success: false, error });
const ok = (output: unknown): Envelope => ({ success: true, output });

function optNumber(args: Args, name: string, dflt: number): number | string {
  const v = args[name];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'number' || !Number.isFinite(v)) return `${name} must be a number`;
  return v;
}

function optString(args: Args, name: string): string | undefined {
  const v = args[name];
  return typeof v === 'string' ? v : undefined;
}

export function buildOperations(store: DraftStore): Map<string, Operation> {
  const ops = new Map<string, Operation>();

  const draftForWrite = (args: Args, ctx: CallContext) => {
    const id = optString(args, 'draft_id');
    return (id && store.get(id)) || store.create(ctx.userId, 'Untitled project', 1080, 1920);
  };

  ops.set('create_draft', (args, ctx) => {
    const width = optNumber(args, 'width', 1080);
    const height = optNumber(args, 'height', 1920);
    if (typeof width === 'string') return fail(width);
    if (typeof height === 'string') return fail(height);
    if (width <= 0 || height <= 0 || width > 8192 || height > 8192) return fail('width and height must be between 1 and 8192');
    const draft = store.create(ctx.userId, optString(args, 'project_name') ?? 'Untitled project', Math.round(width), Math.round(height));
    return ok({ draft_id: draft.id, draft_url: `https://drafts.example.invalid/${draft.id}` });
  });

  const addClip = (kind: ClipKind, urlField: string | null) => (args: Args, ctx: CallContext): Outcome => {
    const url = urlField ? optString(args, urlField) : undefined;
    if (urlField && !url) return fail(`${urlField} is required`);
    const text = optString(args, 'text');
    if (kind === 'text' && text === undefined) return fail('text is required');
    const start = optNumber(args, 'start', 0);
    if (typeof start === 'string') return fail(start);
    const end = optNumber(args, 'end', start + 5);
    if (typeof end === 'string') return fail(end);
    if (start < 0 || end <= start) return fail('need 0 <= start < end');
    const volume = optNumber(args, 'volume', 1);
    if (typeof volume === 'string') return fail(volume);
    const fontSize = optNumber(args, 'font_size', 8);
    if (typeof fontSize === 'string') return fail(fontSize);
    const clip: ClipArgs = { kind, url, text, start, end, volume, font: optString(args, 'font'), font_size: fontSize, font_color: optString(args, 'font_color') };
    const draft = draftForWrite(args, ctx);
    const clipId = store.addClip(draft, clip);
    return ok({ draft_id: draft.id, clip_id: clipId, draft_url: `https://drafts.example.invalid/${draft.id}` });
  };
  ops.set('add_video', addClip('video', 'video_url'));
  ops.set('add_audio', addClip('audio', 'audio_url'));
  ops.set('add_image', addClip('image', 'image_url'));
  ops.set('add_text', addClip('text', null));

  ops.set('save_draft', (args) => {
    const id = optString(args, 'draft_id');
    const draft = id ? store.get(id) : undefined;
    if (!draft) return fail(`draft ${id ?? '(none)'} not found`);
    const task = store.startSave(draft);
    return ok({ task_id: task.taskId, draft_id: draft.id });
  });

  ops.set('query_draft_status', (args) => {
    const id = optString(args, 'task_id');
    const status = id ? store.saveStatus(id) : undefined;
    return status ? ok(status) : fail(`task ${id ?? '(none)'} not found`);
  });

  ops.set('query_script', (args) => {
    const id = optString(args, 'draft_id');
    const draft = id ? store.get(id) : undefined;
    if (!draft) return fail(`draft ${id ?? '(none)'} not found`);
    return store.scriptBody(draft, args.force_update === true);
  });

  for (const [kind, names] of Object.entries(TYPE_LISTS)) {
    const body = Buffer.from(JSON.stringify(ok(names.map((name) => ({ name })))));
    ops.set(`get_${kind}_types`, () => body);
  }

  const allPatterns = Buffer.from(JSON.stringify(ok({ patterns: PATTERNS.map(({ slots: _s, style: _t, ...summary }) => summary), total: PATTERNS.length })));
  ops.set('list_patterns', (args) => {
    const category = optString(args, 'category');
    if (!category) return allPatterns;
    const found = PATTERNS.filter((p) => p.category === category).map(({ slots: _s, style: _t, ...summary }) => summary);
    return ok({ patterns: found, total: found.length });
  });

  ops.set('get_pattern', (args) => {
    const id = optString(args, 'id');
    const p = id ? PATTERNS_BY_ID.get(id) : undefined;
    return p ? ok(p) : fail(`pattern ${id ?? '(none)'} not found`);
  });

  return ops;
}

export function toEnvelope(o: Outcome): Envelope {
  return Buffer.isBuffer(o) ? (JSON.parse(o.toString('utf8')) as Envelope) : o;
}

export function toBuffer(o: Outcome): Buffer {
  return Buffer.isBuffer(o) ? o : Buffer.from(JSON.stringify(o));
}
