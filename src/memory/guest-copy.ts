/**
 * Copies between guest memory and a device's own buffers (net's frames and headers, fs's request
 * and reply buffers) without allocating for small spans. Why not ChainCursor.read / write: on the
 * path of a small frame their copies were the largest single cost (bench/net-sink-bench.ts
 * profile, bench/README.md "net-pps"): a copy above 32 bytes makes a subarray per copy (V8's
 * species lookup and a view allocated per frame), one below is a byte loop; fs's byte loop up to
 * 256 bytes was 6.7 % of the lookup job's back-end samples (bench/README.md "s19-fs").
 * Here a span up to WORD_COPY_MAX bytes is copied in 32-bit words (nothing allocated: a
 * request's or a small frame's copy never makes garbage): loaded and stored as they are when
 * source and destination are equally aligned, each destination word merged from two source words
 * when they are not (a Linux guest's FUSE reply arguments follow the request's name, so they
 * rarely start on a word; little-endian hosts, bytes elsewhere); a longer span by
 * `Uint8Array.prototype.set` from a view made with the constructor (cheaper than subarray; ~50 ns
 * at any length against ~1.5 ns a byte for a byte loop). Word copies move bytes unchanged.
 *
 * The view made for a long span is the one allocation left on the frame path, kept because it
 * is the fastest copy measured (`node --expose-gc dist/bench/net-heap.js 1000000 1500`, load
 * 3-6): word loops at every length cost 1507-1568 ns a packet against 871-876 ns with the view
 * (0 against 93 young-generation collections per 10^6 packets); `Buffer.prototype.copy` makes
 * the same view inside Node 20. A native memcpy would cost an N-API call per span (the two
 * typed arrays' info looked up each time), about what the view costs, and would not exist in
 * the emulator builds that have no addon.
 */

/** Whether this host stores the low byte of a word first (the shifts of copyShifted assume it). */
const LITTLE_ENDIAN_HOST = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

/** Spans up to this many bytes are copied word by word (measured: the word loop wins below it). */
export const WORD_COPY_MAX = 256;

/** A word view of `b` when its bytes start 4-aligned in their buffer (else null: byte copies). */
export function wordsOf(b: Uint8Array): Uint32Array | null {
  return b.byteOffset % 4 === 0 ? new Uint32Array(b.buffer, b.byteOffset, b.length >>> 2) : null;
}

/**
 * Copies src[off, off + n) to dst[at, at + n): up to WORD_COPY_MAX bytes in words when both sides
 * allow, else in bytes; above it with set().
 */
export function copySpan(src: Uint8Array, src32: Uint32Array | null, off: number, dst: Uint8Array, dst32: Uint32Array | null, at: number, n: number): void {
  if (n > WORD_COPY_MAX) {
    dst.set(new Uint8Array(src.buffer, src.byteOffset + off, n), at);
    return;
  }
  if (src32 === null || dst32 === null) {
    for (let k = 0; k < n; k++) dst[at + k] = src[off + k]!;
    return;
  }
  if (((off - at) & 3) !== 0) return copyShifted(src, src32, off, dst, dst32, at, n);
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

/**
 * copySpan of a span whose two sides differ in alignment: bytes up to the destination's word
 * boundary, then each destination word from the two source words its bytes lie in (a source
 * word may hold up to 3 bytes past the span: read, never written, and always inside `src32`),
 * then the tail. Bytes only on a big-endian host.
 */
function copyShifted(src: Uint8Array, src32: Uint32Array, off: number, dst: Uint8Array, dst32: Uint32Array, at: number, n: number): void {
  if (LITTLE_ENDIAN_HOST) {
    while ((at & 3) !== 0 && n > 0) {
      dst[at++] = src[off++]!;
      n--;
    }
    const lo = (off & 3) * 8; // 8, 16 or 24: the source is off a word now
    const hi = 32 - lo;
    const sw = off >>> 2;
    const dw = at >>> 2;
    // Word k reads source words sw + k and sw + k + 1; both must exist in src32.
    const words = Math.max(0, Math.min(n >>> 2, src32.length - 1 - sw));
    for (let k = 0; k < words; k++) dst32[dw + k] = (src32[sw + k]! >>> lo) | (src32[sw + k + 1]! << hi);
    const done = words << 2;
    at += done;
    off += done;
    n -= done;
  }
  for (let k = 0; k < n; k++) dst[at + k] = src[off + k]!;
}
