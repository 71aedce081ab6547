/**
 * Byte-level mutations in the manner of libFuzzer's MutationDispatcher: bit flips, interesting
 * values, arithmetic, chunk insert / erase / copy and crossover with another corpus entry.
 * A small xorshift PRNG keeps runs reproducible from --seed.
 */
export class Rng {
  private s: number;

  constructor(seed: number) {
    this.s = seed >>> 0 || 0x9e3779b9;
  }

  next(): number {
    let x = this.s;
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    this.s = x >>> 0;
    return this.s;
  }

  below(n: number): number {
    return n <= 1 ? 0 : this.next() % n;
  }
}

const INTERESTING_8 = [0, 1, 0x7f, 0x80, 0xff, 0x10, 0x20, 0x40, 2, 3, 4, 8, 16];
const INTERESTING_16 = [0, 0x100, 0x7fff, 0x8000, 0xffff, 0x1000, 256, 512, 4096, 32768];
const INTERESTING_32 = [0, 0x7fffffff, 0x80000000, 0xffffffff, 0x10000, 0x100000, 4096, 0xfffffff0];

/** Most a round can add: a crossover chunk (128), more than an insert (16) or a duplicate (64). */
const MAX_GROWTH_PER_ROUND = 128;
const MAX_ROUNDS = 8;

export class Mutator {
  /**
   * Work buffer the mutations are applied in (grown when an input needs more); only the result is
   * copied out. The mutations used to work on a number[] (Array.from, splice, slice per round), a
   * tenth of a fast target's execution and much of its garbage. Same results for the same seed.
   */
  private buf = new Uint8Array(0);
  private len = 0;

  constructor(
    private readonly rng: Rng,
    private readonly maxLen: number,
  ) {}

  /** A mutant of `input`, 1 to 8 stacked mutations; `other` feeds crossover. */
  mutate(input: Uint8Array, other: Uint8Array | undefined): Uint8Array {
    const need = input.length + MAX_ROUNDS * MAX_GROWTH_PER_ROUND + 1;
    if (this.buf.length < need) this.buf = new Uint8Array(Math.max(need, 2 * this.buf.length));
    this.buf.set(input);
    this.len = input.length;
    const rounds = 1 + this.rng.below(8);
    for (let r = 0; r < rounds; r++) this.once(other);
    return this.buf.slice(0, Math.min(this.len, this.maxLen));
  }

  /** Opens `n` bytes at `p` (the bytes from `p` on move up). */
  private open(p: number, n: number): void {
    this.buf.copyWithin(p + n, p, this.len);
    this.len += n;
  }

  private once(other: Uint8Array | undefined): void {
    const rng = this.rng;
    const b = this.buf;
    const pos = (): number => rng.below(this.len);
    if (this.len === 0) {
      b[0] = rng.below(256);
      this.len = 1;
      return;
    }
    switch (rng.below(12)) {
      case 0: {
        const p = pos();
        b[p]! ^= 1 << rng.below(8);
        return;
      }
      case 1: {
        const p = pos();
        b[p] = rng.below(256);
        return;
      }
      case 2: {
        const p = pos();
        b[p] = INTERESTING_8[rng.below(INTERESTING_8.length)]!;
        return;
      }
      case 3: {
        const p = pos();
        const v = INTERESTING_16[rng.below(INTERESTING_16.length)]!;
        b[p] = v & 0xff;
        if (p + 1 < this.len) b[p + 1] = v >>> 8;
        return;
      }
      case 4: {
        const p = pos();
        const v = INTERESTING_32[rng.below(INTERESTING_32.length)]!;
        for (let i = 0; i < 4 && p + i < this.len; i++) b[p + i] = (v >>> (8 * i)) & 0xff;
        return;
      }
      case 5: {
        const p = pos();
        b[p] = (b[p]! + (rng.below(71) - 35)) & 0xff;
        return;
      }
      case 6: {
        // Insert random bytes.
        const p = rng.below(this.len + 1);
        const n = 1 + rng.below(16);
        this.open(p, n);
        for (let i = 0; i < n; i++) b[p + i] = rng.below(256);
        return;
      }
      case 7: {
        // Erase a chunk.
        if (this.len < 2) return;
        const p = pos();
        const n = 1 + rng.below(Math.min(32, this.len - p));
        b.copyWithin(p, p + n, this.len);
        this.len -= n;
        return;
      }
      case 8: {
        // Duplicate a chunk elsewhere (repeats a step of a sequence).
        const from = pos();
        const n = 1 + rng.below(Math.min(64, this.len - from));
        const to = rng.below(this.len + 1);
        this.open(to, n);
        // The chunk moved up by n when it lay at or after the opening.
        const src = from >= to ? from + n : from;
        if (src < to && src + n > to) {
          // The opening split the chunk: its first part is below, the rest moved up past it.
          const below = to - src;
          b.copyWithin(to, src, to);
          b.copyWithin(to + below, to + n, to + n + (n - below));
        } else b.copyWithin(to, src, src + n);
        return;
      }
      case 9: {
        // Overwrite with a chunk from elsewhere.
        const from = pos();
        const to = pos();
        const n = 1 + rng.below(Math.min(32, this.len - Math.max(from, to)));
        b.copyWithin(to, from, from + n);
        return;
      }
      case 10: {
        // Crossover: splice a part of another corpus entry in.
        if (!other || other.length === 0) return;
        const from = rng.below(other.length);
        const n = 1 + rng.below(Math.min(128, other.length - from));
        const chunk = other.subarray(from, from + n);
        if (rng.below(2) === 0) {
          const p = rng.below(this.len + 1);
          this.open(p, n);
          b.set(chunk, p);
        } else {
          const to = pos();
          b.set(chunk.subarray(0, Math.min(n, this.len - to)), to);
        }
        return;
      }
      default: {
        // Truncate: shorter sequences.
        this.len = rng.below(this.len) + 1;
        return;
      }
    }
  }
}
