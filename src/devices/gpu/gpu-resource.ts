/**
 * 5.7.6.8 a 2D resource on the host: its pixels (width x height, 4 bytes a pixel in the guest's
 * format), the guest pages attached as its backing (a scatter list, RESOURCE_ATTACH_BACKING) and
 * the scanouts showing it. TRANSFER_TO_HOST_2D copies from the backing into the pixels.
 */
import type { GuestMemory } from '../../memory/guest-memory.js';
import { GPU_BYTES_PER_PIXEL } from '../../spec/gpu.js';

/**
 * A 2D resource (RESOURCE_CREATE_2D, 5.7.6.8): its host copy of the image, the guest backing
 * attached to it and the scanouts showing it.
 */
export class GpuResource {
  /** The host copy of the image, row after row, stride width * 4. */
  readonly pixels: Uint8Array;
  /** Backing entries (guest addresses and lengths), null when none is attached. */
  backingAddrs: Float64Array | null = null;
  /** Length in bytes of each backing entry (parallel to `backingAddrs`); null when none is attached. */
  backingLens: Uint32Array | null = null;
  /** Sum of the backing entries' lengths. */
  backingBytes = 0;
  /** Bit i: scanout i shows this resource. */
  scanoutMask = 0;

  constructor(
    /** The resource_id the driver chose (never 0). */
    readonly id: number,
    /** VIRTIO_GPU_FORMAT_* pixel format (4 bytes a pixel). */
    readonly format: number,
    /** Width in pixels. */
    readonly width: number,
    /** Height in pixels. */
    readonly height: number,
    /** Red, green, blue, alpha byte positions in a pixel (alpha -1: opaque). */
    readonly channels: readonly [number, number, number, number],
  ) {
    this.pixels = new Uint8Array(width * height * GPU_BYTES_PER_PIXEL);
  }

  /** Bytes per row of `pixels`: width * 4. */
  get stride(): number {
    return this.width * GPU_BYTES_PER_PIXEL;
  }

  /** Host bytes the resource holds (for the memory bounds). */
  get hostBytes(): number {
    return this.pixels.length;
  }

  /**
   * Copies `len` bytes of the backing from byte `offset` into `dst` at `dstOff`. False when the
   * range is outside the backing or a page is no longer mapped (the caller answers ERR_UNSPEC).
   */
  readBacking(memory: GuestMemory, offset: number, dst: Uint8Array, dstOff: number, len: number): boolean {
    const addrs = this.backingAddrs;
    const lens = this.backingLens;
    if (addrs === null || lens === null || offset < 0 || offset + len > this.backingBytes) return false;
    let i = 0;
    let skip = offset;
    while (i < lens.length && skip >= lens[i]!) skip -= lens[i++]!;
    let done = 0;
    while (done < len && i < lens.length) {
      const n = Math.min(lens[i]! - skip, len - done);
      if (!copyFromGuest(memory, addrs[i]! + skip, dst, dstOff + done, n)) return false;
      done += n;
      skip = 0;
      i++;
    }
    return done === len;
  }
}

/**
 * Copies guest memory [addr, addr + len) into dst, across region boundaries (a backing page
 * may straddle two vhost-user regions); false at an unmapped byte.
 */
export function copyFromGuest(memory: GuestMemory, addr: number, dst: Uint8Array, dstOff: number, len: number): boolean {
  let done = 0;
  while (done < len) {
    const a = addr + done;
    const r = memory.locate(a, 1);
    if (r < 0) return false;
    const base = memory.baseOf(r);
    const bytes = memory.bytesOf(r);
    const n = Math.min(len - done, base + bytes.length - a);
    dst.set(bytes.subarray(a - base, a - base + n), dstOff + done);
    done += n;
  }
  return true;
}

/** Whether every byte of [addr, addr + len) is mapped guest memory (regions may be adjacent). */
export function guestRangeMapped(memory: GuestMemory, addr: number, len: number): boolean {
  let done = 0;
  while (done < len) {
    const a = addr + done;
    const r = memory.locate(a, 1);
    if (r < 0) return false;
    done += Math.min(len - done, memory.baseOf(r) + memory.bytesOf(r).length - a);
  }
  return true;
}
