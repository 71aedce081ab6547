import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { GuestMemory } from '../memory/guest-memory.js';
import { SplitLayout } from '../spec/ring.js';
import { FrontendStallWatch, checkStallPeriod, startStallWatch, type WatchedRing } from './frontend-stall-watch.js';

const BASE = 0x10000;
const DRIVER = BASE + 0x1000; // avail ring
const DEVICE = BASE + 0x2000; // used ring

function setup(): { memory: GuestMemory; ring: { started: boolean; addrs: WatchedRing['addrs'] }; kicks: number[]; delivered: number[]; packed: { on: boolean }; watch: FrontendStallWatch; set: (avail: number, used: number) => void } {
  const bytes = new Uint8Array(0x4000);
  const memory = new GuestMemory([{ guestBase: BASE, bytes }]);
  const ring = { started: true, addrs: { size: 8, descAddr: BASE, driverAddr: DRIVER, deviceAddr: DEVICE } as WatchedRing['addrs'] };
  const kicks: number[] = [];
  const delivered: number[] = [];
  const packed = { on: false };
  // A period no test reaches: `look()` is driven by hand.
  const watch = new FrontendStallWatch({ memory, rings: () => [ring], packed: () => packed.on, kick: (i) => kicks.push(i), deliverUsed: (i) => delivered.push(i) }, 1e9);
  const set = (avail: number, used: number): void => {
    const v = new DataView(bytes.buffer);
    v.setUint16(DRIVER - BASE + SplitLayout.AVAIL_IDX, avail, true);
    v.setUint16(DEVICE - BASE + SplitLayout.USED_IDX, used, true);
  };
  return { memory, ring, kicks, delivered, packed, watch, set };
}

describe('FrontendStallWatch', () => {
  it('re-notifies (and runs used-buffer handling) only after a whole period with buffers out and no used idx move', () => {
    const s = setup();
    try {
      s.set(5, 3);
      s.watch.look(); // first sight of the outstanding buffers: not a stall yet
      assert.deepEqual(s.kicks, []);
      s.watch.look(); // a whole period with used idx still 3
      assert.deepEqual(s.kicks, [0]);
      assert.deepEqual(s.delivered, [0]);
      assert.equal(s.watch.kicks, 1);
      s.set(6, 4); // progress: no notification
      s.watch.look();
      assert.equal(s.watch.kicks, 1);
      s.set(6, 6); // nothing outstanding, then the same used idx with a new buffer out
      s.watch.look();
      s.set(7, 6);
      s.watch.look();
      assert.equal(s.watch.kicks, 1, 'a buffer made available since the last look is not a stall');
      s.watch.look();
      assert.equal(s.watch.kicks, 2);
      // Wrapping indices are compared as they are (u16): 0xffff -> 1 outstanding.
      s.set(1, 0xffff);
      s.watch.look();
      s.watch.look();
      assert.equal(s.watch.kicks, 3);
    } finally {
      s.watch.stop();
    }
  });

  it('leaves stopped rings, rings without addresses and packed rings alone', () => {
    const s = setup();
    try {
      s.set(5, 3);
      s.ring.started = false;
      s.watch.look();
      s.watch.look();
      s.ring.started = true;
      s.ring.addrs = null;
      s.watch.look();
      s.watch.look();
      s.ring.addrs = { size: 8, descAddr: BASE, driverAddr: DRIVER, deviceAddr: DEVICE };
      s.packed.on = true;
      s.watch.look();
      s.watch.look();
      assert.equal(s.watch.kicks, 0);
      assert.deepEqual(s.kicks, []);
    } finally {
      s.watch.stop();
    }
  });

  it('stallKickMs: 0 is off, a negative or non-finite period is INVALID_ARGUMENT', () => {
    const s = setup();
    s.watch.stop();
    assert.equal(startStallWatch(0, { memory: s.memory, rings: () => [], packed: () => false, kick: () => {}, deliverUsed: () => {} }), null);
    for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY]) assert.throws(() => checkStallPeriod(bad), { code: 'INVALID_ARGUMENT' });
  });
});
