/**
 * copySpan against a byte-by-byte reference: every offset alignment on either side, lengths
 * 0..300 (word copies below WORD_COPY_MAX, the bulk copy above) and a few long ones, both
 * directions (guest memory's region view to a device buffer and back), with and without word
 * views. Nothing outside the destination span may change.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GuestMemory } from './guest-memory.js';
import { WORD_COPY_MAX, copySpan, wordsOf } from './guest-copy.js';

/** A deterministic generator (xorshift32), so a failure can be replayed. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 0x1_0000_0000;
  };
}

function fillPattern(b: Uint8Array, salt: number): void {
  for (let i = 0; i < b.length; i++) b[i] = (i * 131 + salt) & 0xff;
}

/** copySpan(src, off, dst, at, n) checked against the reference on a copy of dst. */
function checkOne(src: Uint8Array, src32: Uint32Array | null, off: number, dst: Uint8Array, dst32: Uint32Array | null, at: number, n: number): void {
  const expect = dst.slice();
  for (let k = 0; k < n; k++) expect[at + k] = src[off + k]!;
  copySpan(src, src32, off, dst, dst32, at, n);
  if (!Buffer.from(dst.buffer, dst.byteOffset, dst.length).equals(Buffer.from(expect.buffer, expect.byteOffset, expect.length))) {
    let first = 0;
    while (dst[first] === expect[first]) first++;
    assert.fail(`copySpan(off ${off}, at ${at}, n ${n}, words ${src32 !== null}/${dst32 !== null}): first difference at ${first}`);
  }
}

describe('copySpan (guest-copy.ts)', () => {
  const mem = GuestMemory.allocate(0x4000);
  const region = mem.locate(0, 1);
  const guest = mem.bytesOf(region);
  const guest32 = mem.u32Of(region);
  // A device buffer like FsDevice's inBuf/outBuf: its own 4-aligned ArrayBuffer.
  const buf = new Uint8Array(4096);
  const buf32 = wordsOf(buf);

  it('the word views exist where the test needs them (a 4-aligned region and buffer)', () => {
    assert.ok(guest32 !== null, 'guest RAM regions are 4-aligned on a little-endian host');
    assert.ok(buf32 !== null);
    assert.equal(wordsOf(new Uint8Array(new ArrayBuffer(16), 1, 8)), null, 'a view not starting on a word: no word view');
  });

  it('guest to buffer and buffer to guest, every alignment pair, lengths 0..300, words on and off', () => {
    const r = rng(0x5eed);
    for (let n = 0; n <= 300; n++) {
      for (let sa = 0; sa < 4; sa++) {
        for (let da = 0; da < 4; da++) {
          const off = 4 * Math.floor(r() * 0xf00) + sa;
          const at = 4 * Math.floor(r() * 0x100) + da;
          const words = (n + sa + da) % 3 !== 0; // now and then without word views
          fillPattern(guest, n + sa);
          fillPattern(buf, 7 * n + da);
          checkOne(guest, words ? guest32 : null, off, buf, words ? buf32 : null, at, n);
          fillPattern(guest, 3 * n + da);
          checkOne(buf, words ? buf32 : null, at, guest, words ? guest32 : null, off, n);
        }
      }
    }
  });

  it('random offsets and lengths above WORD_COPY_MAX (the bulk copy), both directions', () => {
    const r = rng(0xc0ffee);
    for (let i = 0; i < 400; i++) {
      const n = WORD_COPY_MAX + 1 + Math.floor(r() * 3000);
      const off = Math.floor(r() * (guest.length - n));
      const at = Math.floor(r() * (buf.length - n));
      fillPattern(guest, i);
      fillPattern(buf, i + 99);
      checkOne(guest, guest32, off, buf, buf32, at, n);
      checkOne(buf, buf32, at, guest, guest32, off, n);
    }
  });

  it('differently aligned spans that end at the source\'s last byte (the merged words stay inside its word view)', () => {
    for (const length of [4000, 4001, 4002, 4003]) {
      const src = new Uint8Array(length);
      const src32 = wordsOf(src);
      assert.ok(src32 !== null);
      for (let n = 0; n <= 40; n++) {
        for (let da = 0; da < 4; da++) {
          fillPattern(src, length + n);
          fillPattern(buf, n + da);
          checkOne(src, src32, length - n, buf, buf32, 64 + da, n);
        }
      }
    }
  });

  it('views that do not start at their buffer\'s first byte: word indexes are relative to the view', () => {
    const backing = new ArrayBuffer(8192);
    const src = new Uint8Array(backing, 64, 4000);
    const dst = new Uint8Array(backing, 4096, 4000);
    const r = rng(42);
    for (let i = 0; i < 500; i++) {
      const n = Math.floor(r() * 300);
      const off = Math.floor(r() * (src.length - n));
      const at = Math.floor(r() * (dst.length - n));
      fillPattern(new Uint8Array(backing), i);
      checkOne(src, wordsOf(src), off, dst, wordsOf(dst), at, n);
    }
  });
});
