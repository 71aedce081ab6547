/**
 * Pages the driver gave up are released on the host: over vhost-user (guest memory mmapped from
 * the front-end's memfd) with madvise(MADV_REMOVE), so the front-end's own mapping reads back
 * zero; in process (a JS buffer) with a zero fill or not at all.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { DmaAllocator } from '../../driver/dma-allocator.js';
import { loadNativePlatform } from '../../platform/native-platform.js';
import { BalloonConfig, BalloonF } from '../../spec/balloon.js';
import { DeviceId } from '../../spec/device-id.js';
import { createLoopback } from '../../testing/loopback.js';
import { VhostUserDriverTransport, startVhostUserDriver } from '../../vhost-user/frontend-transport.js';
import { serveVhostUser } from '../../vhost-user/server.js';
import { BalloonDevice } from './balloon-device.js';
import { BalloonDriver } from './balloon-driver.js';
import { withBalloonPoison } from './balloon-poison.js';
import { madvisePageReleaser, zeroFillPageReleaser } from './page-release.js';

const PAGE = 4096;
const ALL = (1n << 128n) - 1n;

/** A balloon over vhost-user in this process; `poison` set through withBalloonPoison. */
async function overVhostUser(poison: number | null, run: (r: { device: BalloonDevice; t: VhostUserDriverTransport; balloon: BalloonDriver; dmaBase: number }) => Promise<void>) {
  const platform = loadNativePlatform();
  const dir = mkdtempSync(join(tmpdir(), 'vts-balloon-'));
  const device = new BalloonDevice({ releasePages: madvisePageReleaser });
  const server = await serveVhostUser({ device, platform, socketPath: join(dir, 'b.sock') });
  let t: VhostUserDriverTransport | null = null;
  try {
    t = await VhostUserDriverTransport.connect(join(dir, 'b.sock'), { deviceId: DeviceId.BALLOON_TRADITIONAL, platform, configSize: BalloonConfig.SIZE });
    // The driver's allocations come from a range filled with a pattern first, so every page it
    // hands to the balloon held non-zero bytes before.
    const dmaBase = 0x20_0000;
    t.memory.fill(dmaBase, 8 << 20, 0x5a);
    const transport = poison === null ? t : withBalloonPoison(t, poison);
    const wanted = poison === null ? ALL & ~BalloonF.PAGE_POISON : ALL;
    const driver = await startVhostUserDriver(transport as VhostUserDriverTransport, { wantedFeatures: wanted, queueSizes: [64], dma: new DmaAllocator(dmaBase, 8 << 20) });
    const balloon = new BalloonDriver(driver.context, { autoAdjust: true });
    await run({ device, t, balloon, dmaBase });
    balloon.detach();
    driver.reset();
  } finally {
    t?.close();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('balloon page release', { timeout: 30_000 }, () => {
  it('device/balloon/3, device/balloon/20, driver/balloon/39: over vhost-user inflated and reported pages are released (MADV_REMOVE): the front-end reads zero', async () => {
    await overVhostUser(null, async ({ device, t, balloon, dmaBase }) => {
      device.setTarget(40);
      await device.whenActual(40);
      assert.equal(balloon.size, 40);
      for (const pfn of balloon.pfns()) {
        const a = pfn * PAGE;
        assert.ok(a >= dmaBase, 'a page from the patterned range');
        assert.ok(t.memory.slice(a, PAGE).every((x) => x === 0), `page 0x${a.toString(16)} reads zero on the front-end`);
      }
      assert.equal(device.releasedBytes, 40 * PAGE);
      // A page the balloon never had keeps its bytes.
      const kept = dmaBase + (6 << 20);
      assert.ok(t.memory.slice(kept, PAGE).every((x) => x === 0x5a));
      // Free page reporting: the range is released before the report is acknowledged.
      await balloon.reportFreePages([{ addr: kept, len: 4 * PAGE }]);
      assert.ok(t.memory.slice(kept, 4 * PAGE).every((x) => x === 0));
      assert.equal(device.releasedBytes, 44 * PAGE);
      // Deflated pages come back usable: the memfd gives a fresh page on the first write.
      const pages = balloon.pfns().map((p) => p * PAGE);
      device.setTarget(0);
      await device.whenActual(0);
      t.memory.fill(pages[0]!, PAGE, 1);
      assert.ok(t.memory.slice(pages[0]!, PAGE).every((x) => x === 1));
    });
  });

  it('device/balloon/21, driver/balloon/34, driver/balloon/38: with PAGE_POISON and poison_val non-zero, reported pages keep poison_val; deflated pages hold it', async () => {
    await overVhostUser(0xdeadbeef, async ({ device, t, balloon, dmaBase }) => {
      assert.equal(balloon.poisonVal, 0xdeadbeef);
      assert.equal(device.poisonVal, 0xdeadbeef);
      const range = dmaBase + (6 << 20);
      await balloon.reportFreePages([{ addr: range, len: 2 * PAGE }]);
      const v = new DataView(t.memory.slice(range, 2 * PAGE).slice().buffer);
      for (let at = 0; at < 2 * PAGE; at += 4) assert.equal(v.getUint32(at, true), 0xdeadbeef);
      assert.equal(device.releasedBytes, 0, 'reported pages are not dropped (they would read zero)');
      device.setTarget(3);
      await device.whenActual(3);
      const pages = balloon.pfns().map((p) => p * PAGE);
      device.setTarget(0);
      await device.whenActual(0);
      for (const a of pages) {
        const dv = new DataView(t.memory.slice(a, PAGE).slice().buffer);
        assert.equal(dv.getUint32(0, true), 0xdeadbeef, 'a deflated page holds poison_val');
        assert.equal(dv.getUint32(PAGE - 4, true), 0xdeadbeef);
      }
    });
  });

  it('driver/balloon/40: reports right after DRIVER_OK; in process (a JS buffer): zeroFillPageReleaser fills released pages with zero; by default nothing is touched', async () => {
    for (const releasePages of [zeroFillPageReleaser, undefined]) {
      const device = new BalloonDevice(releasePages ? { releasePages } : {});
      const lb = await createLoopback(device, { queueSize: 16, refuseFeatures: BalloonF.PAGE_POISON });
      try {
        const balloon = new BalloonDriver(lb.context);
        const addr = lb.dma.alloc(2 * PAGE, PAGE);
        lb.memory.fill(addr, 2 * PAGE, 0x33);
        await balloon.reportFreePages([{ addr, len: 2 * PAGE }]);
        const expect = releasePages ? 0 : 0x33;
        assert.ok(lb.memory.slice(addr, 2 * PAGE).every((x) => x === expect));
        assert.equal(device.releasedBytes, releasePages ? 2 * PAGE : 0);
        balloon.detach();
      } finally {
        await lb.close();
      }
    }
  });
});
