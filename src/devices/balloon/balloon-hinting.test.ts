/** 5.5.6.5 Free page hinting: BalloonDevice's rounds and BalloonDriver's answers, in process. */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { VirtioDriver } from '../../driver/virtio-driver.js';
import type { Segment } from '../../queue/types.js';
import { BalloonCmdId, BalloonConfig, BalloonF, BalloonQueue, balloonQueueIndex } from '../../spec/balloon.js';
import { connectInProcess } from '../../transport/in-process/in-process-transport.js';
import { createLoopback, type Loopback } from '../../testing/loopback.js';
import { BalloonDevice, type BalloonDeviceOptions } from './balloon-device.js';
import { BalloonDriver } from './balloon-driver.js';
import { type Added, rawQueue, spyContext, waitFor, wordsAt } from './balloon-test-helpers.js';

const T = { timeout: 10_000 };
const loopbacks: Loopback[] = [];
after(async () => {
  for (const lb of loopbacks) await lb.close();
});

async function setup(opts: BalloonDeviceOptions = {}) {
  const device = new BalloonDevice(opts);
  const lb = await createLoopback(device, { queueSize: 16 });
  loopbacks.push(lb);
  return { device, lb, fpq: balloonQueueIndex(BalloonQueue.FREE_PAGE, lb.driver.features) };
}

describe('balloon free page hinting', T, () => {
  it('driver/balloon/24, driver/balloon/25, driver/balloon/26, driver/balloon/27, driver/balloon/29, device/balloon/17, driver/balloon/33: a round: the ID once, page blocks, STOP; DONE frees the pages', async () => {
    const hinted: [number, number, number][] = [];
    const { device, lb, fpq } = await setup({ onHint: (a, l, id) => void hinted.push([a, l, id]) });
    assert.equal(device.freePageHintCmdId, BalloonCmdId.STOP, 'no round before the host asks');
    const seen: Added[] = [];
    const balloon = new BalloonDriver(spyContext(lb.context, fpq, seen), { hinting: { maxPages: 64, blockPages: 16 } });
    const hinter = balloon.freePageHinter!;
    const freeBefore = lb.dma.freeBytes;
    const id = device.startHinting();
    assert.ok(id >= 2);
    assert.equal(device.freePageHintCmdId, id);
    await device.whenHintingStopped(id);
    await hinter.whenIdle();
    // driver/balloon/24-26: one 4-byte output buffer with the ID, then only input buffers (27), then STOP (29).
    assert.deepEqual(
      seen.map((a) => [a.outs.map((s) => s.len), a.ins.map((s) => s.len), a.words]),
      [[[4], [], [id]], ...Array.from({ length: 4 }, () => [[], [65536], []]), [[4], [], [BalloonCmdId.STOP]]],
    );
    assert.equal(seen.filter((a) => a.words.includes(id)).length, 1, 'the current ID is sent once');
    assert.deepEqual(
      hinted.map(([a, l, i]) => [l, i, lb.memory.isMapped(a, l)]),
      Array.from({ length: 4 }, () => [65536, id, true]),
    );
    assert.deepEqual(device.freePageHints.map((h) => h.addr), hinted.map((h) => h[0]));
    assert.equal(device.hintedBytes, 4 * 65536);
    assert.equal(hinter.heldPages, 64, 'hinted pages are held until DONE');
    assert.ok(lb.dma.freeBytes <= freeBefore - 4 * 65536);
    // device/balloon/17: DONE when the host no longer needs them; the driver frees them (33).
    device.finishHinting();
    assert.equal(device.freePageHintCmdId, BalloonCmdId.DONE);
    await waitFor(() => hinter.heldPages === 0, 5000, 'the hinted pages to be released');
    assert.equal(lb.dma.freeBytes, freeBefore);
    balloon.detach();
  });

  it('device/balloon/12, driver/balloon/28, device/balloon/13: STOP ends the round early, the pages stay held; a new round has a new ID', async () => {
    // device/balloon/12: the host cannot use more hints once it has the first of a round.
    let device: BalloonDevice | null = null;
    ({ device } = await setup({ onHint: () => device!.stopHinting() }));
    const lb = loopbacks[loopbacks.length - 1]!;
    const balloon = new BalloonDriver(lb.context, { hinting: { maxPages: 1024, blockPages: 1 } });
    const hinter = balloon.freePageHinter!;
    const first = device.startHinting();
    await device.whenHintingStopped(first);
    await hinter.whenIdle();
    assert.equal(device.freePageHintCmdId, BalloonCmdId.STOP);
    const held = hinter.heldPages;
    // The driver sees the change within the blocks it already had in flight (8).
    assert.ok(held > 0 && held <= 9, `stopped early with ${held} pages held`);
    assert.equal(device.freePageHints.length, 1, 'pages after STOP are not hints');
    await new Promise((r) => setImmediate(r));
    assert.equal(hinter.heldPages, held, 'STOP does not release the pages');
    // device/balloon/13: a new round never reuses an ID.
    const second = device.startHinting();
    assert.ok(second >= 2 && second !== first);
    await device.whenHintingStopped(second);
    await hinter.whenIdle();
    device.finishHinting();
    await waitFor(() => hinter.heldPages === 0, 5000, 'the release on DONE');
    assert.equal(hinter.roundsStarted, 2);
    balloon.detach();
  });

  it('device/balloon/14: pages under an ID that is not the current one are ignored', async () => {
    const hinted: number[] = [];
    const { device, lb, fpq } = await setup({ onHint: (a) => void hinted.push(a) });
    const q = rawQueue(lb.context, fpq);
    const page = (): Segment => ({ addr: lb.dma.alloc(4096, 4096), len: 4096 });
    const id = device.startHinting();
    await q([wordsAt(lb, [id + 1])]);
    await q([], [page()]);
    assert.deepEqual(hinted, [], 'a wrong ID');
    await q([wordsAt(lb, [id])]);
    const good = page();
    await q([], [good]);
    assert.deepEqual(hinted, [good.addr]);
    device.stopHinting();
    await q([], [page()]);
    assert.deepEqual(hinted, [good.addr], 'the device set STOP: later pages are not hints');
    assert.equal(device.ignoredHints, 2);
    // A short command buffer and pages with no round at all are used and ignored too.
    await q([{ addr: lb.dma.alloc(2), len: 2 }], [page()]);
    assert.equal(device.ignoredHints, 3);
    assert.equal(lb.core.status & 0x40, 0, 'no DEVICE_NEEDS_RESET');
  });

  it('device/balloon/15, device/balloon/16: the device never modifies hinted pages, before or after DONE', async () => {
    const { device, lb, fpq } = await setup();
    const q = rawQueue(lb.context, fpq);
    const addr = lb.dma.alloc(8192, 4096);
    lb.memory.fill(addr, 8192, 0xa5);
    const id = device.startHinting();
    await q([wordsAt(lb, [id])]);
    await q([], [{ addr, len: 8192 }]);
    await q([wordsAt(lb, [BalloonCmdId.STOP])]);
    device.finishHinting();
    assert.equal(device.hintedBytes, 8192);
    assert.ok(lb.memory.slice(addr, 8192).every((b) => b === 0xa5));
  });

  it('device/balloon/18: a legacy big-endian driver writes the command ID in its own byte order', async () => {
    const device = new BalloonDevice();
    const conn = connectInProcess(device, { memorySize: 4 << 20, legacy: true, littleEndian: false, interrupts: 'microtask' });
    const driver = await VirtioDriver.init(conn.transport, { wantedFeatures: (1n << 32n) - 1n, dma: conn.dma, queueSizes: [16] });
    try {
      assert.equal(driver.context.littleEndian, false);
      assert.notEqual(driver.features & BalloonF.FREE_PAGE_HINT, 0n);
      const balloon = new BalloonDriver(driver.context, { hinting: { maxPages: 8, blockPages: 4 } });
      const id = device.startHinting();
      // The config field stays little-endian (5.5.4) while the buffer is big-endian.
      const cfg = driver.context.readConfig(BalloonConfig.FREE_PAGE_HINT_CMD_ID, 4);
      assert.equal(new DataView(cfg.buffer, cfg.byteOffset).getUint32(0, true), id);
      await device.whenHintingStopped(id);
      assert.equal(device.hintedBytes, 8 * 4096);
      assert.equal(device.ignoredHints, 0);
      balloon.detach();
    } finally {
      driver.reset();
    }
  });

  it('driver/balloon/30, driver/balloon/31, driver/balloon/32: hinted pages are not read; released before DONE (detach) they are initialized first', async () => {
    const { device, lb } = await setup();
    const balloon = new BalloonDriver(lb.context, { hinting: { maxPages: 8, blockPages: 8 } });
    const hinter = balloon.freePageHinter!;
    const id = device.startHinting();
    await device.whenHintingStopped(id);
    await hinter.whenIdle();
    const [block] = hinter.heldBlocks();
    assert.ok(block !== undefined);
    // Stale contents, as if the host had dropped them (device/balloon/15 allows it).
    lb.memory.fill(block, 8 * 4096, 0x77);
    balloon.detach();
    assert.equal(hinter.heldPages, 0);
    assert.ok(lb.memory.slice(block, 8 * 4096).every((b) => b === 0), 'initialized before reuse');
  });

  it('without FREE_PAGE_HINT there is no free_page_vq and the host API refuses', async () => {
    const device = new BalloonDevice();
    const lb = await createLoopback(device, { queueSize: 16, refuseFeatures: BalloonF.FREE_PAGE_HINT });
    loopbacks.push(lb);
    assert.equal(balloonQueueIndex(BalloonQueue.FREE_PAGE, lb.driver.features), -1);
    assert.equal(new BalloonDriver(lb.context).freePageHinter, null);
    assert.throws(() => device.startHinting(), /FREE_PAGE_HINT was not negotiated/);
  });
});
