/**
 * QEMU's own virtio-tablet-pci and virtio-balloon-pci, driven through x-remote by virtio-ts's
 * InputDriver and BalloonDriver (docs/x-remote.md): the input driver reads QEMU's config by
 * select/subsel and receives the events QMP `input-send-event` injects; the balloon driver
 * follows the target QMP `balloon` sets, and QEMU's `query-balloon` sees the `actual` it wrote;
 * QEMU polls its statistics (qom guest-stats) and takes its free page reports.
 *
 * Needs qemu-system-x86_64 with the x-remote machine and the native addon; under CI=true a
 * missing dependency fails the suite instead of skipping it.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { BalloonDriver } from '../src/devices/balloon/balloon-driver.js';
import { withBalloonPoison } from '../src/devices/balloon/balloon-poison.js';
import { DmaAllocator } from '../src/driver/dma-allocator.js';
import { InputDriver } from '../src/devices/input/input-driver.js';
import { VirtioDriver } from '../src/driver/virtio-driver.js';
import { BALLOON_STAT_NAMES, BalloonF } from '../src/spec/balloon.js';
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

  it('driver/balloon/4, driver/balloon/14, driver/balloon/2, driver/balloon/35: BalloonDriver follows QMP balloon, QEMU sees actual; poison_val set before DRIVER_OK; QEMU discards inflated pages', async () => {
    const dev = await startXRemoteDevice({ device: 'virtio-balloon-pci' });
    devices.push(dev);
    // The driver's pages come from a range filled with a pattern first: QEMU discarding an
    // inflated page (ram_block_discard_range on the shared memfd) makes it read zero here.
    const dmaBase = dev.dma.base + (4 << 20);
    dev.memory.fill(dmaBase, 8 << 20, 0x5a);
    const driver = await VirtioDriver.init(withBalloonPoison(dev.transport, 0xaa), {
      wantedFeatures: TRANSPORT_BITS | BalloonDriver.type.wantedFeatures,
      dma: new DmaAllocator(dmaBase, 8 << 20),
      queueSizes: [64],
    });
    // QEMU 7.2 offers page-poison by default; this driver accepts it as it writes poison_val.
    assert.notEqual(driver.features & BalloonF.PAGE_POISON, 0n, 'driver/balloon/2');
    const balloon = new BalloonDriver(driver.context, { stats: () => ({ 4: 1 << 20, 5: 16 << 20 }) });
    assert.equal(balloon.poisonVal, 0xaa, 'QEMU took poison_val, written before DRIVER_OK');
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
    const zeroed = balloon.pfns().filter((pfn) => dev.memory.slice(pfn * 4096, 4096).every((x) => x === 0)).length;
    console.log(`x-remote balloon: ${zeroed} of ${pages} inflated pages read zero after QEMU acknowledged them`);
    assert.equal(zeroed, pages, 'QEMU released every inflated page of the shared memory');
    balloon.detach();
    driver.reset();
    await dev.close();
    assert.equal(dev.pci.badAccesses, 0);
  });

  it('driver/balloon/16, driver/balloon/18, driver/balloon/39: QEMU polls statistics (every tag by name in qom guest-stats) and takes free page reports', async () => {
    const dev = await startXRemoteDevice({ device: 'virtio-balloon-pci', deviceProps: 'free-page-reporting=on' });
    devices.push(dev);
    const dmaBase = dev.dma.base + (4 << 20);
    const driver = await VirtioDriver.init(dev.transport, {
      wantedFeatures: (TRANSPORT_BITS | BalloonDriver.type.wantedFeatures) & ~BalloonF.PAGE_POISON,
      dma: new DmaAllocator(dmaBase, 8 << 20),
      queueSizes: [64],
    });
    assert.notEqual(driver.features & BalloonF.STATS_VQ, 0n);
    assert.notEqual(driver.features & BalloonF.PAGE_REPORTING, 0n);
    const sent = Object.fromEntries(BALLOON_STAT_NAMES.map((_, tag) => [tag, 1000 + tag]));
    const balloon = new BalloonDriver(driver.context, { stats: () => sent });
    const path = '/machine/peripheral/xr0';
    await dev.qmp.execute('qom-set', { path, property: 'guest-stats-polling-interval', value: 1 });
    let got: { stats: Record<string, number>; 'last-update': number } = { stats: {}, 'last-update': 0 };
    const deadline = Date.now() + 30_000;
    while (got['last-update'] === 0 && Date.now() < deadline) {
      got = (await dev.qmp.execute('qom-get', { path, property: 'guest-stats' })) as typeof got;
      if (got['last-update'] === 0) await new Promise((r) => setTimeout(r, 200));
    }
    assert.deepEqual(got.stats, Object.fromEntries(BALLOON_STAT_NAMES.map((n, tag) => [`stat-${n}`, 1000 + tag])));
    await dev.qmp.execute('qom-set', { path, property: 'guest-stats-polling-interval', value: 0 });
    // Free page reporting: QEMU discards the range (a hole in the shared memfd) before it acknowledges.
    const range = dmaBase + (6 << 20);
    dev.memory.fill(range, 64 * 4096, 0x5a);
    await balloon.reportFreePages([{ addr: range, len: 64 * 4096 }]);
    const zero = dev.memory.slice(range, 64 * 4096).every((x) => x === 0);
    console.log(`x-remote balloon: reported range reads ${zero ? 'zero' : 'unchanged'} after QEMU acknowledged it`);
    assert.ok(zero, 'QEMU released the reported range (device/balloon/20 from its side)');
    balloon.detach();
    driver.reset();
    await dev.close();
    assert.equal(dev.pci.badAccesses, 0);
  });
});
