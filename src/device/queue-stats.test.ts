/**
 * QueueStats: the per-queue counters the kit keeps for operators. Proven end to end: a driver
 * reads entropy from the device through DeviceCore (kicks and calls counted by the core,
 * requests and bytes by the queue server), and on the server alone for the paths a device
 * rarely takes (a throwing handler, requests dropped by a reset).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EntropyDevice } from '../devices/entropy/entropy-device.js';
import { EntropyDriver } from '../devices/entropy/entropy-driver.js';
import { createLoopback } from '../testing/loopback.js';
import { QueueStats } from './queue-stats.js';

describe('QueueStats', () => {
  it('counts grow from zero, per queue, and a queue never seen reads zeros', () => {
    const s = new QueueStats();
    assert.equal(s.queueCount, 0);
    s.popped(2, 100);
    s.completed(2, 40);
    s.kick(0);
    assert.equal(s.queueCount, 3);
    assert.equal(s.value(2, 'bytesRead'), 100);
    assert.equal(s.value(2, 'bytesWritten'), 40);
    assert.equal(s.value(7, 'kicks'), 0);
    const snap = s.snapshot();
    assert.deepEqual(snap[1], { queue: 1, kicks: 0, calls: 0, requests: 0, completed: 0, dropped: 0, bytesRead: 0, bytesWritten: 0, errors: 0, inFlight: 0 });
    assert.equal(snap[2]!.inFlight, 0);
    s.popped(2, 1);
    assert.equal(s.snapshot()[2]!.inFlight, 1);
    assert.throws(() => s.kick(65536), /out of range/);
    assert.throws(() => s.kick(-1), /out of range/);
  });

  for (const packed of [false, true]) {
    it(`through DeviceCore and the queue server (${packed ? 'packed' : 'split'}): requests, bytes, kicks and calls of an entropy read`, async () => {
      const lb = await createLoopback(new EntropyDevice(), { packed, queueSize: 16 });
      try {
        const drv = new EntropyDriver(lb.context, { chunk: 512 });
        await drv.read(20_000);
        const q = lb.core.stats.snapshot()[0]!;
        // 20 000 bytes in 512-byte buffers: 40 buffers, every byte of each written back.
        assert.equal(q.requests, 40);
        assert.equal(q.completed, 40);
        assert.equal(q.bytesWritten, 20_000 + (40 * 512 - 20_000), 'the device fills each buffer');
        assert.equal(q.bytesRead, 0, 'entropy buffers are device-writable only');
        assert.equal(q.inFlight, 0);
        assert.equal(q.errors, 0);
        assert.ok(q.kicks >= 1 && q.kicks <= 40, `kicks ${q.kicks}`);
        assert.ok(q.calls >= 1 && q.calls <= 40, `calls ${q.calls}`);
      } finally {
        await lb.close();
      }
    });
  }
});
