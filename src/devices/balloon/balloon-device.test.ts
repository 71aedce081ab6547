import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { VirtioDevice } from '../../device/types.js';
import type { DriverContext } from '../../driver/types.js';
import type { Segment } from '../../queue/types.js';
import { BalloonConfig, BalloonF, BalloonQueue, BalloonStatTag, balloonQueueIndex } from '../../spec/balloon.js';
import { DeviceId } from '../../spec/device-id.js';
import { F } from '../../spec/features.js';
import { createLoopback, type Loopback } from '../../testing/loopback.js';
import { BALLOON_DEVICE_FEATURES, BalloonDevice, type BalloonDeviceOptions } from './balloon-device.js';
import { BalloonDriver } from './balloon-driver.js';

const T = { timeout: 10_000 };

/** Hand-built chains on one queue: resolves with the used length. */
function raw(ctx: DriverContext, index: number) {
  let token = 1;
  const waiting = new Map<number, (len: number) => void>();
  ctx.onUsed(index, () => {
    const q = ctx.queue(index);
    do {
      for (let t = q.takeUsed(); t !== undefined; t = q.takeUsed()) waiting.get(t)?.(q.lastUsedLen);
    } while (q.enableInterrupts());
  });
  return (outs: readonly Segment[], ins: readonly Segment[] = []): Promise<number> => {
    const t = token++;
    const done = new Promise<number>((r) => waiting.set(t, r));
    assert.ok(ctx.queue(index).add(outs, ins, t));
    ctx.kick(index);
    return done;
  };
}

/** Writes `values` as 32-bit little-endian words at a fresh buffer; returns its segment. */
function words(lb: Loopback, values: readonly number[], extraBytes = 0): Segment {
  const len = values.length * 4 + extraBytes;
  const addr = lb.dma.alloc(Math.max(len, 1));
  const b = new Uint8Array(len);
  values.forEach((v, i) => new DataView(b.buffer).setUint32(i * 4, v, true));
  lb.memory.write(addr, b);
  return { addr, len };
}

function stats(lb: Loopback, entries: readonly [number, number][]): Segment {
  const b = new Uint8Array(entries.length * 10);
  const v = new DataView(b.buffer);
  entries.forEach(([tag, val], i) => {
    v.setUint16(i * 10, tag, true);
    v.setBigUint64(i * 10 + 2, BigInt(val), true);
  });
  const addr = lb.dma.alloc(b.length);
  lb.memory.write(addr, b);
  return { addr, len: b.length };
}

const loopbacks: Loopback[] = [];
async function setup(opts: BalloonDeviceOptions = {}, legacy = false) {
  const device = new BalloonDevice(opts);
  const lb = await createLoopback(device, { legacy, queueSize: 16 });
  loopbacks.push(lb);
  return { device, lb };
}
after(async () => {
  for (const lb of loopbacks) await lb.close();
});

describe('BalloonDevice', T, () => {
  it('5.5.1-5.5.3: device id 5, every feature bit of 5.5.3, queues per feature', () => {
    const d = new BalloonDevice();
    assert.equal(d.deviceId, DeviceId.BALLOON_TRADITIONAL);
    assert.equal(d.offeredFeatures & ((1n << 24n) - 1n), BALLOON_DEVICE_FEATURES);
    assert.equal(BALLOON_DEVICE_FEATURES, 0x3fn, 'bits 0 to 5');
    assert.equal(d.queueMaxSizes.length, 5, 'inflateq, deflateq, statsq, free_page_vq, reporting_vq');
    assert.equal(new BalloonDevice({ features: BalloonF.MUST_TELL_HOST }).queueMaxSizes.length, 2);
    assert.equal(new BalloonDevice({ features: BalloonF.FREE_PAGE_HINT }).queueMaxSizes.length, 3);
    assert.throws(() => new BalloonDevice({ features: 1n << 6n }), /does not implement/);
    assert.throws(() => new BalloonDevice({ numPages: -1 }), /not in/);
  });

  it('5.5.2: queues that do not exist take no index', () => {
    const all = BalloonF.STATS_VQ | BalloonF.FREE_PAGE_HINT | BalloonF.PAGE_REPORTING;
    assert.equal(balloonQueueIndex(BalloonQueue.REPORTING, all), 4);
    assert.equal(balloonQueueIndex(BalloonQueue.REPORTING, BalloonF.STATS_VQ | BalloonF.PAGE_REPORTING), 3);
    assert.equal(balloonQueueIndex(BalloonQueue.REPORTING, BalloonF.PAGE_REPORTING), 2);
    assert.equal(balloonQueueIndex(BalloonQueue.STATS, 0n), -1);
    assert.equal(balloonQueueIndex(BalloonQueue.DEFLATE, 0n), 1);
  });

  it('5.5.4: num_pages and actual, little-endian also for a big-endian legacy guest', () => {
    const d: VirtioDevice = new BalloonDevice({ numPages: 0x01020304 });
    const b = new Uint8Array(8);
    d.readConfig(0, b, 0n, false);
    assert.deepEqual([...b], [4, 3, 2, 1, 0, 0, 0, 0]);
    d.writeConfig(BalloonConfig.ACTUAL, Uint8Array.of(7, 0, 0, 0), 0n, false);
    assert.equal((d as BalloonDevice).actual, 7);
  });

  it('device/balloon/6, device/balloon/7: byte-wise writes of actual are used only once the last byte is written', () => {
    const seen: number[] = [];
    const d: VirtioDevice = new BalloonDevice({ onActual: (a) => void seen.push(a) });
    d.writeConfig(BalloonConfig.ACTUAL, Uint8Array.of(0x10), 0n, true);
    d.writeConfig(BalloonConfig.ACTUAL + 1, Uint8Array.of(0x01), 0n, true);
    d.writeConfig(BalloonConfig.ACTUAL + 2, Uint8Array.of(0), 0n, true);
    assert.deepEqual(seen, [], 'no intermediate value used');
    d.writeConfig(BalloonConfig.ACTUAL + 3, Uint8Array.of(0), 0n, true);
    assert.deepEqual(seen, [0x110]);
    // num_pages is read-only for the driver.
    d.writeConfig(BalloonConfig.NUM_PAGES, Uint8Array.of(9, 9, 9, 9), 0n, true);
    assert.equal((d as BalloonDevice).numPages, 0);
  });

  it('inflate and deflate: PFNs reach the host, bounded by guest memory; deflate only of ballooned pages; partial PFN ignored', async () => {
    const inflated: number[] = [];
    const deflated: number[] = [];
    const { device, lb } = await setup({ onInflate: (p, n) => void inflated.push(...p.subarray(0, n)), onDeflate: (p, n) => void deflated.push(...p.subarray(0, n)) });
    const inflate = raw(lb.context, 0);
    const deflate = raw(lb.context, 1);
    const outside = (16 << 20) / 4096 + 5; // the loopback has 16 MiB
    assert.equal(await inflate([words(lb, [0x100, 0x101, outside, 0xffff_ffff], 3)]), 0);
    assert.deepEqual(inflated, [0x100, 0x101]);
    assert.equal(device.balloonedPages, 2);
    assert.equal(device.refusedPfns, 2);
    assert.equal(await deflate([words(lb, [0x101, 0x200])]), 0);
    assert.deepEqual(deflated, [0x101], 'a page never inflated is not deflated');
    assert.ok(device.hasPage(0x100) && !device.hasPage(0x101));
    assert.equal(device.refusedPfns, 3);
    assert.equal(lb.core.status & 0x40, 0, 'no DEVICE_NEEDS_RESET');
  });

  it('a host callback that throws does not break the queue', async () => {
    const { device, lb } = await setup({
      onInflate: () => {
        throw new RangeError('host bug');
      },
    });
    const inflate = raw(lb.context, 0);
    assert.equal(await inflate([words(lb, [0x100])]), 0);
    assert.equal(await inflate([words(lb, [0x101])]), 0);
    assert.equal(device.balloonedPages, 2);
  });

  it('device/balloon/8, device/balloon/9: unknown stat tags ignored, entries in any order; the buffer is held until stats are requested', async () => {
    const { device, lb } = await setup();
    const statsq = raw(lb.context, 2);
    const first = statsq([stats(lb, [[BalloonStatTag.MEMTOT, 1 << 30], [77, 5], [BalloonStatTag.SWAP_IN, 2 ** 40]])]);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(device.stats, { [BalloonStatTag.MEMTOT]: 1 << 30, [BalloonStatTag.SWAP_IN]: 2 ** 40 });
    const asked = device.requestStats();
    assert.equal(await first, 0, 'the held buffer is used to ask for more');
    const second = statsq([stats(lb, [[BalloonStatTag.MEMFREE, 42]])]);
    assert.deepEqual(await asked, { [BalloonStatTag.MEMFREE]: 42 });
    void second;
  });

  it('device/balloon/11: on a legacy interface the first stats buffer is not used', async () => {
    const { device, lb } = await setup({}, true);
    assert.equal(lb.driver.features & F.VERSION_1, 0n);
    const statsq = raw(lb.context, 2);
    const asked = device.requestStats();
    const first = statsq([stats(lb, [[BalloonStatTag.MEMFREE, 666]])]);
    // The first buffer is returned at once to get a real one, and its values are not reported.
    assert.equal(await first, 0);
    assert.equal(device.stats, null);
    void statsq([stats(lb, [[BalloonStatTag.MEMFREE, 7]])]);
    assert.deepEqual(await asked, { [BalloonStatTag.MEMFREE]: 7 });
  });

  it('device/balloon/20, device/balloon/21: a page report reaches the host; the pages are not modified', async () => {
    const reported: number[][] = [];
    const { lb } = await setup({ onReport: (a, l) => void reported.push([a, l]) });
    const report = raw(lb.context, balloonQueueIndex(BalloonQueue.REPORTING, lb.driver.features));
    const addr = lb.dma.alloc(8192, 4096);
    lb.memory.fill(addr, 8192, 0x5a);
    assert.equal(await report([], [{ addr, len: 8192 }]), 0);
    assert.deepEqual(reported, [[addr, 8192]]);
    assert.ok(lb.memory.slice(addr, 8192).every((b) => b === 0x5a));
  });

  it('driver/balloon/4, driver/balloon/9, driver/balloon/14: BalloonDriver follows the target and writes actual; reset empties the balloon', async () => {
    const { device, lb } = await setup({ numPages: 3 });
    const d = new BalloonDriver(lb.context, { autoAdjust: true });
    await d.adjust();
    assert.equal(device.actual, 3);
    assert.equal(device.balloonedPages, 3);
    device.setTarget(300); // more than one 256-PFN buffer
    await device.whenActual(300);
    assert.equal(device.balloonedPages, 300);
    device.setTarget(0);
    await device.whenActual(0);
    assert.equal(device.balloonedPages, 0);
    lb.driver.reset();
    assert.equal(device.actual, 0);
  });

  it('driver/balloon/16, driver/balloon/17, driver/balloon/18, driver/balloon/23: one stats buffer, posted at start and again after each use, same tags', async () => {
    let n = 0;
    const { device, lb } = await setup();
    const d = new BalloonDriver(lb.context, { stats: () => (++n === 1 ? { [BalloonStatTag.MEMFREE]: 1, [BalloonStatTag.MEMTOT]: 2 } : { [BalloonStatTag.MEMFREE]: n }) });
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(device.stats, { [BalloonStatTag.MEMFREE]: 1, [BalloonStatTag.MEMTOT]: 2 });
    assert.deepEqual(await device.requestStats(), { [BalloonStatTag.MEMFREE]: 2, [BalloonStatTag.MEMTOT]: 0 }, 'the same subset every time');
    assert.deepEqual(await device.requestStats(), { [BalloonStatTag.MEMFREE]: 3, [BalloonStatTag.MEMTOT]: 0 });
    d.detach();
  });

  it('driver/balloon/1: the driver accepts MUST_TELL_HOST (and PAGE_POISON, which it honours: balloon-driver-rules.test.ts)', () => {
    const w = BalloonDriver.type.wantedFeatures;
    assert.notEqual(w & BalloonF.MUST_TELL_HOST, 0n);
    assert.notEqual(w & BalloonF.PAGE_POISON, 0n);
  });

  it('device/balloon/2: a legacy driver that does not accept MUST_TELL_HOST is served', async () => {
    const device = new BalloonDevice({ numPages: 5 });
    const lb = await createLoopback(device, { legacy: true, queueSize: 16, refuseFeatures: BalloonF.MUST_TELL_HOST });
    loopbacks.push(lb);
    assert.equal(lb.driver.features & (BalloonF.MUST_TELL_HOST | F.VERSION_1), 0n);
    const d = new BalloonDriver(lb.context);
    await d.adjust();
    assert.equal(device.actual, 5);
    assert.equal(device.balloonedPages, 5);
  });
});
