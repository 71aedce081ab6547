import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ErrorCode, QueueError, QueueFault, VirtioError } from '../errors.js';
import { GuestMemory } from '../memory/guest-memory.js';
import { F } from '../spec/features.js';
import { DescFlag, SplitLayout } from '../spec/ring.js';
import { DescriptorChain } from './chain.js';
import { legacySplitRingLayout, splitRingLayout } from './split-layout.js';
import { SplitQueue } from './split-queue.js';
import type { QueueConfig } from './types.js';

const { NEXT, WRITE, INDIRECT } = DescFlag;

/** Writes split ring fields the way a (possibly hostile) driver would. */
class RawRing {
  constructor(
    readonly mem: GuestMemory,
    readonly cfg: QueueConfig,
    readonly le = cfg.littleEndian ?? true,
  ) {}
  private idx = 0;
  desc(i: number, addr: number, len: number, flags: number, next = 0, table = this.cfg.descAddr): void {
    const o = table + 16 * i;
    this.mem.writeAddr(o, addr, this.le);
    this.mem.writeU32(o + 8, len, this.le);
    this.mem.writeU16(o + 12, flags, this.le);
    this.mem.writeU16(o + 14, next, this.le);
  }
  offer(...heads: number[]): void {
    for (const h of heads) {
      this.mem.writeU16(this.cfg.driverAddr + 4 + 2 * (this.idx % this.cfg.size), h, this.le);
      this.idx = (this.idx + 1) & 0xffff;
    }
    this.mem.writeU16(this.cfg.driverAddr + 2, this.idx, this.le);
  }
  setAvailIdx(v: number): void {
    this.idx = v & 0xffff;
    this.mem.writeU16(this.cfg.driverAddr + 2, this.idx, this.le);
  }
  availFlags(v: number): void {
    this.mem.writeU16(this.cfg.driverAddr, v, this.le);
  }
  usedEvent(v: number): void {
    this.mem.writeU16(this.cfg.driverAddr + SplitLayout.usedEventOffset(this.cfg.size), v, this.le);
  }
  usedFlags(): number {
    return this.mem.readU16(this.cfg.deviceAddr, this.le);
  }
  usedIdx(): number {
    return this.mem.readU16(this.cfg.deviceAddr + 2, this.le);
  }
  availEvent(): number {
    return this.mem.readU16(this.cfg.deviceAddr + SplitLayout.availEventOffset(this.cfg.size), this.le);
  }
  usedElem(i: number): { id: number; len: number } {
    const o = this.cfg.deviceAddr + 4 + 8 * (i % this.cfg.size);
    return { id: this.mem.readU32(o, this.le), len: this.mem.readU32(o + 4, this.le) };
  }
}

function setup(features = 0n, size = 8, le = true): { mem: GuestMemory; q: SplitQueue; r: RawRing; chain: DescriptorChain; cfg: QueueConfig } {
  const mem = GuestMemory.allocate(0x40000);
  const l = splitRingLayout(size, 0x1000);
  const cfg: QueueConfig = { size, descAddr: l.descAddr, driverAddr: l.driverAddr, deviceAddr: l.deviceAddr, features: features | F.VERSION_1, littleEndian: le, index: 3 };
  return { mem, q: new SplitQueue(mem, cfg), r: new RawRing(mem, cfg), chain: new DescriptorChain(mem, 64), cfg };
}

function badConfig(fn: () => unknown): void {
  assert.throws(fn, (e: unknown) => e instanceof VirtioError && e.code === ErrorCode.QUEUE_BAD_CONFIG);
}

describe('SplitQueue configuration', () => {
  const mem = GuestMemory.allocate(0x20000);
  const base = { descAddr: 0x1000, driverAddr: 0x3000, deviceAddr: 0x4000, features: 0n };
  it('accepts powers of two up to 32768 and refuses others', () => {
    for (const size of [1, 2, 256, 1024]) assert.equal(new SplitQueue(mem, { ...base, size }).size, size);
    const big = GuestMemory.allocate(0x100000);
    const l = splitRingLayout(32768, 0);
    assert.equal(new SplitQueue(big, { size: 32768, descAddr: l.descAddr, driverAddr: l.driverAddr, deviceAddr: l.deviceAddr, features: 0n }).size, 32768);
    for (const size of [0, 3, 100, 65536, -4, 1.5]) badConfig(() => new SplitQueue(mem, { ...base, size }));
  });
  it('a driver breaking split-ring rule 1 (device side): refuses misaligned parts (desc 16, avail 2, used 4)', () => {
    badConfig(() => new SplitQueue(mem, { ...base, size: 8, descAddr: 0x1008 }));
    badConfig(() => new SplitQueue(mem, { ...base, size: 8, driverAddr: 0x3001 }));
    badConfig(() => new SplitQueue(mem, { ...base, size: 8, deviceAddr: 0x4002 }));
    assert.ok(new SplitQueue(mem, { ...base, size: 8, descAddr: 0x1010, driverAddr: 0x3002, deviceAddr: 0x4004 }));
  });
  it('refuses parts outside guest memory or across regions, and a packed config', () => {
    badConfig(() => new SplitQueue(mem, { ...base, size: 8, deviceAddr: 0x20000 - 8 }));
    badConfig(() => new SplitQueue(mem, { ...base, size: 8, descAddr: 0x30000 }));
    const two = new GuestMemory([
      { guestBase: 0, bytes: new Uint8Array(0x1000) },
      { guestBase: 0x1000, bytes: new Uint8Array(0x1000) },
    ]);
    badConfig(() => new SplitQueue(two, { size: 8, descAddr: 0xfc0, driverAddr: 0x1100, deviceAddr: 0x1200, features: 0n }));
    badConfig(() => new SplitQueue(mem, { ...base, size: 8, features: F.RING_PACKED }));
  });
  it('computes modern and legacy layouts', () => {
    assert.deepEqual(splitRingLayout(256, 0x10000), { size: 256, descAddr: 0x10000, driverAddr: 0x11000, deviceAddr: 0x11208, total: 0x1208 + 6 + 2048 });
    assert.deepEqual(legacySplitRingLayout(256, 0x10000), { size: 256, descAddr: 0x10000, driverAddr: 0x11000, deviceAddr: 0x12000, total: 0x3000 });
    badConfig(() => legacySplitRingLayout(256, 0x10800));
    badConfig(() => splitRingLayout(256, 0x10008));
  });
});

describe('SplitQueue pop and push', () => {
  it('returns nothing on an empty ring and a chain with readable then writable segments', () => {
    const { q, r, chain, mem } = setup();
    assert.equal(q.pop(chain), false);
    assert.equal(q.hasAvailable(), false);
    r.desc(2, 0x8000, 10, NEXT, 5);
    r.desc(5, 0x9000, 20, NEXT | WRITE, 1);
    r.desc(1, 0xa000, 1, WRITE);
    r.offer(2);
    assert.equal(q.hasAvailable(), true);
    assert.equal(q.pop(chain), true);
    assert.equal(chain.id, 2);
    assert.equal(chain.count, 3);
    assert.equal(chain.readableCount, 1);
    assert.equal(chain.readableBytes, 10);
    assert.equal(chain.writableBytes, 21);
    assert.deepEqual([...chain.addrs.subarray(0, 3)], [0x8000, 0x9000, 0xa000]);
    assert.equal(chain.fault, null);
    assert.equal(chain.memory, mem);
    assert.equal(q.pop(chain), false);
  });

  it('device/split-ring/13: push writes id and len, then moves used idx', () => {
    const { q, r, chain } = setup();
    r.desc(0, 0x8000, 64, WRITE);
    r.offer(0);
    q.pop(chain);
    q.push(chain, 17);
    assert.deepEqual(r.usedElem(0), { id: 0, len: 17 });
    assert.equal(r.usedIdx(), 1);
    q.pushId(0, 1, 0xffffffff);
    assert.deepEqual(r.usedElem(1), { id: 0, len: 0xffffffff });
    assert.equal(r.usedIdx(), 2);
    assert.throws(() => q.pushId(8, 1, 0), (e: unknown) => e instanceof VirtioError && e.code === ErrorCode.INVALID_ARGUMENT);
  });

  it('device/split-ring/4: pop never writes the descriptor table or the available ring', () => {
    const { q, r, chain, mem, cfg } = setup(F.EVENT_IDX | F.INDIRECT_DESC);
    r.desc(0, 0x8000, 32, INDIRECT);
    r.desc(0, 0x9000, 8, NEXT, 1, 0x8000);
    r.desc(1, 0x9100, 8, WRITE, 0, 0x8000);
    r.offer(0);
    const before = mem.slice(cfg.descAddr, 16 * 8 + 6 + 2 * 8).slice();
    const table = mem.slice(0x8000, 32).slice();
    assert.ok(q.pop(chain));
    assert.deepEqual(mem.slice(cfg.descAddr, 16 * 8 + 6 + 2 * 8), before);
    assert.deepEqual(mem.slice(0x8000, 32), table);
  });

  it('device/split-ring/6: direct descriptors followed by one indirect descriptor', () => {
    const { q, r, chain } = setup(F.INDIRECT_DESC);
    r.desc(4, 0x8000, 8, NEXT, 6);
    r.desc(6, 0xc000, 48, INDIRECT);
    r.desc(0, 0x9000, 4, NEXT, 2, 0xc000);
    r.desc(2, 0x9100, 5, WRITE | NEXT, 1, 0xc000);
    r.desc(1, 0x9200, 6, WRITE, 0, 0xc000);
    r.offer(4);
    assert.ok(q.pop(chain));
    assert.equal(chain.id, 4);
    assert.deepEqual([...chain.addrs.subarray(0, chain.count)], [0x8000, 0x9000, 0x9100, 0x9200]);
    assert.equal(chain.readableBytes, 12);
    assert.equal(chain.writableBytes, 11);
  });

  it('device/split-ring/5: ignores WRITE on the descriptor that refers to an indirect table', () => {
    const { q, r, chain } = setup(F.INDIRECT_DESC);
    r.desc(0, 0xc000, 32, INDIRECT | WRITE);
    r.desc(0, 0x9000, 4, NEXT, 1, 0xc000);
    r.desc(1, 0x9100, 5, WRITE, 0, 0xc000);
    r.offer(0);
    assert.ok(q.pop(chain));
    assert.equal(chain.readableCount, 1, 'the table entry without WRITE stays readable');
    assert.equal(chain.writableBytes, 5);
  });

  it('device/split-ring/1: accepts any arrangement (one descriptor, many, zero-length)', () => {
    const { q, r, chain } = setup();
    for (let i = 0; i < 8; i++) r.desc(i, 0x8000 + i * 0x100, i, i < 7 ? NEXT | (i >= 3 ? WRITE : 0) : WRITE, i + 1);
    r.offer(0);
    assert.ok(q.pop(chain));
    assert.equal(chain.count, 8);
    assert.equal(chain.readableBytes, 0 + 1 + 2);
    assert.equal(chain.writableBytes, 3 + 4 + 5 + 6 + 7);
  });

  it('device/split-ring/2: a chain longer than the DescriptorChain capacity is refused', () => {
    const { q, r, mem } = setup();
    for (let i = 0; i < 8; i++) r.desc(i, 0x8000, 1, i < 7 ? NEXT : 0, i + 1);
    r.offer(0);
    const small = new DescriptorChain(mem, 4);
    assert.throws(() => q.pop(small), (e: unknown) => e instanceof QueueError && e.fault === QueueFault.CHAIN_TOO_LONG);
  });

  it('splits a buffer that spans two adjacent regions', () => {
    const mem = new GuestMemory([
      { guestBase: 0, bytes: new Uint8Array(0x10000) },
      { guestBase: 0x10000, bytes: new Uint8Array(0x10000) },
    ]);
    const l = splitRingLayout(8, 0x1000);
    const cfg: QueueConfig = { size: 8, descAddr: l.descAddr, driverAddr: l.driverAddr, deviceAddr: l.deviceAddr, features: 0n };
    const q = new SplitQueue(mem, cfg);
    const r = new RawRing(mem, cfg);
    r.desc(0, 0xff00, 0x200, WRITE);
    r.offer(0);
    // The queue's own chain has room for the split (a chain of exactly the queue size keeps
    // that room for the descriptors a legal chain may still have, see addUnmapped).
    const chain = q.createChain();
    assert.ok(q.pop(chain));
    assert.equal(chain.fault, null);
    assert.deepEqual([...chain.addrs.subarray(0, chain.count)], [0xff00, 0x10000]);
    assert.deepEqual([...chain.lens.subarray(0, chain.count)], [0x100, 0x100]);
    assert.equal(chain.writableBytes, 0x200);
  });

  it('wraps the 16-bit indices', () => {
    const { q, r, chain } = setup();
    q.setState({ nextAvail: 0xfffe, nextUsed: 0xfffe, availWrap: true, usedWrap: true });
    r.setAvailIdx(0xfffe);
    r.desc(0, 0x8000, 1, 0);
    r.desc(1, 0x8000, 1, 0);
    r.desc(2, 0x8000, 1, 0);
    r.offer(0, 1, 2);
    for (let i = 0; i < 3; i++) {
      assert.ok(q.pop(chain));
      assert.equal(chain.id, i);
      q.push(chain, 0);
    }
    assert.equal(r.usedIdx(), 1);
    assert.deepEqual(q.state(), { nextAvail: 1, nextUsed: 1, availWrap: true, usedWrap: true });
  });

  it('works on a big-endian legacy ring in the 4096-aligned layout', () => {
    const mem = GuestMemory.allocate(0x20000);
    const l = legacySplitRingLayout(16, 0x4000);
    const cfg: QueueConfig = { size: 16, descAddr: l.descAddr, driverAddr: l.driverAddr, deviceAddr: l.deviceAddr, features: F.EVENT_IDX, littleEndian: false };
    const q = new SplitQueue(mem, cfg);
    const r = new RawRing(mem, cfg);
    r.desc(3, 0x1_0000, 0x10, NEXT, 9);
    r.desc(9, 0x1_1000, 0x20, WRITE);
    r.offer(3);
    const chain = new DescriptorChain(mem, 8);
    assert.ok(q.pop(chain));
    assert.equal(chain.id, 3);
    assert.deepEqual([...chain.addrs.subarray(0, 2)], [0x1_0000, 0x1_1000]);
    assert.deepEqual([...chain.lens.subarray(0, 2)], [0x10, 0x20]);
    q.push(chain, 0x20);
    assert.deepEqual(r.usedElem(0), { id: 3, len: 0x20 });
    assert.equal(mem.readU16(l.deviceAddr + 2, false), 1);
    assert.equal(mem.readU16(l.deviceAddr + 2, true), 0x100, 'used idx is stored big-endian');
    assert.equal(r.availEvent(), 1);
  });
});

describe('SplitQueue notification suppression', () => {
  it('device/split-ring/16, 17: without EVENT_IDX flags go 1 on disable and 0 on enable', () => {
    const { q, r } = setup();
    assert.equal(r.usedFlags(), 0);
    q.disableNotification();
    assert.equal(r.usedFlags(), 1);
    assert.equal(q.enableNotification(), false);
    assert.equal(r.usedFlags(), 0);
    q.disableNotification();
    r.desc(0, 0x8000, 1, 0);
    r.offer(0);
    assert.equal(q.enableNotification(), true, 'a buffer that arrived while disabled is reported');
    assert.equal(r.availEvent(), 0, 'avail_event untouched without EVENT_IDX');
  });

  it('device/split-ring/18, 19: with EVENT_IDX flags stay 0 and avail_event follows the next index', () => {
    const { q, r, chain } = setup(F.EVENT_IDX);
    q.disableNotification();
    assert.equal(r.usedFlags(), 0);
    r.desc(0, 0x8000, 1, 0);
    r.offer(0, 0);
    assert.ok(q.pop(chain));
    assert.equal(r.availEvent(), 0, 'disabled: avail_event does not follow');
    assert.equal(q.enableNotification(), true);
    assert.equal(r.availEvent(), 1);
    assert.ok(q.pop(chain));
    assert.equal(r.availEvent(), 2, 'enabled: each pop asks for the next buffer');
    assert.equal(q.enableNotification(), false);
    assert.equal(r.usedFlags(), 0);
  });

  it('device/split-ring/9: without EVENT_IDX, flags 0 means notify after a push', () => {
    const { q, r, chain } = setup();
    r.desc(0, 0x8000, 1, 0);
    r.offer(0);
    q.pop(chain);
    assert.equal(q.needsNotification(), false, 'nothing pushed yet');
    q.push(chain, 0);
    assert.equal(q.needsNotification(), true);
    assert.equal(q.needsNotification(), false, 'nothing new since the last check');
  });

  it('device/split-ring/8: without EVENT_IDX, flags 1 means no notification', () => {
    const { q, r, chain } = setup();
    r.availFlags(1);
    r.desc(0, 0x8000, 1, 0);
    r.offer(0);
    q.pop(chain);
    q.push(chain, 0);
    assert.equal(q.needsNotification(), false);
  });

  it('device/split-ring/7: without EVENT_IDX, used_event is ignored', () => {
    const { q, r, chain } = setup();
    r.usedEvent(100);
    r.desc(0, 0x8000, 1, 0);
    r.offer(0);
    q.pop(chain);
    q.push(chain, 0);
    assert.equal(q.needsNotification(), true);
  });

  it('device/split-ring/10, 11, 12: with EVENT_IDX, flags are ignored and used_event decides', () => {
    const { q, r, chain } = setup(F.EVENT_IDX);
    r.availFlags(1); // must be ignored
    r.usedEvent(1);
    r.desc(0, 0x8000, 1, 0);
    r.offer(0, 0, 0, 0);
    const step = (): boolean => {
      q.pop(chain);
      q.push(chain, 0);
      return q.needsNotification();
    };
    assert.equal(step(), false, 'idx 0 written, used_event 1');
    assert.equal(step(), true, 'the entry at index used_event was written');
    assert.equal(step(), false);
    r.usedEvent(3);
    assert.equal(step(), true);
  });

  it('device/split-ring/11: used_event 0 notifies after the first buffer (spec note)', () => {
    const { q, r, chain } = setup(F.EVENT_IDX);
    r.usedEvent(0);
    r.desc(0, 0x8000, 1, 0);
    r.offer(0, 0);
    q.pop(chain);
    q.push(chain, 0);
    assert.equal(q.needsNotification(), true);
    q.pop(chain);
    q.push(chain, 0);
    assert.equal(q.needsNotification(), false);
  });

  it('device/split-ring/11: an event crossed by several pushes between checks is not lost', () => {
    const { q, r, chain } = setup(F.EVENT_IDX);
    r.usedEvent(2);
    r.desc(0, 0x8000, 1, 0);
    r.offer(0, 0, 0, 0, 0);
    for (let i = 0; i < 5; i++) {
      q.pop(chain);
      q.push(chain, 0);
    }
    assert.equal(q.needsNotification(), true);
  });

  it('notifies on empty with the legacy NOTIFY_ON_EMPTY feature', () => {
    const { q, r } = setup(F.NOTIFY_ON_EMPTY);
    r.availFlags(1);
    assert.equal(q.needsNotification(), true);
  });
});

describe('SplitQueue state and IN_ORDER batches', () => {
  it('setState validates and reset starts over', () => {
    const { q, r, chain } = setup();
    const bad = (s: { nextAvail: number; nextUsed: number }): void =>
      assert.throws(() => q.setState({ ...s, availWrap: true, usedWrap: true }), (e: unknown) => e instanceof VirtioError && e.code === ErrorCode.QUEUE_BAD_STATE);
    bad({ nextAvail: 9, nextUsed: 0 });
    bad({ nextAvail: 0x10000, nextUsed: 0 });
    bad({ nextAvail: -1, nextUsed: 0 });
    bad({ nextAvail: 1.5, nextUsed: 0 });
    bad({ nextAvail: 0, nextUsed: 1 });
    q.setState({ nextAvail: 5, nextUsed: 0xfffe, availWrap: true, usedWrap: true });
    assert.equal(q.inFlight, 7);
    assert.equal(q.needsNotification(), true, 'after a restore the first check notifies');
    r.setAvailIdx(20);
    assert.throws(() => q.pop(chain), (e: unknown) => e instanceof QueueError && e.fault === QueueFault.AVAIL_IDX_JUMP);
    assert.ok(q.broken);
    q.reset();
    assert.equal(q.broken, null);
    assert.deepEqual(q.state(), { nextAvail: 0, nextUsed: 0, availWrap: true, usedWrap: true });
  });

  it('pushInOrderBatch writes one entry for a batch (2.7.9 In-order use of descriptors)', () => {
    const { q, r, chain } = setup(F.IN_ORDER);
    for (let i = 0; i < 4; i++) r.desc(i, 0x8000, 8, WRITE);
    r.offer(0, 1, 2, 3);
    for (let i = 0; i < 4; i++) assert.ok(q.pop(chain));
    q.pushInOrderBatch(2, 3, 5);
    assert.equal(r.usedIdx(), 3);
    assert.deepEqual(r.usedElem(0), { id: 2, len: 5 });
    assert.throws(() => q.pushInOrderBatch(3, 2, 0), (e: unknown) => e instanceof VirtioError && e.code === ErrorCode.INVALID_ARGUMENT);
    q.pushInOrderBatch(3, 1, 8);
    assert.deepEqual(r.usedElem(3), { id: 3, len: 8 });
    assert.equal(r.usedIdx(), 4);
    const plain = setup().q;
    assert.throws(() => plain.pushInOrderBatch(0, 1, 0), (e: unknown) => e instanceof VirtioError && e.code === ErrorCode.INVALID_ARGUMENT);
  });
});
