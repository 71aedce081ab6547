/**
 * Zoned block devices (5.2.6, VIRTIO_BLK_F_ZONED), device side: the zoned characteristics in the
 * configuration space, every zone request and state transition, the resource limits, the error
 * statuses, and unwritten data. Requests are sent raw (BlkDriver.raw and hand-built chains
 * through the test pair) so the device's answer to each bad request is seen as it is.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createLoopback, type Loopback } from '../../testing/loopback.js';
import { connectInProcess } from '../../transport/in-process/in-process-transport.js';
import { BlkConfig, BlkF, BlkReqType, BlkStatus, BlkZonedModel } from '../../spec/blk.js';
import { BlkZoneDescriptor, BlkZoneReport, BlkZoneState, BlkZoneType } from '../../spec/blk-zoned.js';
import { F } from '../../spec/features.js';
import { Status } from '../../spec/status.js';
import { BlkDevice, type BlkDeviceOptions } from './blk-device.js';
import { BlkDriver } from './blk-driver.js';
import { MemoryBackend } from './memory-backend.js';
import type { ZonedOptions } from './zoned-model.js';
import { ZonedBlkDriver } from './blk-zoned-driver.js';

const T = { timeout: 20_000 };
const ZONE = 64; // sectors (32 KiB)
const ZONES = 8;
const SECTORS = ZONE * ZONES;

function zonedDevice(z: Partial<ZonedOptions> = {}, o: BlkDeviceOptions = {}): { dev: BlkDevice; backend: MemoryBackend } {
  const backend = new MemoryBackend(SECTORS * 512);
  const dev = new BlkDevice(backend, { ...o, zoned: { model: BlkZonedModel.HM, zoneSectors: ZONE, ...z } });
  return { dev, backend };
}

async function pair(z: Partial<ZonedOptions> = {}, o: BlkDeviceOptions = {}, packed = false): Promise<{ lb: Loopback; drv: ZonedBlkDriver; dev: BlkDevice; backend: MemoryBackend }> {
  const { dev, backend } = zonedDevice(z, o);
  const lb = await createLoopback(dev, { packed, queueSize: 64 });
  return { lb, drv: new ZonedBlkDriver(lb.context), dev, backend };
}

const fill = (n: number, v: number): Uint8Array => new Uint8Array(n).fill(v);

/** A raw zone request: the status (and, for a report, the data). */
async function zoneReq(drv: BlkDriver, type: number, sector: number, inLen = 0): Promise<number> {
  return (await drv.raw(type, sector, null, inLen)).status;
}

/** The zone's state and write pointer from a raw report of one zone. */
async function zoneAt(drv: BlkDriver, zone: number): Promise<{ state: number; wp: number; type: number; cap: number }> {
  const r = await drv.raw(BlkReqType.ZONE_REPORT, zone * ZONE, null, BlkZoneReport.HEADER_SIZE + BlkZoneDescriptor.SIZE);
  assert.equal(r.status, BlkStatus.OK);
  const v = new DataView(r.data.buffer, r.data.byteOffset);
  const d = BlkZoneReport.HEADER_SIZE;
  return {
    cap: Number(v.getBigUint64(d + BlkZoneDescriptor.Z_CAP, true)),
    wp: Number(v.getBigUint64(d + BlkZoneDescriptor.Z_WP, true)),
    type: v.getUint8(d + BlkZoneDescriptor.Z_TYPE),
    state: v.getUint8(d + BlkZoneDescriptor.Z_STATE),
  };
}

describe('virtio-blk zoned device (5.2.6)', T, () => {
  it('device/blk/4, device/blk/5: ZONED offered by a zoned device only, and never on a legacy interface', () => {
    const plain = new BlkDevice(new MemoryBackend(SECTORS * 512));
    assert.equal(plain.offeredFeatures & BlkF.ZONED, 0n);
    const { dev } = zonedDevice();
    assert.notEqual(dev.offeredFeatures & BlkF.ZONED, 0n);
    // Through the core: modern offers it, legacy does not.
    const modern = connectInProcess(zonedDevice().dev, { legacy: false });
    assert.notEqual(modern.core.deviceFeatures() & BlkF.ZONED, 0n);
    const legacy = connectInProcess(zonedDevice().dev, { legacy: true });
    assert.equal(legacy.core.deviceFeatures() & BlkF.ZONED, 0n, 'device/blk/5');
  });

  it('device/blk/7, device/blk/8, device/blk/11, device/blk/12, device/blk/14: the zoned characteristics once ZONED is accepted; no DISCARD offered with host-managed zones', async () => {
    const { lb, drv } = await pair({ maxOpenZones: 3, maxActiveZones: 4, maxAppendSectors: 32, writeGranularity: 4096 });
    try {
      assert.notEqual(lb.driver.features & BlkF.ZONED, 0n);
      assert.equal(lb.driver.features & BlkF.DISCARD, 0n, 'no DISCARD on a host-managed zoned device');
      assert.deepEqual(drv.zoned, { zoneSectors: ZONE, maxOpenZones: 3, maxActiveZones: 4, maxAppendSectors: 32, writeGranularity: 4096, model: BlkZonedModel.HM });
      assert.equal(drv.zoneCount, ZONES, 'device/blk/10: (capacity + zone_sectors - 1) / zone_sectors');
    } finally {
      await lb.close();
    }
  });

  it('device/blk/13: max_append_sectors never exceeds seg_max * size_max (the default fits; a larger one is refused)', () => {
    const backend = new MemoryBackend(SECTORS * 512);
    const dev = new BlkDevice(backend, { queueSize: 8, sizeMax: 4096, zoned: { model: BlkZonedModel.HM, zoneSectors: ZONE } });
    assert.ok(dev.zoned!.maxAppendSectors * 512 <= dev.segMax * dev.sizeMax, `${dev.zoned!.maxAppendSectors} sectors`);
    assert.throws(() => new BlkDevice(backend, { queueSize: 8, sizeMax: 4096, zoned: { model: BlkZonedModel.HM, zoneSectors: ZONE, maxAppendSectors: 64 } }), /seg_max \* size_max/);
  });

  it('device/blk/9, device/blk/10: the last zone may be smaller; a report describes every zone with its capacity', async () => {
    const backend = new MemoryBackend((SECTORS + 16) * 512);
    const dev = new BlkDevice(backend, { zoned: { model: BlkZonedModel.HM, zoneSectors: ZONE, zoneCapacitySectors: 48, conventionalZones: 1 } });
    const lb = await createLoopback(dev);
    try {
      const drv = new ZonedBlkDriver(lb.context);
      assert.equal(drv.zoneCount, ZONES + 1);
      const zones = await drv.reportZones(0, 100);
      assert.equal(zones.length, ZONES + 1);
      assert.deepEqual(zones[0], { start: 0, capacity: 48, writePointer: ZONE, type: BlkZoneType.CONV, state: BlkZoneState.NOT_WP });
      assert.deepEqual(zones[1], { start: ZONE, capacity: 48, writePointer: ZONE, type: BlkZoneType.SWR, state: BlkZoneState.EMPTY });
      assert.deepEqual(zones[ZONES], { start: ZONES * ZONE, capacity: 16, writePointer: ZONES * ZONE, type: BlkZoneType.SWR, state: BlkZoneState.EMPTY }, 'a 16-sector last zone');
      // driver/blk/27, /28: any sector of the starting zone; nr_zones counts whole descriptors.
      const r = await drv.raw(BlkReqType.ZONE_REPORT, 3 * ZONE + 5, null, BlkZoneReport.HEADER_SIZE + 2 * BlkZoneDescriptor.SIZE + 10);
      const v = new DataView(r.data.buffer);
      assert.equal(v.getBigUint64(0, true), 2n);
      assert.equal(v.getBigUint64(BlkZoneReport.HEADER_SIZE + BlkZoneDescriptor.Z_START, true), BigInt(3 * ZONE));
      // A report from past the capacity is a zone error; a buffer too small for the header an I/O error.
      assert.equal(await zoneReq(drv, BlkReqType.ZONE_REPORT, SECTORS + 16, 128), BlkStatus.ZONE_INVALID_CMD);
      assert.equal(await zoneReq(drv, BlkReqType.ZONE_REPORT, 0, 32), BlkStatus.IOERR);
    } finally {
      await lb.close();
    }
  });

  it('device/blk/6: a host-managed device refuses FEATURES_OK without ZONED; a host-aware one goes on as a regular device with zoned fields 0', async () => {
    for (const model of [BlkZonedModel.HM, BlkZonedModel.HA] as const) {
      const conn = connectInProcess(zonedDevice({ model }).dev, {});
      const t = conn.transport;
      t.setStatus(Status.ACKNOWLEDGE | Status.DRIVER);
      t.setDriverFeatures(F.VERSION_1 | BlkF.FLUSH);
      t.setStatus(Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK);
      const ok = (t.getStatus() & Status.FEATURES_OK) !== 0;
      assert.equal(ok, model === BlkZonedModel.HA, `model ${model}`);
      const cfg = new Uint8Array(BlkConfig.SIZE - BlkConfig.ZONED_ZONE_SECTORS);
      t.readConfig(BlkConfig.ZONED_ZONE_SECTORS, cfg);
      assert.ok(cfg.every((b) => b === 0), 'zoned fields read 0 without ZONED');
    }
    // With ZONED accepted, a plain BlkDriver refuses to attach (driver/blk/5).
    const lb = await createLoopback(zonedDevice().dev);
    try {
      assert.throws(() => new BlkDriver(lb.context), /driver\/blk\/5/);
    } finally {
      await lb.close();
    }
  });

  it('device/blk/30: without ZONED negotiated every zone request is UNSUPP', async () => {
    const lb = await createLoopback(zonedDevice({ model: BlkZonedModel.HA }).dev, { refuseFeatures: BlkF.ZONED });
    try {
      const drv = new BlkDriver(lb.context);
      for (const t of [BlkReqType.ZONE_OPEN, BlkReqType.ZONE_CLOSE, BlkReqType.ZONE_FINISH, BlkReqType.ZONE_RESET, BlkReqType.ZONE_RESET_ALL]) {
        assert.equal(await zoneReq(drv, t, 0), BlkStatus.UNSUPP, `type ${t}`);
      }
      assert.equal(await zoneReq(drv, BlkReqType.ZONE_REPORT, 0, 128), BlkStatus.UNSUPP);
      assert.equal((await drv.raw(BlkReqType.ZONE_APPEND, 0, fill(512, 1), 0)).status, BlkStatus.UNSUPP);
      // As a regular device it reads and writes anywhere.
      await drv.write(5, fill(512, 7));
      assert.deepEqual(await drv.read(5, 512), fill(512, 7));
    } finally {
      await lb.close();
    }
  });

  for (const packed of [false, true]) {
    it(`${packed ? 'packed' : 'split'}: device/blk/44, device/blk/40, device/blk/43: writes to an SWR zone go at the write pointer, within the zone and its capacity; IOPEN then FULL`, async () => {
      const { lb, drv } = await pair({ zoneCapacitySectors: 48 }, {}, packed);
      try {
        const z1 = ZONE;
        assert.equal((await drv.raw(BlkReqType.OUT, z1 + 8, fill(4096, 1), 0)).status, BlkStatus.ZONE_UNALIGNED_WP, 'not at the write pointer');
        assert.equal((await drv.raw(BlkReqType.OUT, z1, fill(4096, 1), 0)).status, BlkStatus.OK);
        assert.deepEqual(await zoneAt(drv, 1), { state: BlkZoneState.IOPEN, wp: z1 + 8, type: BlkZoneType.SWR, cap: 48 });
        // From the write pointer across into the next zone (device/blk/43), and past the zone capacity (device/blk/40).
        assert.equal((await drv.raw(BlkReqType.OUT, z1 + 8, fill(ZONE * 512, 1), 0)).status, BlkStatus.ZONE_INVALID_CMD, 'across two zones');
        assert.equal((await drv.raw(BlkReqType.OUT, z1 + 8, fill(48 * 512, 1), 0)).status, BlkStatus.ZONE_INVALID_CMD, 'past z_cap');
        assert.equal((await drv.raw(BlkReqType.OUT, z1 + 8, fill(40 * 512, 2), 0)).status, BlkStatus.OK, 'up to z_cap');
        assert.equal((await zoneAt(drv, 1)).state, BlkZoneState.FULL, 'reaching the capacity fills the zone');
        assert.equal((await drv.raw(BlkReqType.OUT, z1 + 48, fill(512, 3), 0)).status, BlkStatus.ZONE_INVALID_CMD, 'a full zone takes no write');
        // Reads of an SWR zone stay in the zone (device/blk/43); within it they are fine.
        assert.equal((await drv.raw(BlkReqType.IN, 2 * ZONE - 4, null, 4096)).status, BlkStatus.ZONE_INVALID_CMD);
        const back = await drv.read(z1, 4096);
        assert.deepEqual(back, fill(4096, 1));
      } finally {
        await lb.close();
      }
    });
  }

  it('device/blk/48, device/blk/49: sectors past the write pointer read as zeros (the device-specific pattern), also after a reset and a finish, whatever the backend holds', async () => {
    const { lb, drv, backend } = await pair();
    try {
      // The backing store holds old data everywhere.
      backend.write(0, fill(SECTORS * 512, 0xee), 0, SECTORS * 512);
      assert.deepEqual(await drv.read(ZONE, 1024), new Uint8Array(1024), 'an empty zone reads zeros');
      await drv.write(ZONE, fill(1024, 5));
      const r = await drv.read(ZONE, 4096);
      assert.deepEqual(r.subarray(0, 1024), fill(1024, 5));
      assert.ok(r.subarray(1024).every((b) => b === 0), 'past the write pointer: zeros');
      assert.equal(await zoneReq(drv, BlkReqType.ZONE_FINISH, ZONE), BlkStatus.OK);
      assert.ok((await drv.read(ZONE + 2, 2048)).every((b) => b === 0), 'finish: the rest stays unwritten');
      assert.equal(await zoneReq(drv, BlkReqType.ZONE_RESET, ZONE), BlkStatus.OK);
      assert.ok((await drv.read(ZONE, 4096)).every((b) => b === 0), 'reset: all unwritten');
    } finally {
      await lb.close();
    }
  });

  it('device/blk/33..37: OPEN, CLOSE, FINISH, RESET follow the state machine; a transition that cannot be made is ZONE_INVALID_CMD and changes nothing', async () => {
    const { lb, drv } = await pair();
    try {
      const z = 2 * ZONE;
      assert.equal(await zoneReq(drv, BlkReqType.ZONE_CLOSE, z), BlkStatus.ZONE_INVALID_CMD, 'close of an empty zone');
      assert.equal(await zoneReq(drv, BlkReqType.ZONE_OPEN, z), BlkStatus.OK);
      assert.equal((await zoneAt(drv, 2)).state, BlkZoneState.EOPEN);
      assert.equal(await zoneReq(drv, BlkReqType.ZONE_OPEN, z), BlkStatus.OK, 'open of an open zone');
      assert.equal(await zoneReq(drv, BlkReqType.ZONE_CLOSE, z), BlkStatus.OK);
      assert.equal((await zoneAt(drv, 2)).state, BlkZoneState.EMPTY, 'closing an explicitly open zone with wp at start: EMPTY');
      await drv.write(z, fill(512, 1));
      assert.equal((await zoneAt(drv, 2)).state, BlkZoneState.IOPEN);
      assert.equal(await zoneReq(drv, BlkReqType.ZONE_OPEN, z), BlkStatus.OK);
      assert.equal((await zoneAt(drv, 2)).state, BlkZoneState.EOPEN, 'IOPEN -> EOPEN');
      assert.equal(await zoneReq(drv, BlkReqType.ZONE_CLOSE, z), BlkStatus.OK);
      assert.equal((await zoneAt(drv, 2)).state, BlkZoneState.CLOSED);
      assert.equal(await zoneReq(drv, BlkReqType.ZONE_CLOSE, z), BlkStatus.OK, 'close of a closed zone');
      await drv.write(z + 1, fill(512, 1));
      assert.equal((await zoneAt(drv, 2)).state, BlkZoneState.IOPEN, 'CLOSED -> IOPEN by a write');
      assert.equal(await zoneReq(drv, BlkReqType.ZONE_FINISH, z), BlkStatus.OK);
      assert.equal((await zoneAt(drv, 2)).state, BlkZoneState.FULL);
      assert.equal(await zoneReq(drv, BlkReqType.ZONE_FINISH, z), BlkStatus.OK, 'finish of a full zone');
      assert.equal(await zoneReq(drv, BlkReqType.ZONE_OPEN, z), BlkStatus.ZONE_INVALID_CMD, 'open of a full zone');
      assert.equal((await zoneAt(drv, 2)).state, BlkZoneState.FULL, 'unchanged');
      assert.equal(await zoneReq(drv, BlkReqType.ZONE_RESET, z), BlkStatus.OK);
      assert.deepEqual(await zoneAt(drv, 2), { state: BlkZoneState.EMPTY, wp: z, type: BlkZoneType.SWR, cap: ZONE });
      assert.equal(await zoneReq(drv, BlkReqType.ZONE_RESET, z), BlkStatus.OK, 'reset of an empty zone');
      // A sector that is not a zone's first one.
      assert.equal(await zoneReq(drv, BlkReqType.ZONE_OPEN, z + 1), BlkStatus.ZONE_INVALID_CMD);
      // RESET_ALL: every zone in IOPEN, EOPEN, CLOSED or FULL back to EMPTY.
      await drv.write(0, fill(512, 1));
      assert.equal(await zoneReq(drv, BlkReqType.ZONE_OPEN, ZONE), BlkStatus.OK);
      await drv.write(3 * ZONE, fill(512, 1));
      assert.equal(await zoneReq(drv, BlkReqType.ZONE_CLOSE, 3 * ZONE), BlkStatus.OK);
      assert.equal(await zoneReq(drv, BlkReqType.ZONE_FINISH, 4 * ZONE), BlkStatus.OK);
      assert.equal(await zoneReq(drv, BlkReqType.ZONE_RESET_ALL, 0), BlkStatus.OK);
      for (let i = 0; i < ZONES; i++) assert.equal((await zoneAt(drv, i)).state, BlkZoneState.EMPTY, `zone ${i}`);
    } finally {
      await lb.close();
    }
  });

  it('device/blk/31: zone management of a conventional zone is ZONE_INVALID_CMD; reads and writes there are free', async () => {
    const { lb, drv } = await pair({ conventionalZones: 2 });
    try {
      for (const t of [BlkReqType.ZONE_OPEN, BlkReqType.ZONE_CLOSE, BlkReqType.ZONE_FINISH, BlkReqType.ZONE_RESET]) {
        assert.equal(await zoneReq(drv, t, ZONE), BlkStatus.ZONE_INVALID_CMD, `type ${t}`);
      }
      await drv.write(ZONE + 17, fill(1024, 9)); // anywhere in a conventional zone
      await drv.write(3, fill(512, 8));
      assert.deepEqual(await drv.read(ZONE + 17, 1024), fill(1024, 9));
      assert.deepEqual(await drv.read(0, 4 * 512), Uint8Array.from([...new Uint8Array(3 * 512), ...fill(512, 8)]));
      // A write from a conventional zone into a sequential one is refused.
      assert.equal((await drv.raw(BlkReqType.OUT, 2 * ZONE - 1, fill(1024, 1), 0)).status, BlkStatus.ZONE_INVALID_CMD);
    } finally {
      await lb.close();
    }
  });

  it('device/blk/32, /39, /41, /42: ZONE_APPEND to an SWR zone start returns where the data went; other targets and sizes are refused', async () => {
    const { lb, drv } = await pair({ maxAppendSectors: 16, conventionalZones: 1 });
    try {
      const z = 2 * ZONE;
      assert.equal(await drv.appendZone(z, fill(1024, 1)), z);
      assert.equal(await drv.appendZone(z, fill(2048, 2)), z + 2, 'device/blk/41: append_sector');
      assert.deepEqual(await drv.read(z, 3072), Uint8Array.from([...fill(1024, 1), ...fill(2048, 2)]));
      const raw = async (sector: number, len: number): Promise<number> => (await drv.raw(BlkReqType.ZONE_APPEND, sector, fill(len, 1), 0)).status;
      // These go through the device raw: the layout is wrong (no append_sector), so IOERR.
      assert.equal(await raw(z, 512), BlkStatus.IOERR);
      const za = zoneAppendRaw(lb, drv);
      assert.equal(await za(z + 1, 512), BlkStatus.ZONE_INVALID_CMD, 'device/blk/39: not the zone start');
      assert.equal(await za(0, 512), BlkStatus.ZONE_INVALID_CMD, 'device/blk/32: a conventional zone');
      assert.equal(await za(z, 17 * 512), BlkStatus.ZONE_INVALID_CMD, 'device/blk/42: past max_append_sectors (non-zero)');
      assert.equal(await za(z, 16 * 512), BlkStatus.OK);
    } finally {
      await lb.close();
    }
    const noAppend = await pair({ maxAppendSectors: 0 });
    try {
      const za = zoneAppendRaw(noAppend.lb, noAppend.drv);
      assert.equal(await za(ZONE, 512), BlkStatus.UNSUPP, 'device/blk/42: max_append_sectors 0');
    } finally {
      await noAppend.lb.close();
    }
  });

  it('device/blk/34, device/blk/38, device/blk/45: open and active limits, an implicitly open zone closed to make room, and the resource statuses', async () => {
    const { lb, drv } = await pair({ maxOpenZones: 2, maxActiveZones: 3 });
    try {
      await drv.write(0, fill(512, 1)); // zone 0 IOPEN
      await drv.write(ZONE, fill(512, 1)); // zone 1 IOPEN (2 open, 2 active)
      // A third implicit open: the device closes an IOPEN zone to stay within max_open_zones.
      await drv.write(2 * ZONE, fill(512, 1));
      const states = [await zoneAt(drv, 0), await zoneAt(drv, 1), await zoneAt(drv, 2)].map((s) => s.state);
      assert.equal(states.filter((s) => s === BlkZoneState.IOPEN).length, 2);
      assert.equal(states.filter((s) => s === BlkZoneState.CLOSED).length, 1);
      // Three active now: a fourth zone cannot become active (ACTIVE_RESOURCE), the state stays EMPTY.
      assert.equal((await drv.raw(BlkReqType.OUT, 3 * ZONE, fill(512, 1), 0)).status, BlkStatus.ZONE_ACTIVE_RESOURCE);
      assert.equal(await zoneReq(drv, BlkReqType.ZONE_OPEN, 3 * ZONE), BlkStatus.ZONE_ACTIVE_RESOURCE);
      assert.equal((await zoneAt(drv, 3)).state, BlkZoneState.EMPTY);
      // Two explicitly open zones: nothing implicitly open can be closed, so OPEN_RESOURCE.
      for (const z of [0, 1, 2]) if ((await zoneAt(drv, z)).state !== BlkZoneState.CLOSED) assert.equal(await zoneReq(drv, BlkReqType.ZONE_OPEN, z * ZONE), BlkStatus.OK);
      const closed = [0, 1, 2].find((z) => states[z] === BlkZoneState.CLOSED)!;
      assert.equal(await zoneReq(drv, BlkReqType.ZONE_OPEN, closed * ZONE), BlkStatus.ZONE_OPEN_RESOURCE);
      assert.equal((await zoneAt(drv, closed)).state, BlkZoneState.CLOSED, 'unchanged');
      assert.equal((await drv.raw(BlkReqType.OUT, closed * ZONE + 1, fill(512, 1), 0)).status, BlkStatus.ZONE_OPEN_RESOURCE);
      // Both limits at once: ACTIVE_RESOURCE wins.
      assert.equal(await zoneReq(drv, BlkReqType.ZONE_OPEN, 5 * ZONE), BlkStatus.ZONE_ACTIVE_RESOURCE);
      // Finishing an open zone frees both resources.
      const open = [0, 1, 2].find((z) => z !== closed)!;
      assert.equal(await zoneReq(drv, BlkReqType.ZONE_FINISH, open * ZONE), BlkStatus.OK);
      assert.equal(await zoneReq(drv, BlkReqType.ZONE_OPEN, 5 * ZONE), BlkStatus.OK);
    } finally {
      await lb.close();
    }
  });

  it('device/blk/46, device/blk/47: a read-only zone takes no write or append; an offline zone takes no request at all', async () => {
    const { lb, drv, dev } = await pair();
    try {
      await drv.write(ZONE, fill(1024, 4));
      dev.zoned!.fail(1, BlkZoneState.RDONLY);
      dev.zoned!.fail(2, BlkZoneState.OFFLINE);
      assert.deepEqual(await drv.read(ZONE, 1024), fill(1024, 4), 'a read-only zone is still read');
      assert.equal((await drv.raw(BlkReqType.OUT, ZONE + 2, fill(512, 1), 0)).status, BlkStatus.ZONE_INVALID_CMD);
      assert.equal(await zoneAppendRaw(lb, drv)(ZONE, 512), BlkStatus.ZONE_INVALID_CMD);
      assert.equal(await zoneReq(drv, BlkReqType.ZONE_RESET, ZONE), BlkStatus.ZONE_INVALID_CMD);
      assert.equal((await drv.raw(BlkReqType.IN, 2 * ZONE, null, 512)).status, BlkStatus.ZONE_INVALID_CMD);
      assert.equal((await drv.raw(BlkReqType.OUT, 2 * ZONE, fill(512, 1), 0)).status, BlkStatus.ZONE_INVALID_CMD);
      for (const t of [BlkReqType.ZONE_OPEN, BlkReqType.ZONE_CLOSE, BlkReqType.ZONE_FINISH, BlkReqType.ZONE_RESET]) {
        assert.equal(await zoneReq(drv, t, 2 * ZONE), BlkStatus.ZONE_INVALID_CMD, `offline, type ${t}`);
      }
      const zones = await drv.reportZones(0, ZONES);
      assert.deepEqual(zones.map((z) => z.state).slice(0, 3), [BlkZoneState.EMPTY, BlkZoneState.RDONLY, BlkZoneState.OFFLINE]);
      // RESET_ALL leaves them as they are.
      assert.equal(await zoneReq(drv, BlkReqType.ZONE_RESET_ALL, 0), BlkStatus.OK);
      assert.equal((await zoneAt(drv, 2)).state, BlkZoneState.OFFLINE);
    } finally {
      await lb.close();
    }
  });

  it('host-aware (SWP zones): random writes are taken and move the write pointer forward', async () => {
    const { lb, drv } = await pair({ model: BlkZonedModel.HA });
    try {
      assert.notEqual(lb.driver.features & BlkF.ZONED, 0n);
      await drv.write(ZONE + 8, fill(512, 1));
      const z = await zoneAt(drv, 1);
      assert.equal(z.type, BlkZoneType.SWP);
      assert.equal(z.state, BlkZoneState.IOPEN);
      assert.equal(z.wp, ZONE + 9);
      await drv.write(ZONE, fill(512, 2));
      assert.equal((await zoneAt(drv, 1)).wp, ZONE + 9);
      assert.deepEqual(await drv.read(ZONE, 512), fill(512, 2));
    } finally {
      await lb.close();
    }
  });
});

/**
 * A ZONE_APPEND with the virtio_blk_req_za layout but any sector and length, without the
 * driver's checks: resolves with the status.
 */
function zoneAppendRaw(lb: Loopback, drv: ZonedBlkDriver): (sector: number, len: number) => Promise<number> {
  return async (sector, len) => {
    const unchecked = drv as unknown as { rawAppend(sector: number, data: Uint8Array): Promise<number> };
    try {
      await unchecked.rawAppend(sector, fill(len, 1));
      return BlkStatus.OK;
    } catch (e) {
      const status = (e as { status?: number }).status;
      if (typeof status !== 'number') throw e;
      return status;
    }
  };
}

