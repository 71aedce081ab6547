import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ErrorCode, VirtioError } from '../errors.js';
import { DmaAllocator } from './dma-allocator.js';

describe('DmaAllocator', () => {
  it('hands out aligned, disjoint ranges inside its window and coalesces on free (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ len: fc.integer({ min: 1, max: 3000 }), align: fc.constantFrom(1, 2, 16, 4096), free: fc.boolean() }), {
          maxLength: 40,
        }),
        (ops) => {
          const a = new DmaAllocator(0x1000, 0x10000);
          const live: [number, number][] = [];
          for (const op of ops) {
            let addr: number;
            try {
              addr = a.alloc(op.len, op.align);
            } catch (e) {
              assert.ok(e instanceof VirtioError && e.code === ErrorCode.QUEUE_FULL);
              continue;
            }
            assert.equal(addr % op.align, 0);
            assert.ok(addr >= 0x1000 && addr + op.len <= 0x11000);
            for (const [s, l] of live) assert.ok(addr + op.len <= s || s + l <= addr, 'overlap');
            live.push([addr, op.len]);
            if (op.free) {
              const [s] = live.splice(Math.floor(live.length / 2), 1)[0]!;
              a.free(s);
            }
          }
          for (const [s] of live) a.free(s);
          assert.equal(a.freeBytes, 0x10000);
          // Fully coalesced: the whole window is allocatable again in one piece.
          assert.equal(a.alloc(0x10000, 1), 0x1000);
        },
      ),
    );
  });

  it('rejects a bad free and bad arguments with typed errors', () => {
    const a = new DmaAllocator(0, 4096);
    assert.throws(() => a.free(16), (e: unknown) => e instanceof VirtioError && e.code === ErrorCode.INVALID_ARGUMENT);
    assert.throws(() => a.alloc(0), VirtioError);
    assert.throws(() => a.alloc(16, 3), VirtioError);
    assert.throws(() => a.alloc(8192), (e: unknown) => e instanceof VirtioError && e.code === ErrorCode.QUEUE_FULL);
  });
});
