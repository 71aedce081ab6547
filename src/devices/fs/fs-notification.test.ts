/**
 * 5.11 the notification queue (VIRTIO_FS_F_NOTIFICATION), FsDevice and FsDriver in process,
 * both FUSE byte orders: the queue layout (notifications on 1, requests from 2), notify_buf_size,
 * SETLKW answered "wait" and completed by FUSE_NOTIFY_LOCK (taken, or EINTR after INTERRUPT),
 * cache invalidations delivered in order even when the driver has fewer buffers than messages,
 * short driver buffers refused, and the feature neither offered by default nor needed (a driver
 * that does not take it finds requests on queue 1). Linux 6.1 does not negotiate the feature, so
 * no real guest proves this.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { FS_F_NOTIFICATION, FS_NOTIFY_BUF_SIZE, FsConfig, FuseNotifyCode, FuseOpcode } from '../../spec/fs.js';
import { createTestPair } from '../blk/test-pair.js';
import { FsDevice } from './fs-device.js';
import { FsDriver } from './fs-driver.js';
import { FuseReplyError } from './fs-driver-types.js';
import type { FsNotification } from './fs-notification-receiver.js';

const T = { timeout: 20_000 };
const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function share(): string {
  const d = mkdtempSync(join(tmpdir(), 'vts-fsnotify-'));
  dirs.push(d);
  writeFileSync(join(d, 'hello.txt'), 'hello');
  return d;
}

/** Resolves once `cond` holds, checking after each macrotask (bounded). */
async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 2000 && !cond(); i++) await new Promise((r) => setImmediate(r));
  assert.ok(cond(), what);
}

describe('virtio-fs notification queue (VIRTIO_FS_F_NOTIFICATION), device and driver in process', () => {
  it('not offered unless enabled; a driver that does not take it finds the request queues from 1', T, async () => {
    const plain = new FsDevice({ sharedDir: share(), tag: 'n', queueSize: 16 });
    try {
      assert.equal(plain.offeredFeatures & FS_F_NOTIFICATION, 0n);
      assert.equal(plain.queueMaxSizes.length, 2);
    } finally {
      plain.close();
    }
    const device = new FsDevice({ sharedDir: share(), tag: 'n', queueSize: 16, notification: true });
    try {
      assert.equal(device.offeredFeatures & FS_F_NOTIFICATION, FS_F_NOTIFICATION);
      assert.equal(device.queueMaxSizes.length, 3, 'hiprio, notification, one request queue');
      const pair = createTestPair(device, { accept: ~FS_F_NOTIFICATION });
      const fs = new FsDriver(pair.ctx, { requestQueues: 1 });
      assert.equal(fs.notifications, null);
      await fs.init();
      assert.equal((await fs.lookup(1n, 'hello.txt')).attr.size, 5, 'served on queue 1');
      assert.equal(device.notifyInvalInode(1), false, 'no notification queue: nothing sent');
      fs.detach();
    } finally {
      device.close();
    }
  });

  for (const bigEndian of [false, true]) {
    const order = bigEndian ? 'big-endian' : 'little-endian';

    it(`device/fs/2 driver/fs/6 driver/fs/7: notify_buf_size holds every message; buffers of that size kept available; 40 invalidations arrive in order through 8 buffers (${order} FUSE)`, T, async () => {
      const device = new FsDevice({ sharedDir: share(), tag: 'n', queueSize: 16, notification: true });
      try {
        const pair = createTestPair(device);
        assert.equal(pair.features & FS_F_NOTIFICATION, FS_F_NOTIFICATION);
        const notifyBufSize = new DataView(pair.ctx.readConfig(FsConfig.NOTIFY_BUF_SIZE, 4).buffer).getUint32(0, true);
        assert.equal(notifyBufSize, FS_NOTIFY_BUF_SIZE);
        const fs = new FsDriver(pair.ctx, { bigEndian });
        assert.ok(fs.notifications !== null);
        assert.ok(fs.notifications.bufferSize >= notifyBufSize, 'driver/fs/6');
        await fs.init();
        const seen: FsNotification[] = [];
        fs.notifications.onNotification((n) => seen.push(n));
        const longest = Buffer.alloc(255, 0x61);
        for (let i = 0; i < 20; i++) assert.equal(device.notifyInvalInode(1, i, -1), true);
        for (let i = 0; i < 19; i++) assert.equal(device.notifyInvalEntry(1, Buffer.from(`n${i}`)), true);
        // The largest message this device emits: DELETE with a 255-byte name (device/fs/2: it fits).
        assert.equal(device.notifyDelete(1, 7, longest), true);
        await until(() => seen.length === 40, `40 notifications (${seen.length})`);
        for (let i = 0; i < 20; i++) assert.deepEqual(seen[i], { code: FuseNotifyCode.INVAL_INODE, nodeid: 1n, offset: BigInt(i), len: -1n });
        for (let i = 0; i < 19; i++) assert.deepEqual(seen[20 + i], { code: FuseNotifyCode.INVAL_ENTRY, parent: 1n, name: `n${i}` });
        assert.deepEqual(seen[39], { code: FuseNotifyCode.DELETE, parent: 1n, child: 7n, name: longest.toString() });
        assert.equal(device.notifier.delivered, 40);
        assert.equal(device.notifier.waiting, 0);
        assert.equal(device.notifier.shortBuffers, 0, 'every driver buffer was at least notify_buf_size');
        assert.equal(fs.notifications.malformed, 0);
        // driver/fs/7: the driver gave every buffer back at once: the device has some available now.
        assert.equal(device.notifier.buffersAvailable, true, 'buffers are on the notification ring');
        fs.detach();
      } finally {
        device.close();
      }
    });

    it(`SETLKW with the notification queue: answered "wait" (+1) at once, completed by FUSE_NOTIFY_LOCK; INTERRUPT ends a wait with EINTR (${order} FUSE)`, T, async () => {
      const device = new FsDevice({ sharedDir: share(), tag: 'n', queueSize: 16, notification: true });
      try {
        const pair = createTestPair(device);
        const fs = new FsDriver(pair.ctx, { bigEndian });
        await fs.init();
        const e = await fs.lookup(1n, 'hello.txt');
        const fh = await fs.open(e.nodeid, 2);
        await fs.setlk(e.nodeid, fh, 1n, { type: 1, start: 0, end: -1, pid: 1 });
        let settled = false;
        const waiting = fs.setlk(e.nodeid, fh, 2n, { type: 1, start: 0, end: 9, pid: 2 }, true).finally(() => (settled = true));
        // The request queue's chain came back with the "wait" reply: other requests go on, the wait stays.
        for (let i = 0; i < 20; i++) await fs.getattr(e.nodeid);
        assert.equal(settled, false, 'the SETLKW waits for its notification');
        assert.equal(device.notifier.delivered, 0);
        await fs.setlk(e.nodeid, fh, 1n, { type: 2, start: 0, end: -1, pid: 1 });
        await waiting;
        assert.equal(device.notifier.delivered, 1, 'one FUSE_NOTIFY_LOCK');
        assert.equal((await fs.getlk(e.nodeid, fh, 3n, { type: 1, start: 0, end: 0, pid: 3 })).type, 1, 'owner 2 holds it now');
        // INTERRUPT of a waiting SETLKW: FUSE_NOTIFY_LOCK with EINTR.
        const unique = fs.nextUnique;
        const second = fs.setlk(e.nodeid, fh, 4n, { type: 1, start: 0, end: 9, pid: 4 }, true);
        await fs.getattr(e.nodeid);
        await fs.interrupt(unique);
        await assert.rejects(second, (err: unknown) => err instanceof FuseReplyError && err.opcode === FuseOpcode.SETLKW && err.errno === 4);
        assert.equal(device.notifier.delivered, 2);
        fs.detach();
      } finally {
        device.close();
      }
    });
  }

  it('a device reset drops waiting notifications and lock waits: nothing is sent to the next driver', T, async () => {
    const device = new FsDevice({ sharedDir: share(), tag: 'n', queueSize: 16, notification: true });
    try {
      const pair = createTestPair(device);
      const fs = new FsDriver(pair.ctx);
      await fs.init();
      const e = await fs.lookup(1n, 'hello.txt');
      const fh = await fs.open(e.nodeid, 2);
      await fs.setlk(e.nodeid, fh, 1n, { type: 1, start: 0, end: -1, pid: 1 });
      void fs.setlk(e.nodeid, fh, 2n, { type: 1, start: 0, end: 9, pid: 2 }, true).catch(() => undefined);
      await fs.getattr(e.nodeid);
      fs.detach();
      device.reset();
      // The cancelled wait settles in a microtask: after it, nothing waits to be sent.
      await new Promise((r) => setImmediate(r));
      assert.equal(device.notifier.waiting, 0);
      assert.equal(device.notifier.active, false);
      assert.equal(device.host.locks.ownerCount, 0);
    } finally {
      device.close();
    }
  });
});
