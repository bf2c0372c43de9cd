/**
 * Kubernetes manifests as YAML text <-> plain objects, so that a string stays a string.
 *
 * Reading follows YAML 1.2 (the `yaml` package's core schema), where `on`, `yes`, `y` and `off` are strings;
 * writing follows the stricter YAML 1.1 rules that kubectl and the API server (go-yaml) use, so any string
 * such as "on", "y", "0755" or "2024-01-01" is quoted on output and can never come back as a boolean, a
 * number or a date. `0o17` is read as a string, as go-yaml does, so every value reads back as it was written.
 */
import { parseAllDocuments, stringify, type Tags, type ParseOptions, type DocumentOptions, type SchemaOptions } from 'yaml';

type ScalarTag = { tag: string; format?: string };

const READ: ParseOptions & DocumentOptions & SchemaOptions = {
  version: '1.2',
  customTags: (tags: Tags) => tags.filter((t) => !((t as ScalarTag).tag === 'tag:yaml.org,2002:int' && (t as ScalarTag).format === 'OCT')),
};
const WRITE = { version: '1.1' as const, lineWidth: 0, minContentWidth: 0 };

export class ManifestSyntaxError extends Error {}

/** The documents of a multi-document stream; empty documents are dropped. Throws ManifestSyntaxError. */
export function parseManifests(text: string, source = '<stdin>'): unknown[] {
  const out: unknown[] = [];
  for (const doc of parseAllDocuments(text, READ)) {
    const err = doc.errors[0];
    if (err) {
      const at = err.linePos?.[0];
      throw new ManifestSyntaxError(`${source}${at ? `:${at.line}:${at.col}` : ''}: ${err.message.split('\n')[0]}`);
    }
    const value: unknown = doc.toJS({ maxAliasCount: 100 });
    if (value !== null && value !== undefined) out.push(value);
  }
  return out;
}

/** Documents joined by `---`, deterministic: the same objects always give the same bytes. */
export function stringifyManifests(docs: readonly unknown[]): string {
  return docs.map((d) => stringify(d, WRITE)).join('---\n');
}
