/**
 * Reads a transmit chain (5.1.6.2: a virtio_net_hdr, then the frame, over any split of
 * device-readable descriptors) out of guest memory into the device's header buffer and frame,
 * with the allocation-free copies of src/memory/guest-copy.ts.
 */
import type { DescriptorChain } from '../../queue/chain.js';
import { copySpan, wordsOf } from '../../memory/guest-copy.js';

export { WORD_COPY_MAX } from '../../memory/guest-copy.js';

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
    const hdr32 = hdr === this.hdrBuf ? this.hdr32 : this.wordsOfHeader(hdr);
    let pos = 0;
    for (let i = 0; i < chain.readableCount && pos < total; i++) {
      const len = Math.min(chain.lens[i]!, total - pos);
      if (len === 0) continue;
      const addr = chain.addrs[i]!;
      const r = mem.locate(addr, len);
      if (r < 0) return false;
      const bytes = mem.bytesOf(r);
      const u32 = mem.u32Of(r);
      let off = addr - mem.baseOf(r);
      let n = len;
      if (pos < hl) {
        // The header part: words when the guest buffer is 4-aligned (a 12 or 20-byte header
        // in 3 or 5 loads instead of a byte loop).
        const h = Math.min(n, hl - pos);
        copySpan(bytes, u32, off, hdr, hdr32, pos, h);
        pos += h;
        off += h;
        n -= h;
      }
      if (n > 0) {
        copySpan(bytes, u32, off, frame, frame32, pos - hl, n);
        pos += n;
      }
    }
    return pos === total;
  }

  /** The word view of the header buffer last used (remade only when another buffer comes). */
  private hdrBuf: Uint8Array | null = null;
  private hdr32: Uint32Array | null = null;

  private wordsOfHeader(hdr: Uint8Array): Uint32Array | null {
    this.hdrBuf = hdr;
    this.hdr32 = wordsOf(hdr);
    return this.hdr32;
  }

  /**
   * Copies frame bytes [from, to) (the chain's readable bytes hl + from .. hl + to) into
   * frame[from, to): the rest of a frame whose first `from` bytes `read` took. False when a
   * buffer is not in guest memory or the chain holds fewer bytes.
   */
  readRest(chain: DescriptorChain, hl: number, frame: Uint8Array, frame32: Uint32Array | null, from: number, to: number): boolean {
    const mem = chain.memory;
    let skip = hl + from;
    let pos = from;
    for (let i = 0; i < chain.readableCount && pos < to; i++) {
      const segLen = chain.lens[i]!;
      if (skip >= segLen) {
        skip -= segLen;
        continue;
      }
      const addr = chain.addrs[i]! + skip;
      const len = Math.min(segLen - skip, to - pos);
      skip = 0;
      const r = mem.locate(addr, len);
      if (r < 0) return false;
      copySpan(mem.bytesOf(r), mem.u32Of(r), addr - mem.baseOf(r), frame, frame32, pos, len);
      pos += len;
    }
    return pos === to;
  }
}
