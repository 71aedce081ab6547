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
