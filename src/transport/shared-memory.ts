/**
 * 2.10 Shared Memory Regions, transport side: where a bus presents the regions a device
 * declares (`VirtioDevice.sharedMemoryRegions`). PCI places them in a memory BAR of their own
 * and describes each with a VIRTIO_PCI_CAP_SHARED_MEMORY_CFG capability (4.1.4.7); MMIO
 * presents each at a guest physical address through SHMSel / SHMLen / SHMBase (4.2.2).
 */
import type { SharedMemoryRegion } from '../device/types.js';
import { ErrorCode, VirtioError } from '../errors.js';

/** Regions start on page boundaries so an emulator can map each page by page. */
export const SHARED_MEMORY_ALIGN = 0x1000;

/** A shared memory region as a driver finds it: its id, guest physical address and length. */
export interface SharedMemoryRegionInfo {
  /** The region's shmid (2.10), whose meaning the device type defines. */
  readonly id: number;
  /** Guest physical address of the region's first byte. */
  readonly base: number;
  /** Length of the region in bytes. */
  readonly length: number;
}

/** A region as a transport placed it: `offset` from the start of the transport's window. */
export interface PlacedSharedMemoryRegion {
  /** The region's shmid (2.10), as the device declared it. */
  readonly id: number;
  /** Byte offset of the region from the start of the transport's window, a multiple of `SHARED_MEMORY_ALIGN`. */
  readonly offset: number;
  /** Length of the region in bytes. */
  readonly length: number;
  /** The host memory behind it, when the device serves it from this process. */
  readonly memory?: Uint8Array;
}

/**
 * Checks the device's regions and places them one after the other, page-aligned. Throws
 * VirtioError INVALID_ARGUMENT for a device that declares them wrongly (host configuration,
 * not guest input): a duplicate id (device/transport-pci/44), an id beyond `maxId`, a length
 * that is not a positive safe integer, or host memory shorter than the region.
 */
export function placeSharedMemory(regions: readonly SharedMemoryRegion[] | undefined, maxId: number): PlacedSharedMemoryRegion[] {
  const placed: PlacedSharedMemoryRegion[] = [];
  let offset = 0;
  for (const r of regions ?? []) {
    if (!Number.isInteger(r.id) || r.id < 0 || r.id > maxId) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `shared memory id ${r.id} not in 0..${maxId}`);
    if (placed.some((p) => p.id === r.id)) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `shared memory id ${r.id} declared twice`);
    if (!Number.isSafeInteger(r.length) || r.length <= 0) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `shared memory region ${r.id} length ${r.length}`);
    if (r.memory !== undefined && r.memory.length < r.length) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `shared memory region ${r.id}: ${r.memory.length} bytes of memory for ${r.length}`);
    }
    placed.push({ id: r.id, offset, length: r.length, ...(r.memory === undefined ? {} : { memory: r.memory }) });
    offset += Math.ceil(r.length / SHARED_MEMORY_ALIGN) * SHARED_MEMORY_ALIGN;
    if (!Number.isSafeInteger(offset)) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'shared memory regions too large');
  }
  return placed;
}

/** Bytes the placed regions span (a multiple of the page size). */
export function sharedMemorySpan(placed: readonly PlacedSharedMemoryRegion[]): number {
  const last = placed.at(-1);
  return last ? last.offset + Math.ceil(last.length / SHARED_MEMORY_ALIGN) * SHARED_MEMORY_ALIGN : 0;
}

/**
 * Index of the region holding [offset, offset + width) of the window, or -1 (a gap, past the
 * end, straddling two regions). No allocation per access.
 */
export function sharedMemoryAt(placed: readonly PlacedSharedMemoryRegion[], offset: number, width: number): number {
  for (let i = 0; i < placed.length; i++) {
    const r = placed[i]!;
    if (offset >= r.offset && offset + width <= r.offset + r.length) return i;
  }
  return -1;
}

/** Little-endian read of `width` (1, 2, 4) bytes of host memory. */
export function readLe(mem: Uint8Array, at: number, width: number): number {
  let v = 0;
  for (let i = width - 1; i >= 0; i--) v = v * 256 + mem[at + i]!;
  return v;
}

/** Little-endian write of `width` (1, 2, 4) bytes to host memory. */
export function writeLe(mem: Uint8Array, at: number, width: number, value: number): void {
  let v = value >>> 0;
  for (let i = 0; i < width; i++) {
    mem[at + i] = v & 0xff;
    v >>>= 8;
  }
}
