/**
 * `virtio-ts net --poll-us`: the window reaches each connection's back-end. A frame the driver
 * adds right after the device's pass over the transmit ring is, with a poll window, found by the
 * back-end's polling in the same episode (the driver was told not to kick: driver notifications
 * stay suppressed while the back-end watches), and without one it waits for the driver's kick.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { isSocket, withDir } from '../../cli/cli-test-helpers.js';
import { EXIT } from '../../cli/options.js';
import { loadPlatform } from '../../cli/serve.js';
import { DeviceId } from '../../spec/device-id.js';
import { F } from '../../spec/features.js';
import { startVhostUserDriver, VhostUserDriverTransport } from '../../vhost-user/frontend-transport.js';
import type { VhostUserServer } from '../../vhost-user/server.js';
import type { NetOptions } from './cli.js';
import { runNet } from './net-command.js';
import { NetDriver } from './net-driver.js';
import type { NetSwitch } from './switch.js';
import type { VhostUserNetDevice } from './vhost-user-net-device.js';

const TX = 1;

function frame(seed: number): Uint8Array {
  const f = new Uint8Array(60);
  f.set([2, 0, 0, 0, 0, 0x99], 0); // an address nobody has: the switch floods it to no one
  f.set([2, 0, 0, 0, 0, 0x42], 6);
  f[12] = 0x08;
  f[14] = seed;
  return f;
}

/**
 * Sends one frame through a `runNet` port whose transmit pass is followed, once, by a second
 * frame from the driver; returns the kicks the back-end read on the transmit ring and the
 * frames the switch took.
 */
async function secondFrameAfterPass(pollUs: number): Promise<{ kicks: number; frames: number; passes: number }> {
  return withDir(async (dir) => {
    const platform = loadPlatform();
    const sock = join(dir, 'p.sock');
    let stop: () => void = () => undefined;
    const stopped = new Promise<void>((r) => (stop = r));
    let sw: NetSwitch | null = null;
    let server: VhostUserServer | null = null;
    let device: VhostUserNetDevice | null = null;
    const options: NetOptions = { socketPath: sock, fd: null, verbosity: 0, socketPaths: [sock], mac: Uint8Array.of(2, 0, 0, 0, 0, 1), mtu: 1500, queueSize: 256, pollUs };
    const io = { stdout: () => undefined, stderr: () => undefined };
    const running = runNet(options, io, { platform, stop: stopped, onSwitch: (s) => (sw = s), onServer: (s) => (server = s), onDevice: (d) => (device = d) });
    for (const end = Date.now() + 10_000; !isSocket(sock); ) {
      assert.ok(Date.now() < end, 'the socket appears');
      await new Promise((r) => setTimeout(r, 10));
    }
    let t: VhostUserDriverTransport | null = null;
    try {
      t = await VhostUserDriverTransport.connect(sock, { deviceId: DeviceId.NET, platform });
      const vd = await startVhostUserDriver(t, { wantedFeatures: NetDriver.type.wantedFeatures | F.EVENT_IDX, driverType: NetDriver.type });
      assert.notEqual(vd.features & F.EVENT_IDX, 0n, 'EVENT_IDX: avail_event tells the driver whether to kick');
      const net = new NetDriver(vd.context);
      const d = device as VhostUserNetDevice | null;
      assert.ok(d !== null, 'the device of the connection');
      let second: Promise<void> | null = null;
      let passes = 0;
      const pass = d.onQueueNotify.bind(d);
      // After the device's first pass over the transmit ring, the driver adds the next frame: the
      // back-end is still in its episode (polling) or about to sleep on the kick (no polling).
      d.onQueueNotify = (index: number): void => {
        pass(index);
        if (index !== TX) return;
        passes++;
        second ??= net.send(frame(2));
      };
      await net.send(frame(1));
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('the second frame was not used in 10 s')), 10_000)));
      await Promise.race([(async () => {
        while (second === null) await new Promise((r) => setImmediate(r));
        await second;
      })(), late]).finally(() => clearTimeout(timer));
      const backend = (server as VhostUserServer | null)?.backend;
      assert.ok(backend, 'the connection\'s back-end');
      const result = { kicks: backend.core.stats.value(TX, 'kicks'), frames: (sw as NetSwitch | null)!.attached[0]!.counters.rxFrames, passes };
      net.detach();
      return result;
    } finally {
      t?.close();
      stop();
      assert.equal(await running, EXIT.OK);
    }
  });
}

describe('virtio-ts net --poll-us', { timeout: 60_000 }, () => {
  it('device/split-ring/19: with a poll window the frame added after the pass is served in the same episode, without a kick (notifications held off while polling)', async () => {
    const r = await secondFrameAfterPass(1000);
    assert.equal(r.frames, 2);
    assert.equal(r.kicks, 1, 'one kick for two frames: the second was found by polling');
    assert.equal(r.passes, 2);
  });

  it('with --poll-us 0 the frame added after the pass waits for the driver\'s kick', async () => {
    const r = await secondFrameAfterPass(0);
    assert.equal(r.frames, 2);
    assert.equal(r.kicks, 2, 'notifications were re-enabled before sleeping: the driver kicked for the second frame');
  });
});
