/**
 * The operations of the example draft service, one per path (`/add_video`, `/query_script`, ...), and what the
 * MCP bridge stand-in calls. Each takes the parsed JSON body and answers as the real service does: HTTP 200
 * with `{"error": "", "output": ..., "success": true}`, or `{"error": "...", "output": "", "success": false}`.
 * Like the real service, some writes change the draft and then fail (add_subtitle without a font, add_effect
 * without params), and a write to a draft id that does not exist creates that draft.
 */
import { EFFECTS, TYPE_LISTS } from './catalog';
import type { ClipArgs, ClipKind, DraftId, DraftStore } from './drafts';

export type Envelope = Record<string, unknown> & { success: boolean };
/** An envelope, or the same already serialised. */
export type Outcome = Envelope | Buffer;

export interface CallContext {
  /** From X-User-Id; owner of drafts this call creates. */
  userId: string;
}

export type Args = Record<string, unknown>;
export type Operation = (args: Args, ctx: CallContext) => Outcome;

/** The operations that change drafts: every one may change the draft it names, whatever it answers. */
export const WRITE_OPERATIONS: ReadonlySet<string> = new Set([
  'create_draft', 'add_video', 'add_audio', 'add_text', 'add_subtitle', 'add_image', 'add_effect', 'add_sticker',
  'add_video_keyframe', 'save_draft',
]);

/** The POST operations: the writes and the two per-draft reads. */
export const POST_OPERATIONS: readonly string[] = [...WRITE_OPERATIONS, 'query_script', 'query_draft_status'];

export const fail = (error: string): Envelope => ({ error, output: '', success: false });
const ok = (output: unknown): Envelope => ({ error: '', output, success: true });

function num(args: Args, name: string, dflt: number): number {
  const v = args[name];
  return typeof v === 'number' && Number.isFinite(v) ? v : dflt;
}

function str(args: Args, name: string): string | undefined {
  const v = args[name];
  return typeof v === 'string' ? v : undefined;
}

/** The draft id as sent: a string or a number (kept apart), else none. */
function draftIdOf(args: Args): DraftId | undefined {
  const v = args.draft_id;
  return typeof v === 'string' && v !== '' ? v : typeof v === 'number' ? v : undefined;
}

const draftUrl = (id: DraftId): string => `F:\\jianyin\\cgwz\\JianyingPro Drafts\\${id}`;
const written = (id: DraftId): Envelope => ok({ draft_id: id, draft_url: draftUrl(id) });

/** SRT text -> [start, end, text] cues (seconds). */
function parseSrt(srt: string): Array<[number, number, string]> {
  const t = (h: string, m: string, s: string, ms: string) => Number(h) * 3600 + Number(m) * 60 + Number(s) + Number(ms) / 1000;
  const cues: Array<[number, number, string]> = [];
  for (const block of srt.replace(/\\n|\/n/g, '\n').split(/\n\s*\n/)) {
    const m = /(\d+):(\d+):(\d+)[,.](\d+)\s*-->\s*(\d+):(\d+):(\d+)[,.](\d+)\s*\n([\s\S]*)/.exec(block);
    if (m) cues.push([t(m[1]!, m[2]!, m[3]!, m[4]!), t(m[5]!, m[6]!, m[7]!, m[8]!), m[9]!.trim()]);
  }
  return cues;
}

export function buildOperations(store: DraftStore): Map<string, Operation> {
  const ops = new Map<string, Operation>();
  const target = (args: Args, ctx: CallContext) => store.getOrCreate(draftIdOf(args), ctx.userId, num(args, 'width', 1080), num(args, 'height', 1920));

  ops.set('create_draft', (args, ctx) => {
    const width = num(args, 'width', 1080);
    const height = num(args, 'height', 1920);
    if (width <= 0 || height <= 0 || width > 8192 || height > 8192) return fail('创建草稿时发生错误: width and height must be between 1 and 8192');
    const draft = store.getOrCreate(draftIdOf(args), ctx.userId, Math.round(width), Math.round(height));
    return written(draft.id);
  });

  const addClip = (kind: ClipKind, urlField: string | null, missing: string) => (args: Args, ctx: CallContext): Outcome => {
    const url = urlField ? str(args, urlField) : undefined;
    const text = str(args, 'text');
    if ((urlField && !url) || (kind === 'text' && !text)) return fail(missing);
    const start = num(args, 'start', 0);
    const end = num(args, 'end', kind === 'image' ? start + 3 : start + 5);
    const clip: ClipArgs = {
      kind, url, text, start, end, track_name: str(args, 'track_name'), volume: num(args, 'volume', 1),
      font: str(args, 'font'), font_size: num(args, 'font_size', 8), font_color: str(args, 'font_color') ?? str(args, 'color'),
    };
    const draft = target(args, ctx);
    store.addClip(draft, clip);
    return written(draft.id);
  };
  ops.set('add_video', addClip('video', 'video_url', "缺少必需参数 'video_url'"));
  ops.set('add_audio', addClip('audio', 'audio_url', "缺少必需参数 'audio_url'"));
  ops.set('add_image', addClip('image', 'image_url', "Hi, the required parameters 'image_url' are missing."));
  ops.set('add_text', addClip('text', null, "Hi, the required parameters 'text', 'start' or 'end' are missing. "));

  ops.set('add_sticker', (args, ctx) => {
    const sticker = str(args, 'sticker_id');
    if (!sticker) return fail("Hi, the required parameter 'sticker_id' is missing. Please add it and try again. ");
    const draft = target(args, ctx);
    const start = num(args, 'start', 0);
    store.addClip(draft, { kind: 'sticker', resource: sticker, start, end: num(args, 'end', start + 5), track_name: str(args, 'track_name') });
    return written(draft.id);
  });

  // The real add_subtitle adds the track, then fails when no font is given: the draft changed all the same.
  ops.set('add_subtitle', (args, ctx) => {
    const srt = str(args, 'srt');
    if (!srt) return fail("缺少必需参数 'srt'");
    const draft = target(args, ctx);
    const offset = num(args, 'time_offset', 0);
    for (const [start, end, text] of parseSrt(srt)) {
      store.addClip(draft, { kind: 'subtitle', text, start: start + offset, end: end + offset, track_name: str(args, 'track_name') ?? 'subtitle', font: str(args, 'font') });
    }
    store.ensureTrack(draft, 'text', str(args, 'track_name') ?? 'subtitle');
    if (str(args, 'font') === undefined) return fail("处理字幕时发生错误: cannot access free variable 'font_type' where it is not associated with a value in enclosing scope");
    return written(draft.id);
  });

  // The real add_effect creates the effect track before it reads `params`: without them it fails after the change.
  ops.set('add_effect', (args, ctx) => {
    const effect = str(args, 'effect_type');
    if (!effect) return fail("Hi, the required parameters 'effect_type' are missing. Please add them and try again.");
    if (!EFFECTS.has(effect)) return fail(`Error occurred while adding effect: '${effect}'. `);
    const draft = target(args, ctx);
    const trackName = str(args, 'track_name') ?? 'effect_01';
    store.ensureTrack(draft, 'effect', trackName);
    if (!Array.isArray(args.params)) return fail("Error occurred while adding effect: 'NoneType' object is not subscriptable. ");
    const start = num(args, 'start', 0);
    store.addClip(draft, { kind: 'effect', resource: effect, start, end: num(args, 'end', 3), track_name: trackName });
    return written(draft.id);
  });

  ops.set('add_video_keyframe', (args, ctx) => {
    const draft = target(args, ctx);
    const trackName = str(args, 'track_name') ?? 'video_main';
    const value = args.value === undefined ? '1.0' : String(args.value);
    if (!store.addKeyframe(draft, trackName, str(args, 'property_type') ?? 'alpha', num(args, 'time', 0), value)) {
      return fail(`Error occurred while adding keyframe: Failed to add keyframe: 不存在名为 '${trackName}' 的轨道.`);
    }
    return written(draft.id);
  });

  ops.set('save_draft', (args) => {
    const id = draftIdOf(args);
    const draft = typeof id === 'string' ? store.get(id.trim()) : undefined;
    if (typeof id !== 'string' || !id.trim()) return fail("缺少必需参数 'draft_id'");
    if (!draft) return fail(`保存草稿时发生错误: draft ${id} not found`);
    const task = store.startSave(draft);
    return { message: 'Draft save task started successfully', success: true, task_id: task.taskId };
  });

  ops.set('query_draft_status', (args) => {
    const id = args.task_id;
    if (!id) return fail("缺少必需参数 'task_id'");
    const status = store.saveStatus(String(id));
    return status ? { ...status } : fail(`未找到ID为 ${String(id)} 的任务。请检查任务ID是否正确`);
  });

  // force_update defaults to true, and re-reads media metadata: a read that can change the draft.
  ops.set('query_script', (args) => {
    const id = draftIdOf(args);
    if (id === undefined) return fail("缺少必需参数 'draft_id'");
    const draft = store.get(id);
    if (!draft) return fail(`草稿 ${id} 在缓存中不存在`);
    if (args.force_update !== false) store.refreshMedia(draft);
    return store.scriptBody(draft);
  });

  for (const [kind, names] of Object.entries(TYPE_LISTS)) {
    const body = Buffer.from(JSON.stringify(ok(names.map((name) => ({ name })))));
    ops.set(`get_${kind}_types`, () => body);
  }
  return ops;
}

export function toEnvelope(o: Outcome): Envelope {
  return Buffer.isBuffer(o) ? (JSON.parse(o.toString('utf8')) as Envelope) : o;
}

export function toBuffer(o: Outcome): Buffer {
  return Buffer.isBuffer(o) ? o : Buffer.from(JSON.stringify(o));
}
