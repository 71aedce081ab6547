import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MemoryBackend } from './memory-backend.js';

const SIZE = 64 * 1024 + 512; // a partial last page too

type Op =
  | { kind: 'write'; off: number; len: number; seed: number }
  | { kind: 'read'; off: number; len: number }
  | { kind: 'zero'; off: number; len: number }
  | { kind: 'discard'; off: number; len: number };

const range = fc
  .tuple(fc.integer({ min: 0, max: SIZE }), fc.integer({ min: 0, max: 3 * 4096 + 100 }))
  .map(([off, len]) => ({ off, len: Math.min(len, SIZE - off) }));
const op: fc.Arbitrary<Op> = fc.oneof(
  fc.tuple(range, fc.integer({ min: 1, max: 255 })).map(([r, seed]) => ({ kind: 'write' as const, ...r, seed })),
  range.map((r) => ({ kind: 'read' as const, ...r })),
  range.map((r) => ({ kind: 'zero' as const, ...r })),
  range.map((r) => ({ kind: 'discard' as const, ...r })),
);

describe('MemoryBackend', () => {
  it('sparse: every read returns what a plain RAM disk returns, whatever the writes, zeroings and discards before it', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
        const plain = new MemoryBackend(SIZE);
        const sparse = new MemoryBackend(SIZE, { sparse: true });
        for (const o of ops) {
          if (o.kind === 'write') {
            const src = new Uint8Array(o.len + 3).map((_, i) => (o.seed + i * 7) & 0xff);
            plain.write(o.off, src, 3, o.len);
            sparse.write(o.off, src, 3, o.len);
          } else if (o.kind === 'zero') {
            plain.writeZeroes(o.off, o.len);
            sparse.writeZeroes(o.off, o.len);
          } else if (o.kind === 'discard') {
            plain.discard(o.off, o.len);
            sparse.discard(o.off, o.len);
          } else {
            // Destinations start dirty: a zero-filled read must really write its zeroes.
            const a = new Uint8Array(o.len + 5).fill(0xee);
            const b = new Uint8Array(o.len + 5).fill(0xee);
            plain.read(o.off, a, 5, o.len);
            sparse.read(o.off, b, 5, o.len);
            assert.deepEqual(b, a);
          }
        }
        const all = new Uint8Array(SIZE).fill(1);
        sparse.read(0, all);
        assert.deepEqual(all, plain.data);
      }),
      { numRuns: 300 },
    );
  });

  it('sparse is ignored when the disk is given its data (it may hold anything)', () => {
    const data = new Uint8Array(8192).fill(9);
    const m = new MemoryBackend(8192, { data, sparse: true });
    const out = new Uint8Array(4096);
    m.read(4096, out);
    assert.ok(out.every((b) => b === 9));
  });
});
