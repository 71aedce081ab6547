/**
 * Normative statements of 2.7 (split) and 2.8 (packed) virtqueues and 2.6 about exposed
 * buffers, proven on the library's driver queues against its device queues over one guest
 * memory.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { GuestMemory } from '../../src/memory/guest-memory.js';
import { DescriptorChain } from '../../src/queue/chain.js';
import { createDriverQueue } from '../../src/driver/create-queue.js';
import { createDeviceQueue } from '../../src/queue/create-queue.js';
import { packedRingLayout } from '../../src/queue/packed-layout.js';
import { splitRingLayout } from '../../src/queue/split-layout.js';
import type { QueueConfig, Segment } from '../../src/queue/types.js';
import { F } from '../../src/spec/features.js';
import { VirtioDriver } from '../../src/driver/virtio-driver.js';
import { EchoDevice } from '../../src/testing/echo-device.js';
import { connectInProcess } from '../../src/transport/in-process/in-process-transport.js';

const MEM = 1 << 20;
const BUF = 0x8_0000;

function queuePair(packed: boolean, size: number, features = F.VERSION_1) {
  const mem = GuestMemory.allocate(MEM);
  const l = packed ? packedRingLayout(size, 0x1000) : splitRingLayout(size, 0x1000);
  const config: QueueConfig = {
    size,
    descAddr: l.descAddr,
    driverAddr: l.driverAddr,
    deviceAddr: l.deviceAddr,
    features: features | (packed ? F.RING_PACKED : 0n),
    littleEndian: true,
    index: 0,
  };
  const drv = createDriverQueue<number>(mem, config);
  const dev = createDeviceQueue(mem, config);
  return { mem, config, drv, dev, layout: l };
}

function segs(n: number, at: number, len = 16): Segment[] {
  return Array.from({ length: n }, (_, i) => ({ addr: at + i * len, len }));
}

/** Split ring: descriptor indices of the chain whose head sits in avail ring slot `slot`. */
function splitChain(mem: GuestMemory, c: QueueConfig, slot: number): number[] {
  const head = mem.readU16(c.driverAddr + 4 + 2 * (slot % c.size));
  const out = [head];
  let d = head;
  for (let i = 0; i < c.size; i++) {
    const flags = mem.readU16(c.descAddr + 16 * d + 12);
    if ((flags & 1) === 0) break;
    d = mem.readU16(c.descAddr + 16 * d + 14);
    out.push(d);
  }
  return out;
}

describe('2.6 / 2.7 / 2.8: buffers made available are not altered by the driver', () => {
  it('driver/content/23: split ring: adding and publishing more buffers never changes an exposed chain or its avail entry', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 2, maxLength: 12 }), (lens) => {
        const { mem, config, drv } = queuePair(false, 16);
        const first = lens[0]!;
        assert.equal(drv.add(segs(first, BUF), [], 0), true);
        assert.equal(typeof drv.kick(), 'boolean');
        const chain = splitChain(mem, config, 0);
        assert.equal(chain.length, first);
        const snap = chain.map((d) => mem.slice(config.descAddr + 16 * d, 16).slice());
        const slot0 = mem.readU16(config.driverAddr + 4);
        for (let i = 1; i < lens.length; i++) {
          if (!drv.add(segs(lens[i]!, BUF + 0x1000 * i), segs(1, BUF + 0x1000 * i + 0x800), i)) break;
          drv.kick();
        }
        chain.forEach((d, k) => assert.deepEqual(mem.slice(config.descAddr + 16 * d, 16), snap[k]!, `descriptor ${d}`));
        assert.equal(mem.readU16(config.driverAddr + 4), slot0);
      }),
      { numRuns: 100 },
    );
  });

  it('driver/packed-ring/2, 3: packed ring: exposed descriptors are not changed until the device marks them used, nor after their AVAIL flip', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 2, maxLength: 12 }), (lens) => {
        const { mem, config, drv, dev } = queuePair(true, 16);
        const first = lens[0]!;
        assert.equal(drv.add(segs(first, BUF), [], 0), true);
        drv.kick();
        const exposed = mem.slice(config.descAddr, 16 * first).slice();
        for (let i = 1; i < lens.length; i++) {
          if (!drv.add(segs(lens[i]!, BUF + 0x1000 * i), [], i)) break;
          drv.kick();
          assert.equal(drv.takeUsed(), undefined);
        }
        assert.deepEqual(mem.slice(config.descAddr, 16 * first), exposed);
        // The device uses it (writes the USED flip); only then may the driver reuse the slots.
        const ch = new DescriptorChain(mem, 16);
        assert.equal(dev.pop(ch), true);
        dev.push(ch, 0);
        assert.equal(drv.takeUsed(), 0);
      }),
      { numRuns: 100 },
    );
  });

  it('driver/packed-ring/6: the driver refuses a descriptor list longer than the device allows (the queue size, or the indirect table)', () => {
    const { mem, config, drv } = queuePair(true, 8);
    const before = mem.slice(config.descAddr, 16 * 8).slice();
    assert.throws(() => drv.add(segs(9, BUF), [], 1), { code: 'INVALID_ARGUMENT' });
    assert.throws(() => drv.add(segs(5, BUF), segs(4, BUF + 0x800), 1), { code: 'INVALID_ARGUMENT' });
    assert.deepEqual(mem.slice(config.descAddr, 16 * 8), before, 'nothing was written');
    assert.equal(drv.freeCount, 8);
    // The longest list allowed goes through.
    assert.equal(drv.add(segs(8, BUF), [], 2), true);
  });

  it('driver/packed-ring/9: a list is made available only when the ring has room for all of it; nothing is written otherwise', () => {
    const { mem, config, drv, dev } = queuePair(true, 8);
    assert.equal(drv.add(segs(3, BUF), [], 1), true);
    assert.equal(drv.add(segs(3, BUF + 0x1000), [], 2), true);
    drv.kick();
    // Two descriptors left: a three-descriptor list must wait, with no descriptor of it written.
    const before = mem.slice(config.descAddr, 16 * 8).slice();
    assert.equal(drv.add(segs(3, BUF + 0x2000), [], 3), false);
    assert.equal(drv.kick(), false);
    assert.deepEqual(mem.slice(config.descAddr, 16 * 8), before);
    const ch = new DescriptorChain(mem, 8);
    assert.equal(dev.pop(ch), true);
    assert.equal(dev.pop(ch), true);
    assert.equal(dev.pop(ch), false, 'the device sees only the two complete lists');
    dev.push(ch, 0);
    assert.equal(drv.takeUsed(), 2);
    // Room again (the used slots come back): the list goes in whole and the device gets all three.
    assert.equal(drv.add(segs(3, BUF + 0x2000), [], 3), true);
    drv.kick();
    assert.equal(dev.pop(ch), true);
    assert.equal(ch.readableCount, 3);
  });
});

describe('2.7 split ring: device', () => {
  it('device/split-ring/20: spurious notifications (nothing new available) are handled without effect', () => {
    const { drv, dev, mem, config } = queuePair(false, 8);
    const ch = new DescriptorChain(mem, 8);
    // Nothing ever made available.
    for (let i = 0; i < 5; i++) assert.equal(dev.pop(ch), false);
    assert.equal(dev.hasAvailable(), false);
    // One buffer, consumed; then repeated notifications find nothing more.
    drv.add(segs(1, BUF), [], 1);
    drv.kick();
    assert.equal(dev.pop(ch), true);
    dev.push(ch, 0);
    const used = mem.slice(config.deviceAddr, 4 + 8 * 8).slice();
    for (let i = 0; i < 5; i++) assert.equal(dev.pop(ch), false);
    assert.deepEqual(mem.slice(config.deviceAddr, 4 + 8 * 8), used, 'the used ring is untouched');
    assert.equal(drv.takeUsed(), 1);
    assert.equal(drv.takeUsed(), undefined);
    // Added but not yet published (idx not moved): still nothing for the device.
    drv.add(segs(1, BUF), [], 2);
    assert.equal(dev.pop(ch), false);
    drv.kick();
    assert.equal(dev.pop(ch), true);
  });
});

describe('2.7 / 2.8: the driver lays out and fills rings within the spec\'s limits', () => {
  it('driver/split-ring/7: the split driver queue refuses a chain longer than the queue size; nothing is written', () => {
    const { mem, config, drv, dev } = queuePair(false, 8);
    const before = mem.slice(config.descAddr, config.deviceAddr + 4 + 8 * 8 - config.descAddr).slice();
    assert.throws(() => drv.add(segs(9, BUF), [], 1), { code: 'INVALID_ARGUMENT' });
    assert.throws(() => drv.add(segs(5, BUF), segs(4, BUF + 0x800), 1), { code: 'INVALID_ARGUMENT' });
    assert.equal(drv.kick(), false, 'nothing to publish');
    assert.deepEqual(mem.slice(config.descAddr, config.deviceAddr + 4 + 8 * 8 - config.descAddr), before, 'no descriptor nor avail entry written');
    assert.equal(dev.pop(new DescriptorChain(mem, 8)), false);
    // The longest chain allowed (the queue size) goes through whole.
    assert.equal(drv.add(segs(8, BUF), [], 2), true);
    drv.kick();
    const ch = new DescriptorChain(mem, 8);
    assert.equal(dev.pop(ch), true);
    assert.equal(ch.readableCount, 8);
  });

  it('driver/split-ring/1, driver/packed-ring/1: VirtioDriver puts every ring part at its alignment, whatever the DMA area\'s start and the queue size', () => {
    // 2.7 table: descriptor table 16, available ring 2, used ring 4; 2.8 table: descriptor
    // ring 16, driver and device event suppression 4. Legacy (2.7.2): used ring at 4096.
    const cases = [
      { packed: false, legacy: false, sizes: [256, 8, 2] },
      { packed: true, legacy: false, sizes: [7, 33, 1] },
      { packed: false, legacy: true, sizes: [256, 8, 2] },
    ];
    let checked = 0;
    for (const c of cases) {
      for (const dmaBase of [0x1001, 0x1003, 0x2ffe]) {
        const device = new EchoDevice({ queues: c.sizes });
        const conn = connectInProcess(device, { legacy: c.legacy, dmaBase });
        const wanted = c.packed ? ~0n & ((1n << 128n) - 1n) : ((1n << 128n) - 1n) & ~F.RING_PACKED;
        // Odd sizes too: the parts after an odd-sized table must still be aligned.
        const drv = VirtioDriver.initSync(conn.transport, { wantedFeatures: wanted, dma: conn.dma, queueSizes: c.sizes });
        assert.equal((drv.features & F.RING_PACKED) !== 0n, c.packed);
        const check = (): void => {
          for (let i = 0; i < c.sizes.length; i++) {
            const q = conn.core.queueConfig(i);
            assert.ok(q, `queue ${i} set up`);
            const where = `${c.packed ? 'packed' : 'split'}${c.legacy ? ' legacy' : ''} base 0x${dmaBase.toString(16)} queue ${i} size ${q.size}`;
            assert.equal(q.descAddr % 16, 0, `${where}: descriptors at 0x${q.descAddr.toString(16)}`);
            assert.equal(q.driverAddr % (c.packed ? 4 : 2), 0, `${where}: driver area at 0x${q.driverAddr.toString(16)}`);
            assert.equal(q.deviceAddr % (c.legacy ? 4096 : 4), 0, `${where}: device area at 0x${q.deviceAddr.toString(16)}`);
            checked++;
          }
        };
        check();
        if ((drv.features & F.RING_RESET) !== 0n) {
          drv.resetQueue(1);
          check();
        }
        drv.reset();
      }
    }
    assert.ok(checked >= 40);
  });
});
