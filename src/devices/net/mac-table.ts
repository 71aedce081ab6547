/**
 * The switch's learned addresses: MAC -> value, keyed by the address's two 24-bit halves. A
 * 48-bit key as one number is not a small integer, so every Map lookup with it would box a
 * heap number: two Smi-keyed levels look up a frame's addresses without allocating
 * (bench/net-heap.ts). `size` counts addresses; callers bound it.
 */
export class MacTable<V> {
  private readonly byHigh = new Map<number, Map<number, V>>();
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** The value for the address at d[off, off + 6). */
  get(d: Uint8Array, off: number): V | undefined {
    const low = this.byHigh.get((d[off]! << 16) | (d[off + 1]! << 8) | d[off + 2]!);
    return low === undefined ? undefined : low.get((d[off + 3]! << 16) | (d[off + 4]! << 8) | d[off + 5]!);
  }

  set(d: Uint8Array, off: number, v: V): void {
    const hi = (d[off]! << 16) | (d[off + 1]! << 8) | d[off + 2]!;
    let low = this.byHigh.get(hi);
    if (low === undefined) this.byHigh.set(hi, (low = new Map()));
    const lo = (d[off + 3]! << 16) | (d[off + 4]! << 8) | d[off + 5]!;
    if (!low.has(lo)) this.count++;
    low.set(lo, v);
  }

  /** Forgets every address mapped to `v`. */
  deleteValue(v: V): void {
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
