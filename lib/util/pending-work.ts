/**
 * Work started in the background and not awaited by whoever started it (files unlinked after an invalidation
 * answered, cleanup after running writes), kept so a test or a shutdown can wait until it is all done.
 */
export class PendingWork {
  private readonly running = new Set<Promise<void>>();

  /** Keep `work` until it settles; a rejection goes to `onError` (default: dropped), never to the caller. */
  track(work: Promise<unknown>, onError: (err: unknown) => void = () => {}): void {
    const p: Promise<void> = work.then(() => {}, onError).finally(() => this.running.delete(p));
    this.running.add(p);
  }

  /** Settles when everything tracked so far, and anything it tracked in turn, is done. */
  async settled(): Promise<void> {
    while (this.running.size > 0) await Promise.all([...this.running]);
  }
}
