/**
 * TxChainReader: the transmit chain's header and frame land exactly where ChainCursor would put
 * them, whatever the split of the chain into buffers, their alignment and the frame's size
 * (word copies, byte copies, set()); an unmapped buffer or a short chain is refused.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GuestMemory } from '../../memory/guest-memory.js';
import { ChainCursor, DescriptorChain } from '../../queue/chain.js';
import { TxChainReader, WORD_COPY_MAX } from './tx-chain-reader.js';
import { xorshift32 } from '../../testing/xorshift.js';

/** A deterministic generator, so a failure can be replayed. */
const rng = xorshift32;

describe('TxChainReader', () => {
  const mem = new GuestMemory([
    { guestBase: 0x1000, bytes: new Uint8Array(0x20000) },
    // A second region at an unaligned byte offset of its buffer: no word view there.
    { guestBase: 0x40000, bytes: new Uint8Array(new ArrayBuffer(0x10001), 1, 0x10000) },
  ]);
  for (const base of [0x1000, 0x40000]) {
    const b = mem.slice(base, 0x10000);
    for (let i = 0; i < b.length; i++) b[i] = (i * 131 + (base >> 12)) & 0xff;
  }

  it('reads header and frame as ChainCursor does, over random splits, offsets and sizes (word, byte and set() copies)', () => {
    const next = rng(7);
    const reader = new TxChainReader();
    const frame = new Uint8Array(70000);
    const frame32 = new Uint32Array(frame.buffer);
    const hdr = new Uint8Array(20);
    const want = new Uint8Array(70000);
    const wantHdr = new Uint8Array(20);
    const chain = new DescriptorChain(mem, 64);
    const cursor = new ChainCursor(false);
    for (let round = 0; round < 3000; round++) {
      const hl = [10, 12, 20][next() % 3]!;
      const frameLen = round % 5 === 0 ? 1 + (next() % 9000) : 14 + (next() % (2 * WORD_COPY_MAX));
      const total = hl + frameLen;
      const base = round % 4 === 3 ? 0x40000 : 0x1000;
      let addr = base + (next() % 0x4000);
      chain.clear();
      chain.memory = mem;
      let left = total;
      const pieces = 1 + (next() % 4);
      for (let k = 0; k < pieces && left > 0; k++) {
        const len = k === pieces - 1 ? left : Math.min(left, next() % (total + 1));
        chain.addSegment(addr, len, false);
        addr += len + (next() % 7);
        left -= len;
      }
      if (left > 0) chain.addSegment(addr, left, false);
      frame.fill(0xee);
      want.fill(0xee);
      assert.equal(reader.read(chain, hdr, hl, frame, round % 7 === 6 ? null : frame32, frameLen), true, `round ${round}`);
      const c = cursor.reset(chain);
      assert.equal(c.read(wantHdr, 0, hl), hl);
      assert.equal(c.read(want, 0, frameLen), frameLen);
      assert.deepEqual(hdr.subarray(0, hl), wantHdr.subarray(0, hl), `header, round ${round}`);
      assert.deepEqual(frame.subarray(0, frameLen + 4), want.subarray(0, frameLen + 4), `frame and what follows it, round ${round}`);
    }
  });

  it('refuses a chain with an unmapped buffer or fewer bytes than asked', () => {
    const reader = new TxChainReader();
    const frame = new Uint8Array(2048);
    const hdr = new Uint8Array(12);
    const chain = new DescriptorChain(mem, 4);
    chain.memory = mem;
    chain.addSegment(0x1000, 12, false);
    chain.addSegment(0x30000, 64, false); // between the regions
    assert.equal(reader.read(chain, hdr, 12, frame, null, 64), false);
    chain.clear();
    chain.memory = mem;
    chain.addSegment(0x1000, 40, false);
    assert.equal(reader.read(chain, hdr, 12, frame, null, 64), false, 'only 28 bytes of frame');
    assert.equal(reader.read(chain, hdr, 12, frame, null, 28), true);
  });
});
