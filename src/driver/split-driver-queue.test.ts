import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ErrorCode, QueueError, QueueFault, VirtioError } from '../errors.js';
import { GuestMemory } from '../memory/guest-memory.js';
import { DescriptorChain } from '../queue/chain.js';
import { SplitQueue } from '../queue/split-queue.js';
import type { QueueConfig } from '../queue/types.js';
import { F } from '../spec/features.js';
import { DescFlag, SplitLayout } from '../spec/ring.js';
import { SplitDriverQueue } from './split-driver-queue.js';

const { NEXT, WRITE, INDIRECT } = DescFlag;
const INDIRECT_AREA = 0x20000;

function setup(features = 0n, size = 8, le = true) {
  const mem = GuestMemory.allocate(0x80000);
  const l = SplitDriverQueue.layout(size, 0x1000);
  const cfg: QueueConfig = { size, descAddr: l.descAddr, driverAddr: l.driverAddr, deviceAddr: l.deviceAddr, features: features | F.VERSION_1, littleEndian: le, index: 2 };
  const drv = new SplitDriverQueue<string>(mem, cfg, { indirectTableAddr: INDIRECT_AREA, indirectMaxSegments: Math.min(size, 8) });
  const dev = new SplitQueue(mem, cfg);
  const chain = new DescriptorChain(mem, 64);
  const desc = (i: number, table = cfg.descAddr) => {
    const o = table + 16 * i;
    return { addr: mem.readAddr(o, le), len: mem.readU32(o + 8, le), flags: mem.readU16(o + 12, le), next: mem.readU16(o + 14, le) };
  };
  const availIdx = () => mem.readU16(cfg.driverAddr + 2, le);
  const availFlags = () => mem.readU16(cfg.driverAddr, le);
  const usedEvent = () => mem.readU16(cfg.driverAddr + SplitLayout.usedEventOffset(size), le);
  const writeUsed = (pos: number, id: number, len: number, idx: number) => {
    mem.writeU32(cfg.deviceAddr + 4 + 8 * (pos % size), id, le);
    mem.writeU32(cfg.deviceAddr + 8 + 8 * (pos % size), len, le);
    mem.writeU16(cfg.deviceAddr + 2, idx, le);
  };
  return { mem, cfg, drv, dev, chain, desc, availIdx, availFlags, usedEvent, writeUsed };
}

const seg = (addr: number, len: number) => ({ addr, len });
const isCode = (code: string) => (e: unknown) => e instanceof VirtioError && e.code === code;
const isFault = (fault: string) => (e: unknown) => e instanceof QueueError && e.fault === fault;

describe('SplitDriverQueue', () => {
  it('driver/split-ring/17: starts with used flags 0 and clean rings', () => {
    const mem = GuestMemory.allocate(0x10000);
    mem.fill(0, 0x10000, 0xff);
    const l = SplitDriverQueue.layout(8, 0x1000);
    new SplitDriverQueue(mem, { size: 8, descAddr: l.descAddr, driverAddr: l.driverAddr, deviceAddr: l.deviceAddr, features: 0n });
    assert.equal(mem.readU16(l.deviceAddr), 0);
    assert.equal(mem.readU16(l.deviceAddr + 2), 0);
    assert.equal(mem.readU16(l.driverAddr + 2), 0);
  });

  it('driver/split-ring/2, 24: lays out readable then writable descriptors; idx moves only at kick', () => {
    const t = setup();
    assert.ok(t.drv.add([seg(0x40000, 10), seg(0x40100, 11)], [seg(0x41000, 12)], 'a'));
    assert.equal(t.drv.freeCount, 5);
    assert.equal(t.availIdx(), 0, 'not published before kick');
    const d0 = t.desc(0);
    assert.deepEqual(d0, { addr: 0x40000, len: 10, flags: NEXT, next: d0.next });
    const d1 = t.desc(d0.next);
    assert.equal(d1.flags, NEXT);
    const d2 = t.desc(d1.next);
    assert.equal(d2.flags, WRITE, 'the writable descriptor is last, without NEXT');
    assert.equal(t.dev.pop(t.chain), false);
    assert.equal(t.drv.kick(), true);
    assert.equal(t.availIdx(), 1);
    assert.ok(t.dev.pop(t.chain));
    assert.equal(t.chain.readableBytes, 21);
    assert.equal(t.chain.writableBytes, 12);
    t.dev.push(t.chain, 7);
    assert.equal(t.drv.takeUsed(), 'a');
    assert.equal(t.drv.lastUsedLen, 7);
    assert.equal(t.drv.freeCount, 8);
    assert.equal(t.drv.takeUsed(), undefined);
  });

  it('returns false when full and refuses impossible chains', () => {
    const t = setup();
    assert.ok(t.drv.add([seg(0x40000, 1)], [], 'a'));
    assert.equal(t.drv.add(Array.from({ length: 8 }, () => seg(0x40000, 1)), [], 'b'), false);
    // driver/split-ring/7: never longer than the queue size.
    assert.throws(() => t.drv.add(Array.from({ length: 9 }, () => seg(0x40000, 1)), [], 'c'), isCode(ErrorCode.INVALID_ARGUMENT));
    // driver/split-ring/4: no more than 2^32 bytes.
    assert.throws(() => t.drv.add([seg(0x40000, 0xffffffff), seg(0x40000, 1)], [], 'c'), isCode(ErrorCode.INVALID_ARGUMENT));
    assert.throws(() => t.drv.add([], [], 'c'), isCode(ErrorCode.INVALID_ARGUMENT));
    assert.throws(() => t.drv.add([seg(-1, 1)], [], 'c'), isCode(ErrorCode.INVALID_ARGUMENT));
  });

  it('driver/split-ring/5: refuses indirect without INDIRECT_DESC', () => {
    const t = setup();
    assert.equal(t.drv.canIndirect, false);
    assert.throws(() => t.drv.add([seg(0x40000, 1)], [], 'a', true), isCode(ErrorCode.INVALID_ARGUMENT));
  });

  it('driver/split-ring/6, 8, 9: one indirect descriptor without NEXT; table entries sequential, none indirect', () => {
    const t = setup(F.INDIRECT_DESC | F.IN_ORDER);
    assert.ok(t.drv.add([seg(0x40000, 4)], [seg(0x41000, 5), seg(0x42000, 6)], 'x', true));
    assert.equal(t.drv.freeCount, 7);
    const d = t.desc(0);
    assert.equal(d.flags, INDIRECT);
    assert.equal(d.len, 48);
    assert.equal(d.addr, INDIRECT_AREA);
    for (let i = 0; i < 3; i++) {
      const e = t.desc(i, d.addr);
      assert.equal(e.flags & INDIRECT, 0);
      assert.equal(e.flags & NEXT ? e.next : -1, i < 2 ? i + 1 : -1);
    }
    assert.throws(() => t.drv.add(Array.from({ length: 9 }, () => seg(0x40000, 1)), [], 'y', true), isCode(ErrorCode.INVALID_ARGUMENT));
    t.drv.kick();
    assert.ok(t.dev.pop(t.chain));
    assert.equal(t.chain.count, 3);
    t.dev.push(t.chain, 11);
    assert.equal(t.drv.takeUsed(), 'x');
    assert.equal(t.drv.lastUsedLen, 11);
  });

  it('driver/split-ring/4: with IN_ORDER, next is x + 1 and wraps to 0 after the last descriptor', () => {
    const t = setup(F.IN_ORDER, 4);
    assert.ok(t.drv.add([seg(0x40000, 1), seg(0x40000, 1), seg(0x40000, 1)], [], 'a'));
    t.drv.kick();
    t.dev.pop(t.chain);
    t.dev.push(t.chain, 0);
    assert.equal(t.drv.takeUsed(), 'a');
    assert.ok(t.drv.add([seg(0x40000, 1), seg(0x40000, 1), seg(0x40000, 1)], [], 'b'));
    assert.deepEqual([t.desc(3).next, t.desc(0).next], [0, 1], 'descriptors 3, 0, 1 in ring order');
    assert.equal(t.desc(3).flags, NEXT);
  });

  it('driver/split-ring/18, 19, 20: without EVENT_IDX, used flags decide and avail_event is ignored', () => {
    const t = setup();
    t.mem.writeU16(t.cfg.deviceAddr + SplitLayout.availEventOffset(8), 0x55);
    t.drv.add([seg(0x40000, 1)], [], 'a');
    assert.equal(t.drv.kick(), true);
    t.dev.disableNotification();
    t.drv.add([seg(0x40000, 1)], [], 'b');
    assert.equal(t.drv.kick(), false);
    assert.equal(t.drv.kick(), false, 'nothing new: no notification');
  });

  it('driver/split-ring/21, 22, 23: with EVENT_IDX, flags are ignored and avail_event decides', () => {
    const t = setup(F.EVENT_IDX);
    t.mem.writeU16(t.cfg.deviceAddr, 1); // NO_NOTIFY must be ignored
    t.drv.add([seg(0x40000, 1)], [], 'a');
    assert.equal(t.drv.kick(), true, 'avail_event 0 and the entry at 0 was written');
    t.drv.add([seg(0x40000, 1)], [], 'b');
    assert.equal(t.drv.kick(), false, 'avail_event still 0');
    t.mem.writeU16(t.cfg.deviceAddr + SplitLayout.availEventOffset(8), 3);
    t.drv.add([seg(0x40000, 1)], [], 'c');
    t.drv.add([seg(0x40000, 1)], [], 'd');
    assert.equal(t.drv.kick(), true, 'entries 2 and 3 published at once: 3 crossed');
  });

  it('driver/split-ring/11, 12, 13, 14: interrupt suppression through flags or used_event', () => {
    const t = setup();
    t.drv.disableInterrupts();
    assert.equal(t.availFlags(), 1);
    assert.equal(t.drv.enableInterrupts(), false);
    assert.equal(t.availFlags(), 0);
    const e = setup(F.EVENT_IDX);
    e.drv.add([seg(0x40000, 1)], [], 'a');
    e.drv.kick();
    e.dev.pop(e.chain);
    e.dev.push(e.chain, 0);
    e.drv.disableInterrupts();
    assert.equal(e.availFlags(), 0);
    assert.equal(e.drv.enableInterrupts(), true, 'a used buffer is already pending');
    assert.equal(e.usedEvent(), 0);
    assert.equal(e.drv.takeUsed(), 'a');
    assert.equal(e.drv.enableInterrupts(), false);
    assert.equal(e.usedEvent(), 1);
  });

  it('driver/split-ring/15: tolerates spurious notifications (takeUsed with nothing new)', () => {
    const t = setup();
    for (let i = 0; i < 3; i++) assert.equal(t.drv.takeUsed(), undefined);
  });

  it('driver/split-ring/16: clamps a used len larger than the writable part', () => {
    const t = setup();
    t.drv.add([seg(0x40000, 100)], [seg(0x41000, 10)], 'a');
    t.drv.kick();
    t.dev.pop(t.chain);
    t.dev.push(t.chain, 1000);
    assert.equal(t.drv.takeUsed(), 'a');
    assert.equal(t.drv.lastUsedLen, 10);
  });

  it('defends against a buggy device: id out of range, id not in flight, used idx jump', () => {
    const a = setup();
    a.drv.add([seg(0x40000, 1)], [], 'a');
    a.drv.kick();
    a.writeUsed(0, 9, 0, 1);
    assert.throws(() => a.drv.takeUsed(), isFault(QueueFault.USED_ID_INVALID));
    assert.throws(() => a.drv.takeUsed(), isFault(QueueFault.USED_ID_INVALID), 'stays broken');
    const b = setup();
    b.drv.add([seg(0x40000, 1)], [], 'a');
    b.drv.kick();
    b.writeUsed(0, 5, 0, 1);
    assert.throws(() => b.drv.takeUsed(), isFault(QueueFault.USED_ID_INVALID));
    const c = setup();
    c.drv.add([seg(0x40000, 1)], [], 'a');
    c.drv.kick();
    c.writeUsed(0, 0, 0, 2);
    assert.throws(() => c.drv.takeUsed(), isFault(QueueFault.USED_ID_INVALID));
    const d = setup();
    d.drv.add([seg(0x40000, 1)], [], 'a');
    d.drv.add([seg(0x40000, 1)], [], 'b');
    d.drv.kick();
    d.writeUsed(0, 0, 0, 1);
    d.writeUsed(1, 0, 0, 2);
    assert.equal(d.drv.takeUsed(), 'a');
    assert.throws(() => d.drv.takeUsed(), isFault(QueueFault.USED_ID_INVALID), 'the same id twice');
  });

  it('2.7.9: takes an IN_ORDER batch announced by one used entry', () => {
    const t = setup(F.IN_ORDER);
    for (const tok of ['a', 'b', 'c']) t.drv.add([seg(0x40000, 1)], [seg(0x41000, 16)], tok);
    t.drv.kick();
    for (let i = 0; i < 3; i++) t.dev.pop(t.chain);
    t.dev.pushInOrderBatch(t.chain.id, 3, 5);
    assert.equal(t.drv.takeUsed(), 'a');
    assert.equal(t.drv.lastUsedLen, 16, 'skipped buffers count as fully written');
    assert.equal(t.drv.enableInterrupts(), true, 'the rest of the batch is pending');
    assert.equal(t.drv.takeUsed(), 'b');
    assert.equal(t.drv.takeUsed(), 'c');
    assert.equal(t.drv.lastUsedLen, 5);
    assert.equal(t.drv.takeUsed(), undefined);
    assert.equal(t.drv.freeCount, 8);
  });

  it('refuses an IN_ORDER batch that runs past the used idx', () => {
    const t = setup(F.IN_ORDER);
    for (const tok of ['a', 'b', 'c']) t.drv.add([seg(0x40000, 1)], [], tok);
    t.drv.kick();
    const third = t.desc(2);
    assert.equal(third.flags, 0);
    t.writeUsed(0, 2, 0, 1); // says "up to buffer at 2" but moves idx by 1
    assert.throws(() => t.drv.takeUsed(), isFault(QueueFault.USED_ID_INVALID));
  });

  it('notificationData: vq index low, avail idx (next_off and next_wrap) high (2.9)', () => {
    const t = setup(F.NOTIFICATION_DATA);
    assert.equal(t.drv.notificationData(), 2);
    t.drv.add([seg(0x40000, 1)], [], 'a');
    t.drv.kick();
    assert.equal(t.drv.notificationData(), (1 << 16) | 2);
    const big = setup(F.NOTIFICATION_DATA, 2);
    for (let i = 0; i < 0x8001; i++) {
      big.drv.add([seg(0x40000, 1)], [], 'a');
      big.drv.kick();
      big.dev.pop(big.chain);
      big.dev.push(big.chain, 0);
      big.drv.takeUsed();
    }
    assert.equal(big.drv.notificationData(), (0x8001 * 0x10000 + 2) >>> 0, 'bit 31 is the wrap (bit 15 of idx)');
  });

  it('driver/split-ring/10: never decrements the available idx', () => {
    const t = setup();
    let prev = 0;
    for (let i = 0; i < 70000; i++) {
      t.drv.add([seg(0x40000, 1)], [], 'a');
      t.drv.kick();
      const now = t.availIdx();
      assert.equal((now - prev) & 0xffff, 1);
      prev = now;
      t.dev.pop(t.chain);
      t.dev.push(t.chain, 0);
      t.drv.takeUsed();
    }
  });

  it('validates its indirect area', () => {
    const mem = GuestMemory.allocate(0x10000);
    const l = SplitDriverQueue.layout(8, 0x1000);
    const cfg: QueueConfig = { size: 8, descAddr: l.descAddr, driverAddr: l.driverAddr, deviceAddr: l.deviceAddr, features: F.INDIRECT_DESC };
    assert.throws(() => new SplitDriverQueue(mem, cfg, { indirectTableAddr: 0x8008 }), isCode(ErrorCode.QUEUE_BAD_CONFIG));
    assert.throws(() => new SplitDriverQueue(mem, cfg, { indirectTableAddr: 0xff00 }), isCode(ErrorCode.QUEUE_BAD_CONFIG));
    assert.throws(() => new SplitDriverQueue(mem, cfg, { indirectTableAddr: 0x8000, indirectMaxSegments: 9 }), isCode(ErrorCode.QUEUE_BAD_CONFIG));
    assert.equal(new SplitDriverQueue(mem, cfg, { indirectTableAddr: 0x8000 }).maxIndirectSegments, 8);
    assert.equal(SplitDriverQueue.indirectAreaSize(8, 4), 512);
    assert.deepEqual(SplitDriverQueue.legacyLayout(8, 0x2000), { size: 8, descAddr: 0x2000, driverAddr: 0x2080, deviceAddr: 0x3000, total: 0x2000 });
  });

  it('runs on a big-endian legacy layout with the device', () => {
    const mem = GuestMemory.allocate(0x40000);
    const l = SplitDriverQueue.legacyLayout(16, 0x4000);
    const cfg: QueueConfig = { size: 16, descAddr: l.descAddr, driverAddr: l.driverAddr, deviceAddr: l.deviceAddr, features: F.INDIRECT_DESC, littleEndian: false };
    const drv = new SplitDriverQueue<number>(mem, cfg, { indirectTableAddr: 0x10000, indirectMaxSegments: 4 });
    const dev = new SplitQueue(mem, cfg);
    const chain = new DescriptorChain(mem, 8);
    mem.write(0x20000, Uint8Array.of(1, 2, 3));
    drv.add([seg(0x20000, 3)], [seg(0x21000, 4)], 1, true);
    drv.add([seg(0x20000, 3)], [seg(0x22000, 4)], 2);
    assert.ok(drv.kick());
    assert.equal(mem.readU16(l.driverAddr + 2, false), 2);
    assert.ok(dev.pop(chain));
    assert.equal(chain.readableBytes, 3);
    dev.push(chain, 4);
    assert.ok(dev.pop(chain));
    dev.push(chain, 2);
    assert.ok(dev.needsNotification());
    assert.equal(drv.takeUsed(), 1);
    assert.equal(drv.lastUsedLen, 4);
    assert.equal(drv.takeUsed(), 2);
    assert.equal(drv.lastUsedLen, 2);
  });
  it('2.7.10: with EVENT_IDX and interrupts on, draining keeps the event at the next used entry, so the next buffer is signalled without re-enabling', () => {
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
