/**
 * Local replies in the upstream's own error shape. The sidecar's own answers (413, 429, 502, 503, 504, ...) are
 * RFC 9457 problem+json unless the policy gives a template, globally (`local_reply`) or per route
 * (`routes[].local_reply`), as Envoy's local reply config does:
 *
 *   local_reply: { content_type: application/json, body: '{"success": false, "error": "{detail}"}' }
 *
 * Placeholders: {status}, {title}, {detail}, {type}. With a JSON content type (application/json or any
 * +json) a substituted value is JSON-string-escaped, so a detail with quotes keeps the body valid JSON.
 * Templates are compiled once per policy; a request's template is attached to its response, so every code path
 * that refuses it (sendProblem) answers in the same shape.
 */
import type { ServerResponse } from 'node:http';
import type { LocalReplyPolicy, Policy } from '../policy/types';

export interface ProblemFields {
  readonly status: number;
  readonly type: string;
  readonly title: string;
  readonly detail: string;
}

/** A literal, or the name of a field to substitute. */
type Piece = { readonly text: string } | keyof ProblemFields;
const PLACEHOLDER = /\{(status|title|detail|type)\}/g;

export class LocalReply {
  private readonly pieces: readonly Piece[];
  private readonly json: boolean;

  constructor(readonly contentType: string, body: string) {
    const pieces: Piece[] = [];
    let last = 0;
    for (const m of body.matchAll(PLACEHOLDER)) {
      if (m.index! > last) pieces.push({ text: body.slice(last, m.index) });
      pieces.push(m[1] as keyof ProblemFields);
      last = m.index! + m[0].length;
    }
    if (last < body.length) pieces.push({ text: body.slice(last) });
    this.pieces = pieces;
    const mediaType = contentType.split(';')[0]!.trim().toLowerCase();
    this.json = mediaType === 'application/json' || mediaType.endsWith('+json');
  }

  render(f: ProblemFields): string {
    let out = '';
    for (const p of this.pieces) {
      if (typeof p !== 'string') {
        out += p.text;
        continue;
      }
      const v = String(f[p]);
      out += this.json ? JSON.stringify(v).slice(1, -1) : v;
    }
    return out;
  }
}

const compiled = new WeakMap<LocalReplyPolicy, LocalReply>();

function compile(p: LocalReplyPolicy | null): LocalReply | null {
  if (p === null) return null;
  let c = compiled.get(p);
  if (c === undefined) compiled.set(p, (c = new LocalReply(p.content_type, p.body)));
  return c;
}

const attached = new WeakMap<ServerResponse, LocalReply>();

/** Answers to this response that the sidecar makes itself use `reply` (null: problem+json). */
export function useLocalReply(res: ServerResponse, policy: Policy, route: { readonly local_reply: LocalReplyPolicy | null } | null): void {
  const reply = compile(route?.local_reply ?? null) ?? compile(policy.local_reply);
  if (reply !== null) attached.set(res, reply);
}

export function localReplyOf(res: ServerResponse): LocalReply | undefined {
  return attached.get(res);
}
