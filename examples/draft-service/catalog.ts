/**
 * Static data of the example draft service: the ten `get_*_types` lists (the real service's names, copied
 * from CapCutAPI running in CapCut mode, so bodies weigh what the real ones weigh) and the tools of the MCP
 * bridge (`tools/list`), as the real bridge declares them.
 */
import lists from './type-lists.json';

/** `GET /get_<kind>_types` -> `{error:"", output:[{name}, ...], success:true}`. */
export const TYPE_LISTS: Readonly<Record<string, readonly string[]>> = lists;

/** The effects add_effect knows (scene and character effects). */
export const EFFECTS: ReadonlySet<string> = new Set([...lists.video_scene_effect, ...lists.video_character_effect]);

/** A JSON Schema fragment for an MCP tool's input. */
type Schema = { type: 'object'; properties: Record<string, { type: string; description?: string }>; required?: string[] };

export interface ToolDef {
  readonly name: string;
  readonly description: string;
  /** The draft-service path the bridge POSTs the arguments to; null for health_check (a GET of /health). */
  readonly endpoint: string | null;
  readonly inputSchema: Schema;
}

const num = (description: string) => ({ type: 'number', description });
const str = (description: string) => ({ type: 'string', description });

/** The real bridge's five tools. Its add_video declares `video_path`, which the service rejects (it reads video_url). */
export const TOOLS: readonly ToolDef[] = [
  { name: 'create_draft', endpoint: '/create_draft', description: 'Create a new CapCut draft.',
    inputSchema: { type: 'object', properties: { width: num('width'), height: num('height') } } },
  { name: 'add_video', endpoint: '/add_video', description: 'Add a video to a draft.',
    inputSchema: { type: 'object', properties: { draft_id: str('draft'), video_path: str('video path'), start_time: num('seconds') }, required: ['draft_id', 'video_path'] } },
  { name: 'add_text', endpoint: '/add_text', description: 'Add text to a draft.',
    inputSchema: { type: 'object', properties: { draft_id: str('draft'), text: str('text'), start: num('seconds'), end: num('seconds') }, required: ['draft_id', 'text'] } },
  { name: 'save_draft', endpoint: '/save_draft', description: 'Save a draft.',
    inputSchema: { type: 'object', properties: { draft_id: str('draft') }, required: ['draft_id'] } },
  { name: 'health_check', endpoint: null, description: 'Check the draft service.', inputSchema: { type: 'object', properties: {} } },
];

export const TOOLS_BY_NAME: ReadonlyMap<string, ToolDef> = new Map(TOOLS.map((t) => [t.name, t]));
