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
const PAGE = 4096;
const ZERO_PAGE = Buffer.alloc(PAGE);

export class GuardedMemory {
  readonly memory: GuestMemory;
  /** The guest's bytes (guest address base + i). */
  readonly bytes: Uint8Array;
  private readonly whole: Uint8Array;
  private readonly below: Buffer;
  private readonly above: Buffer;
  /** The guest's bytes by 4 KiB page, to compare and to zero. */
  private readonly pages: Buffer[] = [];
  private readonly pageWords: Float64Array[] = [];

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
    if (size % PAGE !== 0) throw new RangeError(`guarded memory of ${size} bytes: not whole ${PAGE}-byte pages`);
    for (let off = 0; off < size; off += PAGE) {
      this.pages.push(Buffer.from(this.whole.buffer, GUARD + off, PAGE));
      this.pageWords.push(new Float64Array(this.whole.buffer, GUARD + off, PAGE / 8));
    }
  }

  /**
   * Zeroes what the last input wrote and rewrites the guards, for the next input on reused
   * memory. The buffer is shared (as a VMM's guest memory is), and V8 fills shared typed arrays
   * element by element (85 us for 64 KiB here); so each 4 KiB page is compared with zeroes
   * (memcmp, ~0.3 us) and only the pages found written are filled, as 8-byte elements.
   */
  clear(): void {
    for (let p = 0; p < this.pages.length; p++) if (!ZERO_PAGE.equals(this.pages[p]!)) this.pageWords[p]!.fill(0);
    if (!PATTERN_PAGE.equals(this.below)) this.whole.fill(PATTERN, 0, GUARD);
    if (!PATTERN_PAGE.equals(this.above)) this.whole.fill(PATTERN, GUARD + this.size);
  }

  /** Throws when a byte of either guard changed. */
  checkGuards(): void {
    const w = this.whole;
    if (PATTERN_PAGE.equals(this.below) && PATTERN_PAGE.equals(this.above)) return;
    for (let i = 0; i < GUARD; i++) check(w[i] === PATTERN, 'guest-memory-bounds', `guard byte ${GUARD - i} below guest memory written`);
    for (let i = GUARD + this.size; i < w.length; i++) check(w[i] === PATTERN, 'guest-memory-bounds', `guard byte ${i - GUARD - this.size} above guest memory written`);
  }
}
