import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ErrorCode, QueueError, QueueFault, VirtioError } from '../errors.js';
import { GuestMemory } from '../memory/guest-memory.js';
import { DescriptorChain } from '../queue/chain.js';
import { offWrap } from '../queue/packed-layout.js';
import { PackedQueue } from '../queue/packed-queue.js';
import type { QueueConfig } from '../queue/types.js';
import { F } from '../spec/features.js';
import { DescFlag, PackedEvent } from '../spec/ring.js';
import { PackedDriverQueue } from './packed-driver-queue.js';

const { NEXT, WRITE, INDIRECT, AVAIL, USED } = DescFlag;
const INDIRECT_AREA = 0x20000;

function setup(features = 0n, size = 8) {
  const mem = GuestMemory.allocate(0x80000);
  const l = PackedDriverQueue.layout(size, 0x1000);
  const cfg: QueueConfig = { size, descAddr: l.descAddr, driverAddr: l.driverAddr, deviceAddr: l.deviceAddr, features: features | F.VERSION_1 | F.RING_PACKED, index: 2 };
  const drv = new PackedDriverQueue<string>(mem, cfg, { indirectTableAddr: INDIRECT_AREA, indirectMaxSegments: Math.min(size, 8) });
  const dev = new PackedQueue(mem, cfg);
  const chain = new DescriptorChain(mem, 64);
  const desc = (i: number, table = cfg.descAddr) => {
    const o = table + 16 * i;
    return { addr: mem.readAddr(o), len: mem.readU32(o + 8), id: mem.readU16(o + 12), flags: mem.readU16(o + 14) };
  };
  const writeUsed = (pos: number, id: number, len: number, flags: number) => {
    const o = cfg.descAddr + 16 * pos;
    mem.writeU16(o + 12, id);
    mem.writeU32(o + 8, len);
    mem.writeU16(o + 14, flags);
  };
  const deviceEvent = (flags: number, off = 0, wrap = true) => {
    mem.writeU16(cfg.deviceAddr, offWrap(off, wrap));
    mem.writeU16(cfg.deviceAddr + 2, flags);
  };
  const driverEvent = () => ({ flags: mem.readU16(cfg.driverAddr + 2), desc: mem.readU16(cfg.driverAddr) });
  return { mem, cfg, drv, dev, chain, desc, writeUsed, deviceEvent, driverEvent };
}

const seg = (addr: number, len: number) => ({ addr, len });
const isCode = (code: string) => (e: unknown) => e instanceof VirtioError && e.code === code;
const isFault = (fault: string) => (e: unknown) => e instanceof QueueError && e.fault === fault;

describe('PackedDriverQueue', () => {
  it('2.8.13: starts with a zeroed descriptor ring and both event areas at ENABLE', () => {
    const mem = GuestMemory.allocate(0x10000);
    mem.fill(0, 0x10000, 0xff);
    const l = PackedDriverQueue.layout(5, 0x1000);
    new PackedDriverQueue(mem, { size: 5, descAddr: l.descAddr, driverAddr: l.driverAddr, deviceAddr: l.deviceAddr, features: F.RING_PACKED });
    assert.ok(mem.slice(l.descAddr, l.total).every((b) => b === 0));
    assert.equal(mem.readU8(l.descAddr + l.total), 0xff, 'nothing past the ring');
  });

  it('driver/packed-ring/8, driver/packed-ring/11, driver/packed-ring/16: readable then writable, the head made available last, at kick', () => {
    const t = setup();
    assert.ok(t.drv.add([seg(0x40000, 10), seg(0x40100, 11)], [seg(0x41000, 12)], 'a'));
    assert.equal(t.drv.freeCount, 5);
    // The rest of the list is already available; the head is not.
    assert.deepEqual(t.desc(1), { addr: 0x40100, len: 11, id: 0, flags: NEXT | AVAIL });
    assert.deepEqual(t.desc(2), { addr: 0x41000, len: 12, id: 0, flags: WRITE | AVAIL });
    assert.equal(t.desc(0).flags, 0, 'head not published before kick');
    assert.equal(t.dev.pop(t.chain), false);
    assert.equal(t.drv.kick(), true);
    assert.deepEqual(t.desc(0), { addr: 0x40000, len: 10, id: 0, flags: NEXT | AVAIL });
    assert.ok(t.dev.pop(t.chain));
    assert.equal(t.chain.id, 0);
    assert.equal(t.chain.ringDescs, 3);
    assert.equal(t.drv.kick(), false, 'nothing new: no notification');
  });

  it('2.8.1: AVAIL follows the Driver Ring Wrap Counter and USED its inverse; ids are reused', () => {
    const t = setup(0n, 3);
    for (let lap = 0; lap < 4; lap++) {
      for (let i = 0; i < 3; i++) assert.ok(t.drv.add([seg(0x40000, 1)], [], `b${lap}.${i}`));
      assert.equal(t.drv.add([seg(0x40000, 1)], [], 'x'), false, 'driver/packed-ring/10: full');
      t.drv.kick();
      const expect = lap % 2 === 0 ? AVAIL : USED;
      for (let i = 0; i < 3; i++) assert.equal(t.desc(i).flags, expect);
      for (let i = 0; i < 3; i++) {
        assert.ok(t.dev.pop(t.chain));
        t.dev.push(t.chain, 0);
      }
      for (let i = 0; i < 3; i++) assert.equal(t.drv.takeUsed(), `b${lap}.${i}`);
      assert.equal(t.drv.takeUsed(), undefined);
      assert.equal(t.drv.freeCount, 3);
    }
  });

  it('driver/packed-ring/7, driver/packed-ring/10: false when the list does not fit, errors for impossible lists', () => {
    const t = setup(0n, 4);
    assert.ok(t.drv.add([seg(0x40000, 1), seg(0x40000, 1), seg(0x40000, 1)], [], 'a'));
    assert.equal(t.drv.add([seg(0x40000, 1)], [seg(0x40000, 1)], 'b'), false);
    assert.equal(t.drv.freeCount, 1);
    assert.throws(() => t.drv.add([0, 1, 2, 3, 4].map(() => seg(0x40000, 1)), [], 'c'), isCode(ErrorCode.INVALID_ARGUMENT));
    assert.throws(() => t.drv.add([], [], 'c'), isCode(ErrorCode.INVALID_ARGUMENT));
    assert.throws(() => t.drv.add([seg(0x40000, 0xffffffff)], [seg(0, 1)], 'c'), isCode(ErrorCode.INVALID_ARGUMENT));
    assert.throws(() => t.drv.add([seg(-1, 1)], [], 'c'), isCode(ErrorCode.INVALID_ARGUMENT));
  });

  it('driver/packed-ring/12: refuses indirect without INDIRECT_DESC', () => {
    const t = setup();
    assert.equal(t.drv.canIndirect, false);
    assert.throws(() => t.drv.add([seg(0x40000, 1)], [], 'a', true), isCode(ErrorCode.INVALID_ARGUMENT));
  });

  it('driver/packed-ring/13, driver/packed-ring/14, driver/packed-ring/15: one INDIRECT ring descriptor without NEXT; table entries carry WRITE only', () => {
    const t = setup(F.INDIRECT_DESC);
    assert.equal(t.drv.maxIndirectSegments, 8);
    assert.ok(t.drv.add([seg(0x40000, 4), seg(0x40100, 5)], [seg(0x41000, 6)], 'a', true));
    assert.equal(t.drv.freeCount, 7);
    t.drv.kick();
    const head = t.desc(0);
    assert.deepEqual(head, { addr: INDIRECT_AREA, len: 48, id: 0, flags: INDIRECT | AVAIL });
    assert.deepEqual(t.desc(0, INDIRECT_AREA), { addr: 0x40000, len: 4, id: 0, flags: 0 });
    assert.deepEqual(t.desc(1, INDIRECT_AREA), { addr: 0x40100, len: 5, id: 0, flags: 0 });
    assert.deepEqual(t.desc(2, INDIRECT_AREA), { addr: 0x41000, len: 6, id: 0, flags: WRITE });
    assert.throws(() => t.drv.add(new Array(9).fill(seg(0x40000, 1)), [], 'b', true), isCode(ErrorCode.INVALID_ARGUMENT));
    assert.ok(t.dev.pop(t.chain));
    assert.equal(t.chain.ringDescs, 1);
    assert.deepEqual([...t.chain.addrs.subarray(0, 3)], [0x40000, 0x40100, 0x41000]);
    t.dev.push(t.chain, 6);
    assert.equal(t.drv.takeUsed(), 'a');
    assert.equal(t.drv.lastUsedLen, 6);
    assert.equal(t.drv.freeCount, 8);
  });

  it('2.8.21.3: without EVENT_IDX the device area flags decide; DESC without EVENT_IDX notifies', () => {
    const t = setup();
    t.drv.add([seg(0x40000, 1)], [], 'a');
    assert.equal(t.drv.kick(), true);
    t.deviceEvent(PackedEvent.DISABLE);
    t.drv.add([seg(0x40000, 1)], [], 'b');
    assert.equal(t.drv.kick(), false);
    t.deviceEvent(PackedEvent.DESC_SPECIFIC, 7, false);
    t.drv.add([seg(0x40000, 1)], [], 'c');
    assert.equal(t.drv.kick(), true);
  });

  it('2.8.21.3: with EVENT_IDX, DESC notifies exactly when the named descriptor is made available', () => {
    const t = setup(F.EVENT_IDX, 4);
    t.deviceEvent(PackedEvent.DESC_SPECIFIC, 2, true);
    t.drv.add([seg(0x40000, 1), seg(0x40000, 1)], [], 'a'); // positions 0, 1
    assert.equal(t.drv.kick(), false);
    t.drv.add([seg(0x40000, 1)], [], 'b'); // position 2
    assert.equal(t.drv.kick(), true);
    // The device follows with its own side: pops advance the event to the next position.
    t.dev.enableNotification();
    assert.ok(t.dev.pop(t.chain));
    assert.ok(t.dev.pop(t.chain));
    t.drv.add([seg(0x40000, 1)], [], 'c'); // position 3, the device's event
    assert.equal(t.drv.kick(), true);
    t.dev.disableNotification();
    assert.ok(t.dev.pop(t.chain));
    t.dev.pushId(0, 2, 0);
    t.drv.takeUsed();
    t.drv.add([seg(0x40000, 1)], [], 'd');
    assert.equal(t.drv.kick(), false, 'DISABLE is honoured with EVENT_IDX too');
  });

  it('driver/packed-ring/4, driver/packed-ring/5: notification data names the next position and wrap not yet made available', () => {
    const t = setup(F.NOTIFICATION_DATA, 3);
    assert.equal(t.drv.notificationData(), (2 | (0 << 16) | 0x8000_0000) >>> 0);
    t.drv.add([seg(0x40000, 1), seg(0x40000, 1)], [], 'a');
    assert.equal(t.drv.notificationData(), 0x8000_0002, 'added but not made available: unchanged');
    t.drv.kick();
    assert.equal(t.drv.notificationData(), (2 | (2 << 16) | 0x8000_0000) >>> 0);
    t.drv.add([seg(0x40000, 1)], [], 'b');
    t.drv.kick();
    // Position 0 of the next lap: wrap counter 0.
    assert.equal(t.drv.notificationData(), 2);
    assert.equal(t.drv.notificationData(), 2, 'repeated notifications carry the same values');
  });

  it('interrupt suppression: DISABLE, ENABLE, and DESC at nextUsed with EVENT_IDX', () => {
    const t = setup();
    t.drv.disableInterrupts();
    assert.equal(t.driverEvent().flags, PackedEvent.DISABLE);
    assert.equal(t.drv.enableInterrupts(), false);
    assert.equal(t.driverEvent().flags, PackedEvent.ENABLE);
    const e = setup(F.EVENT_IDX, 4);
    for (let i = 0; i < 3; i++) e.drv.add([seg(0x40000, 1)], [], `${i}`);
    e.drv.kick();
    for (let i = 0; i < 3; i++) {
      e.dev.pop(e.chain);
      e.dev.push(e.chain, 0);
    }
    e.drv.disableInterrupts();
    assert.equal(e.driverEvent().flags, PackedEvent.DISABLE);
    assert.equal(e.drv.enableInterrupts(), true, 'used buffers pending: re-poll');
    assert.deepEqual(e.driverEvent(), { flags: PackedEvent.DESC_SPECIFIC, desc: offWrap(0, true) });
    for (let i = 0; i < 3; i++) e.drv.takeUsed();
    assert.equal(e.drv.enableInterrupts(), false);
    assert.deepEqual(e.driverEvent(), { flags: PackedEvent.DESC_SPECIFIC, desc: offWrap(3, true) });
  });

  it('clamps a used len larger than the writable part; a device-readable-only buffer reads as 0 bytes with or without WRITE', () => {
    const t = setup();
    t.drv.add([seg(0x40000, 4)], [seg(0x41000, 8)], 'a');
    t.drv.add([seg(0x40000, 4)], [], 'b');
    t.drv.add([seg(0x40000, 4)], [], 'c');
    t.drv.kick();
    t.writeUsed(0, 0, 1000, AVAIL | USED | WRITE);
    assert.equal(t.drv.takeUsed(), 'a');
    assert.equal(t.drv.lastUsedLen, 8);
    t.writeUsed(2, 1, 5, AVAIL | USED);
    assert.equal(t.drv.takeUsed(), 'b');
    assert.equal(t.drv.lastUsedLen, 0, 'len reserved without WRITE: nothing writable to report');
    t.writeUsed(3, 2, 0xffff_ffff, AVAIL | USED | WRITE);
    assert.equal(t.drv.takeUsed(), 'c');
    assert.equal(t.drv.lastUsedLen, 0, 'a forged len never exceeds the writable part');
  });

  it("takes the used len of a device-writable buffer whose used descriptor lacks WRITE (QEMU 7.2's virtqueue_packed_fill_desc; Linux reads len unconditionally)", () => {
    // Regression: virtio-net receive over QEMU 7.2 with packed rings delivered every frame as 0
    // bytes (dropped) because the driver ignored len when the used descriptor had no WRITE.
    const t = setup();
    t.drv.add([], [seg(0x41000, 2048)], 'rx0');
    t.drv.add([], [seg(0x41800, 12), seg(0x42000, 2036)], 'rx1');
    t.drv.kick();
    t.writeUsed(0, 0, 72, AVAIL | USED); // exactly what QEMU 7.2 writes: flags 0x8080
    assert.equal(t.drv.takeUsed(), 'rx0');
    assert.equal(t.drv.lastUsedLen, 72);
    t.writeUsed(1, 1, 5000, AVAIL | USED);
    assert.equal(t.drv.takeUsed(), 'rx1');
    assert.equal(t.drv.lastUsedLen, 2048, 'still clamped to the writable part');
  });

  it('defends against a buggy device: id out of range, id not in flight', () => {
    for (const id of [8, 0xffff, 3]) {
      const t = setup();
      t.drv.add([seg(0x40000, 4)], [], 'a');
      t.drv.kick();
      t.writeUsed(0, id, 0, AVAIL | USED);
      assert.throws(() => t.drv.takeUsed(), isFault(QueueFault.USED_ID_INVALID));
      assert.ok(t.drv.broken);
      assert.throws(() => t.drv.takeUsed(), isFault(QueueFault.USED_ID_INVALID));
    }
    // A used-looking descriptor with nothing in flight is never read.
    const t = setup();
    t.writeUsed(0, 7, 0, AVAIL | USED);
    assert.equal(t.drv.hasUsed(), false);
    assert.equal(t.drv.takeUsed(), undefined);
  });

  it('2.8.8: takes an IN_ORDER batch announced by one used descriptor', () => {
    const t = setup(F.IN_ORDER);
    t.drv.add([seg(0x40000, 1)], [seg(0x41000, 10)], 'a');
    t.drv.add([seg(0x40000, 1)], [seg(0x41000, 20)], 'b');
    t.drv.add([seg(0x40000, 1)], [seg(0x41000, 30)], 'c');
    t.drv.kick();
    for (let i = 0; i < 3; i++) assert.ok(t.dev.pop(t.chain));
    t.dev.pushInOrderBatch(1, 2, 7);
    assert.equal(t.drv.takeUsed(), 'a');
    assert.equal(t.drv.lastUsedLen, 10, 'a skipped buffer was used completely');
    assert.equal(t.drv.takeUsed(), 'b');
    assert.equal(t.drv.lastUsedLen, 7);
    assert.equal(t.drv.takeUsed(), undefined);
    t.dev.pushInOrderBatch(2, 1, 30);
    assert.equal(t.drv.takeUsed(), 'c');
    assert.equal(t.drv.freeCount, 8);
  });

  it('validates its indirect area', () => {
    const mem = GuestMemory.allocate(0x10000);
    const l = PackedDriverQueue.layout(8, 0x1000);
    const cfg: QueueConfig = { ...l, features: F.RING_PACKED | F.INDIRECT_DESC };
    assert.equal(PackedDriverQueue.indirectAreaSize(8, 4), 512);
    assert.throws(() => new PackedDriverQueue(mem, cfg, { indirectTableAddr: 0x2008 }), isCode(ErrorCode.QUEUE_BAD_CONFIG));
    assert.throws(() => new PackedDriverQueue(mem, cfg, { indirectTableAddr: 0xff00 }), isCode(ErrorCode.QUEUE_BAD_CONFIG));
    assert.throws(() => new PackedDriverQueue(mem, cfg, { indirectTableAddr: 0x2000, indirectMaxSegments: 9 }), isCode(ErrorCode.QUEUE_BAD_CONFIG));
    assert.ok(new PackedDriverQueue(mem, cfg, { indirectTableAddr: 0x2000, indirectMaxSegments: 4 }).canIndirect);
  });
  it('2.8.10: with EVENT_IDX and interrupts on, draining keeps the event at the next used entry, so the next buffer is signalled without re-enabling', () => {
    const t = setup(F.EVENT_IDX);
    assert.equal(t.drv.enableInterrupts(), false);
    for (let round = 0; round < 20; round++) {
      assert.ok(t.drv.add([seg(0x40000, 8)], [], `b${round}`));
      t.drv.kick();
      assert.ok(t.dev.pop(t.chain));
      t.dev.push(t.chain, 0);
      assert.equal(t.dev.needsNotification(), true, `round ${round}: the device signals the used buffer`);
      assert.equal(t.drv.takeUsed(), `b${round}`);
    }
    t.drv.disableInterrupts();
    assert.ok(t.drv.add([seg(0x40000, 8)], [], 'quiet'));
    t.drv.kick();
    assert.ok(t.dev.pop(t.chain));
    t.dev.push(t.chain, 0);
    assert.equal(t.dev.needsNotification(), false, 'interrupts off: no signal, and taking does not turn them on');
    assert.equal(t.drv.takeUsed(), 'quiet');
    assert.ok(t.drv.add([seg(0x40000, 8)], [], 'quiet2'));
    t.drv.kick();
    assert.ok(t.dev.pop(t.chain));
    t.dev.push(t.chain, 0);
    assert.equal(t.dev.needsNotification(), false);
  });
});
