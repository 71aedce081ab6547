/**
 * Byte requests for the minimal peer drivers (virtio-fs, virtio-net) over the driver's
 * RequestQueue: device-readable bytes followed by a device-writable area in one DMA buffer,
 * resolving with the bytes the device wrote (the used length). The buffer is freed on completion.
 */
import type { RequestQueue } from '../../driver/request-queue.js';
import { ErrorCode, VirtioError } from '../../errors.js';
import type { Segment } from '../../queue/types.js';

export interface Completion {
  /** The device-writable area, `usedLen` bytes of it as written (copied out of guest memory). */
  readonly data: Uint8Array;
  readonly usedLen: number;
}

const NO_SEGMENTS: readonly Segment[] = [];

/** Sends `out` (device-readable) with `inLen` device-writable bytes (0: none) on `queue`. */
export async function exchangeBytes(queue: RequestQueue, out: Uint8Array, inLen: number): Promise<Completion> {
  if (out.length === 0 && inLen === 0) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'empty request');
  const { dma, memory } = queue.context;
  const addr = dma.alloc(out.length + inLen, 16);
  try {
    if (out.length > 0) memory.write(addr, out);
    const outs: readonly Segment[] = out.length > 0 ? [{ addr, len: out.length }] : NO_SEGMENTS;
    const ins: readonly Segment[] = inLen > 0 ? [{ addr: addr + out.length, len: inLen }] : NO_SEGMENTS;
    const usedLen = await queue.submit(outs, ins);
    const data = new Uint8Array(Math.min(usedLen, inLen));
    if (data.length > 0) memory.read(addr + out.length, data);
    return { data, usedLen };
  } finally {
    dma.free(addr);
  }
}
