/**
 * `bridge-sidecar inject` and the webhook share this: manifests in, manifests out, one config.
 */
import { readFileSync } from 'node:fs';
import { DEFAULT_CONFIG, InjectConfigError, parseInjectConfig, type InjectConfig } from './config';
import { parseManifests, stringifyManifests, ManifestSyntaxError } from './manifest-yaml';
import { InjectError } from './pod';
import { injectManifest, uninjectManifest, type ManifestReport } from './workloads';

export { DEFAULT_CONFIG, InjectConfigError, parseInjectConfig, type InjectConfig } from './config';
export { InjectError } from './pod';
export { ManifestSyntaxError } from './manifest-yaml';

/** The config from a YAML file of overrides (the webhook's ConfigMap, or `inject --config`). */
export function loadInjectConfig(file: string, base: InjectConfig = DEFAULT_CONFIG): InjectConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new InjectConfigError(`${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  const docs = parseManifests(text, file);
  try {
    return parseInjectConfig(docs[0] ?? null, base);
  } catch (e) {
    throw new InjectConfigError(`${file}: ${(e as Error).message}`);
  }
}

export interface TextResult {
  readonly output: string;
  readonly report: ManifestReport;
}

/**
 * Every document injected (or, with remove, restored). All or nothing: on any error (InjectError,
 * ManifestSyntaxError) nothing is returned, so a pipeline never applies half a file.
 */
export function injectManifestsText(text: string, cfg: InjectConfig, opts: { source?: string; remove?: boolean } = {}): TextResult {
  const docs = parseManifests(text, opts.source);
  const report: ManifestReport = { injected: [], skipped: [] };
  const out = docs.map((d, i) => {
    try {
      return opts.remove ? uninjectManifest(d) : injectManifest(d, cfg, report);
    } catch (e) {
      if (e instanceof InjectError) throw new InjectError(`${opts.source ?? '<stdin>'}: document ${i + 1}: ${e.message}`);
      throw e;
    }
  });
  return { output: stringifyManifests(out), report };
}

export function isInjectInputError(e: unknown): e is Error {
  return e instanceof InjectError || e instanceof ManifestSyntaxError || e instanceof InjectConfigError;
}
