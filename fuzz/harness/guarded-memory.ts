/**
 * Guest memory with guard regions: the guest's bytes are a window of a larger buffer whose
 * bytes before and after hold a pattern. GuestMemory bounds-checks every access already; the
 * guards catch what would slip past it (a view made too wide, an offset computed on the buffer).
 */
import { Buffer } from 'node:buffer';
import { GuestMemory } from '../../src/memory/guest-memory.js';
import { check } from '../engine/target.js';

const GUARD = 4096;
const PATTERN = 0xa5;
const PATTERN_PAGE = Buffer.alloc(GUARD, PATTERN);

export class GuardedMemory {
  readonly memory: GuestMemory;
  /** The guest's bytes (guest address base + i). */
  readonly bytes: Uint8Array;
  private readonly whole: Uint8Array;
  private readonly below: Buffer;
  private readonly above: Buffer;

  constructor(
    readonly base: number,
    readonly size: number,
  ) {
    this.whole = new Uint8Array(new SharedArrayBuffer(GUARD + size + GUARD));
    this.whole.fill(PATTERN, 0, GUARD);
    this.whole.fill(PATTERN, GUARD + size);
    this.bytes = this.whole.subarray(GUARD, GUARD + size);
    this.below = Buffer.from(this.whole.buffer, 0, GUARD);
    this.above = Buffer.from(this.whole.buffer, GUARD + size, GUARD);
    this.memory = new GuestMemory([{ guestBase: base, bytes: this.bytes }]);
  }

  /**
   * Zeroes the guest's bytes and rewrites the guards, for the next input on reused memory.
   * The whole window is zeroed, not only what the last input wrote: 64 KiB is a memset of a few
   * microseconds, below 1 % of the cheapest execution, and it cannot miss a write.
   */
  clear(): void {
    this.bytes.fill(0);
    this.whole.fill(PATTERN, 0, GUARD);
    this.whole.fill(PATTERN, GUARD + this.size);
  }

  /** Throws when a byte of either guard changed. */
  checkGuards(): void {
    const w = this.whole;
    if (PATTERN_PAGE.equals(this.below) && PATTERN_PAGE.equals(this.above)) return;
    for (let i = 0; i < GUARD; i++) check(w[i] === PATTERN, 'guest-memory-bounds', `guard byte ${GUARD - i} below guest memory written`);
    for (let i = GUARD + this.size; i < w.length; i++) check(w[i] === PATTERN, 'guest-memory-bounds', `guard byte ${i - GUARD - this.size} above guest memory written`);
  }
}
