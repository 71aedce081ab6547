import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DeviceContext } from '../../device/types.js';
import type { DeviceQueue, QueueState } from '../../queue/types.js';
import { createLoopback } from '../../testing/loopback.js';
import { RebindTolerantContext } from './rebind-tolerant-context.js';
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

  it('RebindTolerantContext follows a queue rebuilt with the same state, and reports any other change as a new queue', () => {
    const fake = (state: QueueState): DeviceQueue => ({ size: 64, index: 0, packed: false, state: () => state }) as unknown as DeviceQueue;
    const s0 = { nextAvail: 5, nextUsed: 3, availWrap: true, usedWrap: true };
    let current: DeviceQueue | null = fake(s0);
    const ctx = { queue: () => current } as unknown as DeviceContext;
    const rt = new RebindTolerantContext(ctx);
    const w = rt.queue(0);
    assert.ok(w !== null);
    current = fake({ ...s0 }); // a rebind: same position
    assert.equal(rt.queue(0), w, 'the same queue for the server');
    assert.equal(rt.rebinds, 1);
    current = fake({ ...s0, nextAvail: 0, nextUsed: 0 }); // restarted elsewhere
    const w2 = rt.queue(0);
    assert.ok(w2 !== null && w2 !== w, 'a new queue: the server stops the old one');
    current = null;
    assert.equal(rt.queue(0), null);
  });
});
