/**
 * One priority class's FIFO of waiting requests: an intrusive doubly linked list, so a waiter whose client hung
 * up or whose time ran out leaves from the middle in O(1), and displacement takes the newest (tail) in O(1).
 */
import type { Priority } from '../../policy/types';
import type { Release } from '../../core/stage';

/** What the scheduler needs from a response to notice a client that hangs up while queued. */
export interface Hangup {
  readonly destroyed: boolean;
  once(event: 'close', fn: () => void): unknown;
  removeListener(event: 'close', fn: () => void): unknown;
}

export class Waiter {
  prev: Waiter | null = null;
  next: Waiter | null = null;
  queue: ClassQueue | null = null;
  resolve!: (r: Release) => void;
  reject!: (e: Error) => void;
  /** Listener on the response's 'close', removed when the waiter leaves the queue. */
  onClose: (() => void) | null = null;

  constructor(
    readonly priority: Priority,
    readonly enqueuedAt: number,
    readonly res: Hangup | null,
  ) {}
}

export class ClassQueue {
  head: Waiter | null = null;
  tail: Waiter | null = null;
  length = 0;
  weight = 1;
  maxSize = 0;
  /** Smooth weighted round-robin credit. */
  current = 0;

  constructor(readonly priority: Priority, readonly rank: number) {}

  push(w: Waiter): void {
    w.queue = this;
    w.prev = this.tail;
    w.next = null;
    if (this.tail) this.tail.next = w;
    else this.head = w;
    this.tail = w;
    this.length++;
  }

  remove(w: Waiter): void {
    if (w.queue !== this) return;
    if (w.prev) w.prev.next = w.next;
    else this.head = w.next;
    if (w.next) w.next.prev = w.prev;
    else this.tail = w.prev;
    w.prev = w.next = null;
    w.queue = null;
    this.length--;
  }

  shift(): Waiter | null {
    const w = this.head;
    if (w) this.remove(w);
    return w;
  }

  pop(): Waiter | null {
    const w = this.tail;
    if (w) this.remove(w);
    return w;
  }
}
