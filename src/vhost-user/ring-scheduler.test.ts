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
