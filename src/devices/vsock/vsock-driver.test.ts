import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createLoopback } from '../../testing/loopback.js';
import { Status } from '../../spec/status.js';
import { VsockF } from '../../spec/vsock.js';
import { MemoryVsockBackend, type MemoryVsockConnection } from './backends/memory-backend.js';
import { VsockDevice } from './vsock-device.js';
import { VsockDriver } from './vsock-driver.js';

const T = { timeout: 20_000 };

describe('vsock driver (5.10)', () => {
  it('driver/vsock/1: NO_IMPLIED_STREAM is accepted when offered (with STREAM)', T, async () => {
    const device = new VsockDevice({ guestCid: 5, backend: new MemoryVsockBackend() });
    const lb = await createLoopback(device);
    const vs = new VsockDriver(lb.context);
    assert.equal(lb.driver.features & (VsockF.STREAM | VsockF.NO_IMPLIED_STREAM), VsockF.STREAM | VsockF.NO_IMPLIED_STREAM);
    vs.detach();
    await lb.close();
  });

  it('driver/vsock/5, driver/vsock/7: sends only within the credit (a slow host, a 1000-byte buffer) from guest_cid; the device never resets it', T, async () => {
    const backend = new MemoryVsockBackend();
    let host: MemoryVsockConnection | null = null;
    backend.listen(80, (c) => {
      host = c;
      // Consumes each write a macrotask later: the credit runs out and comes back many times.
      c.write = (d: Uint8Array): void => {
        c.received.push(d.slice());
        setImmediate(() => c.peer?.consumed(d.length));
      };
    });
    const device = new VsockDevice({ guestCid: 9, backend, bufAlloc: 1000 });
    const lb = await createLoopback(device);
    const vs = new VsockDriver(lb.context, { maxPayload: 700 });
    assert.equal(vs.guestCid, 9, 'guest_cid read from the configuration');
    const s = await vs.connect(80);
    const data = new Uint8Array(50_000).map((_, i) => (i * 13) & 0xff);
    await s.send(data);
    const h = host as MemoryVsockConnection | null;
    assert.ok(h);
    await h.until((c) => c.data.length === data.length);
    assert.deepEqual(h.data, Buffer.from(data));
    assert.equal(device.stats.resets, 0, 'no credit violation (the device resets on one)');
    assert.equal(s.state, 'open');
    await s.close();
    vs.detach();
    await lb.close();
  });

  it('driver/vsock/9: event buffers are replenished: two transport resets in a row both reach the driver', T, async () => {
    const device = new VsockDevice({ guestCid: 5, backend: new MemoryVsockBackend() });
    const lb = await createLoopback(device);
    const vs = new VsockDriver(lb.context);
    for (let i = 1; i <= 6; i++) {
      assert.ok(device.transportReset(), `event ${i} had a buffer`);
      while (vs.transportResets < i) await new Promise((r) => setImmediate(r));
    }
    assert.equal(vs.transportResets, 6);
    assert.equal(lb.core.status & Status.DEVICE_NEEDS_RESET, 0);
    vs.detach();
    await lb.close();
  });
});
