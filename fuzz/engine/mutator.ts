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

export class Mutator {
  constructor(
    private readonly rng: Rng,
    private readonly maxLen: number,
  ) {}

  /** A mutant of `input`, 1 to 8 stacked mutations; `other` feeds crossover. */
  mutate(input: Uint8Array, other: Uint8Array | undefined): Uint8Array {
    let b = Array.from(input);
    const rounds = 1 + this.rng.below(8);
    for (let r = 0; r < rounds; r++) b = this.once(b, other);
    if (b.length > this.maxLen) b.length = this.maxLen;
    return Uint8Array.from(b);
  }

  private once(b: number[], other: Uint8Array | undefined): number[] {
    const rng = this.rng;
    const pos = (): number => rng.below(b.length);
    if (b.length === 0) return [rng.below(256)];
    switch (rng.below(12)) {
      case 0:
        b[pos()]! ^= 1 << rng.below(8);
        return b;
      case 1:
        b[pos()] = rng.below(256);
        return b;
      case 2:
        b[pos()] = INTERESTING_8[rng.below(INTERESTING_8.length)]!;
        return b;
      case 3: {
        const p = pos();
        const v = INTERESTING_16[rng.below(INTERESTING_16.length)]!;
        b[p] = v & 0xff;
        if (p + 1 < b.length) b[p + 1] = v >>> 8;
        return b;
      }
      case 4: {
        const p = pos();
        const v = INTERESTING_32[rng.below(INTERESTING_32.length)]!;
        for (let i = 0; i < 4 && p + i < b.length; i++) b[p + i] = (v >>> (8 * i)) & 0xff;
        return b;
      }
      case 5: {
        const p = pos();
        b[p] = (b[p]! + (rng.below(71) - 35)) & 0xff;
        return b;
      }
      case 6: {
        // Insert random bytes.
        const p = rng.below(b.length + 1);
        const n = 1 + rng.below(16);
        const ins = Array.from({ length: n }, () => rng.below(256));
        b.splice(p, 0, ...ins);
        return b;
      }
      case 7: {
        // Erase a chunk.
        if (b.length < 2) return b;
        const p = pos();
        b.splice(p, 1 + rng.below(Math.min(32, b.length - p)));
        return b;
      }
      case 8: {
        // Duplicate a chunk elsewhere (repeats a step of a sequence).
        const from = pos();
        const n = 1 + rng.below(Math.min(64, b.length - from));
        const chunk = b.slice(from, from + n);
        b.splice(rng.below(b.length + 1), 0, ...chunk);
        return b;
      }
      case 9: {
        // Overwrite with a chunk from elsewhere.
        const from = pos();
        const to = pos();
        const n = 1 + rng.below(Math.min(32, b.length - Math.max(from, to)));
        const chunk = b.slice(from, from + n);
        for (let i = 0; i < chunk.length; i++) b[to + i] = chunk[i]!;
        return b;
      }
      case 10: {
        // Crossover: splice a part of another corpus entry in.
        if (!other || other.length === 0) return b;
        const from = rng.below(other.length);
        const n = 1 + rng.below(Math.min(128, other.length - from));
        const chunk = Array.from(other.subarray(from, from + n));
        if (rng.below(2) === 0) b.splice(rng.below(b.length + 1), 0, ...chunk);
        else {
          const to = pos();
          for (let i = 0; i < chunk.length && to + i < b.length; i++) b[to + i] = chunk[i]!;
        }
        return b;
      }
      default: {
        // Truncate: shorter sequences.
        b.length = rng.below(b.length) + 1;
        return b;
      }
    }
  }
}
