/**
 * L3: entries on local disk under `cache.l3.path`; they survive a restart of the sidecar.
 *
 * Layout:
 *   <dir>/tmp/<pid>-<n>.tmp      files being written (removed at start: a crash leaves only these)
 *   <dir>/<xx>/<sha256(key)>.e   one entry: the binary encoding of entry.ts (meta + body)
 *   <dir>/<xx>/<sha256(key)>.b   the raw body of a large entry, whose .e holds only the meta (external: true)
 *
 * Crash safety (a `kill -9` at any moment): a file is written under tmp/ (fsynced only if asked), then renamed, so
 * a final name only ever points at a complete file. For a large entry the body is renamed first and the .e
 * last: the .e commits the entry and carries the body's length and sha256. On read every digest is checked;
 * a file that fails to parse or verify is deleted and treated as a miss. A large body is verified while it
 * streams: a mismatch at the end destroys the response (the client sees a truncated, failed transfer, never
 * a complete wrong body) and deletes the file.
 *
 * Index: an in-memory Map key -> {file, bytes, storedAt, expiresAt} in insertion order, which is the FIFO
 * eviction order (oldest write first). At start it is rebuilt by scanning the directory and reading only each
 * file's prefix and meta (no bodies), sorted by storedAt. Size counts whole files.
 *
 * One process per directory: with several workers each gets its own subdirectory (see lib/stages/cache/component.ts).
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, promises as fsp, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import type { CacheEntry, EntryMeta } from './entry';
import { CorruptEntryError, PREFIX_BYTES, decodeEntry, decodeMeta, encodeEntry, encodeMeta, metaLengthFromPrefix } from './entry';
import { PendingWork } from '../util/pending-work';
import { TagIndex } from './tag-index';

export interface L3Options {
  dir: string;
  maxBytes: number;
  /** Upper bound of an entry's retention. */
  ttl: number;
  /**
   * fsync files before renaming them. Default false: rename is atomic for a process crash (kill -9), and
   * after a power loss a file whose data never reached the disk fails its digest and is discarded, so
   * correctness never depends on it; fsync only keeps such entries (at a cost on every store).
   */
  fsync?: boolean;
  onEvict?: (count: number) => void;
  onCorrupt?: (file: string, why: string) => void;
  /**
   * Each entry found on disk at start-up and kept, with its meta: what stored it before a restart is known to
   * this process again (the RFC 9111 §4.4 URI index is rebuilt from the stored request).
   */
  onLoaded?: (key: string, meta: EntryMeta) => void;
}

interface IndexEntry {
  readonly file: string;
  readonly bytes: number;
  readonly storedAt: number;
  readonly expiresAt: number;
  readonly external: boolean;
  /** The entry's route params, kept in memory so a cascading invalidation needs no disk read to know them. */
  readonly params: Readonly<Record<string, string>>;
}

export type L3Hit =
  | { kind: 'whole'; entry: CacheEntry }
  /** A large entry: `open()` streams the body, verifying its digest as it goes. */
  | { kind: 'stream'; meta: EntryMeta; open(): Readable };

let tmpCounter = 0;

/** The file under `dir` that holds the entry of cache key `key` (also what `explain` prints). */
export function l3EntryFile(dir: string, key: string): string {
  const h = createHash('sha256').update(key).digest('hex');
  return join(dir, h.slice(0, 2), h + '.e');
}

export class L3Cache {
  private readonly index = new Map<string, IndexEntry>();
  /** The index's keys by tag, for invalidation (lib/cache/invalidation/local.ts removeFromL3). */
  private readonly tags = new TagIndex();
  private totalBytes = 0;
  private maxBytes: number;
  readonly ready: Promise<void>;
  private isReady = false;
  private readonly fsync: boolean;
  /** Entry directories known to exist (we never remove them; one removed from outside is made again). */
  private readonly madeDirs = new Set<string>();
  /** Background unlinks of detached entries (see detach). */
  private readonly unlinking = new PendingWork();

  constructor(private readonly opts: L3Options) {
    this.maxBytes = opts.maxBytes;
    this.fsync = opts.fsync ?? false;
    this.ready = this.rebuild().then(() => { this.isReady = true; });
  }

  get bytes(): number {
    return this.totalBytes;
  }

  get count(): number {
    return this.index.size;
  }

  get loaded(): boolean {
    return this.isReady;
  }

  keys(): IterableIterator<string> {
    return this.index.keys();
  }

  /** In the index (expired or not: what `keys()` lists). */
  has(key: string): boolean {
    return this.index.has(key);
  }

  /** The keys under a tag (keys.ts tagsOf), without walking the index. */
  keysTagged(tag: string): readonly string[] {
    return this.tags.keysUnder(tag);
  }

  /** Takes `key` (whose index entry is `e`) out of the index, its byte count and its tags; the files stay. */
  private forget(key: string, e: IndexEntry): void {
    this.index.delete(key);
    this.totalBytes -= e.bytes;
    this.tags.remove(key);
  }

  private fileFor(key: string): string {
    return l3EntryFile(this.opts.dir, key);
  }

  private tmpFile(): string {
    return join(this.opts.dir, 'tmp', `${process.pid}-${++tmpCounter}-${randomBytes(4).toString('hex')}.tmp`);
  }

  /** Scan the directory: drop temp files, torn or expired entries, orphan bodies; index the rest. */
  private async rebuild(): Promise<void> {
    await fsp.mkdir(join(this.opts.dir, 'tmp'), { recursive: true });
    for (const f of await fsp.readdir(join(this.opts.dir, 'tmp')).catch(() => [] as string[])) {
      await fsp.rm(join(this.opts.dir, 'tmp', f), { force: true });
    }
    const found: Array<{ key: string; e: IndexEntry; meta: EntryMeta }> = [];
    const now = Date.now();
    for (const sub of await fsp.readdir(this.opts.dir)) {
      if (sub === 'tmp' || !/^[0-9a-f]{2}$/.test(sub)) continue;
      const subdir = join(this.opts.dir, sub);
      const names = await fsp.readdir(subdir).catch(() => [] as string[]);
      const metas = new Set(names.filter((n) => n.endsWith('.e')).map((n) => n.slice(0, -2)));
      for (const n of names) {
        const file = join(subdir, n);
        if (n.endsWith('.b')) {
          if (!metas.has(n.slice(0, -2))) await fsp.rm(file, { force: true }); // body whose meta never landed
          continue;
        }
        if (!n.endsWith('.e')) { await fsp.rm(file, { force: true }); continue; }
        const checked = await this.readHeader(file).catch((e: unknown) => {
          this.opts.onCorrupt?.(file, e instanceof Error ? e.message : String(e));
          return null;
        });
        if (checked === null || checked.meta.expiresAt <= now || this.fileFor(checked.meta.key) !== file) {
          await this.unlinkEntry(file, checked?.meta.external ?? true);
          continue;
        }
        found.push({ key: checked.meta.key, meta: checked.meta, e: { file, bytes: checked.bytes, storedAt: checked.meta.storedAt, expiresAt: checked.meta.expiresAt, external: checked.meta.external, params: checked.meta.params ?? {} } });
      }
    }
    found.sort((a, b) => a.e.storedAt - b.e.storedAt);
    for (const { key, e } of found) this.insert(key, e);
    await this.evictOver(this.maxBytes);
    const loaded = this.opts.onLoaded;
    if (loaded !== undefined) for (const { key, meta } of found) if (this.index.has(key)) loaded(key, meta);
  }

  /** Read only the prefix and meta of an entry file and check that the file's size fits the meta. */
  private async readHeader(file: string): Promise<{ meta: EntryMeta & { expiresAt: number; external: boolean }; bytes: number }> {
    const fh = await fsp.open(file, 'r');
    try {
      const st = await fh.stat();
      const prefix = Buffer.alloc(PREFIX_BYTES);
      const { bytesRead } = await fh.read(prefix, 0, PREFIX_BYTES, 0);
      if (bytesRead < PREFIX_BYTES) throw new CorruptEntryError('truncated prefix');
      const len = metaLengthFromPrefix(prefix);
      if (PREFIX_BYTES + len > st.size) throw new CorruptEntryError('truncated meta');
      const buf = Buffer.alloc(PREFIX_BYTES + len);
      prefix.copy(buf);
      await fh.read(buf, PREFIX_BYTES, len, PREFIX_BYTES);
      const { meta, bodyOffset } = decodeMeta(buf);
      const external = meta.external === true;
      let bytes = st.size;
      if (external) {
        if (st.size !== bodyOffset) throw new CorruptEntryError('meta file has trailing bytes');
        const bst = await fsp.stat(file.slice(0, -2) + '.b');
        if (bst.size !== meta.bodyLength) throw new CorruptEntryError('body file length mismatch');
        bytes += bst.size;
      } else if (st.size !== bodyOffset + meta.bodyLength) throw new CorruptEntryError('body length mismatch');
      const expiresAt = (meta as EntryMeta & { l3ExpiresAt?: number }).l3ExpiresAt ?? meta.storedAt + this.opts.ttl;
      return { meta: Object.assign({}, meta, { expiresAt, external }), bytes };
    } finally {
      await fh.close();
    }
  }

  private insert(key: string, e: IndexEntry): void {
    const old = this.index.get(key);
    if (old) this.forget(key, old);
    this.index.set(key, e);
    this.totalBytes += e.bytes;
    this.tags.add(key);
  }

  private async unlinkEntry(file: string, external: boolean): Promise<void> {
    await fsp.rm(file, { force: true });
    if (external) await fsp.rm(file.slice(0, -2) + '.b', { force: true });
  }

  private async evictOver(limit: number): Promise<void> {
    let evicted = 0;
    const now = Date.now();
    for (const [key, e] of this.index) {
      if (this.totalBytes <= limit) break;
      this.forget(key, e);
      if (e.expiresAt > now) evicted++;
      await this.unlinkEntry(e.file, e.external);
    }
    if (evicted > 0) this.opts.onEvict?.(evicted);
  }

  private async discard(key: string, e: IndexEntry, why: string): Promise<void> {
    if (this.index.get(key) === e) this.forget(key, e);
    this.opts.onCorrupt?.(e.file, why);
    await this.unlinkEntry(e.file, e.external);
  }

  async get(key: string): Promise<L3Hit | null> {
    if (!this.isReady) return this.getBeforeIndexed(key);
    const e = this.index.get(key);
    if (e === undefined) return null;
    if (e.expiresAt <= Date.now()) {
      this.forget(key, e);
      await this.unlinkEntry(e.file, e.external);
      return null;
    }
    if (!e.external) {
      let buf: Buffer;
      try {
        buf = await fsp.readFile(e.file);
      } catch {
        if (this.index.get(key) === e) this.forget(key, e);
        return null;
      }
      try {
        const entry = decodeEntry(buf);
        if (entry.meta.key !== key) throw new CorruptEntryError('key mismatch');
        return { kind: 'whole', entry };
      } catch (err) {
        await this.discard(key, e, err instanceof Error ? err.message : String(err));
        return null;
      }
    }
    let meta: EntryMeta;
    try {
      meta = (await this.readHeader(e.file)).meta;
      if (meta.key !== key) throw new CorruptEntryError('key mismatch');
    } catch (err) {
      await this.discard(key, e, err instanceof Error ? err.message : String(err));
      return null;
    }
    const bodyFile = e.file.slice(0, -2) + '.b';
    return {
      kind: 'stream',
      meta,
      open: () => {
        const verify = new DigestCheck(meta.bodyLength, meta.bodySha256, (why) => { void this.discard(key, e, why); });
        const src = createReadStream(bodyFile, { highWaterMark: 64 * 1024 });
        src.on('error', (err) => verify.destroy(err));
        return src.pipe(verify);
      },
    };
  }

  /**
   * While the start-up scan runs, look at the key's file directly (entries survive restarts: the first
   * requests after one should hit too). Whole entries only; a large entry waits for the index.
   */
  private async getBeforeIndexed(key: string): Promise<L3Hit | null> {
    let buf: Buffer;
    try {
      buf = await fsp.readFile(this.fileFor(key));
    } catch {
      return null;
    }
    try {
      const entry = decodeEntry(buf);
      const expiresAt = (entry.meta as EntryMeta & { l3ExpiresAt?: number }).l3ExpiresAt ?? 0;
      if (entry.meta.key !== key || entry.meta.external === true || expiresAt <= Date.now()) return null;
      return { kind: 'whole', entry };
    } catch {
      return null; // the scan deletes it
    }
  }

  /** Write a whole entry: temp file (fsync if asked), rename. */
  async set(key: string, entry: CacheEntry, ttlMs: number): Promise<void> {
    await this.ready;
    const ms = Math.min(ttlMs, this.opts.ttl);
    if (ms <= 0 || entry.body === null) return;
    const expiresAt = Date.now() + ms;
    const meta = { ...entry.meta, l3ExpiresAt: expiresAt } as EntryMeta;
    const data = encodeEntry({ meta, body: entry.body });
    if (data.length > this.maxBytes) return;
    const file = this.fileFor(key);
    await this.writeAtomically(file, data);
    // a large entry previously at this key leaves its body file behind; remove it
    const old = this.index.get(key);
    if (old?.external) await fsp.rm(old.file.slice(0, -2) + '.b', { force: true });
    this.insert(key, { file, bytes: data.length, storedAt: entry.meta.storedAt, expiresAt, external: false, params: entry.meta.params ?? {} });
    await this.evictOver(this.maxBytes);
  }

  private async writeAtomically(file: string, data: Buffer): Promise<void> {
    const tmp = this.tmpFile();
    const fh = await fsp.open(tmp, 'w');
    try {
      await fh.writeFile(data);
      if (this.fsync) await fh.sync();
    } finally {
      await fh.close();
    }
    await this.ensureDir(join(file, '..'));
    await fsp.rename(tmp, file).catch(async (err: unknown) => {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' && this.madeDirs.delete(join(file, '..'))) {
        // the directory went away under us (removed from outside): make it again, once
        await this.ensureDir(join(file, '..'));
        return fsp.rename(tmp, file);
      }
      throw err;
    }).catch(async (err: unknown) => {
      await fsp.rm(tmp, { force: true });
      throw err;
    });
  }

  /** mkdir -p once per directory: a store is one thread-pool hop fewer than with a mkdir every time. */
  private async ensureDir(dir: string): Promise<void> {
    if (this.madeDirs.has(dir)) return;
    await fsp.mkdir(dir, { recursive: true });
    this.madeDirs.add(dir);
  }

  /**
   * Stream a large body to disk as it passes (never held whole in memory). Call `finish(meta)` with the meta
   * once the body has ended (its length and sha256 are filled in here), or `abort()`.
   */
  async openLargeWriter(): Promise<LargeWriter> {
    await this.ready;
    const tmp = this.tmpFile();
    const out = createWriteStream(tmp, { flags: 'w' });
    await new Promise<void>((resolve, reject) => { out.once('open', () => resolve()); out.once('error', reject); });
    return new LargeWriter(this, tmp, out);
  }

  /** @internal LargeWriter commits through here. */
  async commitLarge(key: string, tmpBody: string, out: WriteStream, meta: EntryMeta, ttlMs: number): Promise<void> {
    const ms = Math.min(ttlMs, this.opts.ttl);
    await new Promise<void>((resolve, reject) => {
      out.once('error', reject);
      out.end(() => resolve());
    });
    if (this.fsync) {
      const fh = await fsp.open(tmpBody, 'r+');
      try { await fh.sync(); } finally { await fh.close(); }
    }
    if (ms <= 0 || meta.bodyLength > this.maxBytes) { await fsp.rm(tmpBody, { force: true }); return; }
    const file = this.fileFor(key);
    await this.ensureDir(join(file, '..'));
    const expiresAt = Date.now() + ms;
    const fullMeta = { ...meta, external: true, l3ExpiresAt: expiresAt } as EntryMeta;
    // the body first, the meta last: the meta's rename is what makes the entry exist
    await fsp.rename(tmpBody, file.slice(0, -2) + '.b');
    const metaBytes = encodeMeta(fullMeta);
    await this.writeAtomically(file, metaBytes);
    this.insert(key, { file, bytes: metaBytes.length + meta.bodyLength, storedAt: meta.storedAt, expiresAt, external: true, params: meta.params ?? {} });
    await this.evictOver(this.maxBytes);
  }

  async delete(key: string): Promise<boolean> {
    const e = this.index.get(key);
    if (!e) return false;
    this.forget(key, e);
    await this.unlinkEntry(e.file, e.external);
    return true;
  }

  /**
   * Remove `key` from the index now (no later `get` of this process finds it) and its files in the background,
   * as nginx's cache and Varnish's ban lurker do: an invalidation waits for the index, not for the disk. Returns
   * the route params the entry was stored with, or null when it was not here (or was stored after
   * `storedUpTo`, epoch ms). A crash before the unlink lands leaves the file for the next start-up scan, which
   * indexes it again until its TTL.
   */
  detach(key: string, storedUpTo = Infinity): Readonly<Record<string, string>> | null {
    const e = this.index.get(key);
    if (e === undefined || e.storedAt > storedUpTo) return null;
    this.forget(key, e);
    this.unlinking.track(this.unlinkEntry(e.file, e.external));
    return e.params;
  }

  /** Settles when the files of every detached entry are gone (tests, shutdown). */
  unlinked(): Promise<void> {
    return this.unlinking.settled();
  }

  async deleteMatching(match: (key: string) => boolean): Promise<number> {
    await this.ready;
    let n = 0;
    for (const key of [...this.index.keys()]) {
      if (match(key) && (await this.delete(key))) n++;
    }
    return n;
  }

  /** Change the byte budget (auto-tuning); shrinking evicts oldest entries first. */
  async resize(maxBytes: number): Promise<void> {
    this.maxBytes = maxBytes;
    await this.evictOver(maxBytes);
  }
}

/** Writes a large body to a temp file as it streams; see L3Cache.openLargeWriter. */
export class LargeWriter {
  private readonly hash = createHash('sha256');
  private length = 0;
  private failed = false;

  constructor(
    private readonly l3: L3Cache,
    private readonly tmp: string,
    private readonly out: WriteStream,
  ) {
    out.on('error', () => { this.failed = true; });
  }

  /** Write a chunk; `cb` runs when the disk accepted it (so the caller can apply backpressure). */
  write(chunk: Buffer, cb: () => void): void {
    if (this.failed) { cb(); return; }
    this.hash.update(chunk);
    this.length += chunk.length;
    if (this.out.write(chunk)) cb();
    else this.out.once('drain', cb);
  }

  async finish(meta: Omit<EntryMeta, 'bodyLength' | 'bodySha256'>, ttlMs: number): Promise<void> {
    if (this.failed) { await this.abort(); return; }
    const full = { ...meta, bodyLength: this.length, bodySha256: this.hash.digest('hex') } as EntryMeta;
    try {
      await this.l3.commitLarge(full.key, this.tmp, this.out, full, ttlMs);
    } catch (err) {
      await this.abort();
      throw err;
    }
  }

  async abort(): Promise<void> {
    this.out.destroy();
    await fsp.rm(this.tmp, { force: true });
  }
}

/** Passes a body through, checking its length and sha256; fails the stream at the end on a mismatch. */
class DigestCheck extends Transform {
  private readonly hash = createHash('sha256');
  private seen = 0;

  constructor(private readonly length: number, private readonly sha: string, private readonly onBad: (why: string) => void) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null, data?: Buffer) => void): void {
    this.seen += chunk.length;
    if (this.seen > this.length) {
      this.onBad('body longer than recorded');
      cb(new CorruptEntryError('body longer than recorded'));
      return;
    }
    this.hash.update(chunk);
    cb(null, chunk);
  }

  override _flush(cb: (err?: Error | null) => void): void {
    if (this.seen !== this.length || this.hash.digest('hex') !== this.sha) {
      this.onBad('body digest mismatch');
      cb(new CorruptEntryError('body digest mismatch'));
      return;
    }
    cb();
  }
}
