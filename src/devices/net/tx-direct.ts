/**
 * The transmit queue's direct path (5.1.6.2 over a split ring, 2.7): the queue server hands the
 * queue's available chains to `serve` first; it takes a batch of the plainest chains straight
 * from the ring (`DeviceQueue.popDirect`: device-readable descriptors only, no indirect table,
 * every buffer in guest memory), sends each through the device's ordinary transmit path
 * (`TxDirectHost.sendTx`: the same header checks, counters, drops and link as a popped chain),
 * reading its bytes from the located segments, and returns them all to the used ring at once
 * (`pushDirect`). A chain of any other shape stops the batch and goes the general way (queue
 * server, DescriptorChain, TxChainReader), with the outcome the spec gives it.
 *
 * Why: at 64-byte frames the general path's per-chain layers (the chain walk into a
 * DescriptorChain, the vhost-user queue's per-buffer work, the queue server's request slot,
 * dispatch and completion) cost about as much as reading the frame itself (bench/README.md
 * "s15-net", "s16-net").
 */
import type { DirectServer } from '../../device/queue-request.js';
import { DIRECT_MAX_SEGMENTS, DirectBatch } from '../../queue/direct-batch.js';
import type { DeviceQueue } from '../../queue/types.js';
import { copySpan, wordsOf } from '../../memory/guest-copy.js';
import type { TxSource } from './tx-source.js';

/** The device side of the direct path: its transmit path for one frame. */
export interface TxDirectHost {
  /** Serves one transmit chain read from `src` of transmit queue `queueIndex` (nothing is written back). */
  sendTx(queueIndex: number, src: TxSource): void;
}

/** The direct path of one transmit queue (see the module comment). */
export class TxDirect implements DirectServer, TxSource {
  /** DirectServer: device-readable bytes of the chains the last `serve` sent. */
  lastBytes = 0;
  /** TxSource: the chain being sent now. */
  readableBytes = 0;
  /** popDirect takes only chains whose buffers are all in guest memory. */
  readonly faulted = false;
  private readonly batch = new DirectBatch();
  /** The chain of `batch` being sent now. */
  private k = 0;
  /** The word view of the header buffer last used (remade only when another buffer comes). */
  private hdrBuf: Uint8Array | null = null;
  private hdr32: Uint32Array | null = null;

  constructor(
    private readonly host: TxDirectHost,
    /** The transmit queue served (its counters). */
    readonly queueIndex: number,
  ) {}

  serve(vq: DeviceQueue, max: number): number {
    const b = this.batch;
    const n = vq.popDirect?.(b, max) ?? 0;
    if (n === 0) return 0;
    const host = this.host;
    const q = this.queueIndex;
    let bytes = 0;
    for (let k = 0; k < n; k++) {
      const t = b.bytes[k]!;
      this.k = k;
      this.readableBytes = t;
      bytes += t;
      host.sendTx(q, this);
    }
    // The chains are the driver's again once used: nothing reads them through this any more.
    this.readableBytes = 0;
    vq.pushDirect?.(b, n);
    this.lastBytes = bytes;
    return n;
  }

  read(hdr: Uint8Array, hl: number, frame: Uint8Array, frame32: Uint32Array | null, frameLen: number): boolean {
    if (hl + frameLen > this.readableBytes) return false;
    if (hdr !== this.hdrBuf) {
      this.hdrBuf = hdr;
      this.hdr32 = wordsOf(hdr);
    }
    const b = this.batch;
    const s0 = this.k * DIRECT_MAX_SEGMENTS;
    if (hl + frameLen <= b.len[s0]!) {
      // All of it in the first buffer (the header and the frame in one descriptor, as testpmd
      // sends, and Linux's virtio_net when the header fits the headroom): two copies out of it,
      // no segment walk.
      const mem = b.memory!;
      const r = b.region[s0]!;
      const bytes = mem.bytesOf(r);
      const u32 = mem.u32Of(r);
      const off = b.offset[s0]!;
      copySpan(bytes, u32, off, hdr, this.hdr32, 0, hl);
      copySpan(bytes, u32, off + hl, frame, frame32, 0, frameLen);
      return true;
    }
    this.copy(0, hl, hdr, this.hdr32, 0);
    this.copy(hl, frameLen, frame, frame32, 0);
    return true;
  }

  readRest(hl: number, frame: Uint8Array, frame32: Uint32Array | null, from: number, to: number): boolean {
    if (from > to || hl + to > this.readableBytes) return false;
    this.copy(hl + from, to - from, frame, frame32, from);
    return true;
  }

  /**
   * Copies `n` of the current chain's readable bytes from byte `from` into dst[at, at + n). The
   * caller checked that the chain holds them; its segments are located in `batch.memory`.
   */
  private copy(from: number, n: number, dst: Uint8Array, dst32: Uint32Array | null, at: number): void {
    const b = this.batch;
    const mem = b.memory!;
    const base = this.k * DIRECT_MAX_SEGMENTS;
    const segs = b.segments[this.k]!;
    for (let s = 0; s < segs && n > 0; s++) {
      const len = b.len[base + s]!;
      if (from >= len) {
        from -= len;
        continue;
      }
      const c = Math.min(len - from, n);
      const r = b.region[base + s]!;
      copySpan(mem.bytesOf(r), mem.u32Of(r), b.offset[base + s]! + from, dst, dst32, at, c);
      at += c;
      n -= c;
      from = 0;
    }
  }
}
