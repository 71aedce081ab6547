/** Entries of the lookup cache of MacTable (a power of 2). */
const LOOKUP_CACHE = 16;

/**
 * The switch's learned addresses: MAC -> value, keyed by the address's two 24-bit halves. A
 * 48-bit key as one number is not a small integer, so every Map lookup with it would box a
 * heap number: two Smi-keyed levels look up a frame's addresses without allocating
 * (bench/net-heap.ts). `size` counts addresses; callers bound it.
 */
export class MacTable<V> {
  private readonly byHigh = new Map<number, Map<number, V>>();
  private count = 0;
  /**
   * The answers of recent lookups, found and not found, direct-mapped by address: a stream of
   * frames between the same addresses asks the same questions frame after frame, and two Map
   * lookups per address cost more than a compare (bench/net-sink-bench.ts). Emptied whenever
   * the table changes, so it never answers what the maps would not.
   */
  private readonly cacheHi = new Int32Array(LOOKUP_CACHE).fill(-1);
  private readonly cacheLo = new Int32Array(LOOKUP_CACHE);
  private readonly cacheValue: (V | undefined)[] = new Array<V | undefined>(LOOKUP_CACHE).fill(undefined);

  /**
   * Changes so far (every `set` and `deleteValue` adds one): an answer taken from the table at
   * one generation is the table's answer as long as the generation is the same (switch.ts).
   */
  generation = 0;

  get size(): number {
    return this.count;
  }

  /** The value for the address at d[off, off + 6). */
  get(d: Uint8Array, off: number): V | undefined {
    const hi = (d[off]! << 16) | (d[off + 1]! << 8) | d[off + 2]!;
    const lo = (d[off + 3]! << 16) | (d[off + 4]! << 8) | d[off + 5]!;
    const slot = (lo ^ (lo >>> 8) ^ hi) & (LOOKUP_CACHE - 1);
    if (this.cacheHi[slot] === hi && this.cacheLo[slot] === lo) return this.cacheValue[slot];
    const low = this.byHigh.get(hi);
    const v = low === undefined ? undefined : low.get(lo);
    this.cacheHi[slot] = hi;
    this.cacheLo[slot] = lo;
    this.cacheValue[slot] = v;
    return v;
  }

  set(d: Uint8Array, off: number, v: V): void {
    const hi = (d[off]! << 16) | (d[off + 1]! << 8) | d[off + 2]!;
    let low = this.byHigh.get(hi);
    if (low === undefined) this.byHigh.set(hi, (low = new Map()));
    const lo = (d[off + 3]! << 16) | (d[off + 4]! << 8) | d[off + 5]!;
    if (!low.has(lo)) this.count++;
    low.set(lo, v);
    this.forgetLookups();
  }

  /** Empties the lookup cache (the table changed). */
  private forgetLookups(): void {
    this.generation++;
    this.cacheHi.fill(-1);
    this.cacheValue.fill(undefined);
  }

  /** Forgets every address mapped to `v`. */
  deleteValue(v: V): void {
    this.forgetLookups();
    for (const [hi, low] of this.byHigh) {
      for (const [lo, x] of low) {
        if (x === v) {
          low.delete(lo);
          this.count--;
        }
      }
      if (low.size === 0) this.byHigh.delete(hi);
    }
  }
}
