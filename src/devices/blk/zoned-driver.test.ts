/**
 * Zoned block devices (5.2.6), driver side: ZonedBlkDriver's negotiation (driver/blk/5..7) and
 * the rules it keeps before anything reaches the device (driver/blk/26..34). Each refusal is
 * checked on the driver: the request is thrown back and the device sees nothing (its zone state
 * and the ring's request count are unchanged).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DeviceDriverInfo } from '../../driver/device-driver.js';
import { VirtioDriver } from '../../driver/virtio-driver.js';
import { ErrorCode, VirtioError } from '../../errors.js';
import { connectInProcess } from '../../transport/in-process/in-process-transport.js';
import { createLoopback } from '../../testing/loopback.js';
import { BlkF, BlkReqType, BlkStatus, BlkZonedModel } from '../../spec/blk.js';
import { BlkZoneState } from '../../spec/blk-zoned.js';
import { BlkDevice } from './blk-device.js';
import { BLK_DRIVER_FEATURES, BlkDriver, BlkRequestError } from './blk-driver.js';
import { BLK_ZONED_DRIVER_FEATURES, ZonedBlkDriver } from './blk-zoned-driver.js';
import { MemoryBackend } from './memory-backend.js';

const T = { timeout: 20_000 };
const ZONE = 64;
const SECTORS = 8 * ZONE;
const fill = (n: number, v: number): Uint8Array => new Uint8Array(n).fill(v);

/** A blk device that offers DISCARD beside ZONED whatever its model (the spec forbids it for HM). */
function discardOffering(dev: BlkDevice): BlkDevice {
  Object.defineProperty(dev, 'offeredFeatures', { value: dev.offeredFeatures | BlkF.DISCARD });
  return dev;
}

async function negotiated(dev: BlkDevice, driverType: DeviceDriverInfo = ZonedBlkDriver.zonedType): Promise<bigint> {
  const conn = connectInProcess(dev, {});
  const drv = await VirtioDriver.init(conn.transport, { wantedFeatures: ~0n & ((1n << 64n) - 1n), driverType, dma: conn.dma });
  const f = drv.features;
  drv.reset();
  return f;
}

describe('ZonedBlkDriver (5.2.6 driver rules)', T, () => {
  it('driver/blk/5: the plain blk driver never negotiates ZONED; the zoned driver, able to drive every model, does', async () => {
    assert.equal(BLK_DRIVER_FEATURES & BlkF.ZONED, 0n);
    assert.notEqual(BLK_ZONED_DRIVER_FEATURES & BlkF.ZONED, 0n);
    const hm = () => new BlkDevice(new MemoryBackend(SECTORS * 512), { zoned: { model: BlkZonedModel.HM, zoneSectors: ZONE } });
    // The plain driver leaves ZONED out, and a host-managed device then refuses FEATURES_OK (device/blk/6).
    await assert.rejects(negotiated(hm(), BlkDriver.type), (e: unknown) => e instanceof VirtioError && e.code === ErrorCode.FEATURES_REJECTED);
    const ha = new BlkDevice(new MemoryBackend(SECTORS * 512), { zoned: { model: BlkZonedModel.HA, zoneSectors: ZONE } });
    assert.equal((await negotiated(ha, BlkDriver.type)) & BlkF.ZONED, 0n, 'a host-aware device works as a regular one');
    assert.notEqual((await negotiated(hm())) & BlkF.ZONED, 0n);
  });

  it('driver/blk/6, driver/blk/7: DISCARD is not accepted from a host-managed device; from a host-aware one ZONED and DISCARD are accepted independently', async () => {
    const dev = (model: typeof BlkZonedModel.HM | typeof BlkZonedModel.HA) => discardOffering(new BlkDevice(new MemoryBackend(SECTORS * 512), { zoned: { model, zoneSectors: ZONE } }));
    const hm = await negotiated(dev(BlkZonedModel.HM));
    assert.notEqual(hm & BlkF.ZONED, 0n);
    assert.equal(hm & BlkF.DISCARD, 0n, 'driver/blk/6');
    const ha = await negotiated(dev(BlkZonedModel.HA));
    assert.equal(ha & (BlkF.ZONED | BlkF.DISCARD), BlkF.ZONED | BlkF.DISCARD, 'driver/blk/7');
  });

  it('driver/blk/26, driver/blk/29, driver/blk/30: zone addresses are zone starts; RESET_ALL carries sector 0', async () => {
    const dev = new BlkDevice(new MemoryBackend(SECTORS * 512), { zoned: { model: BlkZonedModel.HM, zoneSectors: ZONE } });
    const sectors: number[] = [];
    const lb = await createLoopback(dev);
    try {
      const drv = new ZonedBlkDriver(lb.context);
      // Watch the sectors the driver puts in its zone requests.
      const submit = (drv as unknown as { submit: (t: number, s: number, ...r: unknown[]) => Promise<unknown> }).submit.bind(drv);
      (drv as unknown as { submit: unknown }).submit = (t: number, s: number, ...r: unknown[]) => {
        sectors.push(t, s);
        return submit(t, s, ...r);
      };
      for (const op of [drv.openZone, drv.closeZone, drv.finishZone, drv.resetZone]) {
        await assert.rejects(op.call(drv, ZONE + 1), (e: unknown) => e instanceof VirtioError && e.code === ErrorCode.INVALID_ARGUMENT);
        await assert.rejects(op.call(drv, SECTORS), VirtioError);
      }
      assert.deepEqual(sectors, [], 'nothing reached the device');
      await drv.openZone(ZONE);
      await drv.finishZone(ZONE);
      await drv.resetZone(ZONE);
      await drv.resetAllZones();
      assert.deepEqual(sectors, [BlkReqType.ZONE_OPEN, ZONE, BlkReqType.ZONE_FINISH, ZONE, BlkReqType.ZONE_RESET, ZONE, BlkReqType.ZONE_RESET_ALL, 0]);
    } finally {
      await lb.close();
    }
  });

  it('driver/blk/27, driver/blk/28: a report starts at any sector of a zone within the capacity', async () => {
    const dev = new BlkDevice(new MemoryBackend(SECTORS * 512), { zoned: { model: BlkZonedModel.HM, zoneSectors: ZONE } });
    const lb = await createLoopback(dev);
    try {
      const drv = new ZonedBlkDriver(lb.context);
      const z = await drv.reportZones(2 * ZONE + 13, 2);
      assert.deepEqual(z.map((x) => x.start), [2 * ZONE, 3 * ZONE]);
      await assert.rejects(drv.reportZones(SECTORS, 1), VirtioError);
      await assert.rejects(drv.reportZones(-1, 1), VirtioError);
    } finally {
      await lb.close();
    }
  });

  it('driver/blk/31..34: appends at zone starts, sized in write_granularity up to max_append_sectors, within the zone capacity; append_sector read back', async () => {
    const dev = new BlkDevice(new MemoryBackend(SECTORS * 512), { zoned: { model: BlkZonedModel.HM, zoneSectors: ZONE, zoneCapacitySectors: 32, maxAppendSectors: 16, writeGranularity: 2048 } });
    const lb = await createLoopback(dev);
    try {
      const drv = new ZonedBlkDriver(lb.context);
      await drv.reportZones(0, 8); // the driver learns the zones
      const bad = (p: Promise<unknown>) => assert.rejects(p, (e: unknown) => e instanceof VirtioError && e.code === ErrorCode.INVALID_ARGUMENT);
      await bad(drv.appendZone(ZONE + 4, fill(2048, 1))); // driver/blk/31
      await bad(drv.appendZone(ZONE, fill(1024, 1))); // driver/blk/32: not a multiple of 2048
      await bad(drv.appendZone(ZONE, fill(17 * 512, 1))); // driver/blk/32: past max_append_sectors
      assert.equal(dev.zoned!.zoneState(1), BlkZoneState.EMPTY, 'the device saw none of them');
      assert.equal(await drv.appendZone(ZONE, fill(8192, 1)), ZONE, 'driver/blk/33: append_sector');
      assert.equal(await drv.appendZone(ZONE, fill(8192, 2)), ZONE + 16);
      // driver/blk/34: the zone capacity (32 sectors) is used up now: FULL.
      await bad(drv.appendZone(ZONE, fill(2048, 3)));
      // Writes to sequential zones: granularity-aligned start and size, within the capacity.
      await bad(drv.write(2 * ZONE + 1, fill(2048, 1)));
      await bad(drv.write(2 * ZONE, fill(1536, 1)));
      await bad(drv.write(2 * ZONE, fill(33 * 512 + 512 * 3, 1)));
      assert.equal(dev.zoned!.zoneState(2), BlkZoneState.EMPTY);
      await drv.write(2 * ZONE, fill(4096, 4));
      assert.deepEqual(await drv.read(2 * ZONE, 4096), fill(4096, 4));
      // A device error still comes back as a BlkRequestError (the driver cannot know everything).
      await assert.rejects(drv.write(2 * ZONE, fill(2048, 1)), (e: unknown) => e instanceof BlkRequestError && e.status === BlkStatus.ZONE_UNALIGNED_WP);
    } finally {
      await lb.close();
    }
  });
});
