import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryBackend } from '../devices/blk/memory-backend.js';
import { holdWritesFrom } from './held-write-blk.js';

describe('held-write launcher (crash-recovery test support)', () => {
  it('writes below the threshold reach the storage; a write reaching it is reported and never completes, and writes nothing', async () => {
    const inner = new MemoryBackend(8192);
    const held: Array<[number, number]> = [];
    const b = holdWritesFrom(inner, 4096, (o, n) => held.push([o, n]));
    assert.equal(b.size, 8192);
    await b.write(0, new Uint8Array(4096).fill(1));
    assert.equal(inner.data[4095], 1);
    const p = b.write(4096, new Uint8Array(512).fill(2));
    // Overlapping the threshold from below is held too.
    const q = b.write(3584, new Uint8Array(1024).fill(3), 0, 1024);
    assert.deepEqual(held, [
      [4096, 512],
      [3584, 1024],
    ]);
    assert.ok(p instanceof Promise && q instanceof Promise);
    const settled = await Promise.race([p.then(() => 'settled'), new Promise((r) => setImmediate(() => r('pending')))]);
    assert.equal(settled, 'pending');
    assert.ok(inner.data.subarray(3584).every((x, i) => x === (i < 512 ? 1 : 0)), 'nothing of a held write reached the storage');
    const dst = new Uint8Array(4);
    await b.read(4092, dst);
    assert.deepEqual([...dst], [1, 1, 1, 1]);
  });
});
