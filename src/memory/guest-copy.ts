/**
 * Copies between guest memory and a device's own buffers (net's frames and headers, fs's request
 * and reply buffers) without allocating for small spans. Why not ChainCursor.read / write: on the
 * path of a small frame their copies were the largest single cost (bench/net-sink-bench.ts
 * profile, bench/README.md "net-pps"): a copy above 32 bytes makes a subarray per copy (V8's
 * species lookup and a view allocated per frame), one below is a byte loop; fs's byte loop up to
 * 256 bytes was 6.7 % of the lookup job's back-end samples (bench/README.md "s19-fs").
 * Here a span whose source and destination are equally aligned is copied in 32-bit words up to
 * WORD_COPY_MAX bytes (nothing allocated), a longer one, or one whose two sides are differently
 * aligned and longer than 16 bytes, by `Uint8Array.prototype.set` from a view made with the
 * constructor (cheaper than subarray; ~50 ns at any length against ~1.5 ns a byte for a byte
 * loop). Word copies move bytes unchanged, whatever the host's byte order.
 *
 * The view made for a long span is the one allocation left on the frame path, kept because it
 * is the fastest copy measured (`node --expose-gc dist/bench/net-heap.js 1000000 1500`, load
 * 3-6): word loops at every length cost 1507-1568 ns a packet against 871-876 ns with the view
 * (0 against 93 young-generation collections per 10^6 packets); `Buffer.prototype.copy` makes
 * the same view inside Node 20. A native memcpy would cost an N-API call per span (the two
 * typed arrays' info looked up each time), about what the view costs, and would not exist in
 * the emulator builds that have no addon.
 */

/** Spans up to this many bytes are copied word by word (measured: the word loop wins below it). */
export const WORD_COPY_MAX = 256;

/** A word view of `b` when its bytes start 4-aligned in their buffer (else null: byte copies). */
export function wordsOf(b: Uint8Array): Uint32Array | null {
  return b.byteOffset % 4 === 0 ? new Uint32Array(b.buffer, b.byteOffset, b.length >>> 2) : null;
}

/** Copies src[off, off + n) to dst[at, at + n): words when both sides allow, else set(). */
export function copySpan(src: Uint8Array, src32: Uint32Array | null, off: number, dst: Uint8Array, dst32: Uint32Array | null, at: number, n: number): void {
  if (n > WORD_COPY_MAX || src32 === null || dst32 === null || ((off - at) & 3) !== 0) {
    if (n <= 16) for (let k = 0; k < n; k++) dst[at + k] = src[off + k]!;
    else dst.set(new Uint8Array(src.buffer, src.byteOffset + off, n), at);
    return;
  }
  // Bytes up to the first word boundary (the same on both sides), whole words, the tail.
  while ((off & 3) !== 0 && n > 0) {
    dst[at++] = src[off++]!;
    n--;
  }
  const words = n >>> 2;
  const sw = off >>> 2;
  const dw = at >>> 2;
  for (let k = 0; k < words; k++) dst32[dw + k] = src32[sw + k]!;
  const done = words << 2;
  for (let k = done; k < n; k++) dst[at + k] = src[off + k]!;
}
