import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { GuestMemory } from '../memory/guest-memory.js';
import { ChainCursor, DescriptorChain, writeWritableByteAt } from './chain.js';

function chainOf(mem: GuestMemory, segs: { addr: number; len: number; w: boolean }[]): DescriptorChain {
  const c = new DescriptorChain(mem, 16);
  c.clear();
  for (const s of segs) c.addSegment(s.addr, s.len, s.w);
  return c;
}

describe('DescriptorChain and ChainCursor', () => {
  it('reads readable segments in order and writes only writable ones', () => {
    const mem = GuestMemory.allocate(0x1000);
    mem.write(0x100, Uint8Array.of(1, 2, 3));
    mem.write(0x200, Uint8Array.of(4, 5));
    const c = chainOf(mem, [
      { addr: 0x100, len: 3, w: false },
      { addr: 0x200, len: 2, w: false },
      { addr: 0x300, len: 4, w: true },
      { addr: 0x400, len: 2, w: true },
    ]);
    assert.equal(c.readableBytes, 5);
    assert.equal(c.writableBytes, 6);
    const r = new ChainCursor(false).reset(c);
    const dst = new Uint8Array(8);
    assert.equal(r.read(dst), 5, 'short read stops at the end of the readable part');
    assert.deepEqual([...dst.subarray(0, 5)], [1, 2, 3, 4, 5]);
    const w = new ChainCursor(true).reset(c);
    assert.equal(w.write(Uint8Array.of(9, 9, 9, 9, 9)), 5);
    assert.ok(w.writeU8(7));
    assert.equal(w.writeU8(8), false, 'no room left');
    assert.deepEqual([...mem.slice(0x300, 4)], [9, 9, 9, 9]);
    assert.deepEqual([...mem.slice(0x400, 2)], [9, 7]);
    assert.equal(mem.readU8(0x100), 1, 'readable part untouched');
    assert.ok(writeWritableByteAt(c, 5, 0x42));
    assert.equal(mem.readU8(0x401), 0x42);
    assert.equal(writeWritableByteAt(c, 6, 0), false);
  });

  it('stops short at an unmapped segment instead of touching memory outside the regions', () => {
    const mem = GuestMemory.allocate(0x1000);
    const c = chainOf(mem, [
      { addr: 0xff0, len: 0x20, w: true }, // runs past the end of guest memory
    ]);
    const w = new ChainCursor(true).reset(c);
    assert.equal(w.fill(0x20, 0xaa), 0);
    assert.equal(mem.readU8(0xff0), 0, 'nothing written: the span as a whole is not mapped');
  });

  it('spans cover exactly the requested bytes across segments (property)', () => {
    const mem = GuestMemory.allocate(0x10000);
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 300 }), { minLength: 1, maxLength: 10 }), fc.integer({ min: 0, max: 4000 }), (lens, want) => {
        let addr = 0;
        const c = chainOf(
          mem,
          lens.map((len) => {
            const s = { addr, len, w: true };
            addr += len + 16;
            return s;
          }),
        );
        const total = lens.reduce((a, b) => a + b, 0);
        const w = new ChainCursor(true).reset(c);
        let seen = 0;
        const got = w.spans(want, (_b, _o, n) => {
          assert.ok(n > 0);
          seen += n;
        });
        assert.equal(got, Math.min(want, total));
        assert.equal(seen, got);
        assert.equal(w.remaining, total - got);
      }),
    );
  });
  it('spans passes the region\'s word view with its bytes (copySpan\'s word copies use it)', () => {
    const mem = GuestMemory.allocate(0x2000);
    const c = chainOf(mem, [
      { addr: 0x101, len: 7, w: false },
      { addr: 0x1000, len: 64, w: false },
    ]);
    const seen: { off: number; n: number; words: Uint32Array | null; bytes: Uint8Array }[] = [];
    assert.equal(new ChainCursor(false).reset(c).spans(71, (bytes, off, n, words) => seen.push({ off, n, words, bytes })), 71);
    assert.deepEqual(
      seen.map((x) => [x.off, x.n]),
      [
        [0x101, 7],
        [0x1000, 64],
      ],
    );
    const region = mem.locate(0x101, 7);
    for (const x of seen) {
      assert.equal(x.bytes, mem.bytesOf(region));
      assert.ok(x.words !== null, 'a little-endian host\'s RAM region has a word view');
      assert.equal(x.words, mem.u32Of(region));
      assert.equal(x.words.buffer, x.bytes.buffer);
      assert.equal(x.words.byteOffset, x.bytes.byteOffset, 'word k is bytes 4k..4k+3 of the region');
    }
  });
  it('read, write, fill and skip in pieces of random sizes match a flat model of the chain (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 70 }), { minLength: 1, maxLength: 8 }),
        fc.array(fc.tuple(fc.constantFrom('read', 'write', 'fill', 'skip'), fc.integer({ min: 0, max: 90 })), { maxLength: 12 }),
        (lens, ops) => {
          const mem = GuestMemory.allocate(0x4000);
          for (let i = 0; i < 0x4000; i++) mem.writeU8(i, (i * 7) & 0xff);
          // Segments 0x100 apart, so a write outside them would show in the gaps.
          const c = chainOf(mem, lens.map((len, k) => ({ addr: 0x100 * (k + 1), len, w: true })));
          const flat: number[] = [];
          for (let k = 0; k < lens.length; k++) for (let j = 0; j < lens[k]!; j++) flat.push(0x100 * (k + 1) + j);
          const model = flat.map((a) => (a * 7) & 0xff);
          const w = new ChainCursor(true).reset(c);
          let pos = 0;
          let stamp = 1;
          for (const [op, n] of ops) {
            const expect = Math.min(n, flat.length - pos);
            if (op === 'write') {
              const src = new Uint8Array(n + 3).map((_, j) => (stamp + j) & 0xff);
              assert.equal(w.write(src, 3, n), expect);
              for (let j = 0; j < expect; j++) model[pos + j] = src[3 + j]!;
            } else if (op === 'fill') {
              assert.equal(w.fill(n, stamp & 0xff), expect);
              for (let j = 0; j < expect; j++) model[pos + j] = stamp & 0xff;
            } else if (op === 'skip') {
              assert.equal(w.skip(n), expect);
            } else {
              // A reader over the same bytes (the chain's segments are all writable here, so
              // read through a readable copy of the layout).
              const rc = chainOf(mem, lens.map((len, k) => ({ addr: 0x100 * (k + 1), len, w: false })));
              const r = new ChainCursor(false).reset(rc);
              assert.equal(r.skip(pos), pos);
              const dst = new Uint8Array(n + 2);
              assert.equal(r.read(dst, 2, n), expect);
              assert.deepEqual([...dst.subarray(2, 2 + expect)], model.slice(pos, pos + expect));
              assert.equal(r.moved, pos + expect);
              continue;
            }
            pos += expect;
            stamp += 5;
            assert.equal(w.moved, pos);
            assert.equal(w.remaining, flat.length - pos);
          }
          const inChain = new Set(flat);
          for (let a = 0; a < 0x4000; a++) {
            const want = inChain.has(a) ? model[flat.indexOf(a)]! : (a * 7) & 0xff;
            if (mem.readU8(a) !== want) assert.fail(`byte 0x${a.toString(16)} is ${mem.readU8(a)}, want ${want}`);
          }
        },
      ),
      { numRuns: 150 },
    );
  });
});
