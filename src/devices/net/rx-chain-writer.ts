/**
 * Writes a received frame into receive buffers (5.1.6.4: the virtio_net_hdr, then the frame,
 * over the device-writable descriptors of one or, with MRG_RXBUF, several chains), with the
 * allocation-free copies of src/memory/guest-copy.ts.
 */
import type { DescriptorChain } from '../../queue/chain.js';
import { copySpan, wordsOf } from '../../memory/guest-copy.js';

/** Fills receive chains with header ++ frame; one per device (it caches the frame's word view). */
export class RxChainWriter {
  private lastFrame: Uint8Array | null = null;
  private lastFrame32: Uint32Array | null = null;

  /**
   * Writes bytes [at, total) of header ++ frame (header hdr[0, hl), frame frame[0, total - hl))
   * into the writable part of `chain`, from its start, as far as it holds them. Returns the
   * bytes written; it stops short at a buffer not in guest memory (as ChainCursor.write does:
   * the queue marked the chain faulty when it popped it).
   */
  fill(chain: DescriptorChain, hdr: Uint8Array, hl: number, frame: Uint8Array, total: number, at: number): number {
    if (frame !== this.lastFrame) {
      // A packet buffer other than the last one's: its word view is made once (a port's own
      // buffer stays the same frame after frame).
      this.lastFrame = frame;
      this.lastFrame32 = wordsOf(frame);
    }
    const frame32 = this.lastFrame32;
    const mem = chain.memory;
    const start = at;
    for (let i = chain.readableCount; i < chain.count && at < total; i++) {
      const len = Math.min(chain.lens[i]!, total - at);
      if (len === 0) continue;
      const addr = chain.addrs[i]!;
      const r = mem.locate(addr, len);
      if (r < 0) break;
      const bytes = mem.bytesOf(r);
      let off = addr - mem.baseOf(r);
      let n = len;
      while (at < hl && n > 0) {
        bytes[off++] = hdr[at++]!;
        n--;
      }
      if (n > 0) {
        copySpan(frame, frame32, at - hl, bytes, mem.u32Of(r), off, n);
        at += n;
      }
    }
    return at - start;
  }
}
