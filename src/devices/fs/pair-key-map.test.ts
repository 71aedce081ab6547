import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { PairKeyMap } from './pair-key-map.js';

type Op = { kind: 'set' | 'delete' | 'take' | 'get'; a: number; b: number; v: number };

/** Keys from a small pool (so deletes and gets hit), with halves above 2^32 and near 2^53. */
const keyPool = [0, 1, 2, 3, 17, 64, 65, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1, 2 ** 40 + 5, 2 ** 53 - 1, 123456789012];
const key = fc.constantFrom(...keyPool);
const op: fc.Arbitrary<Op> = fc.record({ kind: fc.constantFrom<Op['kind']>('set', 'delete', 'take', 'get'), a: key, b: key, v: fc.integer() });

describe('PairKeyMap (HostFs tables: nodeids, file handles, (st_dev, st_ino))', () => {
  it('behaves as a Map keyed by the pair over random sets, deletes, takes and gets (probe runs kept whole by the backward shift)', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 400 }), (ops) => {
        const m = new PairKeyMap<number>();
        const ref = new Map<string, number>();
        for (const o of ops) {
          const k = `${o.a}/${o.b}`;
          if (o.kind === 'set') {
            m.set(o.a, o.b, o.v);
            ref.set(k, o.v);
          } else if (o.kind === 'delete') {
            assert.equal(m.delete(o.a, o.b), ref.delete(k));
          } else if (o.kind === 'take') {
            const want = ref.get(k);
            ref.delete(k);
            assert.equal(m.take(o.a, o.b), want);
          } else {
            assert.equal(m.get(o.a, o.b), ref.get(k));
            assert.equal(m.has(o.a, o.b), ref.has(k));
          }
          assert.equal(m.size, ref.size);
        }
        // Every key of the pool answers as the reference does, and the values are the reference's.
        for (const a of keyPool) for (const b of keyPool) assert.equal(m.get(a, b), ref.get(`${a}/${b}`));
        const seen: number[] = [];
        m.forEachValue((v) => seen.push(v));
        assert.deepEqual(seen.sort((x, y) => x - y), [...ref.values()].sort((x, y) => x - y));
      }),
      { numRuns: 300 },
    );
  });

  it('a steady working set (insert one, delete the oldest, as CREATE then FORGET) keeps its capacity: nothing grows', () => {
    const m = new PairKeyMap<number>();
    let next = 1;
    for (; next <= 32; next++) m.set(next, 0, next);
    // The first insert beyond 32 grows the table once (half full at most); after that, never.
    m.set(next, 0, next);
    assert.ok(m.delete(next - 32, 0));
    next++;
    const cap = m.capacity;
    assert.equal(cap, 128);
    for (let i = 0; i < 100_000; i++, next++) {
      m.set(next, 0, next);
      assert.ok(m.delete(next - 32, 0));
    }
    assert.equal(m.size, 32);
    assert.equal(m.capacity, cap);
    for (let k = next - 32; k < next; k++) assert.equal(m.get(k, 0), k);
    assert.equal(m.get(next - 33, 0), undefined);
  });

  it('grows past half full, keeps every entry, and clear empties it', () => {
    const m = new PairKeyMap<string>(16);
    for (let i = 0; i < 1000; i++) m.set(7, 2 ** 33 + i, `v${i}`);
    assert.equal(m.size, 1000);
    assert.ok(m.capacity >= 2000 && m.capacity <= 4096);
    for (let i = 0; i < 1000; i++) assert.equal(m.get(7, 2 ** 33 + i), `v${i}`);
    assert.equal(m.get(8, 2 ** 33), undefined);
    m.clear();
    assert.equal(m.size, 0);
    assert.equal(m.get(7, 2 ** 33), undefined);
    m.set(7, 1, 'again');
    assert.equal(m.get(7, 1), 'again');
  });
});
