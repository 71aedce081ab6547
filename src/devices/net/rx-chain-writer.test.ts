/**
 * RxChainWriter: header ++ frame written into receive chains exactly as ChainCursor.write puts
 * them, whatever the split of the chains into buffers, their alignment, the frame's size and
 * where the frame continues from (mergeable buffers); it stops at an unmapped buffer.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GuestMemory } from '../../memory/guest-memory.js';
import { ChainCursor, DescriptorChain } from '../../queue/chain.js';
import { RxChainWriter } from './rx-chain-writer.js';

describe('RxChainWriter', () => {
  const regions = (): GuestMemory =>
    new GuestMemory([
      { guestBase: 0x1000, bytes: new Uint8Array(0x20000) },
      { guestBase: 0x40000, bytes: new Uint8Array(new ArrayBuffer(0x10001), 1, 0x10000) },
    ]);

  it('writes as ChainCursor does, over random splits, offsets, sizes and starting points', () => {
    let x = 99;
    const next = (): number => {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      return x >>> 8;
    };
    const got = regions();
    const want = regions();
    const writer = new RxChainWriter();
    const cursor = new ChainCursor(true);
    const hdr = Uint8Array.from({ length: 20 }, (_, i) => 0xa0 + i);
    // Two packet buffers, one word-aligned and one not: both paths of the copy.
    const frames = [new Uint8Array(10000), new Uint8Array(new ArrayBuffer(10001), 1, 10000)];
    for (const f of frames) for (let i = 0; i < f.length; i++) f[i] = (i * 7 + 3) & 0xff;
    for (let round = 0; round < 2000; round++) {
      const frame = frames[round & 1]!;
      const hl = [10, 12, 20][next() % 3]!;
      const total = hl + (round % 5 === 0 ? 1 + (next() % 9000) : 14 + (next() % 600));
      const at = next() % 3 === 0 ? next() % total : 0;
      const base = round % 4 === 3 ? 0x40000 : 0x1000;
      const chains = [new DescriptorChain(got, 8), new DescriptorChain(want, 8)];
      let addr = base + (next() % 0x4000);
      const pieces: [number, number][] = [];
      for (let k = 0, n = 1 + (next() % 4); k < n; k++) {
        const len = 1 + (next() % (total + 8));
        pieces.push([addr, len]);
        addr += len + (next() % 5);
      }
      for (const c of chains) for (const [a, l] of pieces) c.addSegment(a, l, true);
      const wrote = writer.fill(chains[0]!, hdr, hl, frame, total, at);
      // The reference: ChainCursor, header part then frame part, as net-receive did.
      const c = chains[1]!;
      const w = cursor.reset(c);
      let ref = 0;
      let pos = at;
      if (pos < hl) {
        const k = w.write(hdr, pos, Math.min(hl - pos, c.writableBytes));
        ref += k;
        pos += k;
      }
      if (pos >= hl && ref < c.writableBytes) ref += w.write(frame, pos - hl, Math.min(total - pos, c.writableBytes - ref));
      assert.equal(wrote, ref, `round ${round}: bytes written`);
      for (const [a, l] of pieces) assert.deepEqual(got.slice(a, l + 4), want.slice(a, l + 4), `round ${round}: buffer at ${a}`);
    }
  });

  it('stops at a buffer outside guest memory', () => {
    const m = regions();
    const c = new DescriptorChain(m, 4);
    c.addSegment(0x1000, 16, true);
    c.addSegment(0x30000, 64, true);
    c.addSegment(0x2000, 64, true);
    assert.equal(new RxChainWriter().fill(c, new Uint8Array(12), 12, new Uint8Array(100), 112, 0), 16);
  });
});
