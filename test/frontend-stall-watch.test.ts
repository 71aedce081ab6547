/**
 * The vhost-user front-end's stall watch (`stallKickMs`, frontend-stall-watch.ts) against
 * virtio-ts's back-end served in this process: an available-buffer notification the back-end
 * never sees (dropped on the way here, as QEMU 7.2's virtiofsd loses them with EVENT_IDX through
 * a missing barrier) used to leave the request pending forever, the front-end idle in
 * epoll_wait; with the watch it completes. The real virtiofsd case is in test/fs-driver.test.ts.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { BlkDriver } from '../src/devices/blk/blk-driver.js';
import { BlkDevice } from '../src/devices/blk/blk-device.js';
import { MemoryBackend } from '../src/devices/blk/memory-backend.js';
import { nativePlatformAvailable, loadNativePlatform } from '../src/platform/native-platform.js';
import { DeviceId } from '../src/spec/device-id.js';
import { F } from '../src/spec/features.js';
import { isVirtioError } from '../src/errors.js';
import { serveVhostUser, type VhostUserServer } from '../src/vhost-user/server.js';
import { VhostUserDriverTransport, startVhostUserDriver } from '../src/vhost-user/frontend-transport.js';
import { makeTempDir, type TempDir } from './support/guest.js';

const inCI = process.env['CI'] === 'true';
const skip = nativePlatformAvailable() || inCI ? false : 'native addon not built';
const ALL = (1n << 64n) - 1n;

describe('vhost-user front-end stall watch', { skip, timeout: 60_000 }, () => {
  let dir: TempDir;
  const servers: VhostUserServer[] = [];
  const transports: VhostUserDriverTransport[] = [];

  before(async () => {
    dir = await makeTempDir('vts-stall-');
  });
  after(async () => {
    for (const t of transports) t.close();
    for (const s of servers) await s.close();
    await dir.remove();
  });

  for (const eventIdx of [true, false]) {
    it(`a lost available-buffer notification (split ring${eventIdx ? ', EVENT_IDX' : ''}) is sent again after a period without progress: the request completes instead of hanging`, { timeout: 20_000 }, async () => {
      const disk = new MemoryBackend(1 << 20);
      const path = dir.file(`lost-${eventIdx}.sock`);
      servers.push(await serveVhostUser({ device: new BlkDevice(disk), platform: loadNativePlatform(), socketPath: path }));
      const t = await VhostUserDriverTransport.connect(path, { deviceId: DeviceId.BLOCK, stallKickMs: 20 });
      transports.push(t);
      const wanted = ALL & ~F.RING_PACKED & ~(eventIdx ? 0n : F.EVENT_IDX);
      const d = await startVhostUserDriver(t, { wantedFeatures: wanted, queueSizes: [8] });
      assert.equal((d.context.features & F.EVENT_IDX) !== 0n, eventIdx);
      const b = new BlkDriver(d.context);
      // The back-end activates the device on the first kick: a write it sees.
      await b.write(3, Buffer.alloc(512, 0x5a));
      assert.equal(t.stallKicks, 0, 'no stall while the back-end answers');
      // The next notification is lost: the back-end never hears of the read.
      const real = t.notify.bind(t);
      let dropped = 0;
      t.notify = (i: number): void => {
        if (dropped++ === 0) return;
        real(i);
      };
      const data = await b.read(3, 512);
      assert.equal(data[0], 0x5a, 'the read was served');
      assert.ok(dropped >= 2, 'the watch notified again after the lost one');
      assert.ok(t.stallKicks >= 1, `stall kicks counted (${t.stallKicks})`);
      t.close();
    });
  }

  it('stallKickMs must be a period in ms (0: off)', async () => {
    await assert.rejects(
      VhostUserDriverTransport.connect(dir.file('none.sock'), { deviceId: DeviceId.BLOCK, stallKickMs: -1 }),
      (e) => isVirtioError(e) && e.code === 'INVALID_ARGUMENT',
    );
  });
});
