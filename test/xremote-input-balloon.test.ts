/**
 * QEMU's own virtio-tablet-pci and virtio-balloon-pci, driven through x-remote by virtio-ts's
 * InputDriver and BalloonDriver (docs/x-remote.md): the input driver reads QEMU's config by
 * select/subsel and receives the events QMP `input-send-event` injects; the balloon driver
 * follows the target QMP `balloon` sets, and QEMU's `query-balloon` sees the `actual` it wrote.
 *
 * Needs qemu-system-x86_64 with the x-remote machine and the native addon; under CI=true a
 * missing dependency fails the suite instead of skipping it.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { BalloonDriver } from '../src/devices/balloon/balloon-driver.js';
import { InputDriver } from '../src/devices/input/input-driver.js';
import { VirtioDriver } from '../src/driver/virtio-driver.js';
import { BalloonF } from '../src/spec/balloon.js';
import { EvCode, EvType } from '../src/spec/input.js';
import { type XRemoteDevice, startXRemoteDevice, xRemoteUnavailableReason } from '../src/transport/x-remote/index.js';

const missing = xRemoteUnavailableReason();
if (missing && process.env.CI === 'true') throw new Error(`x-remote tests need QEMU's x-remote machine under CI: ${missing}`);
const skip = missing ?? false;

/** Transport bits (24 and up) and nothing device-specific beyond what the driver wants. */
const TRANSPORT_BITS = ((1n << 64n) - 1n) & ~((1n << 24n) - 1n);

describe('x-remote: QEMU input and balloon models driven by virtio-ts drivers', { skip, timeout: 120_000 }, () => {
  const devices: XRemoteDevice[] = [];
  after(async () => {
    for (const d of devices) await d.close();
  });

  it('driver/input/1, driver/input/3: InputDriver reads virtio-tablet-pci config and receives input-send-event events', async () => {
    const dev = await startXRemoteDevice({ device: 'virtio-tablet-pci' });
    devices.push(dev);
    const driver = await VirtioDriver.init(dev.transport, { wantedFeatures: TRANSPORT_BITS, dma: dev.dma, queueSizes: [64] });
    const input = new InputDriver(driver.context, { eventBuffers: 8 });
    assert.equal(await input.name(), 'QEMU Virtio Tablet');
    assert.ok((await input.eventCodes(EvType.ABS)).includes(EvCode.ABS_X));
    assert.ok((await input.eventCodes(EvType.KEY)).includes(EvCode.BTN_LEFT));
    const ax = await input.absInfo(EvCode.ABS_X);
    assert.ok(ax !== null && ax.min === 0 && ax.max > 0, JSON.stringify(ax));
    assert.equal(await input.absInfo(40), null, 'device/input/1 from QEMU: an axis it lacks has size 0');
    await dev.qmp.execute('input-send-event', {
      events: [
        { type: 'abs', data: { axis: 'x', value: 1000 } },
        { type: 'abs', data: { axis: 'y', value: 2000 } },
      ],
    });
    const got = await input.nextEvents(3);
    assert.deepEqual(got, [
      { type: EvType.ABS, code: EvCode.ABS_X, value: 1000 },
      { type: EvType.ABS, code: EvCode.ABS_Y, value: 2000 },
      { type: EvType.SYN, code: EvCode.SYN_REPORT, value: 0 },
    ]);
    input.detach();
    driver.reset();
    await dev.close();
    assert.equal(dev.pci.badAccesses, 0);
  });

  it('driver/balloon/4, driver/balloon/14: BalloonDriver follows QMP balloon, QEMU sees actual', async () => {
    const dev = await startXRemoteDevice({ device: 'virtio-balloon-pci' });
    devices.push(dev);
    const driver = await VirtioDriver.init(dev.transport, { wantedFeatures: TRANSPORT_BITS | BalloonDriver.type.wantedFeatures, dma: dev.dma, queueSizes: [64] });
    assert.equal(driver.features & BalloonF.PAGE_POISON, 0n, 'driver/balloon/2: not accepted');
    const balloon = new BalloonDriver(driver.context, { stats: () => ({ 4: 1 << 20, 5: 16 << 20 }) });
    const ram = ((await dev.qmp.execute('query-memory-size-summary')) as { 'base-memory': number })['base-memory'];
    const pages = 256;
    // QEMU's target is the guest's memory size minus the balloon (5.5.6: 4096-byte pages).
    const changed = new Promise<void>((resolve) => driver.context.onConfigChange(() => resolve()));
    await dev.qmp.execute('balloon', { value: ram - pages * 4096 });
    await changed;
    // What autoAdjust does on each configuration change, done here once the change arrived.
    await balloon.adjust();
    assert.equal(balloon.target(), pages);
    assert.equal(balloon.size, pages);
    // QEMU reads `actual` from its config on every write; query-balloon reports RAM minus it.
    let actual = 0;
    for (let i = 0; i < 50 && actual !== ram - pages * 4096; i++) {
      actual = ((await dev.qmp.execute('query-balloon')) as { actual: number }).actual;
    }
    assert.equal(actual, ram - pages * 4096);
    balloon.detach();
    driver.reset();
    await dev.close();
    assert.equal(dev.pci.badAccesses, 0);
  });
});
