/**
 * The drafts and background saves of the example service, in memory.
 *
 * A draft is kept as the JSON document `query_script` returns (shaped like a CapCut draft_content.json:
 * canvas, materials, tracks of segments, keyframes, platform blocks), so reads only serialise it, once per
 * version. A new draft is seeded with the default materials a real editor puts in (canvas, speed, sound
 * channel mapping, placeholder, default text style...), which is why even an empty draft weighs ~5 KB.
 *
 * Pre-seeded drafts (`dft_000001` ... `dft_<seedDrafts>`) are generated lazily and deterministically on
 * first access, so a service with 1000 seeds starts instantly and answers the same bytes every run.
 */
import { randomUUID } from 'node:crypto';

export type ClipKind = 'video' | 'audio' | 'text' | 'image' | 'subtitle' | 'effect' | 'sticker';

/**
 * A draft id as the client sent it. The real service keeps a number id and a string id apart (`4242` is not
 * the draft `"4242"`), and so does this store.
 */
export type DraftId = string | number;

/** A fresh clip's arguments, already validated. Seconds for times. */
export interface ClipArgs {
  kind: ClipKind;
  /** The track it goes on (created when missing); default `<kind>_main`. */
  track_name?: string;
  /** Effect or sticker resource name. */
  resource?: string;
  url?: string;
  text?: string;
  start: number;
  end: number;
  volume?: number;
  font?: string;
  font_size?: number;
  font_color?: string;
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Obj = { [k: string]: Json };

export interface Draft {
  readonly id: DraftId;
  readonly userId: string;
  readonly doc: Obj;
  version: number;
  /** The query_script answer for the current version, built on first read. */
  body: Buffer | null;
}

export interface SaveTask {
  readonly taskId: string;
  readonly draftId: DraftId;
  readonly startedAt: number;
  readonly durationMs: number;
}

/** The real service answers a task's status at the top level, beside `success`. */
export interface SaveStatus {
  success: true;
  status: 'processing' | 'completed';
  progress: number;
  message: string;
  draft_url?: string;
}

const US = 1_000_000;

/** Small deterministic PRNG (mulberry32) so seeded drafts are identical on every run. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function hexId(rand: (() => number) | null): string {
  if (!rand) return randomUUID().toUpperCase();
  let s = '';
  for (let i = 0; i < 32; i++) s += Math.floor(rand() * 16).toString(16);
  return `${s.slice(0, 8)}-${s.slice(8, 12)}-${s.slice(12, 16)}-${s.slice(16, 20)}-${s.slice(20)}`.toUpperCase();
}

function ratioOf(w: number, h: number): string {
  const g = (a: number, b: number): number => (b === 0 ? a : g(b, a % b));
  const d = g(w, h) || 1;
  return `${w / d}:${h / d}`;
}

/** The document of an empty draft, with the default materials every new draft carries. */
function emptyDoc(id: DraftId, userId: string, name: string, width: number, height: number, now: number, rand: (() => number) | null): Obj {
  const canvasId = hexId(rand);
  const speedId = hexId(rand);
  const platform: Obj = { app_id: 3704, app_source: 'lv', app_version: '5.9.0', device_id: 'mcp-bridge', hard_disk_id: '', mac_address: '', os: 'linux', os_version: '6.1' };
  return {
    id,
    draft_id: id,
    user_id: userId,
    name,
    version: 360000,
    new_version: '110.0.0',
    revision: 0,
    create_time: now,
    update_time: now,
    duration: 0,
    fps: 30.0,
    color_space: 0,
    canvas_config: { width, height, ratio: ratioOf(width, height) },
    config: {
      adjust_max_index: 1, attachment_info: [], combination_max_index: 1, export_range: null, extract_audio_last_index: 1,
      lyrics_recognition_id: '', lyrics_sync: true, lyrics_taskinfo: [], maintrack_adsorb: true, material_save_mode: 0,
      multi_language_current: 'none', multi_language_list: [], multi_language_main: 'none', multi_language_mode: 'none',
      original_sound_last_index: 1, record_audio_last_index: 1, sticker_max_index: 1, subtitle_keywords_config: null,
      subtitle_recognition_id: '', subtitle_sync: true, subtitle_taskinfo: [], system_font_list: [], video_mute: false,
      zoom_info_params: null,
    },
    keyframe_graph_list: [],
    keyframes: { adjusts: [], audios: [], effects: [], filters: [], handwrites: [], stickers: [], texts: [], videos: [] },
    materials: {
      audios: [], videos: [], texts: [], images: [], effects: [], transitions: [], stickers: [], material_animations: [],
      audio_effects: [], audio_fades: [], beats: [], chromas: [], color_curves: [], digital_humans: [], drafts: [],
      flowers: [], green_screens: [], handwrites: [], hsl: [], log_color_wheels: [], loudnesses: [], manual_deformations: [],
      masks: [], plugin_effects: [], primary_color_wheels: [], realtime_denoises: [], shapes: [], smart_crops: [],
      tail_leaders: [], text_templates: [], time_marks: [], video_effects: [], video_trackings: [], vocal_beautifys: [],
      vocal_separations: [],
      canvases: [{ album_image: '', blur: 0.0, color: '', id: canvasId, image: '', image_id: '', image_name: '', source_platform: 0, team_id: '', type: 'canvas_color' }],
      speeds: [{ curve_speed: null, id: speedId, mode: 0, speed: 1.0, type: 'speed' }],
      sound_channel_mappings: [{ audio_channel_mapping: 0, id: hexId(rand), is_config_open: false, type: '' }],
      placeholders: [{ error_path: '', error_text: '', id: hexId(rand), meta_type: 'none', res_path: '', res_text: '', type: 'placeholder' }],
      vocal_beautify_defaults: [{ id: hexId(rand), type: 'vocal_beautify', strength: 0.5, enabled: false }],
      default_text_style: [{
        id: hexId(rand), type: 'text_style', font_path: '/fonts/Source_Han_Sans/SourceHanSansCN-Regular.otf', font_id: '6740435892441190919',
        font_title: 'Source_Han_Sans', font_size: 15.0, text_color: '#FFFFFF', text_alpha: 1.0, border_color: '#000000',
        border_width: 0.08, background_color: '', background_alpha: 1.0, shadow: { enabled: false, color: '#000000', alpha: 0.9, angle: -45.0, distance: 8.0, smoothing: 0.45 },
        alignment: 1, line_spacing: 0.02, letter_spacing: 0.0, bold: false, italic: false, underline: false,
      }],
      default_transition: [{ id: hexId(rand), type: 'transition', name: 'Dissolve', duration: 466666, is_overlap: true, category_id: '', platform: 'all' }],
    },
    tracks: [],
    mutable_config: null,
    cover: null,
    extra_info: null,
    free_render_index_mode_on: false,
    group_container: null,
    is_drop_frame_timecode: false,
    last_modified_platform: { ...platform },
    platform,
    relationships: [],
    render_index_track_mode_on: true,
    retouch_cover: null,
    source: 'default',
    static_cover_image_path: '',
    time_marks: null,
    // What CapCut keeps in draft_meta_info.json beside the content; the bridge returns both in one document.
    meta: {
      draft_cloud_capcut_purchase_info: '', draft_cloud_last_action_download: false, draft_cloud_purchase_info: '',
      draft_cloud_template_id: '', draft_cloud_tutorial_info: '', draft_cloud_videocut_purchase_info: '',
      draft_cover: 'draft_cover.jpg', draft_deeplink_url: '', draft_enterprise_info: { draft_enterprise_extra: '', draft_enterprise_id: '', draft_enterprise_name: '', enterprise_material: [] },
      draft_fold_path: `/data/drafts/${userId}/${id}`, draft_id: id, draft_is_ai_packaging_used: false, draft_is_ai_shorts: false,
      draft_is_ai_translate: false, draft_is_article_video_draft: false, draft_is_from_deeplink: 'false', draft_is_invisible: false,
      draft_materials: [0, 1, 2, 3, 6, 7, 8].map((type) => ({ type, value: [] as Json[] })),
      draft_materials_copied_info: [], draft_name: name, draft_new_version: '', draft_removable_storage_device: '',
      draft_root_path: `/data/drafts/${userId}`, draft_segment_extra_info: [], draft_timeline_materials_size_: 0,
      draft_type: '', tm_draft_cloud_completed: '', tm_draft_cloud_modified: 0, tm_draft_create: now * US, tm_draft_modified: now * US,
      tm_draft_removed: 0, tm_duration: 0,
    },
    export_settings: {
      resolution: height >= 2160 || width >= 2160 ? '4K' : '1080P', frame_rate: 30, format: 'mp4', codec: 'h264', bitrate: 'recommended',
      color_space: 'SDR - Rec.709', audio_codec: 'aac', audio_sample_rate: 44100, audio_bitrate: 192000, export_subtitles: false,
      export_audio_only: false, watermark: false, smart_hdr: false, optical_flow: false,
    },
  };
}

const TRACK_TYPE: Record<ClipKind, string> = { video: 'video', image: 'video', audio: 'audio', text: 'text', subtitle: 'text', effect: 'effect', sticker: 'sticker' };
const MATERIAL_LIST: Record<ClipKind, string> = { video: 'videos', image: 'images', audio: 'audios', text: 'texts', subtitle: 'texts', effect: 'video_effects', sticker: 'stickers' };
const DEFAULT_TRACK: Record<ClipKind, string> = { video: 'video_main', image: 'image_main', audio: 'audio_main', text: 'text_main', subtitle: 'subtitle', effect: 'effect_01', sticker: 'sticker_main' };

/** The track named `name` (of `type`), created when missing: what add_effect does before it can fail. */
export function trackOf(doc: Obj, type: string, name: string, rand: (() => number) | null = null): Obj {
  const tracks = doc.tracks as Obj[];
  let track = tracks.find((t) => t.name === name);
  if (!track) {
    track = { id: hexId(rand), type, attribute: 0, flag: 0, is_default_name: false, name, segments: [] };
    tracks.push(track);
  }
  return track;
}

/** Append a clip (material + segment on its named track); returns the segment id. */
function addClipToDoc(doc: Obj, clip: ClipArgs, rand: (() => number) | null): string {
  const materials = doc.materials as Obj;
  const tracks = doc.tracks as Obj[];
  const materialId = hexId(rand);
  const segmentId = hexId(rand);
  const start = Math.round(clip.start * US);
  const duration = Math.max(1, Math.round((clip.end - clip.start) * US));
  let material: Obj;
  switch (clip.kind) {
    case 'effect':
    case 'sticker':
      material = { id: materialId, type: clip.kind === 'effect' ? 'video_effect' : 'sticker', name: clip.resource ?? '', resource_id: clip.resource ?? '', value: 1.0, apply_target_type: 0 };
      break;
    case 'text':
    case 'subtitle':
      material = {
        id: materialId, type: 'text', content: JSON.stringify({ text: clip.text ?? '', styles: [{ font: { path: clip.font ?? 'Source_Han_Sans' }, size: clip.font_size ?? 8, fill: { content: { solid: { color: clip.font_color ?? '#FFFFFF' } } } }] }),
        font_name: clip.font ?? 'Source_Han_Sans', font_size: clip.font_size ?? 8, text_color: clip.font_color ?? '#FFFFFF',
        alignment: 1, typesetting: 0, check_flag: 7, text_size: 30, line_max_width: 0.82,
      };
      break;
    case 'audio':
      material = { id: materialId, type: 'extract_music', path: clip.url ?? '', name: (clip.url ?? '').split('/').pop() ?? '', duration: duration + start, music_id: hexId(rand), check_flag: 1, source_platform: 0, wave_points: [] };
      break;
    default:
      material = {
        id: materialId, type: clip.kind === 'image' ? 'photo' : 'video', path: clip.url ?? '', material_name: (clip.url ?? '').split('/').pop() ?? '',
        // 0x0 until a query_script with force_update reads the media's metadata, as the real service does
        width: 0, height: 0, duration: clip.kind === 'image' ? 10800 * US : duration + start,
        has_audio: clip.kind === 'video', crop: { lower_left_x: 0.0, lower_left_y: 1.0, lower_right_x: 1.0, lower_right_y: 1.0, upper_left_x: 0.0, upper_left_y: 0.0, upper_right_x: 1.0, upper_right_y: 0.0 },
        crop_ratio: 'free', crop_scale: 1.0, category_name: 'local', check_flag: 63487, source_platform: 0,
      };
  }
  (materials[MATERIAL_LIST[clip.kind]] as Obj[]).push(material);
  const track = trackOf(doc, TRACK_TYPE[clip.kind], clip.track_name ?? DEFAULT_TRACK[clip.kind], rand);
  (track.segments as Obj[]).push({
    id: segmentId, material_id: materialId,
    target_timerange: { start, duration },
    source_timerange: clip.kind === 'text' || clip.kind === 'subtitle' ? null : { start: 0, duration },
    speed: 1.0, volume: clip.volume ?? 1.0, visible: true, reverse: false, render_index: tracks.indexOf(track) * 10000 + (track.segments as Obj[]).length,
    clip: clip.kind === 'audio' ? null : { alpha: 1.0, flip: { horizontal: false, vertical: false }, rotation: 0.0, scale: { x: 1.0, y: 1.0 }, transform: { x: 0.0, y: 0.0 } },
    extra_material_refs: [((materials.speeds as Obj[])[0] as Obj).id as string],
    common_keyframes: [], keyframe_refs: [], enable_adjust: true, enable_color_curves: true, enable_lut: true, group_id: '',
  });
  const end = start + duration;
  if (end > (doc.duration as number)) doc.duration = end;
  return segmentId;
}

export interface DraftStoreOptions {
  /** Pre-seeded drafts dft_000001 ... (default 1000). */
  seedDrafts: number;
  /** How long a background save takes (default 3000 ms). */
  saveDurationMs: number;
  /** How often a running save's progress moves (default 1000 ms). */
  progressStepMs: number;
  /** Most drafts kept in memory; the oldest are forgotten beyond it, so write benchmarks stay bounded. */
  maxDrafts: number;
}

const SEEDED_ID = /^dft_(\d{6})$/;
const SEED_EPOCH = 1_735_689_600; // 2025-01-01, so seeded drafts have stable timestamps

/** The store's key: the JSON type is part of it, so `4242` and `"4242"` are two drafts. */
const keyOf = (id: DraftId): string => `${typeof id}:${id}`;

export class DraftStore {
  private readonly drafts = new Map<string, Draft>();
  private readonly tasks = new Map<string, SaveTask>();
  private nextId: number;

  constructor(private readonly opts: DraftStoreOptions) {
    this.nextId = opts.seedDrafts + 1;
  }

  get(id: DraftId): Draft | undefined {
    const found = this.drafts.get(keyOf(id));
    if (found) return found;
    const m = typeof id === 'string' ? SEEDED_ID.exec(id) : null;
    if (!m) return undefined;
    const n = Number(m[1]);
    if (n < 1 || n > this.opts.seedDrafts) return undefined;
    return this.remember(this.seeded(n));
  }

  /** A new draft: with the id the client chose (as the real service allows), else the next dft_NNNNNN. */
  create(userId: string, name: string, width: number, height: number, id?: DraftId): Draft {
    const draftId = id ?? `dft_${String(this.nextId++).padStart(6, '0')}`;
    const doc = emptyDoc(draftId, userId, name, width, height, Math.floor(Date.now() / 1000), null);
    return this.remember({ id: draftId, userId, doc, version: 1, body: null });
  }

  /** The draft a write goes to: the one named (created when it does not exist yet), or a new one. */
  getOrCreate(id: DraftId | undefined, userId: string, width = 1080, height = 1920): Draft {
    return (id !== undefined && this.get(id)) || this.create(userId, 'Untitled project', width, height, id);
  }

  addClip(draft: Draft, clip: ClipArgs): string {
    const clipId = addClipToDoc(draft.doc, clip, null);
    this.touch(draft);
    return clipId;
  }

  /** Creates the track (a change, even when the caller then fails, as add_effect does). */
  ensureTrack(draft: Draft, type: string, name: string): Obj {
    const before = (draft.doc.tracks as Obj[]).length;
    const track = trackOf(draft.doc, type, name);
    if ((draft.doc.tracks as Obj[]).length !== before) this.touch(draft);
    return track;
  }

  /** A keyframe on every segment of the named track; false when there is no such track. */
  addKeyframe(draft: Draft, trackName: string, property: string, time: number, value: string): boolean {
    const track = (draft.doc.tracks as Obj[]).find((t) => t.name === trackName);
    if (!track) return false;
    const keyframes = (draft.doc.keyframes as Obj).videos as Obj[];
    for (const seg of track.segments as Obj[]) {
      const id = hexId(null);
      keyframes.push({ id, segment_id: seg.id as string, property_type: property, time_offset: Math.round(time * US), values: [Number(value)] });
      (seg.keyframe_refs as Json[]).push(id);
    }
    this.touch(draft);
    return true;
  }

  /**
   * What force_update does: re-read the media's metadata. Media added since the last refresh get their size
   * (the real service reads it with ffprobe or from the image), so the draft changes. True when it did.
   */
  refreshMedia(draft: Draft): boolean {
    const materials = draft.doc.materials as Obj;
    const canvas = draft.doc.canvas_config as Obj;
    let changed = false;
    for (const list of ['videos', 'images'] as const) {
      for (const m of materials[list] as Obj[]) {
        if (m.width === 0 && m.height === 0) {
          m.width = canvas.width as number;
          m.height = canvas.height as number;
          changed = true;
        }
      }
    }
    if (changed) this.touch(draft);
    return changed;
  }

  /** `{"error":"","output":"<the draft as a JSON string>","success":true}`, serialised once per version. */
  scriptBody(draft: Draft): Buffer {
    draft.body ??= Buffer.from(`{"error":"","output":${JSON.stringify(JSON.stringify(draft.doc, null, 4))},"success":true}`);
    return draft.body;
  }

  /** The real service's save task id is the draft id. */
  startSave(draft: Draft): SaveTask {
    const task: SaveTask = { taskId: String(draft.id), draftId: draft.id, startedAt: Date.now(), durationMs: this.opts.saveDurationMs };
    this.tasks.delete(task.taskId);
    this.tasks.set(task.taskId, task);
    if (this.tasks.size > 10_000) this.tasks.delete(this.tasks.keys().next().value as string);
    return task;
  }

  /** Progress moves in whole steps (every progressStepMs) until the save's duration has passed. */
  saveStatus(taskId: string, now = Date.now()): SaveStatus | undefined {
    const t = this.tasks.get(taskId);
    if (!t) return undefined;
    const elapsed = now - t.startedAt;
    const done = elapsed >= t.durationMs;
    const step = this.opts.progressStepMs;
    const progress = done ? 100 : Math.min(99, Math.floor(((Math.floor(elapsed / step) * step) / t.durationMs) * 100));
    return done
      ? { success: true, status: 'completed', progress, message: 'draft saved', draft_url: `https://drafts.example.invalid/${t.draftId}/draft_content.json` }
      : { success: true, status: 'processing', progress, message: `saving draft (${progress}%)` };
  }

  get size(): number {
    return this.drafts.size;
  }

  private touch(draft: Draft): void {
    draft.version++;
    draft.body = null;
    draft.doc.revision = draft.version - 1;
    draft.doc.update_time = Math.floor(Date.now() / 1000);
  }

  private remember(d: Draft): Draft {
    this.drafts.set(keyOf(d.id), d);
    if (this.drafts.size > this.opts.maxDrafts) this.drafts.delete(this.drafts.keys().next().value as string);
    return d;
  }

  /** Seed n: its owner, canvas and 0-4 clips all derive from n. */
  private seeded(n: number): Draft {
    const rand = prng(n * 7919);
    const id = `dft_${String(n).padStart(6, '0')}`;
    const userId = `user_${String((n % 50) + 1).padStart(3, '0')}`;
    const portrait = rand() < 0.6;
    const doc = emptyDoc(id, userId, `Seeded project ${n}`, portrait ? 1080 : 1920, portrait ? 1920 : 1080, SEED_EPOCH + n * 60, rand);
    const clips = Math.floor(rand() * 5);
    let t = 0;
    for (let i = 0; i < clips; i++) {
      const kind = (['video', 'text', 'image', 'audio'] as const)[i % 4];
      const len = 2 + Math.floor(rand() * 6);
      addClipToDoc(doc, {
        kind, start: kind === 'audio' ? 0 : t, end: kind === 'audio' ? t + len : t + len, volume: 0.8,
        url: `https://media.example.invalid/${kind}/${n}_${i}.${kind === 'audio' ? 'mp3' : kind === 'image' ? 'jpg' : 'mp4'}`,
        text: kind === 'text' ? `Caption ${i + 1} of project ${n}` : undefined,
      }, rand);
      t += len;
    }
    return { id, userId, doc, version: 1, body: null };
  }
}
