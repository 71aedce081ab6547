/** BalloonDriver against the normative statements of 5.5.6 (in process), and the statistics by name. */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { VirtioDriver } from '../../driver/virtio-driver.js';
import { ErrorCode } from '../../errors.js';
import { BALLOON_STAT_NAMES, BalloonConfig, BalloonF, BalloonQueue, BalloonStatTag, balloonQueueIndex } from '../../spec/balloon.js';
import { createLoopback, type Loopback } from '../../testing/loopback.js';
import { connectInProcess } from '../../transport/in-process/in-process-transport.js';
import { BalloonDevice, type BalloonDeviceOptions, balloonStatsByName } from './balloon-device.js';
import { BalloonDriver } from './balloon-driver.js';
import { withBalloonPoison } from './balloon-poison.js';
import { type Added, rawQueue, spyContext } from './balloon-test-helpers.js';
import { hostMemoryStats, parseLinuxMemoryStats } from './host-memory-stats.js';

const T = { timeout: 10_000 };
const PAGE = 4096;
const loopbacks: Loopback[] = [];
after(async () => {
  for (const lb of loopbacks) await lb.close();
});

async function setup(opts: BalloonDeviceOptions = {}, refuseFeatures = 0n) {
  const device = new BalloonDevice(opts);
  const lb = await createLoopback(device, { queueSize: 16, refuseFeatures });
  loopbacks.push(lb);
  return { device, lb };
}

describe('BalloonDriver rules', T, () => {
  it('driver/balloon/35, driver/balloon/36, device/balloon/19: poison_val is written before DRIVER_OK and never after; the device exposes it', async () => {
    const device = new BalloonDevice();
    const conn = connectInProcess(device, { memorySize: 4 << 20, interrupts: 'microtask' });
    const driver = await VirtioDriver.init(withBalloonPoison(conn.transport, 0x5a5a5a5a), { wantedFeatures: (1n << 64n) - 1n, dma: conn.dma, queueSizes: [16] });
    try {
      assert.notEqual(driver.features & BalloonF.PAGE_POISON, 0n);
      // The device takes poison_val only before DRIVER_OK: seeing it proves the order.
      assert.equal(device.poisonVal, 0x5a5a5a5a);
      const balloon = new BalloonDriver(driver.context);
      assert.equal(balloon.poisonVal, 0x5a5a5a5a);
      await balloon.inflate(3);
      await balloon.deflateOnOom(3);
      assert.equal(device.refusedPoisonWrites, 0, 'the driver did not write poison_val while DRIVER_OK');
      // A write while DRIVER_OK is not used by the device.
      driver.context.writeConfig(BalloonConfig.POISON_VAL, Uint8Array.of(1, 2, 3, 4));
      assert.equal(device.poisonVal, 0x5a5a5a5a);
      assert.equal(device.refusedPoisonWrites, 1);
      balloon.detach();
    } finally {
      driver.reset();
    }
  });

  it('driver/balloon/2, driver/balloon/34: with PAGE_POISON the driver fills deflated pages with poison_val (0 when none was set)', async () => {
    const { device, lb } = await setup({ numPages: 2 });
    const balloon = new BalloonDriver(lb.context);
    assert.equal(balloon.poisonVal, 0);
    await balloon.adjust();
    const pages = balloon.pfns().map((p) => p * PAGE);
    for (const a of pages) lb.memory.fill(a, PAGE, 0xee);
    device.setTarget(0);
    await balloon.adjust();
    for (const a of pages) assert.ok(lb.memory.slice(a, PAGE).every((x) => x === 0));
    balloon.detach();
  });

  it('driver/balloon/3, driver/balloon/37, driver/balloon/42: without PAGE_POISON reported pages are uninitialized to the driver: it accepts PAGE_REPORTING and does not touch them', async () => {
    const { lb } = await setup({}, BalloonF.PAGE_POISON);
    assert.notEqual(lb.driver.features & BalloonF.PAGE_REPORTING, 0n);
    const balloon = new BalloonDriver(lb.context);
    assert.equal(balloon.poisonVal, null);
    const addr = lb.dma.alloc(PAGE, PAGE);
    lb.memory.fill(addr, PAGE, 0x44);
    await balloon.reportFreePages([{ addr, len: PAGE }]);
    assert.ok(lb.memory.slice(addr, PAGE).every((x) => x === 0x44), 'not written by the driver');
    balloon.detach();
  });

  it('driver/balloon/7, driver/balloon/8: below the target only with DEFLATE_ON_OOM', async () => {
    {
      const { device, lb } = await setup({ numPages: 4 });
      const balloon = new BalloonDriver(lb.context);
      await balloon.adjust();
      await assert.rejects(balloon.deflate(1), /below the target/);
      // driver/balloon/8: the guest needs memory: pages come back through the deflateq.
      assert.equal(await balloon.deflateOnOom(3), 3);
      assert.equal(device.balloonedPages, 1);
      assert.equal(device.actual, 1);
      balloon.detach();
    }
    {
      const { device, lb } = await setup({ numPages: 4 }, BalloonF.DEFLATE_ON_OOM);
      const balloon = new BalloonDriver(lb.context);
      await balloon.adjust();
      await assert.rejects(balloon.deflateOnOom(1), (e: unknown) => (e as { code?: string }).code === ErrorCode.INVALID_ARGUMENT);
      await assert.rejects(balloon.deflate(1), /driver\/balloon\/7/);
      assert.equal(device.balloonedPages, 4);
      balloon.detach();
    }
  });

  it('driver/balloon/5, driver/balloon/6, driver/balloon/15: pages above the target may be supplied and taken back; actual is written once per adjustment', async () => {
    const actuals: number[] = [];
    const { device, lb } = await setup({ numPages: 300, onActual: (a) => void actuals.push(a) });
    const balloon = new BalloonDriver(lb.context);
    await balloon.adjust(); // two inflate buffers (256 + 44 PFNs), one actual
    assert.deepEqual(actuals, [300]);
    await balloon.inflate(5); // driver/balloon/6: more than the target
    assert.equal(device.balloonedPages, 305);
    await balloon.deflate(5); // driver/balloon/5: back down to the target
    assert.deepEqual(actuals, [300, 305, 300]);
    balloon.detach();
  });

  it('driver/balloon/10, driver/balloon/12, driver/balloon/13: pages are counted after the inflate is used, freed after the deflate is used; no early deflate', async () => {
    let balloon: BalloonDriver | null = null;
    const sizesAtInflate: number[] = [];
    const freeAtDeflate: number[] = [];
    const { device, lb } = await setup({
      onInflate: () => void sizesAtInflate.push(balloon!.size),
      onDeflate: () => void freeAtDeflate.push(lb.dma.freeBytes),
    });
    balloon = new BalloonDriver(lb.context);
    // driver/balloon/13: a deflate asked at once after an inflate still waits for its acknowledgement.
    const inflating = balloon.inflate(8);
    const deflating = balloon.deflateOnOom(8);
    await inflating;
    const freeAfterInflate = lb.dma.freeBytes;
    await deflating;
    assert.deepEqual(sizesAtInflate, [0], 'driver/balloon/12: not yet counted (or used) while the device handles the inflate');
    assert.ok(freeAtDeflate[0]! <= freeAfterInflate, 'driver/balloon/10: not yet freed while the device handles the deflate');
    assert.ok(lb.dma.freeBytes >= freeAfterInflate + 8 * PAGE, 'freed once acknowledged');
    assert.equal(device.refusedPfns, 0, 'every deflated page was in the balloon');
    balloon.detach();
  });

  it('driver/balloon/20, driver/balloon/21, driver/balloon/22: stats buffers are whole 10-byte entries (the spec\'s "6" is the typo of an older struct size), a subset, in the supplier\'s order', async () => {
    const { device, lb } = await setup();
    const seen: Added[] = [];
    const index = balloonQueueIndex(BalloonQueue.STATS, lb.driver.features);
    const d = new BalloonDriver(spyContext(lb.context, index, seen), { stats: () => ({ [BalloonStatTag.MEMTOT]: 9, [BalloonStatTag.SWAP_IN]: 1, [BalloonStatTag.AVAIL]: 5 }) });
    await device.requestStats();
    await device.requestStats();
    assert.ok(seen.length >= 2);
    for (const a of seen) {
      assert.deepEqual(a.ins, []);
      assert.deepEqual(a.outs.map((o) => o.len), [30], 'three 10-byte entries');
    }
    assert.deepEqual(device.stats, { [BalloonStatTag.MEMTOT]: 9, [BalloonStatTag.SWAP_IN]: 1, [BalloonStatTag.AVAIL]: 5 });
    d.detach();
  });

  it('device/balloon/10: a legacy big-endian driver formats statistics in its own byte order; the device reads them so', async () => {
    const device = new BalloonDevice();
    const conn = connectInProcess(device, { memorySize: 4 << 20, legacy: true, littleEndian: false, interrupts: 'microtask' });
    const driver = await VirtioDriver.init(conn.transport, { wantedFeatures: (1n << 32n) - 1n, dma: conn.dma, queueSizes: [16] });
    try {
      assert.equal(driver.context.littleEndian, false);
      const d = new BalloonDriver(driver.context, { stats: () => ({ [BalloonStatTag.MEMFREE]: 0x0102_0304_0506, [BalloonStatTag.MEMTOT]: 7 }) });
      // device/balloon/11: the first buffer of a legacy driver is returned unread; the next one counts.
      assert.deepEqual(await device.requestStats(), { [BalloonStatTag.MEMFREE]: 0x0102_0304_0506, [BalloonStatTag.MEMTOT]: 7 });
      d.detach();
    } finally {
      driver.reset();
    }
  });

  it('device/balloon/5: on a legacy interface the device uses inflate and deflate buffers with length 0, which the driver ignores', async () => {
    const device = new BalloonDevice({ numPages: 3 });
    const lb = await createLoopback(device, { legacy: true, queueSize: 16 });
    loopbacks.push(lb);
    const inflate = rawQueue(lb.context, 0);
    const addr = lb.dma.alloc(4, 4);
    lb.memory.write(addr, Uint8Array.of(0x40, 0, 0, 0));
    assert.equal(await inflate([{ addr, len: 4 }]), 0);
  });

  it('device/balloon/1: a device made to require MUST_TELL_HOST refuses FEATURES_OK without it', async () => {
    const device = new BalloonDevice({ requireMustTellHost: true });
    await assert.rejects(createLoopback(device, { refuseFeatures: BalloonF.MUST_TELL_HOST }), (e: unknown) => (e as { code?: string }).code === ErrorCode.FEATURES_REJECTED);
    const ok = await createLoopback(new BalloonDevice({ requireMustTellHost: true }), { queueSize: 16 });
    loopbacks.push(ok);
    assert.notEqual(ok.driver.features & BalloonF.MUST_TELL_HOST, 0n);
  });

  it('5.5.6.4, driver/balloon/19: every statistics tag reaches the host by name; the driver sends an entry for every statistic its host knows', async () => {
    const { device, lb } = await setup();
    const statsq = rawQueue(lb.context, balloonQueueIndex(BalloonQueue.STATS, lb.driver.features));
    const b = new Uint8Array(10 * 10);
    const v = new DataView(b.buffer);
    for (let tag = 0; tag < 10; tag++) {
      v.setUint16(tag * 10, 9 - tag, true);
      v.setBigUint64(tag * 10 + 2, BigInt(1000 + 9 - tag), true);
    }
    const addr = lb.dma.alloc(b.length);
    lb.memory.write(addr, b);
    void statsq([{ addr, len: b.length }]);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(device.namedStats, Object.fromEntries(BALLOON_STAT_NAMES.map((n, tag) => [n, 1000 + tag])));
    assert.deepEqual(balloonStatsByName({ 4: 1, 99: 2 }), { 'free-memory': 1 });
    // The driver side: Linux's definitions over /proc.
    const parsed = parseLinuxMemoryStats(
      'MemTotal:  1000 kB\nMemFree:  400 kB\nMemAvailable:  600 kB\nCached:  100 kB\n',
      'pswpin 2\npswpout 3\npgfault 50\npgmajfault 5\nhtlb_buddy_alloc_success 7\nhtlb_buddy_alloc_fail 1\n',
    );
    assert.deepEqual(balloonStatsByName(parsed), {
      'swap-in': 2 * PAGE,
      'swap-out': 3 * PAGE,
      'major-faults': 5,
      'minor-faults': 45,
      'free-memory': 400 * 1024,
      'total-memory': 1000 * 1024,
      'available-memory': 600 * 1024,
      'disk-caches': 100 * 1024,
      'htlb-pgalloc': 7,
      'htlb-pgfail': 1,
    });
    const here = hostMemoryStats();
    assert.ok((here[BalloonStatTag.MEMTOT] ?? 0) > (here[BalloonStatTag.MEMFREE] ?? Infinity) || process.platform !== 'linux');
    // A BalloonDriver fed with the host's statistics sends all ten tags on Linux.
    const other = await setup();
    const drv = new BalloonDriver(other.lb.context, { stats: hostMemoryStats });
    const got = await other.device.requestStats();
    assert.equal(Object.keys(got).length, process.platform === 'linux' ? 10 : 2);
    drv.detach();
  });
});
