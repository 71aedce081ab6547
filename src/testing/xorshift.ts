/**
 * Reproducible pseudo-random streams for tests, fuzz-style property checks and benchmarks:
 * Marsaglia's xorshift32 (13, 17, 5). Not for anything secret. One generator for the whole
 * project, so a seed printed by a failing test names the same stream everywhere (the real-guest
 * tests compare these bytes with what a guest wrote).
 */

/** A uint32 stream from `seed` (0 is taken as 1: xorshift never leaves 0). */
export function xorshift32(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

/** A stream of integers in [0, n) from `seed` (the uint32 stream modulo n). */
export function xorshiftBelow(seed: number): (n: number) => number {
  const next = xorshift32(seed);
  return (n: number) => next() % n;
}

/** `len` bytes of the stream from `seed` (the low byte of each value): no two 4 KiB blocks alike. */
export function xorshiftBytes(len: number, seed: number): Uint8Array {
  const next = xorshift32(seed);
  const out = new Uint8Array(len);
  for (let i = 0; i < len; i++) out[i] = next() & 0xff;
  return out;
}
