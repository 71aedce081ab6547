/**
 * InProcessTransport: interrupt delivery (microtask by default: after the device returns,
 * coalesced per queue per round; or synchronous), the operations mapped onto the DeviceCore,
 * and the DMA area helper.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { VirtioDriver } from '../../driver/virtio-driver.js';
import { ErrorCode, VirtioError } from '../../errors.js';
import { GuestMemory } from '../../memory/guest-memory.js';
import { F } from '../../spec/features.js';
import { Status } from '../../spec/status.js';
import { EchoDevice } from '../../testing/echo-device.js';
import { InProcessTransport, connectInProcess, dmaFor } from './in-process-transport.js';

function addEcho(d: VirtioDriver, tag: number): void {
  const ctx = d.context;
  const out = ctx.dma.alloc(4);
  const inn = ctx.dma.alloc(4);
  ctx.memory.writeU32(out, tag);
  assert.ok(ctx.queue(0).add([{ addr: out, len: 4 }], [{ addr: inn, len: 4 }], tag));
}

describe('InProcessTransport', () => {
  it('microtask delivery never re-enters the device; one callback per queue per round', async () => {
    const dev = new EchoDevice();
    const conn = connectInProcess(dev, { memorySize: 1 << 20 });
    const d = VirtioDriver.initSync(conn.transport, { wantedFeatures: F.VERSION_1, dma: conn.dma, queueSizes: [16] });
    let inDevice = false;
    const realNotify = dev.onQueueNotify.bind(dev);
    dev.onQueueNotify = (i: number): void => {
      inDevice = true;
      realNotify(i);
      inDevice = false;
    };
    const calls: boolean[] = [];
    d.onUsed(0, () => calls.push(inDevice));
    // Three separate kicks, each answered with a notification (flags 0), within one round.
    for (let i = 0; i < 3; i++) {
      addEcho(d, i);
      d.kick(0);
    }
    assert.equal(calls.length, 0, 'nothing delivered inside the device call');
    assert.equal(conn.transport.interruptCounts.used, 3, 'the core sent three');
    await Promise.resolve();
    await new Promise<void>((r) => setImmediate(r));
    assert.deepEqual(calls, [false], 'coalesced into one callback, outside the device');
    for (let i = 0; i < 3; i++) assert.equal(d.queue(0).takeUsed(), i);
    d.reset();
  });

  it("'sync' delivery calls the handler inside the device's call", () => {
    const dev = new EchoDevice();
    const conn = connectInProcess(dev, { memorySize: 1 << 20, interrupts: 'sync' });
    const d = VirtioDriver.initSync(conn.transport, { wantedFeatures: F.VERSION_1, dma: conn.dma, queueSizes: [16] });
    let calls = 0;
    d.onUsed(0, () => calls++);
    addEcho(d, 1);
    d.kick(0);
    assert.equal(calls, 1);
    let cfg = 0;
    d.onConfigChange(() => cfg++);
    dev.bumpConfig();
    assert.equal(cfg, 1);
    assert.deepEqual(conn.transport.interruptCounts, { used: 1, config: 1 });
  });

  it('configuration change notifications are delivered in microtask mode too', async () => {
    const dev = new EchoDevice();
    const conn = connectInProcess(dev, { memorySize: 1 << 20 });
    const d = VirtioDriver.initSync(conn.transport, { wantedFeatures: F.VERSION_1, dma: conn.dma });
    let cfg = 0;
    d.onConfigChange(() => cfg++);
    dev.bumpConfig();
    dev.bumpConfig();
    assert.equal(cfg, 0);
    await new Promise<void>((r) => setImmediate(r));
    assert.equal(cfg, 1, 'coalesced');
  });

  it('maps the driver operations onto the core', () => {
    const dev = new EchoDevice({ queues: [8, 4] });
    const conn = connectInProcess(dev, { memorySize: 1 << 20 });
    const t = conn.transport;
    assert.equal(t.deviceId, 0x3f);
    assert.equal(t.numQueues(), 2);
    assert.equal(t.queueMaxSize(1), 4);
    assert.equal(t.queueMaxSize(2), 0);
    assert.equal(t.legacy, false);
    assert.equal(t.memory, conn.memory);
    t.setStatus(Status.ACKNOWLEDGE);
    assert.equal(conn.core.status, Status.ACKNOWLEDGE);
    assert.equal(t.getDeviceFeatures(), conn.core.deviceFeatures());
    assert.throws(
      () => t.setupQueue(9, { size: 8, descAddr: 0x1000, driverAddr: 0x2000, deviceAddr: 0x3000 }),
      (e: unknown) => e instanceof VirtioError && e.code === ErrorCode.INVALID_ARGUMENT,
    );
    assert.throws(() => new InProcessTransport(conn.core, { usedBuffer: () => {}, configChange: () => {} }), VirtioError);
    const legacy = connectInProcess(new EchoDevice(), { legacy: true, littleEndian: false, memorySize: 1 << 20 });
    assert.equal(legacy.transport.legacy, true);
    assert.equal(legacy.transport.littleEndian, false);
  });

  it('dmaFor uses the largest region above the floor', () => {
    const a = new Uint8Array(0x2000);
    const b = new Uint8Array(0x8000);
    const m = new GuestMemory([
      { guestBase: 0, bytes: a },
      { guestBase: 0x100000, bytes: b },
    ]);
    const dma = dmaFor(m);
    const p = dma.alloc(16);
    assert.ok(p >= 0x100000 && p < 0x108000);
    assert.throws(() => dmaFor(new GuestMemory([{ guestBase: 0, bytes: new Uint8Array(0x1000) }])), VirtioError);
  });
});
