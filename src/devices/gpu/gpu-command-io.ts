/**
 * Reading a virtio-gpu request and writing its response (5.7.6.7), shared by the controlq and
 * cursorq handlers: the request's fixed header and body are read into one scratch buffer per
 * queue, the response is built in scratch buffers made once, so serving a command allocates
 * nothing. Every response carries VIRTIO_GPU_FLAG_FENCE and the request's fence_id when the
 * request had the flag (5.7.6.7 fence_id: the device MUST set the flag and copy the id).
 */
import { ChainCursor, type DescriptorChain } from '../../queue/chain.js';
import { GPU_FLAG_FENCE, GpuHdr } from '../../spec/gpu.js';

/** The largest fixed request a handler reads (TRANSFER_TO_HOST_2D and UPDATE_CURSOR: 56 bytes). */
const REQUEST_SCRATCH = 64;

export class GpuCommandIo {
  readonly req = new Uint8Array(REQUEST_SCRATCH);
  readonly reqView = new DataView(this.req.buffer);
  /** Bytes of the request read into `req` so far. */
  reqLength = 0;
  le = true;
  type = 0;
  flags = 0;
  private readonly reader = new ChainCursor(false);
  private readonly writer = new ChainCursor(true);
  private readonly hdr = new Uint8Array(GpuHdr.SIZE);
  private readonly hdrView = new DataView(this.hdr.buffer);

  /** Starts a request: reads its header. False when the chain holds less than a header. */
  begin(chain: DescriptorChain): boolean {
    this.reader.reset(chain);
    this.reqLength = this.reader.read(this.req, 0, GpuHdr.SIZE);
    if (this.reqLength < GpuHdr.SIZE) {
      this.type = 0;
      this.flags = 0;
      return false;
    }
    this.type = this.reqView.getUint32(GpuHdr.TYPE, this.le);
    this.flags = this.reqView.getUint32(GpuHdr.FLAGS, this.le);
    return true;
  }

  /** Reads the request up to `size` bytes; false when the chain's readable part is shorter. */
  need(size: number): boolean {
    if (this.reqLength < size) this.reqLength += this.reader.read(this.req, this.reqLength, size - this.reqLength);
    return this.reqLength >= size;
  }

  /** Reads `len` more request bytes (beyond the fixed part) into dst; returns how many. */
  readMore(dst: Uint8Array, dstOff: number, len: number): number {
    return this.reader.read(dst, dstOff, len);
  }

  /** Bytes of the readable part not read yet. */
  get remaining(): number {
    return this.reader.remaining;
  }

  u32(offset: number): number {
    return this.reqView.getUint32(offset, this.le);
  }

  /** A le64 as a number, or -1 when it does not fit a safe integer. */
  u64(offset: number): number {
    // A big-endian (legacy) guest stores the high word first.
    const l = this.reqView.getUint32(this.le ? offset : offset + 4, this.le);
    const h = this.reqView.getUint32(this.le ? offset + 4 : offset, this.le);
    return h > 0x1f_ffff ? -1 : h * 0x1_0000_0000 + l;
  }

  /**
   * Writes the response header of `type` (copying fence and context from the request), then
   * `payload[0, payloadLen)` after it; returns the bytes written into the chain.
   */
  respond(chain: DescriptorChain, type: number, payload?: Uint8Array, payloadLen = 0): number {
    // No room for a whole header (Linux's cursor commands have none): nothing is written.
    if (chain.writableBytes < GpuHdr.SIZE) return 0;
    const h = this.hdrView;
    this.hdr.fill(0);
    h.setUint32(GpuHdr.TYPE, type, this.le);
    if (this.reqLength >= GpuHdr.SIZE && (this.flags & GPU_FLAG_FENCE) !== 0) {
      h.setUint32(GpuHdr.FLAGS, GPU_FLAG_FENCE, this.le);
      this.hdr.set(this.req.subarray(GpuHdr.FENCE_ID, GpuHdr.FENCE_ID + 8), GpuHdr.FENCE_ID);
      this.hdr.set(this.req.subarray(GpuHdr.CTX_ID, GpuHdr.CTX_ID + 4), GpuHdr.CTX_ID);
    }
    this.writer.reset(chain);
    let n = this.writer.write(this.hdr, 0, GpuHdr.SIZE);
    if (payload !== undefined && payloadLen > 0 && n === GpuHdr.SIZE) n += this.writer.write(payload, 0, payloadLen);
    return n;
  }
}
