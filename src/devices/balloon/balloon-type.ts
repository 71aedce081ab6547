/**
 * The registry record of the traditional memory balloon (5.5). `virtio-ts balloon` serves it
 * over vhost-user (QEMU 7.2 has no vhost-user balloon front-end: virtio-ts's own front-end is
 * the peer there); real guests meet the device on v86's PCI bus (test/v86-input-balloon.test.ts).
 */
import assert from 'node:assert/strict';
import { BALLOON_CONFIG_LAYOUT, BalloonF, BalloonStatTag } from '../../spec/balloon.js';
import { readConfigField } from '../../spec/config-layout.js';
import { DeviceId } from '../../spec/device-id.js';
import type { DeviceType } from '../device-type.js';
import { BalloonDevice, type BalloonDeviceOptions } from './balloon-device.js';
import { BalloonDriver } from './balloon-driver.js';
import { BALLOON_CLI } from './cli.js';

/** `createDevice` arguments (structured-cloneable). */
export interface BalloonDeviceArgs {
  /** Initial target in 4 KiB pages (num_pages). Default 0. */
  readonly numPages?: number;
  /** Maximum queue size. Default 128. */
  readonly queueSize?: number;
}

/**
 * The registry record of traditional memory balloon: its name, device id, vhost-user back-end
 * type, CLI, createDevice and matrix case.
 */
export const BALLOON_TYPE: DeviceType = {
  name: 'balloon',
  deviceId: DeviceId.BALLOON_TRADITIONAL,
  summary: 'a traditional virtio memory balloon (QEMU 7.2 has no vhost-user front-end for it)',
  vhostUser: { type: 'balloon', features: [] },
  // 5.5.4: num_pages, actual, free_page_hint_cmd_id, poison_val.
  configSize: 16,
  cli: BALLOON_CLI,
  createDevice(args?: unknown): BalloonDevice {
    const a = (args ?? {}) as BalloonDeviceArgs;
    const opts: { -readonly [K in keyof BalloonDeviceOptions]: BalloonDeviceOptions[K] } = {};
    if (a.numPages !== undefined) opts.numPages = a.numPages;
    if (a.queueSize !== undefined) opts.queueSize = a.queueSize;
    return new BalloonDevice(opts);
  },
  matrixCase() {
    const inflated: number[] = [];
    const deflated: number[] = [];
    const reported: number[][] = [];
    const device = new BalloonDevice({
      queueSize: 64,
      numPages: 2,
      onInflate: (p, n) => void inflated.push(...p.subarray(0, n)),
      onDeflate: (p, n) => void deflated.push(...p.subarray(0, n)),
      onReport: (addr, len) => void reported.push([addr, len]),
    });
    return {
      device,
      async exercise(driver) {
        const f = driver.features;
        // Every transport carries the configuration (vhost-user: GET_CONFIG of the registry
        // record's configSize), so the target reaches the driver everywhere.
        assert.equal(readConfigField(BALLOON_CONFIG_LAYOUT, 'numPages', (o, l) => driver.context.readConfig(o, l), true), 2);
        const balloon = new BalloonDriver(driver.context, {
          autoAdjust: true,
          stats: () => ({ [BalloonStatTag.MEMFREE]: 3 << 20, [BalloonStatTag.MEMTOT]: 4 << 20 }),
          hinting: { maxPages: 32, blockPages: 8 },
        });
        device.setTarget(10);
        await device.whenActual(10);
        assert.equal(balloon.target(), 10);
        assert.equal(balloon.size, 10);
        device.setTarget(4);
        await device.whenActual(4);
        assert.equal(inflated.length, 10);
        assert.equal(deflated.length, 6);
        assert.deepEqual(balloon.pfns().sort(), inflated.filter((p) => !deflated.includes(p)).sort());
        assert.equal(device.balloonedPages, 4);
        assert.equal(device.refusedPfns, 0);
        if ((f & BalloonF.STATS_VQ) !== 0n) {
          const s = await device.requestStats();
          assert.deepEqual(s, { [BalloonStatTag.MEMFREE]: 3 << 20, [BalloonStatTag.MEMTOT]: 4 << 20 });
        }
        if ((f & BalloonF.FREE_PAGE_HINT) !== 0n) {
          // A hinting round: the command ID in guest order (big-endian on CCW rev 0) matches.
          const id = device.startHinting();
          await device.whenHintingStopped(id);
          assert.equal(device.hintedBytes, 32 * 4096);
          assert.equal(device.ignoredHints, 0);
          const hinter = balloon.freePageHinter!;
          assert.equal(hinter.heldPages, 32);
          device.finishHinting();
          for (let i = 0; i < 10_000 && hinter.heldPages > 0; i++) await new Promise((r) => setImmediate(r));
          assert.equal(hinter.heldPages, 0, 'released on DONE');
        }
        if ((f & BalloonF.PAGE_REPORTING) !== 0n) {
          const addr = driver.context.dma.alloc(8192, 4096);
          await balloon.reportFreePages([{ addr, len: 8192 }]);
          assert.deepEqual(reported, [[addr, 8192]]);
          driver.context.dma.free(addr);
        }
        balloon.detach();
      },
    };
  },
};
