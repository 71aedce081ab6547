/**
 * MacTable: its lookup cache never answers what the maps would not — after a lookup that found
 * nothing the address can be learned, a learned address can move, forgotten ones are gone —
 * checked against a plain Map over random operations with addresses that share cache slots.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MacTable } from './mac-table.js';

describe('MacTable', () => {
  it('a miss, then learning, then a move and a forget: each lookup sees the change at once', () => {
    const t = new MacTable<string>();
    const mac = Uint8Array.of(0, 0, 2, 0, 0, 0xaa, 0, 0, 0);
    assert.equal(t.get(mac, 2), undefined);
    t.set(mac, 2, 'a');
    assert.equal(t.get(mac, 2), 'a', 'the cached miss is gone');
    assert.equal(t.get(mac, 2), 'a');
    t.set(mac, 2, 'b');
    assert.equal(t.get(mac, 2), 'b', 'moved');
    t.deleteValue('b');
    assert.equal(t.get(mac, 2), undefined, 'forgotten');
    assert.equal(t.size, 0);
  });

  it('agrees with a Map over random lookups, learning and forgetting', () => {
    let x = 12345;
    const next = (): number => {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      return x >>> 8;
    };
    const t = new MacTable<number>();
    const ref = new Map<string, number>();
    // 40 addresses over 16 cache slots: many share one.
    const macs = Array.from({ length: 40 }, (_, i) => Uint8Array.of(2, 0, i & 3, 0, i >> 2, i));
    for (let step = 0; step < 20000; step++) {
      const m = macs[next() % macs.length]!;
      const key = m.join(':');
      const op = next() % 10;
      if (op < 7) assert.equal(t.get(m, 0), ref.get(key), `step ${step}: lookup of ${key}`);
      else if (op < 9) {
        const v = next() % 4;
        t.set(m, 0, v);
        ref.set(key, v);
      } else {
        const v = next() % 4;
        t.deleteValue(v);
        for (const [k, w] of ref) if (w === v) ref.delete(k);
      }
      assert.equal(t.size, ref.size);
    }
  });
});
