/**
 * Faults from the guest's side of a vhost-user back-end (issue 17, sections 2 and 4) not covered
 * elsewhere: a guest that never takes its used buffers and keeps posting cannot grow the
 * back-end's requests in flight beyond its ring, nor its pool; a ring address above 2^53 is
 * reported as written, not as the unmapped sentinel.
 */
import { afterEach, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { BlkDevice } from '../devices/blk/blk-device.js';
import { MemoryBackend } from '../devices/blk/memory-backend.js';
import { header } from '../devices/blk/blk-test-support.js';
import { QueueError, QueueFault } from '../errors.js';
import { GuestMemory } from '../memory/guest-memory.js';
import { SplitQueue } from '../queue/split-queue.js';
import { DescriptorChain } from '../queue/chain.js';
import { BlkReqType } from '../spec/blk.js';
import { F } from '../spec/features.js';
import { DescFlag } from '../spec/ring.js';
import { LoopbackPlatform } from './loopback-platform.js';
import { RING, TinyDriver, makeGuest, openSession, setUpRing, type Guest, type Session } from './test-helpers.js';

/** A memory disk whose reads complete on a later turn of the event loop, counting those in flight. */
class AsyncReads extends MemoryBackend {
  inFlight = 0;
  maxInFlight = 0;
  done = 0;
  override read(offset: number, dst: Uint8Array, dstOff = 0, len = dst.length - dstOff): Promise<void> {
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    return new Promise((resolve) =>
      setImmediate(() => {
        super.read(offset, dst, dstOff, len);
        this.inFlight--;
        this.done++;
        resolve();
      }),
    );
  }
}

describe('vhost-user back-end: a guest that never takes its used buffers', () => {
  let p: LoopbackPlatform;
  let guest: Guest;
  let s: Session;
  const fds: number[] = [];

  beforeEach(() => {
    p = new LoopbackPlatform();
    guest = makeGuest(p);
  });
  afterEach(() => {
    s?.close();
    for (const fd of fds.splice(0)) p.close(fd);
    guest.free();
  });

  it('keeps posting (reusing its descriptors, never reading used idx or the call eventfd): requests in flight stay within the ring, the pool does not grow', { timeout: 60_000 }, async () => {
    const RING_SIZE = 8;
    const backend = new AsyncReads(64 * 512);
    const dev = new BlkDevice(backend, { queueSize: RING_SIZE });
    s = openSession(p, dev);
    const drv = new TinyDriver(guest.map.bytes, RING_SIZE);
    const { kick, call } = await setUpRing(s, guest, drv, { features: F.VERSION_1 });
    fds.push(kick, call);
    const stats = s.backend.core.stats;
    const heapBefore = process.memoryUsage().heapUsed;
    const ROUNDS = 400;
    for (let round = 0; round < ROUNDS; round++) {
      // A full ring of reads (4 descriptors' worth of data each, two descriptors per request).
      for (let i = 0; i < RING_SIZE / 2; i++) drv.add(header(BlkReqType.IN, i), 513, RING.data + 0x400 * i);
      p.eventfdWrite(kick, 1);
      // The guest waits for nothing it can see: the test waits on the backend's side only.
      const target = (round + 1) * (RING_SIZE / 2);
      for (let spins = 0; backend.done < target; spins++) {
        assert.ok(spins < 10_000, `round ${round}: the back-end stopped serving (${backend.done} of ${target})`);
        await new Promise((r) => setImmediate(r));
      }
      assert.ok(backend.inFlight <= RING_SIZE);
    }
    await new Promise((r) => setImmediate(r));
    assert.equal(backend.done, ROUNDS * (RING_SIZE / 2), 'every request served');
    assert.ok(backend.maxInFlight <= RING_SIZE, `at most a ring of requests in flight (${backend.maxInFlight})`);
    assert.equal(stats.value(0, 'requests'), ROUNDS * (RING_SIZE / 2));
    assert.equal(stats.value(0, 'completed'), ROUNDS * (RING_SIZE / 2));
    // Nothing per request is kept: far below what 1600 requests' worth of state would cost.
    const grew = process.memoryUsage().heapUsed - heapBefore;
    assert.ok(grew < 32 << 20, `heap grew by ${grew} bytes`);
    assert.equal(s.backend.status & 0x40, 0, 'no DEVICE_NEEDS_RESET');
  });

  it('posting more than the ring holds (avail idx a lap ahead) breaks the ring instead of queueing more work', async () => {
    const RING_SIZE = 8;
    const backend = new AsyncReads(64 * 512);
    const dev = new BlkDevice(backend, { queueSize: RING_SIZE });
    s = openSession(p, dev);
    const drv = new TinyDriver(guest.map.bytes, RING_SIZE);
    const { kick, call } = await setUpRing(s, guest, drv, { features: F.VERSION_1 });
    fds.push(kick, call);
    drv.setAvailIdx(RING_SIZE + 1); // 9 buffers claimed in a ring of 8 (2.7.6)
    p.eventfdWrite(kick, 1);
    for (let spins = 0; (s.backend.status & 0x40) === 0; spins++) {
      assert.ok(spins < 10_000, 'the back-end never flagged the ring');
      await new Promise((r) => setImmediate(r));
    }
    assert.equal(backend.maxInFlight, 0, 'nothing popped from a ring that claims more than it holds');
  });
});

describe('ring addresses above 2^53 in messages (issue 17 section 4)', () => {
  it('an indirect table at 2^53 is reported with its address, not 0x-1', () => {
    const mem = GuestMemory.allocate(0x10000);
    const q = new SplitQueue(mem, { size: 4, descAddr: 0, driverAddr: 0x100, deviceAddr: 0x200, features: F.VERSION_1 | F.INDIRECT_DESC, littleEndian: true, index: 0 });
    // Descriptor 0: INDIRECT, address 2^53 (high word 0x200000), 16 bytes.
    mem.writeU32(0, 0);
    mem.writeU32(4, 0x20_0000);
    mem.writeU32(8, 16);
    mem.writeU16(12, DescFlag.INDIRECT);
    mem.writeU16(0x104, 0); // avail ring[0] = head 0
    mem.writeU16(0x102, 1); // avail idx
    const chain = new DescriptorChain(mem, 8);
    assert.throws(
      () => q.pop(chain),
      (e: unknown) => e instanceof QueueError && e.fault === QueueFault.RING_UNMAPPED && e.message.includes('0x20000000000000') && !e.message.includes('0x-1'),
    );
  });
});
