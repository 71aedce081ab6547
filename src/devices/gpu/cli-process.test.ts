/**
 * `virtio-ts gpu` as a process: our vhost-user front-end connects, hands over one end of a socket
 * pair with VHOST_USER_GPU_SET_SOCKET, the test display peer answers the handshake and receives a
 * SCANOUT and an UPDATE with the pixels GpuDriver drew; SIGTERM ends the process cleanly. Bounded
 * in time; the process is always ended.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { startCli, isSocket, until, withDir } from '../../cli/cli-test-helpers.js';
import { loadNativePlatform } from '../../platform/native-platform.js';
import { DeviceId } from '../../spec/device-id.js';
import { GpuConfig } from '../../spec/gpu.js';
import { VhostUserDriverTransport, startVhostUserDriver } from '../../vhost-user/frontend-transport.js';
import { FrontendReq } from '../../vhost-user/messages.js';
import { GpuDisplayPeer, u32s } from '../../../test/support/vhost-user-gpu-peer.js';
import { GpuDriver } from './gpu-driver.js';
import { VhostUserGpuLayout, VhostUserGpuRequest as R } from './vhost-user-gpu-protocol.js';

describe('virtio-ts gpu as a process', { timeout: 60_000 }, () => {
  it('a scanout and an update reach the display peer end to end; SIGTERM ends it cleanly', async () => {
    const platform = loadNativePlatform();
    await withDir(async (dir) => {
      const sock = join(dir, 'gpu.sock');
      const cli = startCli(['gpu', '--socket-path', sock, '--display', '100x100', '-v']);
      const { child, closed } = cli;
      let t: VhostUserDriverTransport | null = null;
      let peer: GpuDisplayPeer | null = null;
      try {
        await until(() => isSocket(sock) && /serving /.test(cli.err()), 10_000, 'the back-end to serve', child);
        t = await VhostUserDriverTransport.connect(sock, { deviceId: DeviceId.GPU, platform, configSize: GpuConfig.SIZE });
        const driver = await startVhostUserDriver(t, { wantedFeatures: (1n << 64n) - 1n, queueSizes: [64, 64] });
        const [mine, theirs] = platform.socketpair();
        peer = new GpuDisplayPeer(mine, { displays: [{ width: 32, height: 16, enabled: true }] });
        try {
          await t.frontend.ack(FrontendReq.GPU_SET_SOCKET, undefined, [theirs]);
        } finally {
          platform.close(theirs);
        }
        await until(() => /display ready: 32x16/.test(cli.err()), 10_000, 'the display handshake', child);
        const gpu = new GpuDriver(driver.context);
        assert.deepEqual((await gpu.preferredMode()), { scanoutId: 0, width: 32, height: 16 });
        const fb = await gpu.createFramebuffer({ resourceId: 1, width: 32, height: 16, scanoutId: 0 });
        const scanout = await peer.waitFor((m) => m.request === R.SCANOUT);
        assert.deepEqual(u32s(scanout.payload, 3), [0, 32, 16]);
        const pixels = Uint8Array.from({ length: 32 * 16 * 4 }, (_, i) => (i * 13) & 0xff);
        gpu.draw(fb, 0, 0, 32, pixels);
        await gpu.present(fb);
        const update = await peer.waitFor((m) => m.request === R.UPDATE && m.payload[VhostUserGpuLayout.UPDATE_HEADER_SIZE + 4] === pixels[4]);
        assert.deepEqual(u32s(update.payload, 5), [0, 0, 0, 32, 16]);
        for (let i = 0; i < 32 * 16; i++) {
          const at = VhostUserGpuLayout.UPDATE_HEADER_SIZE + i * 4;
          assert.deepEqual([...update.payload.subarray(at, at + 4)], [pixels[i * 4], pixels[i * 4 + 1], pixels[i * 4 + 2], 0xff], `pixel ${i}`);
        }
        gpu.detach();
        driver.reset();
        t.close();
        t = null;
        child.kill('SIGTERM');
        assert.equal(await closed, 0, cli.err());
        assert.equal(isSocket(sock), false, 'the socket is removed');
      } finally {
        peer?.close();
        t?.close();
        await cli.end();
      }
    });
  });
});
