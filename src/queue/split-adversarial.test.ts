/**
 * An untrusted driver against the device-side split queue: every ring-rule break yields the
 * right QueueFault (or chain.fault for a bad data address), nothing but QueueError is thrown,
 * every pop ends quickly, and nothing outside the used ring (and, for a faulty chain, nothing at
 * all outside the regions) is written. Guest memory is two regions with an unmapped gap, carved
 * out of one host buffer whose bytes around the regions are canaries.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { performance } from 'node:perf_hooks';
import fc from 'fast-check';
import { ErrorCode, QueueError, QueueFault, VirtioError } from '../errors.js';
import { GuestMemory } from '../memory/guest-memory.js';
import { F } from '../spec/features.js';
import { DescFlag, SplitLayout } from '../spec/ring.js';
import { ChainCursor, DescriptorChain } from './chain.js';
import { legacySplitRingLayout, splitRingLayout } from './split-layout.js';
import { SplitQueue } from './split-queue.js';
import type { QueueConfig } from './types.js';

const { NEXT, WRITE, INDIRECT } = DescFlag;
const CANARY = 0xa5;
const PAD = 0x1000;
const REGION = 0x10000;
/** Region A: guest [0, 0x10000); gap [0x10000, 0x20000); region B: guest [0x20000, 0x30000). */
const A = 0;
const B = 0x20000;
const GAP = 0x10000;
/** Time bound for any single pop sequence (the largest ring walk is 2 * 32768 descriptors). */
const MAX_MS = 1500;

class Harness {
  readonly host: Uint8Array;
  readonly regionB: number;
  readonly mem: GuestMemory;
  readonly cfg: QueueConfig;
  readonly q: SplitQueue;
  readonly le: boolean;
  chain: DescriptorChain;
  private availIdx = 0;
  private snapshot: Uint8Array | null = null;

  constructor(opts: { size?: number; features?: bigint; le?: boolean; capacity?: number; ringBase?: number; legacy?: boolean; regionB?: number } = {}) {
    this.regionB = opts.regionB ?? REGION;
    this.host = new Uint8Array(PAD + REGION + PAD + this.regionB + PAD);
    this.host.fill(CANARY);
    const buf = this.host.buffer;
    const ra = new Uint8Array(buf, PAD, REGION);
    const rb = new Uint8Array(buf, PAD + REGION + PAD, this.regionB);
    ra.fill(0);
    rb.fill(0);
    this.mem = new GuestMemory([
      { guestBase: A, bytes: ra },
      { guestBase: B, bytes: rb },
    ]);
    const size = opts.size ?? 8;
    const l = opts.legacy ? legacySplitRingLayout(size, opts.ringBase ?? 0x1000) : splitRingLayout(size, opts.ringBase ?? 0x1000);
    this.le = opts.le ?? true;
    this.cfg = { size, descAddr: l.descAddr, driverAddr: l.driverAddr, deviceAddr: l.deviceAddr, features: opts.features ?? 0n, littleEndian: this.le, index: 1 };
    this.q = new SplitQueue(this.mem, this.cfg);
    this.chain = new DescriptorChain(this.mem, opts.capacity ?? 64);
  }

  desc(i: number, addr: number, len: number, flags: number, next = 0, table = this.cfg.descAddr): void {
    const o = table + 16 * i;
    this.mem.writeAddr(o, addr, this.le);
    this.mem.writeU32(o + 8, len, this.le);
    this.mem.writeU16(o + 12, flags, this.le);
    this.mem.writeU16(o + 14, next, this.le);
  }
  /** A raw u64 descriptor address (beyond 2^53 too). */
  descAddrRaw(i: number, hi: number, lo: number): void {
    const o = this.cfg.descAddr + 16 * i;
    this.mem.writeU32(this.le ? o : o + 4, lo, this.le);
    this.mem.writeU32(this.le ? o + 4 : o, hi, this.le);
  }
  offer(...heads: number[]): void {
    for (const h of heads) {
      this.mem.writeU16(this.cfg.driverAddr + 4 + 2 * (this.availIdx % this.cfg.size), h, this.le);
      this.availIdx = (this.availIdx + 1) & 0xffff;
    }
    this.mem.writeU16(this.cfg.driverAddr + 2, this.availIdx, this.le);
  }
  setAvailIdx(v: number): void {
    this.availIdx = v & 0xffff;
    this.mem.writeU16(this.cfg.driverAddr + 2, this.availIdx, this.le);
  }

  /** Remembers every byte of the host buffer, to compare after the device ran. */
  snap(): void {
    this.snapshot = this.host.slice();
  }

  /** Bytes changed since snap(), outside the used ring. */
  strayWrites(): number[] {
    const s = this.snapshot!;
    const a = this.cfg.deviceAddr;
    const usedStart = a < REGION ? PAD + a : PAD + REGION + PAD + (a - B);
    const usedEnd = usedStart + SplitLayout.usedSize(this.cfg.size);
    const out: number[] = [];
    for (let i = 0; i < s.length; i++) {
      if (s[i] !== this.host[i] && !(i >= usedStart && i < usedEnd)) out.push(i);
    }
    return out;
  }

  canariesIntact(): boolean {
    const h = this.host;
    const ranges = [
      [0, PAD],
      [PAD + REGION, PAD + REGION + PAD],
      [PAD + REGION + PAD + this.regionB, h.length],
    ] as const;
    for (const [s, e] of ranges) for (let i = s; i < e; i++) if (h[i] !== CANARY) return false;
    return true;
  }

  /** Pops until empty or a throw; returns what happened, checking time and memory. */
  run(maxPops = 1000): { popped: number; error: unknown; ms: number } {
    this.snap();
    let popped = 0;
    let error: unknown = null;
    const t0 = performance.now();
    try {
      while (popped < maxPops && this.q.pop(this.chain)) popped++;
    } catch (e) {
      error = e;
    }
    const ms = performance.now() - t0;
    assert.ok(ms < MAX_MS, `pop took ${ms} ms`);
    assert.deepEqual(this.strayWrites(), [], 'no write outside the used ring');
    assert.ok(this.canariesIntact(), 'canaries around the regions intact');
    return { popped, error, ms };
  }

  /** The driver broke a ring rule: exactly this fault, kept in `broken`, queue dead after. */
  expectFault(fault: QueueFault): void {
    const { error } = this.run();
    assert.ok(error instanceof QueueError, `expected a QueueError, got ${String(error)}`);
    assert.equal(error.fault, fault);
    assert.equal(error.code, ErrorCode.QUEUE_BROKEN);
    assert.equal(error.queueIndex, 1);
    assert.equal(this.q.broken, error);
    assert.equal(this.q.pop(this.chain), false, 'a broken queue yields nothing more');
    assert.equal(this.q.hasAvailable(), false);
  }
}

function badConfig(cfg: Partial<QueueConfig>, mem?: GuestMemory): void {
  const h = new Harness();
  const m = mem ?? h.mem;
  assert.throws(
    () => new SplitQueue(m, { ...h.cfg, ...cfg }),
    (e: unknown) => e instanceof VirtioError && !(e instanceof QueueError) && e.code === ErrorCode.QUEUE_BAD_CONFIG,
  );
}

describe('split queue against an untrusted driver', { timeout: 60_000 }, () => {
  it('queue size 0, not a power of two, above 32768', () => {
    for (const size of [0, 3, 6, 1000, 32769, 65536, 0x10000 * 2]) badConfig({ size });
  });

  it('a driver breaking split-ring rule 1 (device side): misaligned rings', () => {
    badConfig({ descAddr: 0x1008 });
    badConfig({ driverAddr: 0x1081 });
    badConfig({ deviceAddr: 0x1402 });
  });

  it('unmapped rings: in the gap, past the end, across a region boundary', () => {
    badConfig({ descAddr: GAP + 0x100 });
    badConfig({ driverAddr: GAP });
    badConfig({ deviceAddr: B + REGION - 8 });
    badConfig({ descAddr: REGION - 0x40 });
    badConfig({ deviceAddr: Number.MAX_SAFE_INTEGER - 3 });
    badConfig({ descAddr: -16 });
  });

  it('a driver breaking split-ring rule 10 (device side): avail idx moved by more than the queue size', () => {
    const h = new Harness();
    h.desc(0, B, 1, 0);
    h.setAvailIdx(9);
    h.expectFault(QueueFault.AVAIL_IDX_JUMP);
  });

  it('a driver breaking split-ring rule 10 (device side): avail idx moved backwards (decrement looks like a jump)', () => {
    const h = new Harness();
    h.desc(0, B, 1, 0);
    h.offer(0, 0);
    assert.equal(h.run().popped, 2);
    h.setAvailIdx(1);
    h.expectFault(QueueFault.AVAIL_IDX_JUMP);
  });

  it('head out of range', () => {
    const h = new Harness();
    h.offer(8);
    h.expectFault(QueueFault.HEAD_OUT_OF_RANGE);
    const h2 = new Harness();
    h2.offer(0xffff);
    h2.expectFault(QueueFault.HEAD_OUT_OF_RANGE);
  });

  it('next out of range', () => {
    const h = new Harness();
    h.desc(0, B, 1, NEXT, 8);
    h.offer(0);
    h.expectFault(QueueFault.NEXT_OUT_OF_RANGE);
  });

  it('a driver breaking split-ring rule 4 (device side): a loop in the descriptor table', () => {
    const h = new Harness();
    h.desc(0, B, 1, NEXT, 1);
    h.desc(1, B, 1, NEXT, 0);
    h.offer(0);
    h.expectFault(QueueFault.CHAIN_TOO_LONG);
    const self = new Harness();
    self.desc(3, B, 1, NEXT, 3);
    self.offer(3);
    self.expectFault(QueueFault.CHAIN_TOO_LONG);
  });

  it('a driver breaking split-ring rule 4 (device side): a loop over a 32768-entry table ends in bounded time', () => {
    // Region A cannot hold a 32768 ring: place it at the start of region B.
    const big = new Harness({ size: 32768, ringBase: B, capacity: 1 << 17, features: F.INDIRECT_DESC, regionB: 0x100000 });
    const h = big;
    const size = 32768;
    const o = h.cfg.descAddr;
    for (let i = 0; i < size; i++) {
      h.mem.writeAddr(o + 16 * i, B, true);
      h.mem.writeU32(o + 16 * i + 8, 0, true);
      h.mem.writeU16(o + 16 * i + 12, NEXT, true);
      h.mem.writeU16(o + 16 * i + 14, (i + 1) % size, true);
    }
    h.offer(5);
    h.snap();
    const t0 = performance.now();
    assert.throws(() => h.q.pop(h.chain), (e: unknown) => e instanceof QueueError && e.fault === QueueFault.CHAIN_TOO_LONG);
    assert.ok(performance.now() - t0 < MAX_MS);
    assert.ok(h.canariesIntact());
  });

  it('a loop inside an indirect table', () => {
    const h = new Harness({ features: F.INDIRECT_DESC });
    h.desc(0, B, 64, INDIRECT);
    h.desc(0, B + 0x1000, 1, NEXT, 1, B);
    h.desc(1, B + 0x1000, 1, NEXT, 0, B);
    h.offer(0);
    h.expectFault(QueueFault.CHAIN_TOO_LONG);
  });

  it('indirect table length 0 or not a multiple of 16', () => {
    for (const len of [0, 8, 17, 0xfffffff8]) {
      const h = new Harness({ features: F.INDIRECT_DESC });
      h.desc(0, B, len, INDIRECT);
      h.offer(0);
      h.expectFault(QueueFault.INDIRECT_BAD_LEN);
    }
  });

  it('a driver breaking split-ring rule 6 (device side): nested indirect table', () => {
    const h = new Harness({ features: F.INDIRECT_DESC });
    h.desc(0, B, 32, INDIRECT);
    h.desc(0, B + 0x100, 1, NEXT, 1, B);
    h.desc(1, B + 0x200, 16, INDIRECT, 0, B);
    h.offer(0);
    h.expectFault(QueueFault.INDIRECT_NESTED);
  });

  it('a driver breaking split-ring rule 8 (device side): INDIRECT together with NEXT', () => {
    const h = new Harness({ features: F.INDIRECT_DESC });
    h.desc(0, B, 16, INDIRECT | NEXT, 1);
    h.desc(1, B, 1, 0);
    h.offer(0);
    h.expectFault(QueueFault.INDIRECT_WITH_NEXT);
  });

  it('a 65536-entry indirect table holding a 3-descriptor chain is served: the spec bounds the chain (driver/split-ring/7), not the table', () => {
    const h = new Harness({ features: F.INDIRECT_DESC, capacity: 16, regionB: 0x100000 });
    h.desc(0, B, 65536 * 16, INDIRECT);
    // The chain starts at entry 0 and jumps to the far end of the table.
    h.desc(0, A + 0x8000, 10, NEXT, 65535, B);
    h.desc(65535, A + 0x8100, 20, NEXT, 7, B);
    h.desc(7, A + 0x8200, 30, WRITE, 0, B);
    h.offer(0);
    const { popped, error } = h.run();
    assert.equal(error, null);
    assert.equal(popped, 1);
    assert.deepEqual([h.chain.count, h.chain.readableBytes, h.chain.writableBytes], [3, 30, 30]);
  });

  it('a driver breaking split-ring rule 7 (device side): a chain inside an indirect table longer than the device accepts', () => {
    const h = new Harness({ features: F.INDIRECT_DESC, capacity: 16 });
    h.desc(0, B, 17 * 16, INDIRECT);
    for (let i = 0; i < 17; i++) h.desc(i, A + 0x8000 + i * 0x10, 8, i < 16 ? NEXT : 0, i + 1, B);
    h.offer(0);
    h.expectFault(QueueFault.CHAIN_TOO_LONG);
  });

  it('a driver breaking split-ring rule 5 (device side): indirect descriptor without INDIRECT_DESC', () => {
    const h = new Harness();
    h.desc(0, B, 16, INDIRECT);
    h.desc(0, B + 0x100, 1, 0, 0, B);
    h.offer(0);
    h.expectFault(QueueFault.INDIRECT_NOT_NEGOTIATED);
  });

  it('indirect table unmapped, in the gap or across a region end', () => {
    for (const addr of [GAP + 0x100, B + REGION - 16]) {
      const h = new Harness({ features: F.INDIRECT_DESC });
      h.desc(0, addr, 32, INDIRECT);
      h.offer(0);
      h.expectFault(QueueFault.RING_UNMAPPED);
    }
    const far = new Harness({ features: F.INDIRECT_DESC });
    far.desc(0, 0, 32, INDIRECT);
    far.descAddrRaw(0, 0xffffffff, 0xfffffff0);
    far.offer(0);
    far.expectFault(QueueFault.RING_UNMAPPED);
  });

  it('next beyond the indirect table', () => {
    const h = new Harness({ features: F.INDIRECT_DESC });
    h.desc(0, B, 32, INDIRECT);
    h.desc(0, B + 0x100, 1, NEXT, 2, B);
    h.offer(0);
    h.expectFault(QueueFault.NEXT_OUT_OF_RANGE);
  });

  it('a driver breaking split-ring rule 2 (device side): readable descriptor after a writable one (direct and into an indirect table)', () => {
    const h = new Harness();
    h.desc(0, B, 1, WRITE | NEXT, 1);
    h.desc(1, B, 1, 0);
    h.offer(0);
    h.expectFault(QueueFault.READABLE_AFTER_WRITABLE);
    const i = new Harness({ features: F.INDIRECT_DESC });
    i.desc(0, B, 1, WRITE | NEXT, 1);
    i.desc(1, B + 0x100, 16, INDIRECT);
    i.desc(0, B + 0x200, 1, 0, 0, B + 0x100);
    i.offer(0);
    i.expectFault(QueueFault.READABLE_AFTER_WRITABLE);
  });

  it('a driver breaking split-ring rule 4 (device side): chain of more than 2^32 - 1 bytes', () => {
    const h = new Harness();
    h.desc(0, B, 0xffffffff, NEXT, 1);
    h.desc(1, B, 1, 0);
    h.offer(0);
    h.expectFault(QueueFault.CHAIN_LEN_OVERFLOW);
  });

  it('device/split-ring/2: more segments than the chain capacity', () => {
    const h = new Harness({ capacity: 4 });
    for (let i = 0; i < 6; i++) h.desc(i, B, 1, i < 5 ? NEXT : 0, i + 1);
    h.offer(0);
    h.expectFault(QueueFault.CHAIN_TOO_LONG);
  });

  it('unmapped data address fails only that request (DESC_UNMAPPED), writes stay inside', () => {
    const cases: [number, number, number][] = [
      [GAP + 0x10, 0x10, 0], // in the gap
      [REGION - 8, 0x10, 0], // runs off region A into the gap
      [B + REGION - 4, 8, 0], // runs off the end of region B
      [0, 0x10, 0x20_0000], // beyond 2^53
    ];
    for (const [lo, len, hi] of cases) {
      const h = new Harness();
      h.desc(0, B + 0x100, 4, NEXT, 1);
      h.desc(1, lo, len, WRITE);
      if (hi !== 0) h.descAddrRaw(1, hi, lo);
      h.desc(2, B + 0x200, 4, WRITE);
      h.offer(0, 2);
      h.snap();
      assert.equal(h.q.pop(h.chain), true);
      assert.equal(h.chain.fault, QueueFault.DESC_UNMAPPED);
      assert.equal(h.q.broken, null);
      // A careless device writes anyway: the cursor stops at the unmapped part.
      const w = new ChainCursor(true).reset(h.chain);
      w.fill(len, 0x77);
      h.q.push(h.chain, 0);
      assert.ok(h.canariesIntact());
      assert.equal(h.q.pop(h.chain), true, 'the next request is unaffected');
      assert.equal(h.chain.fault, null);
      assert.equal(h.chain.addrs[0], B + 0x200);
    }
  });

  it('device/split-ring/5: WRITE on the indirect descriptor is ignored, not an error', () => {
    const h = new Harness({ features: F.INDIRECT_DESC });
    h.desc(0, B, 16, INDIRECT | WRITE);
    h.desc(0, B + 0x100, 3, 0, 0, B);
    h.offer(0);
    const { popped, error } = h.run();
    assert.equal(error, null);
    assert.equal(popped, 1);
    assert.equal(h.chain.readableBytes, 3);
  });

  it('big-endian legacy ring: the same faults, read in guest byte order', () => {
    const mk = () => new Harness({ le: false, legacy: true, size: 8, features: F.INDIRECT_DESC });
    const a = mk();
    a.offer(8);
    a.expectFault(QueueFault.HEAD_OUT_OF_RANGE);
    const b = mk();
    b.desc(0, B, 1, NEXT, 1);
    b.desc(1, B, 1, NEXT, 0);
    b.offer(0);
    b.expectFault(QueueFault.CHAIN_TOO_LONG);
    const c = mk();
    c.desc(0, B, 24, INDIRECT);
    c.offer(0);
    c.expectFault(QueueFault.INDIRECT_BAD_LEN);
    const d = mk();
    d.desc(0, GAP, 4, WRITE);
    d.offer(0);
    assert.equal(d.run().popped, 1);
    assert.equal(d.chain.fault, QueueFault.DESC_UNMAPPED);
    const e = mk();
    e.setAvailIdx(100);
    e.expectFault(QueueFault.AVAIL_IDX_JUMP);
    // A little-endian head 1 reads as 256 in big endian: out of range, not a crash.
    const f = mk();
    f.mem.writeU16(f.cfg.driverAddr + 4, 1, true);
    f.mem.writeU16(f.cfg.driverAddr + 2, 1, false);
    f.expectFault(QueueFault.HEAD_OUT_OF_RANGE);
  });

  it('random ring contents: only QueueError, bounded, nothing written outside the used ring', () => {
    const featureArb = fc.record({ indirect: fc.boolean(), eventIdx: fc.boolean(), le: fc.boolean() });
    // Descriptor fields biased towards the interesting values.
    const addrArb = fc.oneof(fc.constantFrom(B, B + 0x100, B + 0x800, GAP, REGION - 8, 0), fc.integer({ min: 0, max: 0x40000 }));
    const lenArb = fc.oneof(fc.constantFrom(0, 1, 16, 32, 48, 0x100, 0xffffffff, 0x80000000), fc.integer({ min: 0, max: 0x1000 }));
    const flagsArb = fc.oneof(fc.constantFrom(0, NEXT, WRITE, NEXT | WRITE, INDIRECT, INDIRECT | NEXT, INDIRECT | WRITE), fc.integer({ min: 0, max: 0xffff }));
    const nextArb = fc.oneof(fc.integer({ min: 0, max: 9 }), fc.integer({ min: 0, max: 0xffff }));
    const descArb = fc.record({ addr: addrArb, len: lenArb, flags: flagsArb, next: nextArb });
    fc.assert(
      fc.property(
        featureArb,
        fc.array(descArb, { minLength: 8, maxLength: 8 }),
        fc.array(descArb, { minLength: 0, maxLength: 16 }),
        fc.array(fc.oneof(fc.integer({ min: 0, max: 7 }), fc.integer({ min: 0, max: 0xffff })), { minLength: 8, maxLength: 8 }),
        fc.integer({ min: 0, max: 12 }),
        (feat, descs, table, ring, idx) => {
          const h = new Harness({
            le: feat.le,
            features: (feat.indirect ? F.INDIRECT_DESC : 0n) | (feat.eventIdx ? F.EVENT_IDX : 0n),
            capacity: 16,
          });
          descs.forEach((d, i) => h.desc(i, d.addr, d.len, d.flags, d.next));
          // Indirect tables are found at B, B + 0x100 and B + 0x800 when the fields point there.
          for (const base of [B, B + 0x100, B + 0x800]) table.forEach((d, i) => h.desc(i, d.addr, d.len, d.flags, d.next, base));
          ring.forEach((head, i) => h.mem.writeU16(h.cfg.driverAddr + 4 + 2 * i, head, h.le));
          h.setAvailIdx(idx);
          const { error, popped } = h.run(16);
          if (error !== null) {
            assert.ok(error instanceof QueueError, `only QueueError may escape, got ${String(error)}`);
            assert.equal(h.q.broken, error);
          } else {
            assert.equal(popped, idx > 8 ? 0 : idx);
          }
          assert.ok(popped <= 8);
        },
      ),
      { numRuns: 400 },
    );
  });
});
