import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ErrorCode, QueueError, QueueFault, VirtioError } from '../errors.js';
import { GuestMemory } from '../memory/guest-memory.js';
import { F } from '../spec/features.js';
import { DescFlag, PackedEvent } from '../spec/ring.js';
import { DescriptorChain } from './chain.js';
import { EVENT_WRAP_BIT, offWrap, packedNeedEvent, packedRingLayout } from './packed-layout.js';
import { PackedQueue } from './packed-queue.js';
import type { QueueConfig } from './types.js';

const { NEXT, WRITE, INDIRECT, AVAIL, USED } = DescFlag;

/** Writes packed ring descriptors the way a (possibly hostile) driver would. */
class RawPackedRing {
  /** The driver's next position and Driver Ring Wrap Counter. */
  pos = 0;
  wrap = true;
  constructor(
    readonly mem: GuestMemory,
    readonly cfg: QueueConfig,
  ) {}
  /** Raw descriptor write at ring position `i` (or in a table at `table`). */
  desc(i: number, addr: number, len: number, id: number, flags: number, table = this.cfg.descAddr): void {
    const o = table + 16 * i;
    this.mem.writeAddr(o, addr);
    this.mem.writeU32(o + 8, len);
    this.mem.writeU16(o + 12, id);
    this.mem.writeU16(o + 14, flags);
  }
  /** Flags that make a descriptor available at the current lap. */
  avail(): number {
    return this.wrap ? AVAIL : USED;
  }
  /**
   * Makes one buffer available: each element [addr, len, flagsExtra] goes in the next ring
   * position; NEXT is set on all but the last; the head's flags are written last.
   */
  offer(id: number, elems: readonly (readonly [number, number, number])[]): number {
    const head = this.pos;
    let headFlags = 0;
    elems.forEach(([addr, len, extra], k) => {
      const f = extra | (k + 1 < elems.length ? NEXT : 0) | this.avail();
      if (k === 0) {
        headFlags = f;
        this.desc(this.pos, addr, len, id, 0);
      } else this.desc(this.pos, addr, len, id, f);
      if (++this.pos === this.cfg.size) {
        this.pos = 0;
        this.wrap = !this.wrap;
      }
    });
    this.mem.writeU16(this.cfg.descAddr + 16 * head + 14, headFlags);
    return head;
  }
  used(i: number): { id: number; len: number; flags: number } {
    const o = this.cfg.descAddr + 16 * i;
    return { id: this.mem.readU16(o + 12), len: this.mem.readU32(o + 8), flags: this.mem.readU16(o + 14) };
  }
  driverEvent(flags: number, off = 0, wrap = true): void {
    this.mem.writeU16(this.cfg.driverAddr, offWrap(off, wrap));
    this.mem.writeU16(this.cfg.driverAddr + 2, flags);
  }
  deviceEvent(): { flags: number; off: number; wrap: boolean } {
    const d = this.mem.readU16(this.cfg.deviceAddr);
    return { flags: this.mem.readU16(this.cfg.deviceAddr + 2), off: d & 0x7fff, wrap: (d & EVENT_WRAP_BIT) !== 0 };
  }
}

function setup(features = 0n, size = 8): { mem: GuestMemory; q: PackedQueue; r: RawPackedRing; chain: DescriptorChain; cfg: QueueConfig } {
  const mem = GuestMemory.allocate(0x40000);
  const l = packedRingLayout(size, 0x1000);
  const cfg: QueueConfig = { size, descAddr: l.descAddr, driverAddr: l.driverAddr, deviceAddr: l.deviceAddr, features: features | F.VERSION_1 | F.RING_PACKED, index: 2 };
  return { mem, q: new PackedQueue(mem, cfg), r: new RawPackedRing(mem, cfg), chain: new DescriptorChain(mem, 64), cfg };
}

function badConfig(fn: () => unknown): void {
  assert.throws(fn, (e: unknown) => e instanceof VirtioError && e.code === ErrorCode.QUEUE_BAD_CONFIG);
}

function fault(f: QueueFault): (e: unknown) => boolean {
  return (e: unknown) => e instanceof QueueError && e.fault === f && e.code === ErrorCode.QUEUE_BROKEN;
}

describe('PackedQueue configuration and layout', () => {
  const mem = GuestMemory.allocate(0x20000);
  const base = { descAddr: 0x1000, driverAddr: 0x3000, deviceAddr: 0x3004, features: F.RING_PACKED };
  it('accepts any size 1..32768 (not only powers of two) and refuses others', () => {
    for (const size of [1, 3, 100, 256, 1000]) assert.equal(new PackedQueue(mem, { ...base, size }).size, size);
    const big = GuestMemory.allocate(0x100000);
    const l = packedRingLayout(32768, 0);
    assert.equal(new PackedQueue(big, { ...l, features: F.RING_PACKED }).size, 32768);
    for (const size of [0, 32769, 65536, -4, 1.5]) badConfig(() => new PackedQueue(mem, { ...base, size }));
  });
  it('a driver breaking packed-ring rule 1 (device side): refuses misaligned parts (descriptor ring 16, event areas 4)', () => {
    badConfig(() => new PackedQueue(mem, { ...base, size: 8, descAddr: 0x1008 }));
    badConfig(() => new PackedQueue(mem, { ...base, size: 8, driverAddr: 0x3002 }));
    badConfig(() => new PackedQueue(mem, { ...base, size: 8, deviceAddr: 0x3006 }));
    assert.ok(new PackedQueue(mem, { ...base, size: 8, descAddr: 0x1010, driverAddr: 0x3008, deviceAddr: 0x300c }));
  });
  it('refuses parts outside guest memory or across regions, and a split config', () => {
    badConfig(() => new PackedQueue(mem, { ...base, size: 8, deviceAddr: 0x20000 - 2 }));
    badConfig(() => new PackedQueue(mem, { ...base, size: 8, descAddr: 0x20000 }));
    const two = new GuestMemory([
      { guestBase: 0, bytes: new Uint8Array(0x1000) },
      { guestBase: 0x1000, bytes: new Uint8Array(0x1000) },
    ]);
    badConfig(() => new PackedQueue(two, { size: 8, descAddr: 0xfc0, driverAddr: 0x1100, deviceAddr: 0x1200, features: F.RING_PACKED }));
    badConfig(() => new PackedQueue(mem, { ...base, size: 8, features: F.VERSION_1 }));
  });
  it('computes the layout: ring, then driver area, then device area', () => {
    assert.deepEqual(packedRingLayout(256, 0x10000), { size: 256, descAddr: 0x10000, driverAddr: 0x11000, deviceAddr: 0x11004, total: 0x1008 });
    assert.deepEqual(packedRingLayout(3, 0x100), { size: 3, descAddr: 0x100, driverAddr: 0x130, deviceAddr: 0x134, total: 0x38 });
    badConfig(() => packedRingLayout(256, 0x10008));
    badConfig(() => packedRingLayout(0, 0x10000));
  });
});

describe('PackedQueue pop and push', () => {
  it('device/packed-ring/5: a zeroed ring or a descriptor of the wrong lap is not available', () => {
    const { q, r, chain, mem, cfg } = setup();
    assert.equal(q.hasAvailable(), false);
    assert.equal(q.pop(chain), false);
    // AVAIL and USED equal (a used descriptor), or AVAIL for the other lap: not available.
    for (const flags of [AVAIL | USED, USED, 0]) {
      r.desc(0, 0x8000, 4, 0, flags);
      assert.equal(q.pop(chain), false, `flags 0x${flags.toString(16)}`);
    }
    mem.writeU16(cfg.descAddr + 14, AVAIL);
    assert.equal(q.hasAvailable(), true);
    assert.ok(q.pop(chain));
  });

  it('device/packed-ring/1, device/packed-ring/7: a list read in ring order, id from the last descriptor', () => {
    const { q, r, chain, mem } = setup();
    r.offer(5, [
      [0x8000, 10, 0],
      [0x9000, 20, WRITE],
      [0xa000, 1, WRITE],
    ]);
    r.offer(6, [[0xb000, 3, 0]]);
    assert.ok(q.pop(chain));
    assert.equal(chain.id, 5);
    assert.equal(chain.ringDescs, 3);
    assert.equal(chain.count, 3);
    assert.equal(chain.readableCount, 1);
    assert.equal(chain.readableBytes, 10);
    assert.equal(chain.writableBytes, 21);
    assert.deepEqual([...chain.addrs.subarray(0, 3)], [0x8000, 0x9000, 0xa000]);
    assert.equal(chain.fault, null);
    assert.equal(chain.memory, mem);
    assert.ok(q.pop(chain));
    assert.equal(chain.id, 6);
    assert.equal(q.lastAvailIdx, 4);
    assert.equal(q.inFlight, 2);
    assert.equal(q.pop(chain), false);
  });

  it('the id is taken from the last descriptor only (ids in the others are ignored)', () => {
    const { q, r, chain } = setup();
    r.desc(1, 0x9000, 4, 7, r.avail());
    r.desc(0, 0x8000, 4, 99, NEXT | r.avail());
    assert.ok(q.pop(chain));
    assert.equal(chain.id, 7);
    assert.equal(chain.ringDescs, 2);
  });

  it('device/packed-ring/2, device/packed-ring/6: one used descriptor per list at nextUsed, flags last with the wrap counter', () => {
    const { q, r, chain } = setup();
    r.offer(3, [
      [0x8000, 8, 0],
      [0x9000, 8, WRITE],
    ]);
    r.offer(4, [[0xa000, 8, WRITE]]);
    assert.ok(q.pop(chain));
    const c2 = new DescriptorChain(chain.memory, 4);
    assert.ok(q.pop(c2));
    // Completes out of order: the second buffer's used descriptor goes first, at position 0.
    q.push(c2, 6);
    assert.deepEqual(r.used(0), { id: 4, len: 6, flags: AVAIL | USED | WRITE });
    assert.equal(q.usedIdx, 1);
    q.push(chain, 0);
    // WRITE clear: nothing written (2.8.3); len reserved.
    assert.deepEqual(r.used(1), { id: 3, len: 0, flags: AVAIL | USED });
    assert.equal(q.usedIdx, 3);
    assert.equal(q.inFlight, 0);
  });

  it('2.8.1: wrap counters toggle at the ring end; a list may cross it', () => {
    const { q, r, chain } = setup(0n, 3);
    let crossed = 0;
    for (let lap = 0; lap < 6; lap++) {
      // Three buffers of 1 + 2 + 1 descriptors in a ring of 3: positions shift every lap.
      r.offer(0, [[0x8000, 8, WRITE]]);
      assert.ok(q.pop(chain));
      q.push(chain, 8);
      const before = r.pos;
      r.offer(1, [
        [0x8100, 8, 0],
        [0x8200, 8, WRITE],
      ]);
      if (before === 2) crossed++;
      assert.ok(q.pop(chain));
      assert.equal(chain.ringDescs, 2);
      assert.deepEqual([...chain.addrs.subarray(0, 2)], [0x8100, 0x8200]);
      q.push(chain, 8);
      const wrap = r.wrap;
      const head = r.offer(2, [[0x8300, 8, 0]]);
      assert.ok(q.pop(chain));
      q.push(chain, 0);
      // The used descriptor carries the Device Ring Wrap Counter of its lap in AVAIL and USED.
      assert.equal(r.used(head).flags, wrap ? AVAIL | USED : 0);
      assert.equal(q.pop(chain), false);
      assert.deepEqual(q.state(), { nextAvail: r.pos, nextUsed: r.pos, availWrap: r.wrap, usedWrap: r.wrap });
    }
    assert.ok(crossed > 0, 'a two-descriptor list crossed the ring end');
    // 24 descriptors in a ring of 3: 8 laps, back at 0 with the counter toggled 8 times.
    assert.deepEqual(q.state(), { nextAvail: 0, nextUsed: 0, availWrap: true, usedWrap: true });
  });

  it('does not read the descriptor ring past what the device holds (a full ring)', () => {
    const { q, r, chain } = setup(0n, 2);
    r.offer(0, [[0x8000, 1, 0]]);
    r.offer(1, [[0x8000, 1, 0]]);
    assert.ok(q.pop(chain));
    assert.ok(q.pop(chain));
    // Position 0 again, wrap flipped: the driver cannot have written here (nothing used yet).
    r.desc(0, 0x8000, 1, 0, USED);
    assert.equal(q.hasAvailable(), false);
    assert.equal(q.pop(chain), false);
  });

  it('indirect table: one ring descriptor, the table read in order, WRITE on the ring descriptor ignored', () => {
    const { q, r, chain } = setup(F.INDIRECT_DESC);
    r.desc(0, 0x9000, 4, 0, NEXT, 0xc000); // NEXT inside a table is reserved and ignored
    r.desc(1, 0x9100, 5, 0, WRITE, 0xc000);
    r.desc(2, 0x9200, 6, 0, WRITE, 0xc000);
    r.offer(9, [[0xc000, 48, INDIRECT | WRITE]]);
    assert.ok(q.pop(chain));
    assert.equal(chain.id, 9);
    assert.equal(chain.ringDescs, 1);
    assert.deepEqual([...chain.addrs.subarray(0, chain.count)], [0x9000, 0x9100, 0x9200]);
    assert.equal(chain.readableBytes, 4);
    assert.equal(chain.writableBytes, 11);
    q.push(chain, 11);
    assert.deepEqual(r.used(0), { id: 9, len: 11, flags: AVAIL | USED | WRITE });
  });

  it('device/packed-ring/4: pop never writes the ring or an indirect table', () => {
    const { q, r, chain, mem, cfg } = setup(F.INDIRECT_DESC | F.EVENT_IDX);
    r.desc(0, 0x9000, 8, 0, 0, 0xc000);
    r.desc(1, 0x9100, 8, 0, WRITE, 0xc000);
    r.offer(1, [[0xc000, 32, INDIRECT]]);
    r.offer(2, [
      [0x9000, 8, 0],
      [0x9200, 8, WRITE],
    ]);
    const ring = mem.slice(cfg.descAddr, 16 * 8 + 4).slice();
    const table = mem.slice(0xc000, 32).slice();
    assert.ok(q.pop(chain));
    assert.ok(q.pop(chain));
    assert.deepEqual(mem.slice(cfg.descAddr, 16 * 8 + 4), ring);
    assert.deepEqual(mem.slice(0xc000, 32), table);
  });

  it('IN_ORDER (2.8.8): a batch returns with one used descriptor and skips all its ring descriptors', () => {
    const { q, r, chain } = setup(F.IN_ORDER);
    r.offer(0, [
      [0x8000, 8, 0],
      [0x8100, 8, WRITE],
    ]);
    r.offer(1, [[0x8200, 8, WRITE]]);
    r.offer(2, [
      [0x8300, 8, 0],
      [0x8400, 8, 0],
      [0x8500, 8, WRITE],
    ]);
    for (let i = 0; i < 3; i++) assert.ok(q.pop(chain));
    assert.equal(q.inFlight, 3);
    assert.throws(() => q.pushInOrderBatch(2, 4, 0), (e: unknown) => e instanceof VirtioError && e.code === ErrorCode.INVALID_ARGUMENT);
    q.pushInOrderBatch(1, 2, 8);
    assert.deepEqual(r.used(0), { id: 1, len: 8, flags: AVAIL | USED | WRITE });
    assert.equal(q.usedIdx, 3, 'skips 2 + 1 ring descriptors');
    q.pushInOrderBatch(2, 1, 8);
    assert.deepEqual(r.used(3), { id: 2, len: 8, flags: AVAIL | USED | WRITE });
    assert.equal(q.usedIdx, 6);
    assert.equal(q.inFlight, 0);
    const plain = setup().q;
    assert.throws(() => plain.pushInOrderBatch(0, 1, 0), (e: unknown) => e instanceof VirtioError && e.code === ErrorCode.INVALID_ARGUMENT);
  });

  it('pushId validates its arguments (16-bit id, 1..size ring descriptors)', () => {
    const { q } = setup();
    for (const [id, n] of [
      [0x10000, 1],
      [-1, 1],
      [0.5, 1],
      [0, 0],
      [0, 9],
    ] as const) {
      assert.throws(() => q.pushId(id, n, 0), (e: unknown) => e instanceof VirtioError && e.code === ErrorCode.INVALID_ARGUMENT);
    }
  });

  it('a broken queue yields nothing and leaves the ring alone; reset clears it', () => {
    const { q, r, chain, mem, cfg } = setup();
    r.offer(0, [
      [0x8000, 8, WRITE],
      [0x8100, 8, 0],
    ]);
    assert.throws(() => q.pop(chain), fault(QueueFault.READABLE_AFTER_WRITABLE));
    assert.ok(q.broken instanceof QueueError);
    const ring = mem.slice(cfg.descAddr, 16 * 8).slice();
    assert.equal(q.pop(chain), false);
    assert.equal(q.hasAvailable(), false);
    q.pushId(0, 1, 1);
    assert.deepEqual(mem.slice(cfg.descAddr, 16 * 8), ring);
    assert.equal(q.needsNotification(), false);
    q.reset();
    assert.equal(q.broken, null);
    assert.deepEqual(q.state(), { nextAvail: 0, nextUsed: 0, availWrap: true, usedWrap: true });
  });
});

describe('PackedQueue event suppression (2.8.10, 2.8.14)', () => {
  it('device area: DISABLE, ENABLE without EVENT_IDX', () => {
    const { q, r } = setup();
    q.disableNotification();
    assert.equal(r.deviceEvent().flags, PackedEvent.DISABLE);
    assert.equal(q.enableNotification(), false);
    assert.equal(r.deviceEvent().flags, PackedEvent.ENABLE);
    r.offer(0, [[0x8000, 1, 0]]);
    q.disableNotification();
    assert.equal(q.enableNotification(), true, 'a buffer that arrived while disabled is reported');
  });

  it('device area with EVENT_IDX: desc-specific at the next position and wrap, following pops', () => {
    const { q, r, chain } = setup(F.EVENT_IDX, 4);
    q.enableNotification();
    assert.deepEqual(r.deviceEvent(), { flags: PackedEvent.DESC_SPECIFIC, off: 0, wrap: true });
    r.offer(0, [
      [0x8000, 1, 0],
      [0x8000, 1, 0],
      [0x8000, 1, 0],
    ]);
    r.offer(1, [[0x8000, 1, 0]]);
    assert.ok(q.pop(chain));
    assert.deepEqual(r.deviceEvent(), { flags: PackedEvent.DESC_SPECIFIC, off: 3, wrap: true });
    assert.ok(q.pop(chain));
    assert.deepEqual(r.deviceEvent(), { flags: PackedEvent.DESC_SPECIFIC, off: 0, wrap: false });
    q.disableNotification();
    assert.equal(r.deviceEvent().flags, PackedEvent.DISABLE);
    q.pushId(0, 3, 0);
    q.pushId(1, 1, 0);
    r.offer(2, [[0x8000, 1, 0]]);
    assert.ok(q.pop(chain));
    assert.equal(r.deviceEvent().flags, PackedEvent.DISABLE, 'pops while disabled leave the area alone');
  });

  it('driver area ENABLE / DISABLE decide without EVENT_IDX; nothing used means no notification', () => {
    const { q, r, chain } = setup();
    assert.equal(q.needsNotification(), false);
    r.offer(0, [[0x8000, 1, WRITE]]);
    r.offer(1, [[0x8000, 1, WRITE]]);
    q.pop(chain);
    q.push(chain, 1);
    assert.equal(q.needsNotification(), true);
    assert.equal(q.needsNotification(), false);
    q.pop(chain);
    r.driverEvent(PackedEvent.DISABLE);
    q.push(chain, 1);
    assert.equal(q.needsNotification(), false);
    // DESC without EVENT_IDX is not valid: treated as ENABLE (a spurious notification is allowed).
    r.driverEvent(PackedEvent.DESC_SPECIFIC, 7, false);
    q.pushId(0, 1, 0);
    assert.equal(q.needsNotification(), true);
  });

  it('driver area DESC with EVENT_IDX: notifies exactly when the named descriptor is used', () => {
    const { q, r, chain } = setup(F.EVENT_IDX, 4);
    for (let i = 0; i < 4; i++) r.offer(i, [[0x8000, 1, WRITE]]);
    for (let i = 0; i < 4; i++) assert.ok(q.pop(chain));
    r.driverEvent(PackedEvent.DESC_SPECIFIC, 2, true);
    q.pushId(0, 1, 1); // position 0
    assert.equal(q.needsNotification(), false);
    q.pushId(1, 1, 1); // position 1
    assert.equal(q.needsNotification(), false);
    q.pushId(2, 1, 1); // position 2: the event
    assert.equal(q.needsNotification(), true);
    // Event in the next lap (wrap false) at position 0; position 3 used: no.
    r.driverEvent(PackedEvent.DESC_SPECIFIC, 0, false);
    q.pushId(3, 1, 1);
    assert.equal(q.needsNotification(), false);
    for (let i = 0; i < 2; i++) r.offer(i, [[0x8000, 1, WRITE]]);
    assert.ok(q.pop(chain));
    assert.ok(q.pop(chain));
    q.pushId(0, 2, 1); // covers positions 0 and 1 of lap 2 in one used descriptor
    assert.equal(q.needsNotification(), true);
  });

  it('packedNeedEvent: events in the current and the previous lap', () => {
    // size 8: moved from position 6 (wrap 1) over 4 descriptors to position 2 (wrap 0).
    assert.equal(packedNeedEvent(offWrap(7, true), 2, false, 4, 8), true);
    assert.equal(packedNeedEvent(offWrap(1, false), 2, false, 4, 8), true);
    assert.equal(packedNeedEvent(offWrap(2, false), 2, false, 4, 8), false);
    assert.equal(packedNeedEvent(offWrap(5, true), 2, false, 4, 8), false);
    assert.equal(packedNeedEvent(offWrap(3, false), 2, false, 4, 8), false);
    assert.equal(packedNeedEvent(offWrap(5, true), 2, false, 0, 8), false);
    assert.equal(packedNeedEvent(offWrap(5, true), 2, false, 8, 8), true);
  });
});

describe('PackedQueue state', () => {
  it('saves and restores ring positions with wrap counters; the restored queue continues', () => {
    const { q, r, chain, mem, cfg } = setup(0n, 4);
    for (let i = 0; i < 3; i++) r.offer(i, [[0x8000, 1, WRITE]]);
    for (let i = 0; i < 3; i++) q.pop(chain);
    q.pushId(0, 1, 1);
    q.pushId(1, 1, 1);
    r.offer(3, [
      [0x8000, 1, 0],
      [0x8000, 1, WRITE],
    ]);
    const s = q.state();
    assert.deepEqual(s, { nextAvail: 3, nextUsed: 2, availWrap: true, usedWrap: true });
    const q2 = new PackedQueue(mem, cfg);
    q2.setState(s);
    assert.deepEqual(q2.state(), s);
    assert.equal(q2.needsNotification(), true, 'after a restore the first check notifies');
    assert.ok(q2.pop(chain));
    assert.equal(chain.id, 3);
    assert.deepEqual(q2.state(), { nextAvail: 1, nextUsed: 2, availWrap: false, usedWrap: true });
    // Resubmitted buffer 2 returns with pushId.
    q2.pushId(2, 1, 1);
    assert.deepEqual(r.used(2), { id: 2, len: 1, flags: AVAIL | USED | WRITE });
  });

  it('refuses state that does not fit the queue', () => {
    const { q } = setup(0n, 4);
    for (const s of [
      { nextAvail: 4, nextUsed: 0, availWrap: true, usedWrap: true },
      { nextAvail: 0, nextUsed: -1, availWrap: true, usedWrap: true },
      { nextAvail: 1, nextUsed: 2, availWrap: true, usedWrap: true }, // device ahead of the driver
      { nextAvail: 3, nextUsed: 2, availWrap: false, usedWrap: true }, // more than one lap
      { nextAvail: 1.5, nextUsed: 0, availWrap: true, usedWrap: true },
    ]) {
      assert.throws(() => q.setState(s), (e: unknown) => e instanceof VirtioError && e.code === ErrorCode.QUEUE_BAD_STATE, JSON.stringify(s));
    }
    assert.throws(() => q.setState({ nextAvail: 0, nextUsed: 0, availWrap: 1 as unknown as boolean, usedWrap: true }), (e: unknown) => e instanceof VirtioError);
    // A full ring (a lap apart, same position) fits.
    q.setState({ nextAvail: 2, nextUsed: 2, availWrap: false, usedWrap: true });
    assert.deepEqual(q.state(), { nextAvail: 2, nextUsed: 2, availWrap: false, usedWrap: true });
  });
});
