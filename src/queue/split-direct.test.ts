/**
 * SplitQueue.popDirect / pushDirect (direct-batch.ts) against an untrusted driver: a direct batch
 * takes only plain device-readable chains and stops before anything else, which `pop` then
 * judges exactly as it would without the direct path (the same fault, the same chain); the
 * batch's segments are the chain's buffers; nothing outside the used ring is written; used
 * elements and avail_event are what `pop` and `pushDeferred` would have written. Guest memory is
 * two regions with an unmapped gap.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { QueueError, QueueFault } from '../errors.js';
import { GuestMemory } from '../memory/guest-memory.js';
import { F } from '../spec/features.js';
import { DescFlag, SplitLayout } from '../spec/ring.js';
import { DescriptorChain } from './chain.js';
import { DIRECT_BATCH, DIRECT_MAX_SEGMENTS, DirectBatch } from './direct-batch.js';
import { splitRingLayout } from './split-layout.js';
import { SplitQueue } from './split-queue.js';
import type { QueueConfig } from './types.js';

const { NEXT, WRITE, INDIRECT } = DescFlag;
const REGION = 0x10000;
/** Region A: guest [0, 0x10000); gap [0x10000, 0x20000); region B: guest [0x20000, 0x30000). */
const B = 0x20000;
const GAP = 0x10000;

class Rig {
  readonly mem: GuestMemory;
  readonly cfg: QueueConfig;
  readonly q: SplitQueue;
  readonly batch = new DirectBatch();
  readonly chain: DescriptorChain;
  private availIdx = 0;

  constructor(opts: { size?: number; features?: bigint; le?: boolean } = {}) {
    this.mem = new GuestMemory([
      { guestBase: 0, bytes: new Uint8Array(REGION) },
      { guestBase: B, bytes: new Uint8Array(REGION) },
    ]);
    const size = opts.size ?? 8;
    const l = splitRingLayout(size, 0x1000);
    this.cfg = { size, descAddr: l.descAddr, driverAddr: l.driverAddr, deviceAddr: l.deviceAddr, features: opts.features ?? 0n, littleEndian: opts.le ?? true, index: 1 };
    this.q = new SplitQueue(this.mem, this.cfg);
    this.chain = new DescriptorChain(this.mem, 64);
  }

  desc(i: number, addr: number, len: number, flags: number, next = 0, table = this.cfg.descAddr): void {
    const le = this.cfg.littleEndian ?? true;
    this.mem.writeAddr(table + 16 * i, addr, le);
    this.mem.writeU32(table + 16 * i + 8, len, le);
    this.mem.writeU16(table + 16 * i + 12, flags, le);
    this.mem.writeU16(table + 16 * i + 14, next, le);
  }
  offer(...heads: number[]): void {
    const le = this.cfg.littleEndian ?? true;
    for (const h of heads) {
      this.mem.writeU16(this.cfg.driverAddr + 4 + 2 * (this.availIdx % this.cfg.size), h, le);
      this.availIdx = (this.availIdx + 1) & 0xffff;
    }
    this.mem.writeU16(this.cfg.driverAddr + 2, this.availIdx, le);
  }
  /** The guest buffers (addr, len) of chain k of the last batch. */
  segments(k: number): [number, number][] {
    const b = this.batch;
    const out: [number, number][] = [];
    for (let s = 0; s < b.segments[k]!; s++) {
      const i = k * DIRECT_MAX_SEGMENTS + s;
      out.push([this.mem.baseOf(b.region[i]!) + b.offset[i]!, b.len[i]!]);
    }
    return out;
  }
  usedIdx(): number {
    return this.mem.readU16(this.cfg.deviceAddr + SplitLayout.USED_IDX);
  }
  usedElem(slot: number): [number, number] {
    const o = this.cfg.deviceAddr + SplitLayout.USED_RING + 8 * slot;
    return [this.mem.readU32(o), this.mem.readU32(o + 4)];
  }
}

/** Chains 0 and 2 plain (one 64-byte buffer each); chain 1 is set by the caller. */
function plainAround(r: Rig): void {
  r.desc(0, 0x4000, 64, 0);
  r.desc(2, B + 0x100, 64, 0);
}

describe('SplitQueue.popDirect: plain chains only, the rest left to pop', () => {
  it('plain chains of 1 to DIRECT_MAX_SEGMENTS buffers in both regions, located; used elements written and published as pushDeferred', () => {
    const r = new Rig();
    r.desc(0, 0x4000, 76, 0);
    r.desc(1, 0x5000, 12, NEXT, 2);
    r.desc(2, B + 0x10, 100, 0);
    r.desc(3, 0x6000, 1, NEXT, 4);
    r.desc(4, 0x6001, 2, NEXT, 5);
    r.desc(5, B + 0x20, 3, NEXT, 6);
    r.desc(6, 0x6100, 4, 0);
    r.offer(0, 1, 3);
    assert.equal(r.q.popDirect(r.batch, 16), 3);
    assert.deepEqual([...r.batch.heads.subarray(0, 3)], [0, 1, 3]);
    assert.deepEqual([...r.batch.bytes.subarray(0, 3)], [76, 112, 10]);
    assert.deepEqual(r.segments(0), [[0x4000, 76]]);
    assert.deepEqual(r.segments(1), [[0x5000, 12], [B + 0x10, 100]]);
    assert.deepEqual(r.segments(2), [[0x6000, 1], [0x6001, 2], [B + 0x20, 3], [0x6100, 4]]);
    assert.equal(r.batch.memory, r.mem);
    assert.equal(r.q.inFlight, 3);
    assert.equal(r.q.popDirect(r.batch, 16), 0, 'nothing more');
    r.q.pushDirect(r.batch, 3);
    assert.equal(r.usedIdx(), 0, 'not published before publish()');
    r.q.publish();
    assert.equal(r.usedIdx(), 3);
    assert.deepEqual([r.usedElem(0), r.usedElem(1), r.usedElem(2)], [[0, 0], [1, 0], [3, 0]]);
    assert.equal(r.q.inFlight, 0);
  });

  it('at most `max` and DIRECT_BATCH chains per call; the position goes on from there', () => {
    const r = new Rig({ size: 128 });
    for (let i = 0; i < 128; i++) r.desc(i, 0x4000 + 64 * i, 64, 0);
    r.offer(...Array.from({ length: 100 }, (_, i) => i));
    assert.equal(r.q.popDirect(r.batch, 5), 5);
    assert.equal(r.batch.heads[4], 4);
    assert.equal(r.q.popDirect(r.batch, 1000), DIRECT_BATCH);
    assert.equal(r.batch.heads[0], 5);
    assert.equal(r.q.popDirect(r.batch, 1000), 100 - 5 - DIRECT_BATCH);
    assert.equal(r.q.pop(r.chain), false);
  });

  // Each shape: the batch stops before chain 1 (1 chain), pop then gives chain 1 what the spec
  // gives it, and the next batch takes chain 2.
  const shapes: [string, (r: Rig) => void, QueueFault | 'fault' | 'chain'][] = [
    ['an indirect descriptor', (r) => (r.desc(1, B + 0x800, 32, INDIRECT), r.desc(0, 0x7000, 20, 0, 0, B + 0x800), r.desc(1, 0x7100, 20, 0, 0, B + 0x800)), 'chain'],
    ['an indirect descriptor without INDIRECT_DESC', (r) => r.desc(1, B + 0x800, 32, INDIRECT), QueueFault.INDIRECT_NOT_NEGOTIATED],
    ['a device-writable descriptor', (r) => r.desc(1, 0x4100, 64, WRITE), 'chain'],
    ['a readable after a writable one', (r) => (r.desc(1, 0x4100, 64, WRITE | NEXT, 3), r.desc(3, 0x4200, 8, 0)), QueueFault.READABLE_AFTER_WRITABLE],
    ['a zero-length buffer', (r) => r.desc(1, 0x4100, 0, 0), 'chain'],
    ['a buffer in the gap', (r) => r.desc(1, GAP + 0x10, 64, 0), 'fault'],
    ['a buffer across a region end', (r) => r.desc(1, REGION - 8, 64, 0), 'fault'],
    ['a buffer above 2^53', (r) => (r.desc(1, 0, 64, 0), r.mem.writeU32(r.cfg.descAddr + 16 + 4, 0xffff_ffff)), 'fault'],
    ['next out of range', (r) => r.desc(1, 0x4100, 64, NEXT, 99), QueueFault.NEXT_OUT_OF_RANGE],
    ['a loop', (r) => r.desc(1, 0x4100, 64, NEXT, 1), QueueFault.CHAIN_TOO_LONG],
    ['more than DIRECT_MAX_SEGMENTS buffers', (r) => {
      for (let i = 0; i < DIRECT_MAX_SEGMENTS; i++) r.desc(i === 0 ? 1 : 2 + i, 0x5000 + 16 * i, 16, NEXT, 3 + i);
      r.desc(2 + DIRECT_MAX_SEGMENTS, 0x5800, 16, 0);
    }, 'chain'],
    ['more than 2^32 - 1 bytes', (r) => (r.desc(1, 0, 0xffff_0000, NEXT, 3), r.desc(3, 0, 0x20000, 0)), QueueFault.CHAIN_LEN_OVERFLOW],
  ];
  for (const [what, set, outcome] of shapes) {
    it(`stops before ${what}; pop gives it ${typeof outcome === 'string' ? (outcome === 'fault' ? 'chain.fault' : 'its chain') : outcome}`, () => {
      const r = new Rig({ size: 16, features: what === 'an indirect descriptor' ? F.INDIRECT_DESC : 0n });
      plainAround(r);
      set(r);
      r.offer(0, 1, 2);
      assert.equal(r.q.popDirect(r.batch, 16), 1);
      assert.equal(r.batch.heads[0], 0);
      r.q.pushDirect(r.batch, 1);
      assert.equal(r.q.popDirect(r.batch, 16), 0, 'chain 1 stays for pop');
      if (outcome === 'chain' || outcome === 'fault') {
        assert.equal(r.q.pop(r.chain), true);
        assert.equal(r.chain.id, 1);
        if (outcome === 'fault') assert.notEqual(r.chain.fault, null);
        else assert.equal(r.chain.fault, null);
        assert.equal(r.q.popDirect(r.batch, 16), 1, 'chain 2 is plain');
        assert.equal(r.batch.heads[0], 2);
      } else {
        assert.throws(() => r.q.pop(r.chain), (e: unknown) => e instanceof QueueError && e.fault === outcome);
        assert.equal(r.q.popDirect(r.batch, 16), 0, 'a broken queue gives nothing');
      }
    });
  }

  it('a head out of range and an avail idx jump are left to pop, which breaks the queue', () => {
    const r = new Rig();
    r.desc(0, 0x4000, 64, 0);
    r.offer(0, 8);
    assert.equal(r.q.popDirect(r.batch, 16), 1);
    assert.equal(r.q.popDirect(r.batch, 16), 0);
    assert.throws(() => r.q.pop(r.chain), (e: unknown) => e instanceof QueueError && e.fault === QueueFault.HEAD_OUT_OF_RANGE);
    const j = new Rig();
    j.mem.writeU16(j.cfg.driverAddr + 2, 9);
    assert.equal(j.q.popDirect(j.batch, 16), 0);
    assert.throws(() => j.q.pop(j.chain), (e: unknown) => e instanceof QueueError && e.fault === QueueFault.AVAIL_IDX_JUMP);
  });

  it('nothing with IN_ORDER or a big-endian ring (their pops go the ordinary way)', () => {
    for (const opts of [{ features: F.IN_ORDER }, { le: false }]) {
      const r = new Rig(opts);
      r.desc(0, 0x4000, 64, 0);
      r.offer(0);
      assert.equal(r.q.popDirect(r.batch, 16), 0);
      assert.equal(r.q.pop(r.chain), true);
    }
  });

  it('EVENT_IDX: avail_event follows the batch while notifications are wanted, as pop does', () => {
    const r = new Rig({ features: F.EVENT_IDX });
    for (let i = 0; i < 4; i++) r.desc(i, 0x4000 + 64 * i, 64, 0);
    r.offer(0, 1, 2);
    const availEvent = (): number => r.mem.readU16(r.cfg.deviceAddr + SplitLayout.availEventOffset(8));
    assert.equal(r.q.popDirect(r.batch, 2), 2);
    assert.equal(availEvent(), 2);
    r.q.disableNotification();
    assert.equal(r.q.popDirect(r.batch, 2), 1);
    assert.equal(availEvent(), 2, 'not while notifications are off');
  });

  it('random rings: direct batches and pops give the same chains and faults as pops alone, and write only the used ring', () => {
    const addrArb = fc.oneof(fc.constantFrom(B, B + 0x100, GAP, REGION - 8, 0, 0x4000), fc.integer({ min: 0, max: 0x40000 }));
    const lenArb = fc.oneof(fc.constantFrom(0, 1, 16, 64, 0xffffffff, 0x80000000), fc.integer({ min: 0, max: 0x1000 }));
    const flagsArb = fc.oneof(fc.constantFrom(0, 0, 0, NEXT, NEXT, WRITE, NEXT | WRITE, INDIRECT), fc.integer({ min: 0, max: 0xffff }));
    const nextArb = fc.oneof(fc.integer({ min: 0, max: 9 }), fc.integer({ min: 0, max: 0xffff }));
    const descArb = fc.record({ addr: addrArb, len: lenArb, flags: flagsArb, next: nextArb });
    fc.assert(
      fc.property(
        fc.boolean(),
        fc.array(descArb, { minLength: 8, maxLength: 8 }),
        fc.array(descArb, { minLength: 0, maxLength: 4 }),
        fc.array(fc.oneof(fc.integer({ min: 0, max: 7 }), fc.integer({ min: 0, max: 0xffff })), { minLength: 8, maxLength: 8 }),
        fc.integer({ min: 0, max: 12 }),
        fc.integer({ min: 1, max: 8 }),
        (indirect, descs, table, ring, idx, max) => {
          const make = (): Rig => {
            const r = new Rig({ features: indirect ? F.INDIRECT_DESC : 0n });
            descs.forEach((d, i) => r.desc(i, d.addr, d.len, d.flags, d.next));
            for (const base of [B, B + 0x100]) table.forEach((d, i) => r.desc(i, d.addr, d.len, d.flags, d.next, base));
            ring.forEach((head, i) => r.mem.writeU16(r.cfg.driverAddr + 4 + 2 * i, head));
            r.mem.writeU16(r.cfg.driverAddr + 2, idx);
            return r;
          };
          type Out = { id: number; segs: [number, number][]; fault: boolean } | { error: QueueFault };
          const viaPop = (r: Rig): Out | null => {
            try {
              if (!r.q.pop(r.chain)) return null;
            } catch (e) {
              assert.ok(e instanceof QueueError);
              return { error: e.fault };
            }
            const c = r.chain;
            const segs: [number, number][] = [];
            for (let s = 0; s < c.count; s++) segs.push([c.addrs[s]!, c.lens[s]!]);
            return { id: c.id, segs, fault: c.fault !== null };
          };
          const a = make();
          const want: Out[] = [];
          for (let o = viaPop(a); o !== null && want.length < 16; o = viaPop(a)) {
            want.push(o);
            if ('error' in o) break;
            a.q.push(a.chain, 0);
          }
          const b = make();
          const usedStart = b.cfg.deviceAddr;
          const before = b.mem.bytesOf(0).slice();
          const beforeB = b.mem.bytesOf(1).slice();
          const got: Out[] = [];
          while (got.length < 16) {
            const n = b.q.popDirect(b.batch, max);
            for (let k = 0; k < n; k++) got.push({ id: b.batch.heads[k]!, segs: b.segments(k), fault: false });
            if (n > 0) {
              b.q.pushDirect(b.batch, n);
              b.q.publish();
              continue;
            }
            const o = viaPop(b);
            if (o === null) break;
            got.push(o);
            if ('error' in o) break;
            b.q.push(b.chain, 0);
          }
          assert.deepEqual(got, want);
          // Used ring aside, region A (the ring's) is unchanged; region B is never written.
          const after = b.mem.bytesOf(0);
          const usedEnd = usedStart + SplitLayout.usedSize(8);
          for (let i = 0; i < before.length; i++) if (i < usedStart || i >= usedEnd) assert.equal(after[i], before[i], `byte 0x${i.toString(16)} written`);
          assert.deepEqual(b.mem.bytesOf(1), beforeB);
          // The used rings match too (ids, lengths, idx).
          assert.deepEqual(b.mem.bytesOf(0).subarray(usedStart, usedEnd), a.mem.bytesOf(0).subarray(usedStart, usedEnd));
        },
      ),
      { numRuns: 500 },
    );
  });
});
