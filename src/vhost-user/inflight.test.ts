import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { GuestMemory } from '../memory/guest-memory.js';
import { DescriptorChain } from '../queue/chain.js';
import { QueueError } from '../errors.js';
import { PackedInflight, SplitInflight, inflightQueueRegionSize, readSplitChain } from './inflight.js';

function region(qsize: number, queues = 1): DataView {
  return new DataView(new ArrayBuffer(inflightQueueRegionSize(qsize) * queues));
}

describe('split inflight region (vhost-user.rst "Inflight I/O tracking")', () => {
  it('initialises an empty region with version 1 and desc_num', () => {
    const dv = region(8);
    const t = new SplitInflight(dv, 0, 8);
    assert.equal(t.start(0), 0);
    assert.equal(dv.getUint16(8, true), 1);
    assert.equal(dv.getUint16(10, true), 8);
  });

  it('after a crash, resubmits exactly the popped-but-unused heads in fetch order', () => {
    fc.assert(
      fc.property(fc.array(fc.boolean(), { minLength: 1, maxLength: 8 }), fc.shuffledSubarray([0, 1, 2, 3, 4, 5, 6, 7]), (done, order) => {
        const dv = region(8);
        const t = new SplitInflight(dv, 0, 8);
        t.start(0);
        const heads = order.slice(0, done.length);
        for (const h of heads) t.onPop(h);
        let used = 0;
        const left: number[] = [];
        heads.forEach((h, i) => {
          if (done[i]) {
            t.beforePush(h);
            used++;
            t.afterPush(h, used);
          } else left.push(h);
        });
        const t2 = new SplitInflight(dv, 0, 8);
        assert.equal(t2.start(used), left.length);
        assert.deepEqual(t2.resubmit, left);
      }),
    );
  });

  it('a batch published to the used ring but not cleared in the region is not resubmitted', () => {
    const dv = region(8);
    const t = new SplitInflight(dv, 0, 8);
    t.start(0);
    t.onPop(3);
    t.onPop(5);
    t.beforePush(3);
    // crash here: used idx in guest memory moved to 1, region still says 0 and 3 inflight
    const t2 = new SplitInflight(dv, 0, 8);
    assert.equal(t2.start(1), 1);
    assert.deepEqual(t2.resubmit, [5]);
  });
});

describe('packed inflight region', () => {
  function ring(n: number): { mem: GuestMemory; base: number } {
    const mem = GuestMemory.allocate(0x10000);
    return { mem, base: 0x1000 + 0 * n };
  }

  it('records chains on pop, frees them on push, resubmits the rest in order', () => {
    const n = 8;
    const { mem, base } = ring(n);
    // two buffers: id 4 with 2 descriptors at positions 0-1, id 9%8 with 1 at position 2
    const put = (pos: number, addr: number, len: number, id: number, flags: number): void => {
      mem.writeAddr(base + 16 * pos, addr);
      mem.writeU32(base + 16 * pos + 8, len);
      mem.writeU16(base + 16 * pos + 12, id);
      mem.writeU16(base + 16 * pos + 14, flags);
    };
    const AVAIL = 1 << 7;
    put(0, 0x4000, 10, 0, AVAIL | 1);
    put(1, 0x5000, 20, 4, AVAIL | 2);
    put(2, 0x6000, 30, 1, AVAIL);
    put(3, 0x7000, 40, 2, AVAIL | 2);
    const dv = region(n);
    const t = new PackedInflight(dv, 0, n);
    assert.equal(t.start(0, true, () => 0), 0);
    t.onPop(mem, base, 0, 2, true);
    t.onPop(mem, base, 2, 1, true);
    t.onPop(mem, base, 3, 1, true);
    // buffer 1 completes
    const slot = t.beforePush(1);
    t.afterPush(slot, 1, true);
    const t2 = new PackedInflight(dv, 0, n);
    const descs = t2.start(1, true, () => 0);
    assert.equal(descs, 3);
    assert.equal(t2.resubmit.length, 2);
    const c = new DescriptorChain(mem, 8);
    t2.readChain(mem, t2.resubmit[0]!, false, true, c, 0);
    assert.deepEqual({ id: c.id, ringDescs: c.ringDescs, count: c.count, r: c.readableBytes, w: c.writableBytes }, { id: 4, ringDescs: 2, count: 2, r: 10, w: 20 });
    t2.readChain(mem, t2.resubmit[1]!, false, true, c, 0);
    assert.deepEqual({ id: c.id, w: c.writableBytes }, { id: 2, w: 40 });
  });
});

describe('packed inflight region: indirect buffers (as Linux posts them)', () => {
  it('a resubmitted indirect buffer is rebuilt from its packed-format table (flags at 14, NEXT ignored)', () => {
    const n = 8;
    const mem = GuestMemory.allocate(0x10000);
    const ringBase = 0x1000;
    const table = 0x2000;
    const AVAIL = 1 << 7;
    const WRITE = 2;
    const INDIRECT = 4;
    // The table: header (readable 16), data (readable 4096), status (writable 1), in packed
    // descriptor format: addr @0, len @8, id @12, flags @14. The ids hold junk the device ignores,
    // which the split format would read as flags.
    const ent = (k: number, addr: number, len: number, flags: number): void => {
      mem.writeAddr(table + 16 * k, addr);
      mem.writeU32(table + 16 * k + 8, len);
      mem.writeU16(table + 16 * k + 12, 0xffff);
      mem.writeU16(table + 16 * k + 14, flags);
    };
    ent(0, 0x4000, 16, 0);
    ent(1, 0x5000, 4096, 0);
    ent(2, 0x7000, 1, WRITE);
    mem.writeAddr(ringBase, table);
    mem.writeU32(ringBase + 8, 48);
    mem.writeU16(ringBase + 12, 5);
    mem.writeU16(ringBase + 14, AVAIL | INDIRECT);
    const dv = region(n);
    const t = new PackedInflight(dv, 0, n);
    t.start(0, true, () => 0);
    t.onPop(mem, ringBase, 0, 1, true);
    // The back-end dies; a new one recovers the region.
    const t2 = new PackedInflight(dv, 0, n);
    assert.equal(t2.start(0, true, () => AVAIL), 1);
    const c = new DescriptorChain(mem, 8);
    t2.readChain(mem, t2.resubmit[0]!, true, true, c, 0);
    assert.deepEqual(
      { id: c.id, ringDescs: c.ringDescs, count: c.count, readable: c.readableCount, r: c.readableBytes, w: c.writableBytes, fault: c.fault },
      { id: 5, ringDescs: 1, count: 3, readable: 2, r: 16 + 4096, w: 1, fault: null },
    );
    assert.deepEqual([c.addrs[0], c.addrs[1], c.addrs[2]], [0x4000, 0x5000, 0x7000]);
  });
});

describe('readSplitChain', () => {
  it('walks a chain and refuses loops with a typed error', () => {
    const mem = GuestMemory.allocate(0x10000);
    const desc = 0x1000;
    const d = (i: number, addr: number, len: number, flags: number, next: number): void => {
      mem.writeAddr(desc + 16 * i, addr);
      mem.writeU32(desc + 16 * i + 8, len);
      mem.writeU16(desc + 16 * i + 12, flags);
      mem.writeU16(desc + 16 * i + 14, next);
    };
    d(0, 0x4000, 8, 1, 1);
    d(1, 0x5000, 16, 2, 0);
    const c = new DescriptorChain(mem, 8);
    readSplitChain(mem, desc, 4, 0, false, true, c, 0);
    assert.deepEqual([c.count, c.readableBytes, c.writableBytes, c.id], [2, 8, 16, 0]);
    d(1, 0x5000, 16, 3, 0); // loops back to 0
    assert.throws(() => readSplitChain(mem, desc, 4, 0, false, true, c, 0), QueueError);
    d(1, 0x5000, 16, 4, 0); // indirect not negotiated
    assert.throws(() => readSplitChain(mem, desc, 4, 0, false, true, c, 0), QueueError);
  });
});
