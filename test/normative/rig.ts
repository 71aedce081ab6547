/**
 * Shared pieces of the normative tests: a register window that records (and may alter) every
 * access between a driver transport and a device transport, and a one-buffer round trip over
 * a driver queue.
 */
import assert from 'node:assert/strict';
import type { DriverQueue } from '../../src/queue/types.js';
import type { GuestMemory } from '../../src/memory/guest-memory.js';
import type { DmaAllocator } from '../../src/driver/dma-allocator.js';
import type { RegisterWindow } from '../../src/transport/bus.js';

export interface Access {
  readonly op: 'r' | 'w';
  readonly off: number;
  readonly width: number;
  readonly value: number;
}

/** Passes accesses through to `inner`, logging them; `onRead` may replace a value read. */
export class RecordingWindow implements RegisterWindow {
  readonly log: Access[] = [];
  onRead: ((off: number, width: number, value: number) => number) | null = null;
  onWrite: ((off: number, width: number, value: number) => boolean) | null = null;

  constructor(private readonly inner: RegisterWindow) {}

  read(off: number, width: number): number {
    let v = this.inner.read(off, width);
    if (this.onRead) v = this.onRead(off, width, v);
    this.log.push({ op: 'r', off, width, value: v });
    return v;
  }

  write(off: number, width: number, value: number): void {
    this.log.push({ op: 'w', off, width, value });
    // onWrite returning false swallows the write (the device never sees it).
    if (this.onWrite && !this.onWrite(off, width, value)) return;
    this.inner.write(off, width, value);
  }

  clear(): void {
    this.log.length = 0;
  }
}

/**
 * Sends `payload` through `q` (one readable and one writable segment), notifies through
 * `kick`, and returns the echoed bytes and the used length.
 */
export function roundTrip(
  mem: GuestMemory,
  dma: DmaAllocator,
  q: DriverQueue<number>,
  kick: () => void,
  payload: Uint8Array,
): { len: number; data: Uint8Array } {
  const out = dma.alloc(payload.length);
  const inn = dma.alloc(payload.length);
  mem.write(out, payload);
  mem.fill(inn, payload.length);
  assert.equal(q.add([{ addr: out, len: payload.length }], [{ addr: inn, len: payload.length }], 7), true);
  kick();
  const tok = q.takeUsed();
  assert.equal(tok, 7, 'the buffer came back');
  const len = q.lastUsedLen;
  const data = mem.slice(inn, payload.length).slice();
  dma.free(out);
  dma.free(inn);
  return { len, data };
}

/** 5.2.4 struct virtio_blk_config: [offset, size] of every field. */
const BLK_FIELDS: readonly (readonly [number, number])[] = [
  [0, 8], [8, 4], [12, 4], [16, 2], [18, 1], [19, 1], [20, 4], [24, 1], [25, 1], [26, 2], [28, 4],
  [32, 1], [33, 1], [34, 2], [36, 4], [40, 4], [44, 4], [48, 4], [52, 4], [56, 1], [57, 1], [58, 1],
  [59, 1], [60, 4], [64, 4], [68, 4], [72, 4], [76, 4], [80, 4], [84, 4], [88, 4], [92, 1], [93, 1],
  [94, 1], [95, 1],
];

/**
 * Why a device configuration access of `width` bytes at `off` is not the one the spec asks for
 * a virtio-blk field (driver/transport-mmio/3, driver/transport-pci/5), or null when it is: 8-bit
 * for u8, aligned 16-bit for u16, aligned 32-bit for u32 and each half of a u64.
 */
export function blkFieldAccessProblem(off: number, width: number): string | null {
  const f = BLK_FIELDS.find(([o, s]) => off >= o && off < o + s);
  if (!f) return `offset ${off} is outside the structure`;
  const [start, size] = f;
  if (size <= 4) return off === start && width === size ? null : `${width}-byte access at ${off} to the ${size}-byte field at ${start}`;
  return width === 4 && (off - start) % 4 === 0 ? null : `${width}-byte access at ${off} to the u64 at ${start}`;
}
