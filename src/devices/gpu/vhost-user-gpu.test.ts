/**
 * The vhost-user-gpu display protocol end to end in this process: a VhostUserGpuDevice served over
 * vhost-user, our front-end (VhostUserDriverTransport) hands it one end of a socket pair with
 * VHOST_USER_GPU_SET_SOCKET, a test peer (test/support/vhost-user-gpu-peer.ts) plays QEMU's
 * display on the other end, and GpuDriver drives the guest side.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ErrorCode } from '../../errors.js';
import { loadNativePlatform } from '../../platform/native-platform.js';
import { DeviceId } from '../../spec/device-id.js';
import { GpuConfig, GpuFormat } from '../../spec/gpu.js';
import { VhostUserDriverTransport, startVhostUserDriver } from '../../vhost-user/frontend-transport.js';
import { FrontendReq } from '../../vhost-user/messages.js';
import { serveVhostUser } from '../../vhost-user/server.js';
import { GpuDisplayPeer, u32s, type GpuDisplayPeerOptions } from '../../../test/support/vhost-user-gpu-peer.js';
import { edidPreferredSize } from './gpu-edid.js';
import { GpuDriver } from './gpu-driver.js';
import type { GpuDisplaySocketOptions } from './gpu-display-socket.js';
import { VhostUserGpuDevice } from './vhost-user-gpu-device.js';
import { VhostUserGpuLayout, VhostUserGpuProtocolError, VhostUserGpuRequest as R, encodeGpuMessage } from './vhost-user-gpu-protocol.js';

const ALL = (1n << 128n) - 1n;

interface Rig {
  t: VhostUserDriverTransport;
  platform: ReturnType<typeof loadNativePlatform>;
  device: VhostUserGpuDevice;
  peer: GpuDisplayPeer;
  gpu: GpuDriver;
}

async function withDisplay(peerOpts: GpuDisplayPeerOptions, display: GpuDisplaySocketOptions, run: (r: Rig) => Promise<void>): Promise<void> {
  const platform = loadNativePlatform();
  const dir = mkdtempSync(join(tmpdir(), 'vts-gpu-'));
  const device = new VhostUserGpuDevice({ displays: [{ width: 64, height: 48 }], queueSize: 64, display });
  const server = await serveVhostUser({ device, platform, socketPath: join(dir, 'g.sock') });
  let t: VhostUserDriverTransport | null = null;
  let peer: GpuDisplayPeer | null = null;
  try {
    t = await VhostUserDriverTransport.connect(join(dir, 'g.sock'), { deviceId: DeviceId.GPU, platform, configSize: GpuConfig.SIZE });
    const driver = await startVhostUserDriver(t, { wantedFeatures: ALL, queueSizes: [64, 64] });
    const [mine, theirs] = platform.socketpair();
    peer = new GpuDisplayPeer(mine, peerOpts);
    const attached = new Promise<void>((resolve) => device.onDisplay(() => resolve()));
    try {
      await t.frontend.ack(FrontendReq.GPU_SET_SOCKET, undefined, [theirs]);
    } finally {
      platform.close(theirs); // sendmsg duplicated it into the back-end
    }
    await attached;
    const gpu = new GpuDriver(driver.context);
    await run({ t, platform, device, peer, gpu });
    gpu.detach();
    driver.reset();
  } finally {
    peer?.close();
    t?.close();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const bgrx = (n: number, seed: number): Uint8Array => Uint8Array.from({ length: n * 4 }, (_, i) => (i % 4 === 3 ? 0xee : (i * 7 + seed) & 0xff));

describe('vhost-user-gpu display socket', { timeout: 60_000 }, () => {
  it('SET_GPU_SOCKET: display info and EDID come from the front-end; SCANOUT, UPDATE with exactly the pixels, cursor update, move and hide', async () => {
    await withDisplay({ displays: [{ width: 40, height: 30, enabled: true }] }, {}, async ({ device, peer, gpu }) => {
      await device.display!.ready;
      assert.equal(device.display!.protocolFeatures, 1n, 'EDID agreed');
      const set = await peer.waitFor((m) => m.request === R.SET_PROTOCOL_FEATURES);
      assert.deepEqual([...set.payload], [1, 0, 0, 0, 0, 0, 0, 0]);
      const info = await gpu.getDisplayInfo();
      assert.deepEqual([info[0]!.width, info[0]!.height, info[0]!.enabled], [40, 30, true]);
      const edid = await gpu.getEdid(0);
      assert.deepEqual(edid, peer.edids[0], 'the EDID the front-end answered');
      assert.deepEqual(edidPreferredSize(edid), { width: 40, height: 30 });

      const fb = await gpu.createFramebuffer({ resourceId: 3, width: 40, height: 30, scanoutId: 0 });
      const scanout = await peer.waitFor((m) => m.request === R.SCANOUT);
      assert.deepEqual(u32s(scanout.payload, 3), [0, 40, 30]);
      const pixels = bgrx(40 * 30, 9);
      gpu.draw(fb, 0, 0, 40, pixels);
      await gpu.present(fb, { x: 2, y: 3, width: 5, height: 4 });
      const update = await peer.waitFor((m) => m.request === R.UPDATE && u32s(m.payload, 5).join() === '0,2,3,5,4');
      assert.equal(update.payload.length, VhostUserGpuLayout.UPDATE_HEADER_SIZE + 5 * 4 * 4);
      for (let row = 0; row < 4; row++) {
        for (let col = 0; col < 5; col++) {
          const src = ((3 + row) * 40 + 2 + col) * 4;
          const at = VhostUserGpuLayout.UPDATE_HEADER_SIZE + (row * 5 + col) * 4;
          assert.deepEqual([...update.payload.subarray(at, at + 3)], [...pixels.subarray(src, src + 3)], `pixel ${col},${row} (B, G, R)`);
          assert.equal(update.payload[at + 3], 0xff);
        }
      }

      const cur = await gpu.createFramebuffer({ resourceId: 4, width: 64, height: 64, format: GpuFormat.R8G8B8A8_UNORM });
      gpu.draw(cur, 0, 0, 64, Uint8Array.from({ length: 64 * 64 * 4 }, (_, i) => [0x10, 0x20, 0x30, 0x80][i % 4]!));
      await gpu.transferToHost2d(4, { x: 0, y: 0, width: 64, height: 64 }, 0);
      await gpu.updateCursor(0, 12, 13, 4, 1, 2);
      const cu = await peer.waitFor((m) => m.request === R.CURSOR_UPDATE);
      assert.equal(cu.payload.length, VhostUserGpuLayout.CURSOR_UPDATE_SIZE);
      assert.deepEqual(u32s(cu.payload, 5), [0, 12, 13, 1, 2]);
      assert.deepEqual([...cu.payload.subarray(20, 24)], [0x30, 0x20, 0x10, 0x80], 'ARGB as a little-endian u32');
      await gpu.moveCursor(0, 30, 31);
      const pos = await peer.waitFor((m) => m.request === R.CURSOR_POS);
      assert.deepEqual(u32s(pos.payload, 3), [0, 30, 31]);
      await gpu.updateCursor(0, 30, 31, 0);
      await peer.waitFor((m) => m.request === R.CURSOR_POS_HIDE);
      await gpu.setScanout(0, 0, { x: 0, y: 0, width: 0, height: 0 });
      const off = await peer.waitFor((m) => m.request === R.SCANOUT && u32s(m.payload, 3).join() === '0,0,0');
      assert.ok(off);
      assert.deepEqual([device.display!.counters.dropped, device.display!.counters.protocolErrors, device.display!.counters.timeouts], [0, 0, 0]);
    });
  });

  it('a front-end without EDID: SET_PROTOCOL_FEATURES 0, the device keeps its own EDID of the reported size', async () => {
    await withDisplay({ features: 0n, displays: [{ width: 50, height: 20, enabled: true }] }, {}, async ({ device, peer, gpu }) => {
      await device.display!.ready;
      assert.equal(device.display!.protocolFeatures, 0n);
      assert.equal(peer.received.some((m) => m.request === R.GET_EDID), false);
      assert.deepEqual(edidPreferredSize(await gpu.getEdid(0)), { width: 50, height: 20 });
    });
  });

  it('the front-end closes the display socket: the device keeps answering the guest, updates are dropped and counted', async () => {
    await withDisplay({ displays: [{ width: 40, height: 30, enabled: true }] }, {}, async ({ device, peer, gpu }) => {
      const display = device.display!;
      await display.ready;
      peer.close();
      await new Promise<void>((resolve) => {
        const poll = (): void => (display.running ? void setImmediate(poll) : resolve());
        poll();
      });
      assert.equal(display.lastError?.code, ErrorCode.BACKEND_IO);
      const fb = await gpu.createFramebuffer({ resourceId: 3, width: 40, height: 30, scanoutId: 0 });
      gpu.draw(fb, 0, 0, 40, bgrx(40 * 30, 1));
      await gpu.present(fb);
      assert.equal(device.scanout(0).resourceId, 3, 'the guest is still served');
      assert.ok(display.counters.dropped >= 2, `dropped ${display.counters.dropped}`);
    });
  });

  it('an oversized reply is refused before buffering: typed error, counted, the guest still served', async () => {
    const huge = new Uint8Array(12);
    new DataView(huge.buffer).setUint32(0, R.GET_PROTOCOL_FEATURES, true);
    new DataView(huge.buffer).setUint32(4, VhostUserGpuLayout.FLAG_REPLY, true);
    new DataView(huge.buffer).setUint32(8, 0x7fff_ffff, true);
    await withDisplay({ displays: [], answer: (m) => (m.request === R.GET_PROTOCOL_FEATURES ? huge : undefined) }, {}, async ({ device, gpu }) => {
      await assert.rejects(device.display!.ready, (e: unknown) => e instanceof VhostUserGpuProtocolError && e.code === ErrorCode.VHOST_USER_PROTOCOL);
      assert.equal(device.display!.counters.protocolErrors, 1);
      assert.deepEqual((await gpu.getDisplayInfo())[0]!.width, 64, 'the device keeps its own display');
    });
  });

  it('a malformed reply (wrong size, or not a reply) is a typed error, counted', async () => {
    const short = encodeGpuMessage(R.GET_DISPLAY_INFO, new Uint8Array(10), VhostUserGpuLayout.FLAG_REPLY);
    await withDisplay({ displays: [], answer: (m) => (m.request === R.GET_DISPLAY_INFO ? short : undefined) }, {}, async ({ device, gpu }) => {
      await assert.rejects(device.display!.ready, (e: unknown) => e instanceof VhostUserGpuProtocolError && /10 bytes/.test(e.message));
      assert.equal(device.display!.counters.protocolErrors, 1);
      await gpu.getDisplayInfo();
    });
    const noFlag = encodeGpuMessage(R.GET_PROTOCOL_FEATURES, new Uint8Array(8), 0);
    await withDisplay({ displays: [], answer: (m) => (m.request === R.GET_PROTOCOL_FEATURES ? noFlag : undefined) }, {}, async ({ device }) => {
      await assert.rejects(device.display!.ready, (e: unknown) => e instanceof VhostUserGpuProtocolError && /unexpected message/.test(e.message));
    });
  });

  it('SET_GPU_SOCKET with an fd that is not a stream socket is refused (REPLY_ACK non-zero); the display in place and the guest are unaffected', async () => {
    await withDisplay({ displays: [{ width: 40, height: 30, enabled: true }] }, {}, async ({ t, platform, device, gpu }) => {
      const display = device.display!;
      await display.ready;
      const memfd = platform.memfd('not-a-socket', 4096);
      try {
        assert.notEqual(await t.frontend.ack(FrontendReq.GPU_SET_SOCKET, undefined, [memfd]), 0);
      } finally {
        platform.close(memfd);
      }
      assert.equal(device.display, display);
      assert.ok(display.running);
      assert.equal((await gpu.getDisplayInfo())[0]!.width, 40);
    });
  });

  it('a front-end that never answers: the wait is bounded (TIMEOUT, counted) and the guest is served', async () => {
    await withDisplay({ displays: [], answer: () => null }, { replyTimeoutMs: 200 }, async ({ device, gpu }) => {
      await assert.rejects(device.display!.ready, (e: unknown) => e instanceof VhostUserGpuProtocolError && e.code === ErrorCode.TIMEOUT);
      assert.equal(device.display!.counters.timeouts, 1);
      const fb = await gpu.createFramebuffer({ resourceId: 5, width: 8, height: 8, scanoutId: 0 });
      await gpu.present(fb);
      assert.ok(device.display!.counters.dropped >= 1);
    });
  });
});
