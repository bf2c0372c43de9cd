/**
 * The keys of one tier by tag (keys.ts `tagsOf`: every `:`-prefix of a key's readable part, and the readable
 * part itself), kept as entries come and go, so an invalidation visits only the keys under its patterns' tags
 * (keys.ts `tagForPattern`) instead of walking the whole tier. L2 keeps the same index in Redis (`ct:<tag>` sets).
 *
 * A tag with one key holds the key itself, not a Set: most tags (a draft's id, a whole key) name one entry or a
 * few, and a Set per entry would cost more memory than the entry's own key.
 */
import { tagsOf } from './keys';

export class TagIndex {
  private readonly byTag = new Map<string, string | Set<string>>();

  /** Index `key` (idempotent: a key stored again is not counted twice). */
  add(key: string): void {
    for (const tag of tagsOf(key)) {
      const held = this.byTag.get(tag);
      if (held === undefined) this.byTag.set(tag, key);
      else if (typeof held !== 'string') held.add(key);
      else if (held !== key) this.byTag.set(tag, new Set([held, key]));
    }
  }

  remove(key: string): void {
    for (const tag of tagsOf(key)) {
      const held = this.byTag.get(tag);
      if (held === undefined) continue;
      if (typeof held === 'string') {
        if (held === key) this.byTag.delete(tag);
      } else if (held.delete(key) && held.size === 0) this.byTag.delete(tag);
    }
  }

  /** The keys indexed under `tag` (a snapshot: the caller may remove keys while it iterates). */
  keysUnder(tag: string): readonly string[] {
    const held = this.byTag.get(tag);
    if (held === undefined) return [];
    return typeof held === 'string' ? [held] : [...held];
  }

  /** How many tags are indexed (for tests). */
  get tags(): number {
    return this.byTag.size;
  }

  clear(): void {
    this.byTag.clear();
  }
}

/** A tier whose keys are indexed by tag (L1Cache, L3Cache). */
export interface TaggedKeys {
  keys(): Iterable<string>;
  keysTagged(tag: string): readonly string[];
  /** Whether `keys()` would list the key (L1 leaves out expired entries still waiting in the LRU). */
  has(key: string): boolean;
}

/**
 * The keys an invalidation must test: every key of the tier when one of its patterns has no tag (`null`: it
 * starts with a glob); otherwise only the keys indexed under the tags, each once, so an event costs the entries
 * it can match, not the size of the tier. A fresh array: the caller may remove keys while it iterates.
 */
export function keysToTest(tier: TaggedKeys, tags: Iterable<string | null>): string[] {
  const list = [...tags];
  if (list.includes(null)) return [...tier.keys()];
  const out: string[] = [];
  const seen = list.length > 1 ? new Set<string>() : null;
  for (const tag of list as string[]) {
    for (const key of tier.keysTagged(tag)) {
      if (seen !== null) {
        if (seen.has(key)) continue;
        seen.add(key);
      }
      if (tier.has(key)) out.push(key);
    }
  }
  return out;
}
