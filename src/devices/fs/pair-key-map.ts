/**
 * A map keyed by a pair of non-negative integers below 2^53 (a FUSE nodeid or file handle with
 * 0, a host object's (st_dev, st_ino)): open addressing with linear probing over typed arrays,
 * deletion by backward shift (no tombstones), grown when half full and never shrunk.
 *
 * Why not a Map: HostFs's tables see an insert and a delete per guest operation (CREATE then
 * FORGET, RELEASE; LOOKUP then FORGET of a retained descriptor) with a few dozen entries live.
 * V8's ordered hash tables keep deleted entries until a rehash, which allocates a new table
 * every few dozen inserts, and shrink when a quarter full, so a steady working set rehashed and
 * allocated again and again: 4-8 % of the back-end's CPU in fs-ops' metadata rows (perf,
 * bench/README.md "s18-fs"), and a nested Map per st_dev besides. Here a lookup is a hash and a
 * probe or two, and a steady working set allocates nothing. Memory stays bounded by the callers'
 * own bounds (maxInodes, maxHandles, the retained ring's capacity): at most twice the largest
 * number of entries ever held, rounded up to a power of two.
 */

const MIN_CAPACITY = 16;
/** 2^32, to split a key into its 32-bit halves. */
const TWO_32 = 4294967296;

/** Home slot of the key (a, b) in a table of `mask + 1` slots. */
function homeOf(a: number, b: number, mask: number): number {
  // Both halves of both keys mixed (a multiplicative hash per word, then a final avalanche):
  // nodeids are consecutive, inode numbers cluster, st_dev is mostly one value.
  let h = Math.imul((a >>> 0) ^ Math.imul((a / TWO_32) >>> 0, 0x85ebca6b), 0x9e3779b1);
  h ^= Math.imul((b >>> 0) ^ Math.imul((b / TWO_32) >>> 0, 0xc2b2ae35), 0x27d4eb2f);
  h ^= h >>> 15;
  h = Math.imul(h, 0x2c1b3c6d);
  h ^= h >>> 13;
  return h & mask;
}

export class PairKeyMap<V> {
  private keysA: Float64Array;
  private keysB: Float64Array;
  private full: Uint8Array;
  private values: (V | undefined)[];
  private mask: number;
  private count = 0;

  constructor(initialCapacity = MIN_CAPACITY) {
    let cap = MIN_CAPACITY;
    while (cap < initialCapacity) cap *= 2;
    this.keysA = new Float64Array(cap);
    this.keysB = new Float64Array(cap);
    this.full = new Uint8Array(cap);
    this.values = new Array<V | undefined>(cap).fill(undefined);
    this.mask = cap - 1;
  }

  /** Entries held. */
  get size(): number {
    return this.count;
  }

  /** Slots allocated (a power of two, at least twice `size`). */
  get capacity(): number {
    return this.mask + 1;
  }

  /** The slot holding (a, b), or -1. */
  private find(a: number, b: number): number {
    const mask = this.mask;
    const full = this.full;
    for (let i = homeOf(a, b, mask); ; i = (i + 1) & mask) {
      if (full[i] === 0) return -1;
      if (this.keysA[i] === a && this.keysB[i] === b) return i;
    }
  }

  get(a: number, b: number): V | undefined {
    const i = this.find(a, b);
    return i < 0 ? undefined : this.values[i];
  }

  has(a: number, b: number): boolean {
    return this.find(a, b) >= 0;
  }

  /** Adds (a, b) → v, or replaces the value of (a, b). */
  set(a: number, b: number, v: V): void {
    if (2 * (this.count + 1) > this.mask + 1) this.grow();
    const mask = this.mask;
    const full = this.full;
    let i = homeOf(a, b, mask);
    for (; full[i] !== 0; i = (i + 1) & mask) {
      if (this.keysA[i] === a && this.keysB[i] === b) {
        this.values[i] = v;
        return;
      }
    }
    full[i] = 1;
    this.keysA[i] = a;
    this.keysB[i] = b;
    this.values[i] = v;
    this.count++;
  }

  /** Removes (a, b); whether it was there. */
  delete(a: number, b: number): boolean {
    const i = this.find(a, b);
    if (i < 0) return false;
    this.removeAt(i);
    return true;
  }

  /** Removes (a, b) and returns its value (undefined when absent): one probe for a get and a delete. */
  take(a: number, b: number): V | undefined {
    const i = this.find(a, b);
    if (i < 0) return undefined;
    const v = this.values[i];
    this.removeAt(i);
    return v;
  }

  /** Empties slot `hole` (full). */
  private removeAt(hole: number): void {
    const mask = this.mask;
    const full = this.full;
    const keysA = this.keysA;
    const keysB = this.keysB;
    // Backward shift (Knuth 6.4, algorithm R): every entry after the hole whose home slot does
    // not lie cyclically in (hole, j] moves into the hole, so each probe run stays unbroken.
    for (let j = (hole + 1) & mask; full[j] !== 0; j = (j + 1) & mask) {
      const home = homeOf(keysA[j]!, keysB[j]!, mask);
      const stays = hole <= j ? hole < home && home <= j : hole < home || home <= j;
      if (stays) continue;
      keysA[hole] = keysA[j]!;
      keysB[hole] = keysB[j]!;
      this.values[hole] = this.values[j];
      hole = j;
    }
    full[hole] = 0;
    this.values[hole] = undefined;
    this.count--;
  }

  /** Removes every entry (the slots stay allocated). */
  clear(): void {
    this.full.fill(0);
    this.values.fill(undefined);
    this.count = 0;
  }

  /** Calls `fn` with every value, in no particular order; `fn` must not change the map. */
  forEachValue(fn: (v: V) => void): void {
    const full = this.full;
    for (let i = 0; i <= this.mask; i++) if (full[i] !== 0) fn(this.values[i]!);
  }

  private grow(): void {
    const { keysA, keysB, full, values } = this;
    const cap = 2 * (this.mask + 1);
    this.keysA = new Float64Array(cap);
    this.keysB = new Float64Array(cap);
    this.full = new Uint8Array(cap);
    this.values = new Array<V | undefined>(cap).fill(undefined);
    this.mask = cap - 1;
    this.count = 0;
    for (let i = 0; i < full.length; i++) if (full[i] !== 0) this.set(keysA[i]!, keysB[i]!, values[i]!);
  }
}
