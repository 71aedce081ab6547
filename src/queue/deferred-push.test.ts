import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { QueueError, QueueFault } from '../errors.js';
import { GuestMemory } from '../memory/guest-memory.js';
import { F } from '../spec/features.js';
import { DescFlag, PackedEvent, PackedLayout, SplitLayout } from '../spec/ring.js';
import { PackedDriverQueue } from '../driver/packed-driver-queue.js';
import { SplitDriverQueue } from '../driver/split-driver-queue.js';
import { DescriptorChain } from './chain.js';
import { offWrap } from './packed-layout.js';
import { PackedQueue } from './packed-queue.js';
import { SplitQueue } from './split-queue.js';
import type { QueueConfig } from './types.js';

const SIZE = 16;

function splitSetup(littleEndian: boolean): { mem: GuestMemory; cfg: QueueConfig; dev: SplitQueue; drv: SplitDriverQueue<number> } {
  const mem = GuestMemory.allocate(1 << 20);
  const l = SplitDriverQueue.layout(SIZE, 0x1000);
  const cfg: QueueConfig = { size: SIZE, descAddr: l.descAddr, driverAddr: l.driverAddr, deviceAddr: l.deviceAddr, features: F.VERSION_1, index: 0, littleEndian };
  const drv = new SplitDriverQueue<number>(mem, cfg);
  const dev = new SplitQueue(mem, cfg);
  return { mem, cfg, dev, drv };
}

describe('SplitQueue.pushDeferred / publish (one used idx store per pass)', () => {
  for (const le of [true, false]) {
    it(`device/split-ring/13: deferred entries are written but idx moves only at publish (${le ? 'LE' : 'BE'})`, () => {
      const { mem, cfg, dev, drv } = splitSetup(le);
      const chain = new DescriptorChain(mem, SIZE);
      for (let i = 0; i < 3; i++) assert.equal(drv.add([{ addr: 0x20000 + i * 0x100, len: 64 }], [{ addr: 0x30000 + i * 0x100, len: 32 }], i), true);
      drv.kick();
      const heads: number[] = [];
      for (let i = 0; i < 3; i++) {
        assert.equal(dev.pop(chain), true);
        heads.push(chain.id);
        dev.pushDeferred(chain, 10 + i);
      }
      // Entries are in the used ring, idx has not moved: the driver sees nothing yet.
      assert.equal(mem.readU16(cfg.deviceAddr + SplitLayout.USED_IDX, le), 0);
      for (let i = 0; i < 3; i++) {
        const o = cfg.deviceAddr + SplitLayout.USED_RING + 8 * i;
        assert.equal(mem.readU32(o, le), heads[i]);
        assert.equal(mem.readU32(o + 4, le), 10 + i);
      }
      assert.equal(drv.takeUsed(), undefined);
      assert.equal(dev.usedIdx, 3);
      assert.equal(dev.inFlight, 0);
      dev.publish();
      assert.equal(mem.readU16(cfg.deviceAddr + SplitLayout.USED_IDX, le), 3);
      for (let i = 0; i < 3; i++) {
        assert.equal(drv.takeUsed(), i);
        assert.equal(drv.lastUsedLen, 10 + i);
      }
      assert.equal(drv.takeUsed(), undefined);
    });
  }

  it('needsNotification, push and state publish pending deferred entries', () => {
    const { mem, cfg, dev, drv } = splitSetup(true);
    const chain = new DescriptorChain(mem, SIZE);
    const idx = (): number => mem.readU16(cfg.deviceAddr + SplitLayout.USED_IDX, true);
    for (let i = 0; i < 4; i++) drv.add([], [{ addr: 0x30000, len: 8 }], i);
    drv.kick();
    dev.pop(chain);
    dev.pushDeferred(chain, 1);
    assert.equal(idx(), 0);
    assert.equal(dev.needsNotification(), true);
    assert.equal(idx(), 1);
    dev.pop(chain);
    dev.pushDeferred(chain, 1);
    dev.pop(chain);
    dev.push(chain, 1);
    assert.equal(idx(), 3);
    dev.pop(chain);
    dev.pushDeferred(chain, 1);
    assert.deepEqual(dev.state(), { nextAvail: 4, nextUsed: 4, availWrap: true, usedWrap: true });
    assert.equal(idx(), 4);
    for (let i = 0; i < 4; i++) assert.equal(drv.takeUsed(), i);
  });

  it('entries deferred before the driver broke the ring are still published (as push would have)', () => {
    const { mem, cfg, dev, drv } = splitSetup(true);
    const chain = new DescriptorChain(mem, SIZE);
    drv.add([{ addr: 0x20000, len: 8 }], [], 7);
    drv.kick();
    assert.equal(dev.pop(chain), true);
    dev.pushDeferred(chain, 0);
    // The driver moves avail idx further than the ring holds: a ring-rule break.
    mem.writeU16(cfg.driverAddr + SplitLayout.AVAIL_IDX, 1 + SIZE + 1, true);
    assert.throws(() => dev.pop(chain), (e: unknown) => e instanceof QueueError && e.fault === QueueFault.AVAIL_IDX_JUMP);
    assert.notEqual(dev.broken, null);
    dev.pushDeferred(chain, 0); // ignored: the queue is broken
    dev.publish();
    assert.equal(mem.readU16(cfg.deviceAddr + SplitLayout.USED_IDX, true), 1);
    assert.equal(drv.takeUsed(), 7);
  });

  it('a random mix of push, pushDeferred and publish delivers every buffer once, in order', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom('push', 'defer', 'publish', 'add'), { minLength: 1, maxLength: 200 }), (ops) => {
        const { mem, dev, drv } = splitSetup(true);
        const chain = new DescriptorChain(mem, SIZE);
        let next = 0;
        let expect = 0;
        const drain = (): void => {
          for (let t = drv.takeUsed(); t !== undefined; t = drv.takeUsed()) assert.equal(t, expect++);
        };
        for (const op of ops) {
          if (op === 'add') {
            if (drv.add([{ addr: 0x20000, len: 16 }], [], next)) next++;
            drv.kick();
          } else if (op === 'publish') dev.publish();
          else if (dev.pop(chain)) {
            if (op === 'push') dev.push(chain, 0);
            else dev.pushDeferred(chain, 0);
          }
          drain();
        }
        while (dev.pop(chain)) dev.pushDeferred(chain, 0);
        dev.publish();
        drain();
        assert.equal(expect, next);
      }),
      { numRuns: 200 },
    );
  });
});

function packedSetup(littleEndian: boolean): { mem: GuestMemory; cfg: QueueConfig; dev: PackedQueue; drv: PackedDriverQueue<number> } {
  const mem = GuestMemory.allocate(1 << 20);
  const l = PackedDriverQueue.layout(SIZE, 0x1000);
  const cfg: QueueConfig = {
    size: SIZE,
    descAddr: l.descAddr,
    driverAddr: l.driverAddr,
    deviceAddr: l.deviceAddr,
    features: F.VERSION_1 | F.RING_PACKED,
    index: 0,
    littleEndian,
  };
  const drv = new PackedDriverQueue<number>(mem, cfg);
  const dev = new PackedQueue(mem, cfg);
  return { mem, cfg, dev, drv };
}

describe('PackedQueue.pushDeferred / publish (one release store per pass)', () => {
  for (const le of [true, false]) {
    it(`device/packed-ring/6: the first deferred used descriptor's flags are stored last, at publish (${le ? 'LE' : 'BE'})`, () => {
      const { mem, cfg, dev, drv } = packedSetup(le);
      const chain = new DescriptorChain(mem, SIZE);
      const flagsAt = (pos: number): number => mem.readU16(cfg.descAddr + 16 * pos + PackedLayout.FLAGS, le);
      // Two single-descriptor buffers and one of two descriptors (positions 0, 1, 2-3).
      drv.add([{ addr: 0x20000, len: 64 }], [], 0);
      drv.add([], [{ addr: 0x30000, len: 32 }], 1);
      drv.add([{ addr: 0x20100, len: 8 }], [{ addr: 0x30100, len: 16 }], 2);
      drv.kick();
      const avail = flagsAt(0);
      const lens = [0, 5, 9];
      for (let i = 0; i < 3; i++) {
        assert.equal(dev.pop(chain), true);
        dev.pushDeferred(chain, lens[i]!);
      }
      // The first used descriptor still shows the driver's avail flags: nothing is used yet.
      assert.equal(flagsAt(0), avail);
      assert.equal(drv.takeUsed(), undefined);
      // The later ones are already written (AVAIL = USED = wrap counter 1).
      assert.equal(flagsAt(1) & (DescFlag.AVAIL | DescFlag.USED), DescFlag.AVAIL | DescFlag.USED);
      assert.equal(flagsAt(1) & DescFlag.WRITE, DescFlag.WRITE);
      dev.publish();
      assert.equal(flagsAt(0), DescFlag.AVAIL | DescFlag.USED);
      for (let i = 0; i < 3; i++) {
        assert.equal(drv.takeUsed(), i);
        assert.equal(drv.lastUsedLen, lens[i]);
      }
      assert.equal(drv.takeUsed(), undefined);
      dev.publish(); // nothing held: no store
      assert.equal(flagsAt(0), DescFlag.AVAIL | DescFlag.USED);
    });
  }

  it('push, needsNotification and state publish a held descriptor', () => {
    const { mem, dev, drv } = packedSetup(true);
    const chain = new DescriptorChain(mem, SIZE);
    for (let i = 0; i < 4; i++) drv.add([{ addr: 0x20000, len: 8 }], [], i);
    drv.kick();
    dev.pop(chain);
    dev.pushDeferred(chain, 0);
    assert.equal(drv.takeUsed(), undefined);
    assert.equal(dev.needsNotification(), true);
    assert.equal(drv.takeUsed(), 0);
    dev.pop(chain);
    dev.pushDeferred(chain, 0);
    dev.pop(chain);
    dev.push(chain, 0);
    assert.equal(drv.takeUsed(), 1);
    assert.equal(drv.takeUsed(), 2);
    dev.pop(chain);
    dev.pushDeferred(chain, 0);
    assert.equal(drv.takeUsed(), undefined);
    assert.deepEqual(dev.state(), { nextAvail: 4, nextUsed: 4, availWrap: true, usedWrap: true });
    assert.equal(drv.takeUsed(), 3);
  });

  it('a random mix of push, pushDeferred, publish and multi-descriptor buffers across wraps delivers every buffer once, in order', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom('push', 'defer', 'publish', 'add1', 'add3'), { minLength: 1, maxLength: 300 }), (ops) => {
        const { mem, dev, drv } = packedSetup(true);
        const chain = new DescriptorChain(mem, SIZE);
        let next = 0;
        let expect = 0;
        const drain = (): void => {
          for (let t = drv.takeUsed(); t !== undefined; t = drv.takeUsed()) assert.equal(t, expect++);
        };
        for (const op of ops) {
          if (op === 'add1' || op === 'add3') {
            const out = op === 'add1' ? [{ addr: 0x20000, len: 16 }] : [{ addr: 0x20000, len: 16 }, { addr: 0x21000, len: 4 }];
            const inn = op === 'add1' ? [] : [{ addr: 0x30000, len: 8 }];
            if (drv.add(out, inn, next)) next++;
            drv.kick();
          } else if (op === 'publish') dev.publish();
          else if (dev.pop(chain)) {
            if (op === 'push') dev.push(chain, 0);
            else dev.pushDeferred(chain, 0);
          }
          drain();
        }
        while (dev.pop(chain)) dev.pushDeferred(chain, 0);
        dev.publish();
        drain();
        assert.equal(expect, next);
      }),
      { numRuns: 200 },
    );
  });
});

describe('PackedDriverQueue.kick: one release per kick, first head last', () => {
  it('driver/packed-ring/11: a batch of heads becomes visible through the first one', () => {
    const { mem, cfg, dev, drv } = packedSetup(true);
    const chain = new DescriptorChain(mem, SIZE);
    for (let i = 0; i < 5; i++) drv.add([{ addr: 0x20000 + 64 * i, len: 64 }], [], i);
    // Before kick no head is available, so the device sees nothing.
    assert.equal(dev.pop(chain), false);
    assert.equal(mem.readU16(cfg.descAddr + PackedLayout.FLAGS, true), 0);
    drv.kick();
    for (let i = 0; i < 5; i++) {
      assert.equal(dev.pop(chain), true);
      assert.equal(chain.id, i);
      assert.equal(chain.addrs[0], 0x20000 + 64 * i);
    }
    assert.equal(dev.pop(chain), false);
  });
});

describe('PackedQueue with EVENT_IDX: the event position moves with a plain store once the mode is DESC', () => {
  it('2.8.10: flags DESC, position at nextAvail after each pop, the mode rewritten after reset', () => {
    const mem = GuestMemory.allocate(1 << 20);
    const l = PackedDriverQueue.layout(SIZE, 0x1000);
    const cfg: QueueConfig = {
      size: SIZE,
      descAddr: l.descAddr,
      driverAddr: l.driverAddr,
      deviceAddr: l.deviceAddr,
      features: F.VERSION_1 | F.RING_PACKED | F.EVENT_IDX,
      index: 0,
    };
    let drv = new PackedDriverQueue<number>(mem, cfg);
    const dev = new PackedQueue(mem, cfg);
    const chain = new DescriptorChain(mem, SIZE);
    const evFlags = (): number => mem.readU16(cfg.deviceAddr + PackedEvent.FLAGS);
    const evDesc = (): number => mem.readU16(cfg.deviceAddr + PackedEvent.DESC);
    for (let i = 0; i < 3; i++) drv.add([{ addr: 0x20000, len: 8 }], [], i);
    drv.kick();
    for (let i = 1; i <= 3; i++) {
      assert.equal(dev.pop(chain), true);
      assert.equal(evFlags(), PackedEvent.DESC_SPECIFIC);
      assert.equal(evDesc(), offWrap(i, true));
    }
    // A driver re-initialisation zeroes the areas; after the device's reset the first pop
    // stores the mode again, not only the position.
    dev.reset();
    drv = new PackedDriverQueue<number>(mem, cfg);
    assert.equal(evFlags(), PackedEvent.ENABLE);
    drv.add([{ addr: 0x20000, len: 8 }], [], 0);
    drv.kick();
    assert.equal(dev.pop(chain), true);
    assert.equal(evFlags(), PackedEvent.DESC_SPECIFIC);
    assert.equal(evDesc(), offWrap(1, true));
  });
});
