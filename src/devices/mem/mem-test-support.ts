/** Test helpers for the virtio-mem tests: hand-built requests and their raw responses. */
import type { DriverContext } from '../../driver/types.js';
import type { Segment } from '../../queue/types.js';
import { MemRequest, MemResponse } from '../../spec/mem.js';
import { rawQueue } from '../balloon/balloon-test-helpers.js';

export interface RawAnswer {
  readonly usedLen: number;
  /** The response type, or -1 when fewer than 2 bytes were written. */
  readonly type: number;
  readonly state: number;
  readonly bytes: Uint8Array;
}

export interface RawRequestOptions {
  /** Bytes of the request (default 24), padding filled with `padding`. */
  readonly length?: number;
  readonly padding?: number;
  /** Device-writable bytes (default 10). */
  readonly respLength?: number;
  /** Segments added after the response (an unmapped one, say). */
  readonly extraIn?: readonly Segment[];
}

/** Sends requests on the guest-request queue the way a (possibly malicious) driver builds them. */
export function rawMem(ctx: DriverContext): (type: number, addr: number, blocks: number, o?: RawRequestOptions) => Promise<RawAnswer> {
  const send = rawQueue(ctx, 0);
  const le = ctx.littleEndian;
  return async (type, addr, blocks, o = {}) => {
    const len = o.length ?? MemRequest.SIZE;
    const req = new Uint8Array(Math.max(len, MemRequest.SIZE)).fill(o.padding ?? 0);
    const v = new DataView(req.buffer);
    v.setUint16(MemRequest.TYPE, type, le);
    v.setUint32(MemRequest.ADDR + (le ? 0 : 4), addr % 0x1_0000_0000, le);
    v.setUint32(MemRequest.ADDR + (le ? 4 : 0), Math.floor(addr / 0x1_0000_0000), le);
    v.setUint16(MemRequest.NB_BLOCKS, blocks, le);
    const reqAddr = ctx.dma.alloc(Math.max(len, 1));
    ctx.memory.write(reqAddr, req.subarray(0, len));
    const respLen = o.respLength ?? MemResponse.SIZE;
    const respAddr = ctx.dma.alloc(Math.max(respLen, 1));
    ctx.memory.fill(respAddr, Math.max(respLen, 1), 0xee);
    const ins: Segment[] = respLen > 0 ? [{ addr: respAddr, len: respLen }] : [];
    const usedLen = await send(len > 0 ? [{ addr: reqAddr, len }] : [], [...ins, ...(o.extraIn ?? [])]);
    const bytes = ctx.memory.slice(respAddr, Math.max(respLen, 1)).slice(0, respLen);
    ctx.dma.free(reqAddr);
    ctx.dma.free(respAddr);
    const rv = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
    return {
      usedLen,
      type: usedLen >= 2 ? rv.getUint16(MemResponse.TYPE, le) : -1,
      state: usedLen >= MemResponse.SIZE ? rv.getUint16(MemResponse.STATE, le) : -1,
      bytes,
    };
  };
}

