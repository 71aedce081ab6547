/**
 * Coverage feedback from the engine's own counters: the instrumented library (`dist-fuzz/`, see
 * instrument.ts) increments one `Uint32Array` cell per block it enters. A take scans the array,
 * turns each non-zero cell into its hit-count class (1, 2, 3, 4-7, 8-15...: libFuzzer's counter
 * classes, so a loop that goes deeper is progress) and clears it.
 *
 * Same contract as the V8 tracker (coverage.ts): `collect(false)` only counts what is new (a
 * batch is measured that way), `collect(true)` records it (the single input found to bring it);
 * features a batch shows that none of its inputs brings alone are batch-only and no longer
 * counted by batch takes.
 */
/** Global the instrumented modules read their counter array from (instrument.ts writes the reads). */
export const COUNTERS_GLOBAL = '__virtioFuzzCounters';

/** The counter array the instrumented modules increment; created before they are imported. */
export function installCounters(size: number): Uint32Array {
  const g = globalThis as unknown as Record<string, Uint32Array | undefined>;
  const existing = g[COUNTERS_GLOBAL];
  if (existing && existing.length >= size) return existing;
  const counters = new Uint32Array(size);
  g[COUNTERS_GLOBAL] = counters;
  return counters;
}

/** Zeroes the counters (what ran so far is dropped); for tools measuring the take's cost. */
export function takeCounters(): void {
  const g = globalThis as unknown as Record<string, Uint32Array | undefined>;
  g[COUNTERS_GLOBAL]?.fill(0);
}

function countClass(count: number): number {
  if (count <= 3) return count - 1; // 0, 1, 2
  return Math.min(31, 30 - Math.clz32(count) + 2); // 4-7 -> 3, 8-15 -> 4, ...
}

/** Collects features from the counters (the same interface as CoverageTracker). */
export class CounterTracker {
  private readonly counters: Uint32Array;
  /** Per counter, a bit per hit-count class seen in a recorded input. */
  private readonly seen: Uint32Array;
  /** Per counter, classes a batch showed that no single input of it brought. */
  private readonly batchOnly: Uint32Array;
  /** Counters with any class recorded, and the recorded (counter, class) pairs. */
  private blockCount = 0;
  private featureCount = 0;
  /** The (counter, class bit) pairs the last uncommitted take counted as new, flat. */
  private peeked: number[] = [];
  /** A batch's peeked pairs, held while its inputs are replayed one by one. */
  private held: number[] = [];

  constructor(size: number) {
    this.counters = installCounters(size);
    this.seen = new Uint32Array(this.counters.length);
    this.batchOnly = new Uint32Array(this.counters.length);
  }

  /** Covered blocks (as `blocks.size` of the V8 tracker). */
  get blocks(): { readonly size: number } {
    return { size: this.blockCount };
  }

  /** Blocks and hit-count classes (as `features.size` of the V8 tracker). */
  get features(): { readonly size: number } {
    return { size: this.featureCount };
  }

  /**
   * Takes (and clears) the counts since the last call; returns how many new features they hold.
   * With `commit` false they are only counted (and remembered for settleBatch).
   */
  collect(commit = true): number {
    const c = this.counters;
    const seen = this.seen;
    let fresh = 0;
    if (!commit) this.peeked = [];
    for (let i = 0; i < c.length; i++) {
      const n = c[i]!;
      if (n === 0) continue;
      c[i] = 0;
      const bit = 1 << countClass(n);
      const had = seen[i]!;
      if ((had & bit) !== 0) continue;
      if (commit) {
        if (had === 0) this.blockCount++;
        seen[i] = had | bit;
        this.featureCount++;
        fresh++;
      } else if ((this.batchOnly[i]! & bit) === 0) {
        this.peeked.push(i, bit);
        fresh++;
      }
    }
    return fresh;
  }

  /** Holds the features the last uncommitted take (a batch's) counted as new, for settleBatch. */
  holdBatch(): void {
    this.held = this.peeked;
    this.peeked = [];
  }

  /** After the held batch was split down to its inputs: what of its take none of them brought is batch-only. */
  settleBatch(): void {
    const h = this.held;
    for (let k = 0; k < h.length; k += 2) {
      const i = h[k]!;
      const bit = h[k + 1]!;
      if ((this.seen[i]! & bit) === 0) this.batchOnly[i] = this.batchOnly[i]! | bit;
    }
    this.held = [];
  }

  close(): void {
    // Nothing held outside the arrays.
  }
}
