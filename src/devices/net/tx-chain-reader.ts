/**
 * Reads a transmit chain (5.1.6.2: a virtio_net_hdr, then the frame, over any split of
 * device-readable descriptors) out of guest memory into the device's header buffer and frame.
 *
 * Why not ChainCursor.read: on the transmit path of a small frame its copies were the largest
 * single cost (bench/net-sink-bench.ts profile, bench/README.md "net-pps"): a copy above 32
 * bytes makes a subarray per copy (V8's species lookup and a view allocated per frame), one
 * below is a byte loop. Here a span whose source and destination are equally aligned is copied
 * in 32-bit words up to WORD_COPY_MAX bytes (nothing allocated), a longer one by
 * `Uint8Array.prototype.set` from a view made with the constructor (cheaper than subarray).
 * Word copies move bytes unchanged, whatever the host's byte order.
 */
import type { DescriptorChain } from '../../queue/chain.js';

/** Spans up to this many bytes are copied word by word (measured: the word loop wins below it). */
export const WORD_COPY_MAX = 256;

/** Reads a transmit chain's header and frame; one per device (it keeps no state between chains). */
export class TxChainReader {
  /**
   * Copies the chain's first `hl` readable bytes into hdr[0, hl) and the next `frameLen` into
   * frame[0, frameLen). False when a readable buffer is not in guest memory (the chain is then
   * dropped as malformed) or the chain holds fewer bytes.
   */
  read(chain: DescriptorChain, hdr: Uint8Array, hl: number, frame: Uint8Array, frame32: Uint32Array | null, frameLen: number): boolean {
    const mem = chain.memory;
    const total = hl + frameLen;
    let pos = 0;
    for (let i = 0; i < chain.readableCount && pos < total; i++) {
      const len = Math.min(chain.lens[i]!, total - pos);
      if (len === 0) continue;
      const addr = chain.addrs[i]!;
      const r = mem.locate(addr, len);
      if (r < 0) return false;
      const bytes = mem.bytesOf(r);
      let off = addr - mem.baseOf(r);
      let n = len;
      // The header part (small: a byte loop).
      while (pos < hl && n > 0) {
        hdr[pos++] = bytes[off++]!;
        n--;
      }
      if (n > 0) {
        copySpan(bytes, mem.u32Of(r), off, frame, frame32, pos - hl, n);
        pos += n;
      }
    }
    return pos === total;
  }
}

/** Copies src[off, off + n) to dst[at, at + n): words when both sides allow, else set(). */
function copySpan(src: Uint8Array, src32: Uint32Array | null, off: number, dst: Uint8Array, dst32: Uint32Array | null, at: number, n: number): void {
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
