/**
 * RingScheduler's used-buffer notifications: batched to the end of a processing pass, except
 * those sent at once (`usedBufferNow`, the queue server's hand-over to a front-end that waits).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { QueueStats } from '../device/queue-stats.js';
import type { VirtioDevice } from '../device/types.js';
import { silentLogger } from '../log.js';
import type { Platform } from '../platform/types.js';
import { RingScheduler } from './ring-scheduler.js';
import type { VhostQueue } from './vhost-queue.js';
import { newVring, type Vring } from './vring.js';

const CALL_FD = 7;

function rig(pass: (s: RingScheduler) => void): { events: string[]; scheduler: RingScheduler; ring: Vring } {
  const events: string[] = [];
  const ring = newVring(0, 256);
  ring.started = true;
  ring.enabled = true;
  ring.callFd = CALL_FD;
  ring.queue = {} as VhostQueue; // the passes below never touch the ring
  const platform = { eventfdWrite: (fd: number) => void events.push(`call ${fd}`) } as unknown as Platform;
  let scheduler: RingScheduler | null = null;
  const device = { onQueueNotify: () => pass(scheduler!) } as unknown as VirtioDevice;
  scheduler = new RingScheduler([ring], device, platform, silentLogger, {
    closed: false,
    ready: () => true,
    failure: (_r, e) => {
      throw e;
    },
  }, { pollIntervalMs: 10, pollUs: 0, stats: new QueueStats() });
  return { events, scheduler, ring };
}

describe('RingScheduler used-buffer notifications', () => {
  it('asked for inside a pass: one call eventfd write at the end of the pass', () => {
    const { events, scheduler, ring } = rig((s) => {
      events.push('pass');
      s.usedBuffer(0);
      s.usedBuffer(0);
      events.push('pass end');
    });
    scheduler.dispatchRing(ring);
    assert.deepEqual(events, ['pass', 'pass end', `call ${CALL_FD}`]);
    assert.equal(scheduler.callsSent, 1);
  });

  it('usedBufferNow inside a pass: written at once, covering the one deferred before it; one asked for after it is sent at the end', () => {
    const { events, scheduler, ring } = rig((s) => {
      events.push('pass');
      s.usedBuffer(0);
      s.usedBufferNow(0);
      events.push('handed over');
      s.usedBuffer(0);
      events.push('pass end');
    });
    scheduler.dispatchRing(ring);
    assert.deepEqual(events, ['pass', `call ${CALL_FD}`, 'handed over', 'pass end', `call ${CALL_FD}`]);
    assert.equal(scheduler.callsSent, 2);
  });

  it('usedBufferNow alone: no second write at the end of the pass', () => {
    const { events, scheduler, ring } = rig((s) => {
      s.usedBuffer(0);
      s.usedBufferNow(0);
      events.push('pass end');
    });
    scheduler.dispatchRing(ring);
    assert.deepEqual(events, [`call ${CALL_FD}`, 'pass end']);
  });

  it('a ring without a call fd (polling front-end): nothing written', () => {
    const { events, scheduler, ring } = rig((s) => s.usedBufferNow(0));
    ring.callFd = -1;
    scheduler.dispatchRing(ring);
    assert.deepEqual(events, []);
    assert.equal(scheduler.callsSent, 0);
  });
});

/** A ring whose device pass takes one buffer and, with `inFlight`, leaves it in flight. */
function pollRig(inFlight: boolean, moreAtEnd = false): { scheduler: RingScheduler; ring: Vring; looks: () => number; passes: () => number } {
  const ring = newVring(0, 256);
  ring.started = true;
  ring.enabled = true;
  ring.callFd = CALL_FD;
  let looks = 0;
  let passes = 0;
  let pinned = 0;
  const queue = {
    hold: false,
    served: 0,
    isDetached: false,
    get pinnedBuffers() {
      return pinned;
    },
    disableNotification: () => {},
    enableNotificationNow: () => moreAtEnd && passes === 1,
    hasAvailable: () => {
      looks++;
      return false;
    },
  };
  ring.queue = queue as unknown as VhostQueue;
  const platform = { eventfdWrite: () => {} } as unknown as Platform;
  const device = {
    onQueueNotify: () => {
      passes++;
      queue.served++;
      if (inFlight) pinned = 1;
    },
  } as unknown as VirtioDevice;
  const scheduler = new RingScheduler([ring], device, platform, silentLogger, {
    closed: false,
    ready: () => true,
    failure: (_r, e) => {
      throw e;
    },
  }, { pollIntervalMs: 10, pollUs: 1000, stats: new QueueStats() });
  return { scheduler, ring, looks: () => looks, passes: () => passes };
}

describe('RingScheduler busy polling with buffers in flight', () => {
  it('a pass that leaves a buffer in flight ends the episode at once: its completion needs the event loop, and the episode is not fruitless', () => {
    const { scheduler, ring, looks, passes } = pollRig(true);
    const t0 = performance.now();
    scheduler.dispatchRing(ring);
    assert.equal(passes(), 1);
    assert.equal(looks(), 0, 'no look at the avail ring after the pass');
    assert.ok(performance.now() - t0 < 1, 'the 1 ms poll window was not spent');
    assert.equal(ring.pollWasted, 0);
    assert.equal(ring.pollSuspended, 0);
  });

  it('with nothing in flight the same pass is followed by the poll window (looks at the avail ring)', () => {
    const { scheduler, ring, looks } = pollRig(false);
    scheduler.dispatchRing(ring);
    assert.ok(looks() > 1, `looked ${looks()} times`);
    assert.equal(ring.pollWasted, 1, 'a window that found nothing counts');
  });

  it('buffers found when notifications are re-enabled after such an episode get a pass (they have no kick to come)', () => {
    const { scheduler, ring, passes } = pollRig(true, true);
    scheduler.dispatchRing(ring);
    assert.equal(passes(), 2);
  });
});
