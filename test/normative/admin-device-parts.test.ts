/**
 * Device parts (admin-cmds-device-parts.tex, 2.12.1.5): the device parts commands served by
 * DevicePartsHandler on blk member devices (DeviceCore) serving a real BlkDriver in process, and
 * the owner's DevicePartsDriver. The commands reach the handler through a loopback sender with
 * the dispatcher's checks (test/support/device-parts-rig.ts).
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { AdminStatus, AdminStatusQualifier } from '../../src/admin/admin-command-handler.js';
import {
  DEV_MODE_F_STOPPED,
  DEV_PART_F_OPTIONAL,
  type DevicePart,
  DevicePartType,
  DevicePartsGetType,
  DevicePartsMetadataType,
  DevicePartsOpcode,
  PCI_COMMON_CFG_NUM_QUEUES,
  RESOURCE_OBJ_CMD_HDR_SIZE,
  RESOURCE_OBJ_DEV_PARTS,
  decodeFeatures,
  decodePartList,
  decodeVqCfg,
  encodeFeatures,
  encodePartHeader,
  encodePartList,
  encodeResourceObjectRef,
  encodedPartsSize,
  partOrderRank,
} from '../../src/admin/device-parts/device-part-format.js';
import { migrateMember } from '../../src/admin/device-parts/device-parts-driver.js';
import { captureMemberParts } from '../../src/admin/device-parts/member-parts.js';
import { ErrorCode, VirtioError } from '../../src/errors.js';
import { Status } from '../../src/spec/status.js';
import { type MigrationRig, RIG_GET_OBJECT, RIG_SET_OBJECT, createMigrationRig } from '../support/device-parts-rig.js';

const SECTOR = 512;
const T = { timeout: 20_000 };

const from = { memberId: 1n, objectId: RIG_GET_OBJECT };
const to = { memberId: 2n, objectId: RIG_SET_OBJECT };

function pattern(seed: number, len = SECTOR): Uint8Array {
  const out = new Uint8Array(len);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** Raw command data: resource object header, then `rest`. */
function objData(objectId: number, rest: Uint8Array = new Uint8Array(0)): Uint8Array {
  const d = new Uint8Array(RESOURCE_OBJ_CMD_HDR_SIZE + rest.length);
  encodeResourceObjectRef({ type: RESOURCE_OBJ_DEV_PARTS, id: objectId }, d);
  d.set(rest, RESOURCE_OBJ_CMD_HDR_SIZE);
  return d;
}

function typed(objectId: number, type: number, list: Uint8Array = new Uint8Array(0)): Uint8Array {
  const rest = new Uint8Array(8 + list.length);
  rest[0] = type;
  rest.set(list, 8);
  return objData(objectId, rest);
}

function setData(objectId: number, parts: readonly DevicePart[]): Uint8Array {
  const list = new Uint8Array(encodedPartsSize(parts));
  encodePartList(parts, list);
  return objData(objectId, list);
}

const usedIdx = (rig: MigrationRig, core = rig.source): number => rig.memory.readU16(core.queueRegisters(0)!.deviceAddr + 2);

let rig: MigrationRig | null = null;
afterEach(async () => {
  await rig?.close();
  rig = null;
});

async function running(packed = false): Promise<MigrationRig> {
  rig = await createMigrationRig({ packed });
  for (let s = 0; s < 8; s++) await rig.blk.write(s, pattern(s));
  return rig;
}

describe('device parts: migrating a blk member serving requests', T, () => {
  for (const packed of [false, true]) {
    it(`${packed ? 'packed' : 'split'} rings: a member with requests in flight is stopped, its parts read and set on a fresh member, which resumes the same rings: no request lost or duplicated, data intact (device/admin-cmds-device-parts/8 device/admin-cmds-device-parts/9 device/admin-cmds-device-parts/5)`, async () => {
      const r = await running(packed);
      const opsBefore = r.backend.reads + r.backend.writes;
      r.backend.holding = true;
      // In flight on the source when the stop arrives: reads held by the backend, writes done.
      const first: Promise<unknown>[] = [];
      for (let s = 0; s < 4; s++) first.push(r.blk.read(s, SECTOR).then((d) => assert.deepEqual(d, pattern(s))));
      for (let s = 8; s < 12; s++) first.push(r.blk.write(s, pattern(s)));
      await new Promise<void>((resolve) => setImmediate(resolve));
      assert.equal(r.backend.heldCount, 4, 'four reads outstanding on the source');
      let stopped = false;
      const migration = migrateMember(r.parts, from, to, {
        beforeResume: () => {
          stopped = true;
          // The member's driver now reaches the destination.
          r.transport.current = r.destinationTransport;
        },
      });
      // Made available while the source is stopping or stopped: never seen by the source.
      const during: Promise<unknown>[] = [];
      for (let s = 12; s < 16; s++) during.push(r.blk.write(s, pattern(s)));
      for (let s = 4; s < 8; s++) during.push(r.blk.read(s, SECTOR).then((d) => assert.deepEqual(d, pattern(s))));
      const writesSeen = r.backend.writes;
      await new Promise<void>((resolve) => setImmediate(resolve));
      assert.equal(r.backend.writes, writesSeen, 'a stopping member pops nothing new');
      r.backend.release();
      const moved = await migration;
      assert.ok(stopped);
      assert.ok(r.source.stoppedByOwner, 'the source stays stopped');
      assert.equal(r.destination.status, r.source.status, 'the destination has the source status (DRIVER_OK)');
      assert.equal(r.destination.negotiatedFeatures, r.source.negotiatedFeatures);
      assert.ok(moved.some((p) => p.header.type === DevicePartType.VQ_POSITION), 'the ring position travelled');
      await Promise.all([...first, ...during]);
      // After the move: the destination serves new requests on the same rings.
      for (let s = 16; s < 24; s++) await r.blk.write(s, pattern(s));
      for (let s = 0; s < 24; s++) assert.deepEqual(await r.blk.read(s, SECTOR), pattern(s), `sector ${s}`);
      const requests = 8 + 4 + 4 + 4 + 4 + 8 + 24;
      assert.equal(r.backend.reads + r.backend.writes - opsBefore + 8, requests, 'every request reached the disk exactly once');
      if (!packed) {
        assert.equal(usedIdx(r, r.destination), requests, 'the used idx counts each request once');
        assert.equal(r.destination.queue(0)!.state().nextAvail, requests, 'the destination went on from where the source stopped');
      }
      assert.ok(r.destination.stats.snapshot()[0]!.requests >= 16, 'the destination served what the source did not');
    });
  }
});

describe('device parts: device side', T, () => {
  it('the owner serves all of METADATA_GET, PARTS_GET, PARTS_SET and DEV_MODE_SET for the SR-IOV group, on device parts objects of the right kind (device/admin-cmds-device-parts/1)', async () => {
    const r = await running();
    assert.deepEqual([...r.handler.opcodes].sort(), [DevicePartsOpcode.METADATA_GET, DevicePartsOpcode.GET, DevicePartsOpcode.SET, DevicePartsOpcode.MODE_SET].sort());
    assert.deepEqual(r.handler.groupTypes, [1]);
    // A get object does not serve a set, a set object no get; an unknown object is ENXIO.
    const wrong = await r.sender(DevicePartsOpcode.GET, 1, 2n, typed(RIG_SET_OBJECT, DevicePartsGetType.ALL), 4096);
    assert.deepEqual([wrong.status, wrong.qualifier], [AdminStatus.EINVAL, AdminStatusQualifier.INVALID_FIELD]);
    const missing = await r.sender(DevicePartsOpcode.METADATA_GET, 1, 1n, typed(99, DevicePartsMetadataType.SIZE), 8);
    assert.equal(missing.status, AdminStatus.ENXIO);
    const self = await r.sender(DevicePartsOpcode.MODE_SET, 0, 1n, Uint8Array.of(1), 0);
    assert.equal(self.qualifier, AdminStatusQualifier.INVALID_GROUP);
  });

  it('parts can be read again and again, the same each time while the member is stopped, and reading changes nothing (device/admin-cmds-device-parts/2)', async () => {
    const r = await running();
    await r.parts.stop(1n);
    const a = await r.sender(DevicePartsOpcode.GET, 1, 1n, typed(RIG_GET_OBJECT, DevicePartsGetType.ALL), 4096);
    const b = await r.sender(DevicePartsOpcode.GET, 1, 1n, typed(RIG_GET_OBJECT, DevicePartsGetType.ALL), 4096);
    assert.equal(a.status, AdminStatus.OK);
    assert.ok(a.result.length > 0);
    assert.deepEqual(b.result, a.result);
    await r.parts.resume(1n);
    assert.deepEqual(await r.blk.read(3, SECTOR), pattern(3));
  });

  it('parts come in the table order, whatever order a selected get asks them in, and metadata lists them so (device/admin-cmds-device-parts/3 device/admin-cmds-device-parts/15 device/admin-cmds-device-parts/16 device/admin-cmds-device-parts/17)', async () => {
    const r = await running();
    const all = await r.parts.get(from);
    const ranks = all.map((p) => partOrderRank(p.header.type));
    assert.deepEqual(ranks, [...ranks].sort((x, y) => x - y));
    assert.equal(all[0]!.header.type, DevicePartType.DEV_FEATURES, 'device features first (/15, /16, /17)');
    assert.equal(all[1]!.header.type, DevicePartType.DRV_FEATURES, 'driver features before the common configuration (/17)');
    assert.equal(all[2]!.header.type, DevicePartType.PCI_COMMON_CFG);
    const wantHeaders = [DevicePartType.VQ_NOTIFY_CFG, DevicePartType.DEVICE_STATUS, DevicePartType.PCI_COMMON_CFG, DevicePartType.DRV_FEATURES, DevicePartType.DEV_FEATURES].map((type) => ({
      type,
      flags: 0,
      selector: type === DevicePartType.PCI_COMMON_CFG ? PCI_COMMON_CFG_NUM_QUEUES : 0,
      length: 0,
    }));
    const got = await r.parts.get(from, wantHeaders);
    assert.deepEqual(
      got.map((p) => p.header.type),
      [DevicePartType.DEV_FEATURES, DevicePartType.DRV_FEATURES, DevicePartType.PCI_COMMON_CFG, DevicePartType.DEVICE_STATUS, DevicePartType.VQ_NOTIFY_CFG],
    );
    const meta = await r.parts.metadata(from);
    assert.deepEqual(
      meta.headers.map((h) => h.type),
      all.map((p) => p.header.type),
    );
    assert.equal(meta.count, all.length);
    assert.equal(meta.size, encodedPartsSize(all));
  });

  it('a set on a member that is not stopped is refused and changes nothing (device/admin-cmds-device-parts/4)', async () => {
    const r = await running();
    const parts = captureMemberParts(r.source);
    const reply = await r.sender(DevicePartsOpcode.SET, 1, 2n, setData(RIG_SET_OBJECT, parts), 0);
    assert.deepEqual([reply.status, reply.qualifier], [AdminStatus.EBUSY, AdminStatusQualifier.INVALID_COMMAND]);
    assert.equal(r.destination.status, 0);
  });

  it('parts can be set several times, the same or others; the last value of each takes effect at resume (device/admin-cmds-device-parts/5)', async () => {
    const r = await running();
    await r.parts.stop(1n);
    const parts = await r.parts.get(from);
    await r.parts.stop(2n);
    const drv = parts.find((p) => p.header.type === DevicePartType.DRV_FEATURES)!;
    const wrongDrv = { header: drv.header, value: encodeFeatures(0n) };
    await r.parts.set(to, [wrongDrv]);
    await r.parts.set(to, [drv]);
    await r.parts.set(to, parts);
    await r.parts.set(to, parts.filter((p) => p.header.type === DevicePartType.DRV_FEATURES || p.header.type === DevicePartType.DEVICE_STATUS || p.header.type === DevicePartType.PCI_COMMON_CFG));
    assert.equal(r.destination.status, 0, 'nothing takes effect before resume');
    r.transport.current = r.destinationTransport;
    await r.parts.resume(2n);
    assert.equal(r.destination.driverFeatures, decodeFeatures(drv.value));
    assert.deepEqual(await r.blk.read(5, SECTOR), pattern(5));
  });

  it('a part whose length differs from the device part length is refused, with no side effect (device/admin-cmds-device-parts/6)', async () => {
    const r = await running();
    await r.parts.stop(2n);
    const parts = captureMemberParts(r.source);
    const drv = parts.find((p) => p.header.type === DevicePartType.DRV_FEATURES)!;
    const longer = { header: drv.header, value: new Uint8Array(24) };
    const reply = await r.sender(DevicePartsOpcode.SET, 1, 2n, setData(RIG_SET_OBJECT, [longer]), 0);
    assert.deepEqual([reply.status, reply.qualifier], [AdminStatus.EINVAL, AdminStatusQualifier.INVALID_FIELD]);
    assert.match(r.refusals.at(-1)!, /length 24, the device's is 16/);
    await r.parts.resume(2n);
    assert.equal(r.destination.status, 0, 'the refused set left nothing to apply');
  });

  it('device features in a set are verified against the device, never set (device/admin-cmds-device-parts/7)', async () => {
    const r = await running();
    await r.parts.stop(2n);
    const devF = captureMemberParts(r.source)[0]!;
    const before = r.destination.deviceFeatures();
    const other = { header: devF.header, value: encodeFeatures(decodeFeatures(devF.value) & ~1n << 32n) };
    const bad = await r.sender(DevicePartsOpcode.SET, 1, 2n, setData(RIG_SET_OBJECT, [other]), 0);
    assert.deepEqual([bad.status, bad.qualifier], [AdminStatus.EINVAL, AdminStatusQualifier.INVALID_FIELD]);
    const ok = await r.sender(DevicePartsOpcode.SET, 1, 2n, setData(RIG_SET_OBJECT, [devF]), 0);
    assert.equal(ok.status, AdminStatus.OK);
    assert.equal(r.destination.deviceFeatures(), before);
  });

  it('stopping finishes the outstanding buffers first; a stopped member touches no ring, sends no used or configuration notification, accepts notifications and answers register reads; at resume all of it goes on (device/admin-cmds-device-parts/8 device/admin-cmds-device-parts/9)', async () => {
    const r = await running();
    r.backend.holding = true;
    const held = r.blk.read(1, SECTOR);
    await new Promise<void>((resolve) => setImmediate(resolve));
    let stopDone = false;
    const stop = r.parts.stop(1n).then(() => (stopDone = true));
    await new Promise<void>((resolve) => setImmediate(resolve));
    assert.equal(stopDone, false, 'the stop waits for the outstanding read');
    const idxBefore = usedIdx(r);
    r.backend.release();
    await stop;
    assert.deepEqual(await held, pattern(1));
    assert.equal(usedIdx(r), idxBefore + 1, 'the outstanding buffer was written back before the stop completed');
    const irq = () => r.transport.current.interruptCounts;
    const before = irq();
    const opsBefore = r.backend.writes;
    const idx = usedIdx(r);
    let done = false;
    const write = r.blk.write(2, pattern(99)).then(() => (done = true));
    r.source.configChanged();
    for (let i = 0; i < 3; i++) await new Promise<void>((resolve) => setImmediate(resolve));
    assert.equal(done, false);
    assert.equal(r.backend.writes, opsBefore, 'the request was not consumed');
    assert.equal(usedIdx(r), idx, 'the used ring is untouched');
    assert.deepEqual(irq(), before, 'no used buffer or configuration notification');
    assert.ok(r.source.status & Status.DRIVER_OK, 'status reads as before');
    assert.equal(r.source.readConfig(0, 4), (1 << 20) / SECTOR, 'configuration reads answer valid values');
    const kicks = r.source.stats.snapshot()[0]!.kicks;
    assert.ok(kicks > 0);
    await r.parts.resume(1n);
    await write;
    assert.equal(r.source.stats.snapshot()[0]!.kicks, kicks, 'the held notification is counted once, when the driver sent it');
    assert.equal(irq().config, before.config + 1, 'the held configuration change is sent at resume');
    assert.deepEqual(await r.blk.read(2, SECTOR), pattern(99));
  });

  it('a stopped member its own driver resets and starts again consumes nothing until it is resumed (device/admin-cmds-device-parts/9)', async () => {
    const r = await running();
    const parts = await r.parts.get(from);
    await r.parts.stop(1n);
    const ops = r.backend.reads + r.backend.writes;
    // The member's driver resets it and brings it up again on the same rings (position 0: every
    // old request is available again).
    r.source.setStatus(0);
    r.source.setStatus(Status.ACKNOWLEDGE | Status.DRIVER);
    r.source.setDriverFeatures(decodeFeatures(parts[1]!.value));
    r.source.setStatus(Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK);
    const vq = decodeVqCfg(parts.find((p) => p.header.type === DevicePartType.VQ_CFG)!.value);
    assert.ok(typeof vq !== 'string');
    r.source.setQueueSize(0, vq.size);
    r.source.setQueueAddress(0, 'descAddr', vq.descAddr);
    r.source.setQueueAddress(0, 'driverAddr', vq.driverAddr);
    r.source.setQueueAddress(0, 'deviceAddr', vq.deviceAddr);
    r.source.enableQueue(0);
    const idx = usedIdx(r);
    r.source.setStatus(Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK | Status.DRIVER_OK);
    r.source.notifyQueue(0);
    for (let i = 0; i < 3; i++) await new Promise<void>((resolve) => setImmediate(resolve));
    assert.equal(r.backend.reads + r.backend.writes, ops, 'nothing consumed while stopped');
    assert.equal(usedIdx(r), idx, 'the used ring is untouched');
    assert.equal(r.source.active, false, 'the activation waits for the resume');
    await r.parts.resume(1n);
    assert.equal(r.source.active, true);
  });

  it('a member reset while a stop waits ends the wait: the command completes once the reset is done (device/admin-cmds-device-parts/10)', async () => {
    const r = await running();
    r.backend.holding = true;
    void r.blk.read(1, SECTOR).catch(() => undefined);
    await new Promise<void>((resolve) => setImmediate(resolve));
    const stop = r.sender(DevicePartsOpcode.MODE_SET, 1, 1n, Uint8Array.of(DEV_MODE_F_STOPPED), 0);
    r.source.setStatus(0);
    const reply = await stop;
    assert.equal(reply.status, AdminStatus.OK);
    assert.ok(r.source.stoppedByOwner);
    assert.equal(r.source.status, 0);
  });

  it('stopping a stopped member succeeds (device/admin-cmds-device-parts/11), and resuming a running one succeeds (device/admin-cmds-device-parts/12)', async () => {
    const r = await running();
    for (const flags of [DEV_MODE_F_STOPPED, DEV_MODE_F_STOPPED, 0, 0]) {
      const reply = await r.sender(DevicePartsOpcode.MODE_SET, 1, 1n, Uint8Array.of(flags), 0);
      assert.deepEqual([reply.status, reply.qualifier], [AdminStatus.OK, AdminStatusQualifier.OK]);
    }
    assert.equal(r.source.stoppedByOwner, false);
    assert.deepEqual(await r.blk.read(0, SECTOR), pattern(0));
    const bad = await r.sender(DevicePartsOpcode.MODE_SET, 1, 1n, Uint8Array.of(0x2), 0);
    assert.deepEqual([bad.status, bad.qualifier], [AdminStatus.EINVAL, AdminStatusQualifier.INVALID_FIELD]);
    assert.equal(r.source.stoppedByOwner, false, 'a refused mode change has no effect');
  });

  it('a member reset returns every part to its default and voids parts set before it (device/admin-cmds-device-parts/13)', async () => {
    const r = await running();
    await r.parts.stop(1n);
    const parts = await r.parts.get(from);
    await r.parts.stop(2n);
    await r.parts.set(to, parts);
    r.destination.setStatus(0);
    await r.parts.resume(2n);
    assert.equal(r.destination.status, 0, 'the staged parts died with the reset');
    r.source.setStatus(0);
    const after = await r.parts.get(from);
    const byType = (t: number) => after.filter((p) => p.header.type === t);
    assert.equal(decodeFeatures(byType(DevicePartType.DRV_FEATURES)[0]!.value), 0n);
    assert.deepEqual([...byType(DevicePartType.DEVICE_STATUS)[0]!.value], [0]);
    const vq = decodeVqCfg(byType(DevicePartType.VQ_CFG)[0]!.value);
    assert.ok(typeof vq !== 'string' && !vq.enabled && vq.descAddr === 0);
    assert.equal(byType(DevicePartType.VQ_POSITION).length, 0);
  });

  it('a selected part the device does not have is skipped without error (device/admin-cmds-device-parts/14)', async () => {
    const r = await running();
    const list = new Uint8Array(48);
    encodePartHeader({ type: DevicePartType.VQ_CFG, flags: 0, selector: 99, length: 0 }, list, 0);
    encodePartHeader({ type: 0x1ff, flags: 0, selector: 0, length: 0 }, list, 16);
    encodePartHeader({ type: DevicePartType.DEVICE_STATUS, flags: 0, selector: 0, length: 0 }, list, 32);
    const reply = await r.sender(DevicePartsOpcode.GET, 1, 1n, typed(RIG_GET_OBJECT, DevicePartsGetType.SELECTED, list), 256);
    assert.equal(reply.status, AdminStatus.OK);
    const parts = decodePartList(reply.result);
    assert.ok(typeof parts !== 'string');
    assert.deepEqual(
      parts.map((p) => p.header.type),
      [DevicePartType.DEVICE_STATUS],
    );
  });

  it('num_queues of the common configuration in a set is verified, not applied (device/admin-cmds-device-parts/19)', async () => {
    const r = await running();
    await r.parts.stop(2n);
    const parts = captureMemberParts(r.source).filter((p) => p.header.type <= DevicePartType.PCI_COMMON_CFG);
    const ok = await r.sender(DevicePartsOpcode.SET, 1, 2n, setData(RIG_SET_OBJECT, parts), 0);
    assert.equal(ok.status, AdminStatus.OK);
    const nq = parts[2]!;
    const wrong = { header: nq.header, value: Uint8Array.of(7, 0) };
    const bad = await r.sender(DevicePartsOpcode.SET, 1, 2n, setData(RIG_SET_OBJECT, [parts[1]!, wrong]), 0);
    assert.deepEqual([bad.status, bad.qualifier], [AdminStatus.EINVAL, AdminStatusQualifier.INVALID_FIELD]);
    assert.equal(r.destination.numQueues, 1);
  });
});

describe('device parts: driver side', T, () => {
  it('the driver refuses to set parts on a member it has not stopped, sending nothing (driver/admin-cmds-device-parts/1)', async () => {
    const r = await running();
    const parts = await r.parts.get(from);
    const sentBefore = r.sent.length;
    await assert.rejects(r.parts.set(to, parts), (e: unknown) => e instanceof VirtioError && e.code === ErrorCode.STATUS_INVALID);
    assert.equal(r.sent.length, sentBefore);
    await r.parts.stop(2n);
    await r.parts.set(to, parts);
    assert.equal(r.sent.at(-1)!.opcode, DevicePartsOpcode.SET);
  });

  it('the driver sends the parts of a set in the table order whatever order it is given them in (driver/admin-cmds-device-parts/2)', async () => {
    const r = await running();
    const parts = await r.parts.get(from);
    await r.parts.stop(2n);
    await r.parts.set(to, [...parts].reverse());
    const cmd = r.sent.at(-1)!;
    assert.equal(cmd.reply.status, AdminStatus.OK);
    const onWire = decodePartList(cmd.data.subarray(RESOURCE_OBJ_CMD_HDR_SIZE));
    assert.ok(typeof onWire !== 'string');
    const ranks = onWire.map((p) => partOrderRank(p.header.type));
    assert.deepEqual(ranks, [...ranks].sort((x, y) => x - y));
    assert.equal(onWire.length, parts.length);
  });

  it('migrateMember never reads the configuration space of a stopped member (driver/admin-cmds-device-parts/3)', async () => {
    const r = await running();
    let reads = 0;
    for (const core of [r.source, r.destination]) {
      const rc = core.readConfig.bind(core);
      const rb = core.readConfigBytes.bind(core);
      core.readConfig = (o, w) => (core.stoppedByOwner && reads++, rc(o, w));
      core.readConfigBytes = (o, d) => (core.stoppedByOwner && reads++, rb(o, d));
    }
    await migrateMember(r.parts, from, to, { beforeResume: () => void (r.transport.current = r.destinationTransport) });
    assert.equal(reads, 0);
  });

  it('the driver sizes the metadata list buffer from the count the device reports (driver/admin-cmds-device-parts/4)', async () => {
    const r = await running();
    const meta = await r.parts.metadata(from);
    const list = r.sent.filter((c) => c.opcode === DevicePartsOpcode.METADATA_GET && c.data[RESOURCE_OBJ_CMD_HDR_SIZE] === DevicePartsMetadataType.LIST);
    assert.equal(list.length, 1);
    assert.equal(list[0]!.resultCapacity, 8 + 16 * meta.count);
    assert.equal(list[0]!.reply.status, AdminStatus.OK);
    // A smaller buffer is what the device answers ENOMEM to.
    const small = await r.sender(DevicePartsOpcode.METADATA_GET, 1, 1n, typed(RIG_GET_OBJECT, DevicePartsMetadataType.LIST), 8 + 16 * (meta.count - 1));
    assert.equal(small.status, AdminStatus.ENOMEM);
  });

  it('the driver sizes the get buffer from the parts size the device reports (driver/admin-cmds-device-parts/5)', async () => {
    const r = await running();
    const parts = await r.parts.get(from);
    const get = r.sent.filter((c) => c.opcode === DevicePartsOpcode.GET);
    assert.equal(get.length, 1);
    assert.equal(get[0]!.resultCapacity, encodedPartsSize(parts));
    assert.equal(get[0]!.reply.status, AdminStatus.OK);
    const small = await r.sender(DevicePartsOpcode.GET, 1, 1n, typed(RIG_GET_OBJECT, DevicePartsGetType.ALL), encodedPartsSize(parts) - 1);
    assert.equal(small.status, AdminStatus.ENOMEM);
  });

  it('the optional flag marks device features and split ring positions (device-parts.tex VIRTIO_DEV_PART_F_OPTIONAL)', async () => {
    const r = await running();
    const parts = await r.parts.get(from);
    for (const p of parts) {
      const optional = p.header.type === DevicePartType.DEV_FEATURES || p.header.type === DevicePartType.VQ_POSITION;
      assert.equal((p.header.flags & DEV_PART_F_OPTIONAL) !== 0, optional, `part 0x${p.header.type.toString(16)}`);
    }
  });
});
