import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createLoopback } from '../../testing/loopback.js';
import { ConsoleDevice } from './console-device.js';
import { ConsoleDriver } from './console-driver.js';

describe('console device: held buffers across a guest memory rebind', () => {
  for (const packed of [false, true]) {
    it(`receive buffers held before DeviceCore.setMemory are still used after it (${packed ? 'packed' : 'split'})`, { timeout: 10_000 }, async () => {
      const device = new ConsoleDevice({ queueSize: 64 });
      const lb = await createLoopback(device, { queueSize: 64, packed });
      const con = new ConsoleDriver(lb.context, { receiveBuffers: 2, receiveBufferSize: 64 });
      await new Promise((r) => setImmediate(r));
      lb.core.setMemory(lb.memory); // what the v86 adapter does when v86's wasm memory grew
      device.onQueueNotify(0); // the next kick of the receiveq
      device.port(0)!.write('after the rebind');
      const got = await Promise.race([con.port(0)!.readBytes(16), new Promise<null>((r) => setTimeout(() => r(null), 2000))]);
      assert.notEqual(got, null, 'the held receive buffers were lost');
      assert.equal(new TextDecoder().decode(got!), 'after the rebind');
      con.detach();
      await lb.close();
    });
  }
});
