/**
 * Static data of the example draft service: the `get_*_types` lists, the template patterns and the MCP tool
 * definitions. The names follow the public CapCutAPI; the content only has to look and weigh like the real
 * thing, so caches and benchmarks see realistic bodies.
 */

/** `GET /get_<kind>_types` -> `{success:true, output:[{name}, ...]}`. */
export const TYPE_LISTS: Readonly<Record<string, readonly string[]>> = {
  transition: ['Dissolve', 'Fade_Out', 'Fade_In', 'Pull_In', 'Pull_Out', 'Slide_Left', 'Slide_Right', 'Slide_Up',
    'Slide_Down', 'Wipe_Left', 'Wipe_Right', 'Zoom_In', 'Zoom_Out', 'Rotate', 'Blur', 'Flash_White', 'Flash_Black',
    'Shake', 'Glitch', 'Mirror', 'Page_Turn', 'Circle_Sweep', 'Heart_Iris', 'Ink_Blot', 'Film_Burn'],
  font: ['Source_Han_Sans', 'Source_Han_Serif', 'Noto_Sans_SC', 'Noto_Serif_SC', 'ZCOOL_KuaiLe', 'ZCOOL_XiaoWei',
    'Ma_Shan_Zheng', 'Long_Cang', 'Zhi_Mang_Xing', 'Liu_Jian_Mao_Cao', 'Wenxuan', 'Xin_Qing_Nian', 'Ya_Ku_Hei',
    'Ying_Bi_Xing_Shu', 'Fang_Zheng_Hei', 'Fang_Zheng_Kai', 'Fang_Zheng_Song', 'Roboto', 'Roboto_Condensed',
    'Open_Sans', 'Montserrat', 'Lato', 'Oswald', 'Playfair_Display', 'Bebas_Neue', 'Anton', 'Pacifico', 'Lobster',
    'Dancing_Script', 'Caveat', 'Permanent_Marker', 'Press_Start_2P', 'Inter', 'Poppins', 'Raleway', 'Ubuntu',
    'Merriweather', 'Nunito', 'Quicksand', 'Comfortaa'],
  mask: ['Linear', 'Mirror', 'Circle', 'Rectangle', 'Heart', 'Star', 'Filmstrip', 'Split_Screen', 'Diamond'],
  intro_animation: ['Fade_In', 'Zoom_In', 'Zoom_Out', 'Slide_Left', 'Slide_Right', 'Slide_Up', 'Slide_Down',
    'Rotate_In', 'Bounce_In', 'Swing_In', 'Blur_In', 'Flip_In', 'Shake_In', 'Spin_Zoom'],
  outro_animation: ['Fade_Out', 'Zoom_In', 'Zoom_Out', 'Slide_Left', 'Slide_Right', 'Slide_Up', 'Slide_Down',
    'Rotate_Out', 'Bounce_Out', 'Swing_Out', 'Blur_Out', 'Flip_Out', 'Shake_Out'],
  combo_animation: ['Swing', 'Wobble', 'Pulse', 'Bounce', 'Rotate_Left', 'Rotate_Right', 'Zoom_Pulse', 'Jelly'],
  text_intro: ['Typewriter', 'Fade_In', 'Pop_Up', 'Slide_Up', 'Wave', 'Blur_In', 'Zoom_In', 'Letter_Drop', 'Spin_In'],
  text_outro: ['Fade_Out', 'Slide_Down', 'Pop_Out', 'Blur_Out', 'Zoom_Out', 'Letter_Fly', 'Dissolve'],
  text_loop_anim: ['Shine', 'Pulse', 'Swing', 'Wave', 'Flicker', 'Heartbeat', 'Typewriter_Loop', 'Bounce'],
  audio_effect: ['Echo', 'Reverb', 'Chipmunk', 'Robot', 'Megaphone', 'Telephone', 'Underwater', 'Low_Battery',
    'Deep_Voice', 'Elf', 'Monster', 'Vinyl', 'Large_Hall', 'Karaoke'],
  video_scene_effect: ['Blur', 'Glitch', 'VHS', 'Film_Grain', 'Light_Leak', 'Bokeh', 'Snow', 'Rain', 'Sparkle',
    'Fireworks', 'Old_Film', 'Neon', 'Kaleidoscope', 'Vignette', 'Shake', 'Zoom_Blur', 'RGB_Split', 'Dreamy'],
  video_character_effect: ['Halo', 'Angel_Wings', 'Cat_Ears', 'Sparkle_Eyes', 'Heart_Eyes', 'Rainbow_Trail',
    'Ghost_Shadow', 'Neon_Outline', 'Comic_Outline'],
  filter: ['Natural', 'Vivid', 'Warm', 'Cool', 'Mono', 'Vintage', 'Film', 'Fresh', 'Sunset', 'Moody', 'Cinematic'],
};

export interface Pattern {
  readonly id: string;
  readonly name: string;
  readonly category: string;
  readonly description: string;
  readonly width: number;
  readonly height: number;
  readonly duration_us: number;
  readonly tags: readonly string[];
  readonly slots: ReadonlyArray<{ readonly kind: 'video' | 'image' | 'text' | 'audio'; readonly start: number; readonly end: number; readonly hint: string }>;
  readonly style: Readonly<Record<string, string | number>>;
}

const PATTERN_SEEDS: ReadonlyArray<[string, string, number, number]> = [
  ['Vlog opener', 'vlog', 1080, 1920], ['Travel montage', 'travel', 1920, 1080], ['Product showcase', 'commerce', 1080, 1920],
  ['Recipe steps', 'food', 1080, 1350], ['Birthday wishes', 'celebration', 1080, 1920], ['News headline', 'news', 1920, 1080],
  ['Podcast clip', 'podcast', 1080, 1080], ['Before and after', 'beauty', 1080, 1920], ['Game highlights', 'gaming', 1920, 1080],
  ['Lyric video', 'music', 1080, 1920], ['Real estate tour', 'commerce', 1920, 1080], ['Fitness routine', 'sports', 1080, 1920],
  ['Wedding story', 'celebration', 1920, 1080], ['Tutorial intro', 'education', 1920, 1080], ['Quote card', 'social', 1080, 1080],
  ['Countdown timer', 'events', 1080, 1920], ['Slideshow classic', 'photo', 1920, 1080], ['Pet moments', 'animals', 1080, 1920],
  ['Unboxing', 'commerce', 1080, 1920], ['Year in review', 'social', 1920, 1080],
];

function buildPattern(i: number): Pattern {
  const [name, category, width, height] = PATTERN_SEEDS[i]!;
  const slots: Pattern['slots'][number][] = [];
  let t = 0;
  for (let s = 0; s < 4 + (i % 4); s++) {
    const len = 1.5 + ((i + s) % 3);
    slots.push({ kind: s % 3 === 2 ? 'text' : s % 2 === 0 ? 'video' : 'image', start: t, end: t + len, hint: `${name} slot ${s + 1}` });
    t += len;
  }
  slots.push({ kind: 'audio', start: 0, end: t, hint: 'background music' });
  return {
    id: `tpl_${String(i + 1).padStart(4, '0')}`,
    name,
    category,
    description: `${name}: a ${category} template with ${slots.length} slots, ${width}x${height}.`,
    width,
    height,
    duration_us: Math.round(t * 1_000_000),
    tags: [category, width > height ? 'landscape' : width === height ? 'square' : 'portrait', i % 2 ? 'music' : 'voiceover'],
    slots,
    style: { font: TYPE_LISTS.font![i % 40]!, transition: TYPE_LISTS.transition![i % 25]!, filter: TYPE_LISTS.filter![i % 11]!, accent_color: `#${((i * 2654435761) >>> 8).toString(16).padStart(6, '0').slice(0, 6)}` },
  };
}

export const PATTERNS: readonly Pattern[] = PATTERN_SEEDS.map((_, i) => buildPattern(i));
export const PATTERNS_BY_ID: ReadonlyMap<string, Pattern> = new Map(PATTERNS.map((p) => [p.id, p]));

/** A JSON Schema fragment for an MCP tool's input. */
type Schema = { type: 'object'; properties: Record<string, { type: string; description?: string }>; required?: string[] };

export interface ToolDef {
  readonly name: string;
  readonly description: string;
  /** The operation it runs (see operations.ts). */
  readonly operation: string;
  readonly inputSchema: Schema;
}

const num = (description: string) => ({ type: 'number', description });
const str = (description: string) => ({ type: 'string', description });

export const TOOLS: readonly ToolDef[] = [
  { name: 'capcut_create_draft', operation: 'create_draft', description: 'Create a new draft.',
    inputSchema: { type: 'object', properties: { width: num('canvas width'), height: num('canvas height'), project_name: str('name') } } },
  { name: 'capcut_add_video', operation: 'add_video', description: 'Add a video clip to a draft (creates one if draft_id is unknown).',
    inputSchema: { type: 'object', properties: { draft_id: str('draft'), video_url: str('source URL'), start: num('seconds'), end: num('seconds'), volume: num('0..1') }, required: ['video_url'] } },
  { name: 'capcut_add_text', operation: 'add_text', description: 'Add a text overlay to a draft.',
    inputSchema: { type: 'object', properties: { draft_id: str('draft'), text: str('text'), start: num('seconds'), end: num('seconds'), font: str('font'), font_size: num('size'), font_color: str('#rrggbb') }, required: ['text'] } },
  { name: 'capcut_add_audio', operation: 'add_audio', description: 'Add an audio track to a draft.',
    inputSchema: { type: 'object', properties: { draft_id: str('draft'), audio_url: str('source URL'), start: num('seconds'), end: num('seconds'), volume: num('0..1') }, required: ['audio_url'] } },
  { name: 'capcut_add_image', operation: 'add_image', description: 'Add an image to a draft.',
    inputSchema: { type: 'object', properties: { draft_id: str('draft'), image_url: str('source URL'), start: num('seconds'), end: num('seconds') }, required: ['image_url'] } },
  { name: 'capcut_save_draft', operation: 'save_draft', description: 'Save a draft in the background; returns a task id.',
    inputSchema: { type: 'object', properties: { draft_id: str('draft') }, required: ['draft_id'] } },
  { name: 'capcut_query_draft_status', operation: 'query_draft_status', description: 'Progress of a background save.',
    inputSchema: { type: 'object', properties: { task_id: str('task') }, required: ['task_id'] } },
  { name: 'capcut_query_script', operation: 'query_script', description: 'The full draft as JSON.',
    inputSchema: { type: 'object', properties: { draft_id: str('draft'), force_update: { type: 'boolean' } }, required: ['draft_id'] } },
  { name: 'capcut_get_font_types', operation: 'get_font_types', description: 'Available fonts.', inputSchema: { type: 'object', properties: {} } },
  { name: 'capcut_get_transition_types', operation: 'get_transition_types', description: 'Available transitions.', inputSchema: { type: 'object', properties: {} } },
  { name: 'capcut_list_patterns', operation: 'list_patterns', description: 'Template patterns.', inputSchema: { type: 'object', properties: { category: str('filter') } } },
  { name: 'capcut_get_pattern', operation: 'get_pattern', description: 'One template pattern.', inputSchema: { type: 'object', properties: { id: str('pattern id') }, required: ['id'] } },
];

export const TOOLS_BY_NAME: ReadonlyMap<string, ToolDef> = new Map(TOOLS.map((t) => [t.name, t]));
