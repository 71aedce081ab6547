/**
 * An untrusted driver against the device-side packed queue: every ring-rule break yields the
 * right QueueFault (or chain.fault for a bad data address), nothing but QueueError is thrown,
 * every pop ends quickly, and nothing outside the device event suppression area (and, on push,
 * the used descriptor and the writable buffers) is written. Guest memory is two regions with an
 * unmapped gap, carved out of one host buffer whose bytes around the regions are canaries.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { performance } from 'node:perf_hooks';
import fc from 'fast-check';
import { ErrorCode, QueueError, QueueFault, VirtioError } from '../errors.js';
import { GuestMemory } from '../memory/guest-memory.js';
import { F } from '../spec/features.js';
import { DescFlag } from '../spec/ring.js';
import { ChainCursor, DescriptorChain } from './chain.js';
import { packedRingLayout } from './packed-layout.js';
import { PackedQueue } from './packed-queue.js';
import type { QueueConfig } from './types.js';

const { NEXT, WRITE, INDIRECT, AVAIL, USED } = DescFlag;
const CANARY = 0xa5;
const PAD = 0x1000;
const REGION = 0x10000;
/** Region A: guest [0, 0x10000); gap [0x10000, 0x20000); region B: guest [0x20000, 0x30000). */
const B = 0x20000;
const GAP = 0x10000;
/** Time bound for any single pop sequence (the largest ring walk is 32768 descriptors). */
const MAX_MS = 1500;

class Harness {
  readonly host: Uint8Array;
  readonly regionB: number;
  readonly mem: GuestMemory;
  readonly cfg: QueueConfig;
  readonly q: PackedQueue;
  chain: DescriptorChain;
  /** The hostile driver's position and wrap counter. */
  pos = 0;
  wrap = true;
  private snapshot: Uint8Array | null = null;

  constructor(opts: { size?: number; features?: bigint; capacity?: number; regionB?: number } = {}) {
    this.regionB = opts.regionB ?? REGION;
    this.host = new Uint8Array(PAD + REGION + PAD + this.regionB + PAD);
    this.host.fill(CANARY);
    const buf = this.host.buffer;
    const ra = new Uint8Array(buf, PAD, REGION);
    const rb = new Uint8Array(buf, PAD + REGION + PAD, this.regionB);
    ra.fill(0);
    rb.fill(0);
    this.mem = new GuestMemory([
      { guestBase: 0, bytes: ra },
      { guestBase: B, bytes: rb },
    ]);
    const size = opts.size ?? 8;
    const l = packedRingLayout(size, size > 1024 ? B : 0x1000);
    this.cfg = { size, descAddr: l.descAddr, driverAddr: l.driverAddr, deviceAddr: l.deviceAddr, features: (opts.features ?? 0n) | F.RING_PACKED, index: 1 };
    this.q = new PackedQueue(this.mem, this.cfg);
    this.chain = new DescriptorChain(this.mem, opts.capacity ?? 64);
  }

  /** Raw descriptor at position i of the ring (or of a table at `table`). */
  desc(i: number, addr: number, len: number, id: number, flags: number, table = this.cfg.descAddr): void {
    const o = table + 16 * i;
    this.mem.writeAddr(o, addr);
    this.mem.writeU32(o + 8, len);
    this.mem.writeU16(o + 12, id);
    this.mem.writeU16(o + 14, flags);
  }
  /** A raw u64 descriptor address (beyond 2^53 too). */
  descAddrRaw(i: number, hi: number, lo: number, table = this.cfg.descAddr): void {
    const o = table + 16 * i;
    this.mem.writeU32(o, lo);
    this.mem.writeU32(o + 4, hi);
  }
  availBits(): number {
    return this.wrap ? AVAIL : USED;
  }
  /** Offers a list: each [addr, len, extra flags]; NEXT on all but the last; head flags last. */
  offer(elems: readonly (readonly [number, number, number])[], id = 0): void {
    const head = this.pos;
    let headFlags = 0;
    elems.forEach(([addr, len, extra], k) => {
      const f = extra | (k + 1 < elems.length ? NEXT : 0) | this.availBits();
      if (k === 0) headFlags = f;
      this.desc(this.pos, addr, len, id, k === 0 ? 0 : f);
      if (++this.pos === this.cfg.size) {
        this.pos = 0;
        this.wrap = !this.wrap;
      }
    });
    this.mem.writeU16(this.cfg.descAddr + 16 * head + 14, headFlags);
  }

  snap(): void {
    this.snapshot = this.host.slice();
  }

  private hostOffset(a: number): number {
    return a < REGION ? PAD + a : PAD + REGION + PAD + (a - B);
  }

  /** Bytes changed since snap(), outside the given guest ranges. */
  strayWrites(allowed: readonly (readonly [number, number])[] = []): number[] {
    const s = this.snapshot!;
    const ok = [[this.cfg.deviceAddr, 4] as const, ...allowed].map(([a, n]) => [this.hostOffset(a), this.hostOffset(a) + n] as const);
    const out: number[] = [];
    for (let i = 0; i < s.length; i++) {
      if (s[i] !== this.host[i] && !ok.some(([lo, hi]) => i >= lo && i < hi)) out.push(i);
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
    assert.deepEqual(this.strayWrites(), [], 'no write outside the device event area');
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
    () => new PackedQueue(m, { ...h.cfg, ...cfg }),
    (e: unknown) => e instanceof VirtioError && !(e instanceof QueueError) && e.code === ErrorCode.QUEUE_BAD_CONFIG,
  );
}

describe('packed queue against an untrusted driver', { timeout: 60_000 }, () => {
  it('queue size 0, above 32768, not an integer', () => {
    for (const size of [0, -1, 32769, 65536, 2.5, NaN]) badConfig({ size });
  });

  it('a driver breaking packed-ring rule 1 (device side): misaligned parts', () => {
    badConfig({ descAddr: 0x1008 });
    badConfig({ driverAddr: 0x1082 });
    badConfig({ deviceAddr: 0x1086 });
  });

  it('unmapped parts: in the gap, past the end, across a region boundary', () => {
    badConfig({ descAddr: GAP });
    badConfig({ descAddr: REGION - 0x40 });
    badConfig({ driverAddr: GAP + 4 });
    badConfig({ deviceAddr: B + REGION });
    badConfig({ deviceAddr: 2 ** 60 });
  });

  it('a driver breaking packed-ring rule 7 (device side): a list running all around the ring (NEXT everywhere)', () => {
    const h = new Harness();
    for (let i = 0; i < 8; i++) h.desc(i, B, 1, 0, NEXT | AVAIL);
    h.expectFault(QueueFault.CHAIN_TOO_LONG);
  });

  it('a driver breaking packed-ring rule 7 (device side): a 32768-descriptor ring of NEXT ends in bounded time', () => {
    const h = new Harness({ size: 32768, regionB: 0x90000, capacity: 40000 });
    for (let i = 0; i < 32768; i++) h.desc(i, B, 1, 0, NEXT | AVAIL);
    const { ms } = h.run();
    assert.ok(h.q.broken?.fault === QueueFault.CHAIN_TOO_LONG);
    assert.ok(ms < MAX_MS);
  });

  it('a driver breaking packed-ring rule 10 (device side): a list longer than the descriptors not in flight', () => {
    const h = new Harness({ size: 4 });
    h.offer([[B, 1, 0]]);
    h.offer([[B, 1, 0]]);
    assert.ok(h.q.pop(h.chain));
    assert.ok(h.q.pop(h.chain));
    // Two descriptors in flight; the driver offers a list of three (overwriting one in flight).
    h.offer([
      [B, 1, 0],
      [B, 1, 0],
      [B, 1, 0],
    ]);
    h.expectFault(QueueFault.CHAIN_TOO_LONG);
  });

  it('indirect table length 0 or not a multiple of 16', () => {
    for (const len of [0, 8, 24, 17]) {
      const h = new Harness({ features: F.INDIRECT_DESC });
      h.offer([[B, len, INDIRECT]]);
      h.expectFault(QueueFault.INDIRECT_BAD_LEN);
    }
  });

  it('a driver breaking packed-ring rule 13 (device side): flags other than WRITE inside an indirect table are reserved and ignored (2.8.7)', () => {
    const h = new Harness({ features: F.INDIRECT_DESC });
    h.desc(0, B + 0x100, 1, 0, 0, B);
    // INDIRECT and NEXT inside the table: ignored, the entry is a plain 16-byte buffer.
    h.desc(1, B + 0x200, 16, 0, INDIRECT | NEXT, B);
    h.desc(2, B + 0x300, 8, 0, WRITE | INDIRECT, B);
    h.offer([[B, 48, INDIRECT]]);
    const { popped, error } = h.run();
    assert.equal(error, null);
    assert.equal(popped, 1);
    assert.deepEqual([h.chain.count, h.chain.readableBytes, h.chain.writableBytes], [3, 17, 8]);
  });

  it('a driver breaking packed-ring rule 15 (device side): INDIRECT with NEXT, or reached through NEXT', () => {
    const a = new Harness({ features: F.INDIRECT_DESC });
    a.desc(0, B + 0x100, 1, 0, 0, B);
    a.desc(0, B, 16, 0, INDIRECT | NEXT | AVAIL);
    a.desc(1, B + 0x100, 1, 0, AVAIL);
    a.expectFault(QueueFault.INDIRECT_WITH_NEXT);
    const b = new Harness({ features: F.INDIRECT_DESC });
    b.desc(0, B + 0x100, 1, 0, 0, B);
    b.offer([
      [B + 0x100, 1, 0],
      [B, 16, INDIRECT],
    ]);
    b.expectFault(QueueFault.INDIRECT_WITH_NEXT);
  });

  it('device/packed-ring/8: indirect table larger than the device accepts', () => {
    const h = new Harness({ features: F.INDIRECT_DESC, capacity: 4 });
    h.offer([[B, 16 * 5, INDIRECT]]);
    h.expectFault(QueueFault.INDIRECT_TOO_BIG);
  });

  it('a driver breaking packed-ring rule 12 (device side): indirect descriptor without INDIRECT_DESC', () => {
    const h = new Harness();
    h.desc(0, B + 0x100, 1, 0, 0, B);
    h.offer([[B, 16, INDIRECT]]);
    h.expectFault(QueueFault.INDIRECT_NOT_NEGOTIATED);
  });

  it('indirect table unmapped: in the gap, across a region end, beyond 2^53, address + len overflowing', () => {
    const cases: [number, number, number][] = [
      [GAP, 32, 0],
      [REGION - 16, 32, 0],
      [B + REGION - 16, 32, 0],
      [0, 32, 0x20_0000],
      [0xfffffff0, 32, 0xffffffff],
    ];
    for (const [lo, len, hi] of cases) {
      const h = new Harness({ features: F.INDIRECT_DESC });
      h.offer([[lo, len, INDIRECT]]);
      if (hi !== 0) h.descAddrRaw(0, hi, lo);
      h.expectFault(QueueFault.RING_UNMAPPED);
    }
  });

  it('a driver breaking packed-ring rule 8 (device side): readable descriptor after a writable one (direct and in an indirect table)', () => {
    const a = new Harness();
    a.offer([
      [B, 1, WRITE],
      [B, 1, 0],
    ]);
    a.expectFault(QueueFault.READABLE_AFTER_WRITABLE);
    const b = new Harness({ features: F.INDIRECT_DESC });
    b.desc(0, B + 0x100, 1, 0, WRITE, B);
    b.desc(1, B + 0x100, 1, 0, 0, B);
    b.offer([[B, 32, INDIRECT]]);
    b.expectFault(QueueFault.READABLE_AFTER_WRITABLE);
  });

  it('a list of more than 2^32 - 1 bytes (direct and in an indirect table)', () => {
    const a = new Harness();
    a.offer([
      [B, 0xffffffff, 0],
      [B, 1, WRITE],
    ]);
    a.expectFault(QueueFault.CHAIN_LEN_OVERFLOW);
    const b = new Harness({ features: F.INDIRECT_DESC });
    b.desc(0, B + 0x100, 0x80000000, 0, 0, B);
    b.desc(1, B + 0x100, 0x80000000, 0, WRITE, B);
    b.offer([[B, 32, INDIRECT]]);
    b.expectFault(QueueFault.CHAIN_LEN_OVERFLOW);
  });

  it('device/packed-ring/8: more segments than the chain capacity', () => {
    const h = new Harness({ capacity: 4 });
    h.offer([0, 1, 2, 3, 4, 5].map(() => [B, 1, 0] as const));
    h.expectFault(QueueFault.CHAIN_TOO_LONG);
  });

  it('unmapped data address fails only that request (DESC_UNMAPPED), writes stay inside', () => {
    const cases: [number, number, number][] = [
      [GAP + 0x10, 0x10, 0], // in the gap
      [REGION - 8, 0x10, 0], // runs off region A into the gap
      [B + REGION - 4, 8, 0], // runs off the end of region B
      [0, 0x10, 0x20_0000], // beyond 2^53
      [0xfffffff8, 0x10, 0x1f_ffff], // address + len past 2^53
    ];
    for (const [lo, len, hi] of cases) {
      const h = new Harness();
      h.offer([
        [B + 0x100, 4, 0],
        [lo, len, WRITE],
      ]);
      if (hi !== 0) h.descAddrRaw(1, hi, lo);
      h.offer([[B + 0x200, 4, WRITE]], 1);
      h.snap();
      assert.equal(h.q.pop(h.chain), true);
      assert.equal(h.chain.fault, QueueFault.DESC_UNMAPPED);
      assert.equal(h.q.broken, null);
      // A careless device writes anyway: the cursor stops at the unmapped part.
      const w = new ChainCursor(true).reset(h.chain);
      w.fill(len, 0x77);
      h.q.push(h.chain, 0);
      assert.ok(h.canariesIntact());
      const writable: [number, number][] = hi === 0 ? [[lo, len]] : [];
      assert.deepEqual(h.strayWrites([[h.cfg.descAddr, 16], ...writable]), [], 'only the used descriptor and the mapped writable bytes change');
      assert.equal(h.q.pop(h.chain), true, 'the next request is unaffected');
      assert.equal(h.chain.fault, null);
      assert.equal(h.chain.addrs[0], B + 0x200);
      assert.equal(h.chain.id, 1);
    }
  });

  it('device/packed-ring/4: filling every writable byte writes nothing readable or outside', () => {
    const h = new Harness({ features: F.INDIRECT_DESC });
    h.desc(0, B + 0x400, 0x20, 0, 0, B + 0x300);
    h.desc(1, B + 0x500, 0x30, 0, WRITE, B + 0x300);
    h.offer([
      [B + 0x100, 0x10, 0],
      [B + 0x200, 0x18, WRITE],
    ]);
    h.offer([[B + 0x300, 32, INDIRECT]], 1);
    h.snap();
    const w = new ChainCursor(true);
    assert.ok(h.q.pop(h.chain));
    const c2 = new DescriptorChain(h.mem, 8);
    assert.ok(h.q.pop(c2));
    assert.equal(w.reset(h.chain).fill(0x1000, 0x55), 0x18);
    assert.equal(w.reset(c2).fill(0x1000, 0x66), 0x30);
    h.q.push(c2, 0x30);
    h.q.push(h.chain, 0x18);
    assert.deepEqual(
      h.strayWrites([
        [h.cfg.descAddr, 32],
        [B + 0x200, 0x18],
        [B + 0x500, 0x30],
      ]),
      [],
    );
    assert.ok(h.canariesIntact());
  });

  it('random ring contents: only QueueError, bounded, nothing written outside the device area', () => {
    const featureArb = fc.record({ indirect: fc.boolean(), eventIdx: fc.boolean(), inOrder: fc.boolean() });
    // Descriptor fields biased towards the interesting values.
    const addrArb = fc.oneof(fc.constantFrom(B, B + 0x100, B + 0x800, GAP, REGION - 8, 0), fc.integer({ min: 0, max: 0x40000 }));
    const lenArb = fc.oneof(fc.constantFrom(0, 1, 16, 32, 48, 0x100, 0xffffffff, 0x80000000), fc.integer({ min: 0, max: 0x1000 }));
    const flagsArb = fc.oneof(
      fc.constantFrom(0, NEXT, WRITE, NEXT | WRITE, INDIRECT, INDIRECT | NEXT, INDIRECT | WRITE).chain((f) => fc.constantFrom(f | AVAIL, f | USED, f, f | AVAIL | USED)),
      fc.integer({ min: 0, max: 0xffff }),
    );
    const idArb = fc.oneof(fc.integer({ min: 0, max: 9 }), fc.integer({ min: 0, max: 0xffff }));
    const descArb = fc.record({ addr: addrArb, len: lenArb, id: idArb, flags: flagsArb });
    fc.assert(
      fc.property(
        featureArb,
        fc.array(descArb, { minLength: 8, maxLength: 8 }),
        fc.array(descArb, { minLength: 0, maxLength: 16 }),
        fc.boolean(),
        (feat, descs, table, pushBack) => {
          const h = new Harness({
            features: (feat.indirect ? F.INDIRECT_DESC : 0n) | (feat.eventIdx ? F.EVENT_IDX : 0n) | (feat.inOrder ? F.IN_ORDER : 0n),
            capacity: 16,
          });
          descs.forEach((d, i) => h.desc(i, d.addr, d.len, d.id, d.flags));
          // Indirect tables are found at B, B + 0x100 and B + 0x800 when the fields point there.
          for (const base of [B, B + 0x100, B + 0x800]) table.forEach((d, i) => h.desc(i, d.addr, d.len, d.id, d.flags, base));
          let popped = 0;
          let error: unknown = null;
          h.snap();
          const t0 = performance.now();
          try {
            // Pop everything (returning each at once when pushBack) for two laps at most.
            while (popped < 16 && h.q.pop(h.chain)) {
              popped++;
              if (pushBack) h.q.push(h.chain, 0);
            }
          } catch (e) {
            error = e;
          }
          assert.ok(performance.now() - t0 < MAX_MS);
          if (error !== null) {
            assert.ok(error instanceof QueueError, `only QueueError may escape, got ${String(error)}`);
            assert.equal(h.q.broken, error);
          }
          // Without pushes, at most the ring's worth of descriptors is taken.
          if (!pushBack) assert.ok(popped <= 8);
          assert.deepEqual(h.strayWrites(pushBack ? [[h.cfg.descAddr, 16 * 8]] : []), []);
          assert.ok(h.canariesIntact());
        },
      ),
      { numRuns: 400 },
    );
  });
});
