/**
 * DeviceCore.setMemory with ANOTHER GuestMemory (not the same one rebound in place) while a
 * device holds a request: a blk device whose backend holds a read, on a real transport (the
 * core builds its queues), with the memory replaced between the pop and the completion.
 *
 * What the spec asks: DEVICE_NEEDS_RESET is for an error the device cannot recover from (2.1);
 * a memory map that still holds the ring at the same guest addresses is none, and the driver
 * does not even see it. So every buffer the device took is returned in the used ring as always
 * (2.7.8, 2.8.6), exactly once, and the rings go on. Before the fix (core-queues.ts `moveTo`),
 * the queue was rebuilt as a new object with the old one's state: the queue server stopped the
 * old one at the next notification and dropped the held request's completion (the driver waited
 * for it forever), while a completion arriving before that notification went through the old
 * object to a used slot the new one wrote again.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BlkDevice } from '../devices/blk/blk-device.js';
import { header, pattern } from '../devices/blk/blk-test-support.js';
import { MemoryBackend } from '../devices/blk/memory-backend.js';
import { DmaAllocator } from '../driver/dma-allocator.js';
import { VirtioDriver } from '../driver/virtio-driver.js';
import { GuestMemory } from '../memory/guest-memory.js';
import type { PackedQueue } from '../queue/packed-queue.js';
import type { SplitQueue } from '../queue/split-queue.js';
import { BlkReqType, BlkStatus } from '../spec/blk.js';
import { F } from '../spec/features.js';
import { Status } from '../spec/status.js';
import { TransportKind, createTransportPair, deviceCoreFactory } from '../transport/loopback.js';
import type { DeviceCore } from './device-core.js';

const MEM = 1 << 20;
const DMA_BASE = 0x1_0000;

/** A RAM disk whose next read waits until `release()` (an I/O in flight on a real disk). */
class HoldingBackend extends MemoryBackend {
  holdNext = false;
  private held: (() => void) | null = null;

  override read(offset: number, dst: Uint8Array, dstOff = 0, len = dst.length - dstOff): Promise<void> | void {
    if (!this.holdNext) return super.read(offset, dst, dstOff, len);
    this.holdNext = false;
    return new Promise<void>((resolve) => {
      this.held = () => {
        super.read(offset, dst, dstOff, len);
        resolve();
      };
    });
  }

  get holding(): boolean {
    return this.held !== null;
  }

  release(): void {
    const h = this.held;
    this.held = null;
    h?.();
  }
}

async function until(cond: () => boolean, what: string): Promise<void> {
  // Bounded: promise continuations of the backend and the device settle within a few turns.
  for (let i = 0; i < 200 && !cond(); i++) await new Promise<void>((r) => setImmediate(r));
  assert.ok(cond(), what);
}

function rig(packed: boolean) {
  const backend = new HoldingBackend(64 * 512);
  for (let s = 0; s < 64; s++) backend.data.set(pattern(512, s), s * 512);
  const device = new BlkDevice(backend, { queueSize: 16, numQueues: 1 });
  const mem = GuestMemory.allocate(MEM);
  const cores: DeviceCore[] = [];
  const pair = createTransportPair(TransportKind.MMIO, mem, deviceCoreFactory(device, mem, {}, cores));
  const dma = new DmaAllocator(DMA_BASE, MEM - DMA_BASE);
  const drv = VirtioDriver.initSync(pair.driver, { wantedFeatures: F.VERSION_1 | (packed ? F.RING_PACKED : 0n), dma, queueSizes: [16] });
  assert.equal((drv.features & F.RING_PACKED) !== 0n, packed);
  const used: { token: number; len: number }[] = [];
  const q = drv.queue(0);
  drv.onUsed(0, () => {
    for (let t = q.takeUsed(); t !== undefined; t = q.takeUsed()) used.push({ token: t, len: q.lastUsedLen });
  });
  const requests = new Map<number, { data: number; status: number }>();
  /** A read of `sector` (header, 512 data bytes, status) made available and kicked. */
  const read = (token: number, sector: number): void => {
    const hdr = dma.alloc(16);
    const data = dma.alloc(512);
    const status = dma.alloc(1);
    mem.write(hdr, header(BlkReqType.IN, sector));
    mem.fill(data, 512, 0xee);
    mem.fill(status, 1, 0xee);
    assert.ok(q.add([{ addr: hdr, len: 16 }], [{ addr: data, len: 512 }, { addr: status, len: 1 }], token));
    requests.set(token, { data, status });
    drv.kick(0);
  };
  const check = (token: number, sector: number): void => {
    const r = requests.get(token)!;
    assert.deepEqual(mem.slice(r.data, 512), pattern(512, sector), `request ${token}: the sector's data`);
    assert.equal(mem.readU8(r.status), BlkStatus.OK, `request ${token}: status OK`);
  };
  return { backend, mem, drv, core: () => cores.at(-1)!, used, read, check };
}

describe('DeviceCore.setMemory with another GuestMemory while the device holds a request', () => {
  for (const packed of [false, true]) {
    const ring = packed ? 'packed' : 'split';
    it(`${ring}: the held request completes into the used ring once, after and beside requests served on the new memory; no DEVICE_NEEDS_RESET`, async () => {
      const r = rig(packed);
      const core = r.core();
      const queueBefore = core.queue(0)!;
      r.backend.holdNext = true;
      r.read(1, 5);
      await until(() => r.backend.holding, 'the backend holds the read');
      assert.equal(r.used.length, 0);

      // The host's memory map changes: the same guest pages, seen through a new GuestMemory
      // (a region mapped again), with the device's request still in flight.
      const moved = new GuestMemory(r.mem.regionSpecs());
      core.setMemory(moved);
      assert.equal(core.status & Status.DEVICE_NEEDS_RESET, 0, 'no reset needed');
      assert.equal(core.memory, moved);
      assert.equal(core.queue(0), queueBefore, 'the queue goes on as the same object (the queue server keeps its requests)');
      assert.equal(core.queue(0)!.memory, moved, 'its ring is read and written through the new memory');

      // A request made and served after the change, while the first is still held.
      r.read(2, 9);
      await until(() => r.used.length === 1, 'the second request came back');
      assert.deepEqual(r.used[0], { token: 2, len: 513 });
      r.check(2, 9);

      // The held read completes now: its used entry goes to the live ring, after the other.
      r.backend.release();
      await until(() => r.used.length === 2, 'the held request came back');
      assert.deepEqual(r.used[1], { token: 1, len: 513 });
      r.check(1, 5);

      // And the ring goes on: nothing was used twice or overwritten.
      r.read(3, 11);
      await until(() => r.used.length === 3, 'a later request came back');
      r.check(3, 11);
      for (let i = 0; i < 4; i++) await new Promise<void>((res) => setImmediate(res));
      assert.deepEqual(
        r.used.map((u) => u.token),
        [2, 1, 3],
        'each request used exactly once',
      );
      assert.equal((core.queue(0) as SplitQueue | PackedQueue).inFlight, 0, 'nothing left in flight');
      assert.equal(core.status & Status.DEVICE_NEEDS_RESET, 0);
      r.drv.reset();
    });
  }
});
