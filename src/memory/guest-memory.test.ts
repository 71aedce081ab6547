import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ErrorCode, MemoryError } from '../errors.js';
import { GuestMemory } from './guest-memory.js';

function twoRegions(): { mem: GuestMemory; a: Uint8Array; b: Uint8Array } {
  const a = new Uint8Array(0x1000);
  const b = new Uint8Array(0x2000);
  // A gap between 0x1000 and 0x10000: nothing mapped there.
  const mem = new GuestMemory([
    { guestBase: 0x10000, bytes: b },
    { guestBase: 0, bytes: a },
  ]);
  return { mem, a, b };
}

describe('GuestMemory', () => {
  it('locates ranges inside one region and refuses unmapped, crossing and overflowing ones', () => {
    const { mem } = twoRegions();
    assert.equal(mem.locate(0, 0x1000), 0);
    assert.equal(mem.locate(0x10000, 0x2000), 1);
    assert.equal(mem.locate(0x0fff, 2), -1, 'crosses the end of region 0');
    assert.equal(mem.locate(0x1000, 1), -1, 'in the gap');
    assert.equal(mem.locate(0x11fff, 2), -1, 'crosses the end of region 1');
    assert.equal(mem.locate(Number.MAX_SAFE_INTEGER, 2), -1, 'addr + len overflows');
    assert.equal(mem.locate(-1, 1), -1);
    assert.equal(mem.locate(1.5, 1), -1);
    assert.equal(mem.locate(0x1000, 0), 0, 'empty range at the end of a region');
  });

  it('throws a typed MemoryError with the address for unmapped accesses', () => {
    const { mem } = twoRegions();
    assert.throws(
      () => mem.readU32(0x1ffe),
      (e: unknown) => e instanceof MemoryError && e.code === ErrorCode.MEMORY_OUT_OF_RANGE && e.addr === 0x1ffe && e.len === 4,
    );
    assert.throws(() => mem.write(0xfff, new Uint8Array(2)), MemoryError);
    assert.throws(() => mem.slice(0x12000, 1), MemoryError);
  });

  it('refuses overlapping or empty regions', () => {
    assert.throws(
      () => new GuestMemory([{ guestBase: 0, bytes: new Uint8Array(16) }, { guestBase: 8, bytes: new Uint8Array(16) }]),
      (e: unknown) => e instanceof MemoryError && e.code === ErrorCode.MEMORY_BAD_REGION,
    );
    assert.throws(() => new GuestMemory([{ guestBase: 0, bytes: new Uint8Array(0) }]), MemoryError);
  });

  it('reads and writes little- and big-endian values', () => {
    const { mem, b } = twoRegions();
    mem.writeU32(0x10004, 0x11223344);
    assert.deepEqual([...b.subarray(4, 8)], [0x44, 0x33, 0x22, 0x11]);
    mem.writeU32(0x10004, 0x11223344, false);
    assert.deepEqual([...b.subarray(4, 8)], [0x11, 0x22, 0x33, 0x44]);
    assert.equal(mem.readU16(0x10004, false), 0x1122);
    mem.writeU64(0x10008, 0x0102030405060708n);
    assert.equal(mem.readU64(0x10008), 0x0102030405060708n);
    assert.equal(mem.readAddr(0x10008), -1, "0x0102030405060708 is above 2^53: no region can be there");
  });

  it('reads u64 guest addresses as numbers, -1 beyond 2^53', () => {
    const { mem } = twoRegions();
    mem.writeU64(0x10, 0x1234_5678_9abcn);
    assert.equal(mem.readAddr(0x10), 0x1234_5678_9abc);
    mem.writeU64(0x10, 1n << 53n);
    assert.equal(mem.readAddr(0x10), -1);
    mem.writeAddr(0x18, 0x1f_ffff_ffff_ffff, false);
    assert.equal(mem.readU64(0x18, false), 0x1f_ffff_ffff_ffffn);
    assert.equal(mem.readAddr(0x18, false), 0x1f_ffff_ffff_ffff);
  });

  it('ordered 16/32-bit accesses agree with plain ones in both byte orders', () => {
    for (const shared of [false, true]) {
      const mem = GuestMemory.allocate(64, { shared });
      mem.storeU16Release(2, 0xbeef);
      assert.equal(mem.readU16(2), 0xbeef);
      mem.storeU16Release(4, 0xbeef, false);
      assert.equal(mem.readU16(4, false), 0xbeef);
      assert.equal(mem.loadU16Acquire(4, false), 0xbeef);
      mem.storeU32Release(8, 0xdeadbeef);
      assert.equal(mem.loadU32Acquire(8), 0xdeadbeef);
      mem.storeU16Release(11, 0x1234); // odd: falls back to a fenced plain store
      assert.equal(mem.loadU16Acquire(11), 0x1234);
    }
  });

  it('copies across the same bytes as slice views (property)', () => {
    const { mem } = twoRegions();
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0x1fff }), fc.uint8Array({ minLength: 0, maxLength: 64 }), (off, data) => {
        const addr = 0x10000 + off;
        const ok = mem.isMapped(addr, data.length);
        assert.equal(ok, off + data.length <= 0x2000);
        if (!ok) {
          assert.throws(() => mem.write(addr, data), MemoryError);
          return;
        }
        mem.write(addr, data);
        assert.deepEqual(mem.slice(addr, data.length), data);
        const back = new Uint8Array(data.length);
        mem.read(addr, back);
        assert.deepEqual(back, data);
      }),
    );
  });
});
