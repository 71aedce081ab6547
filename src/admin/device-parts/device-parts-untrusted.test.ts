/**
 * Device parts from an untrusted driver: headers cut short, lengths past the end, reserved bytes,
 * unknown types and flags, duplicates, the table order and its mandatory preceding parts, values
 * a device cannot take. Each is refused with VIRTIO_ADMIN_STATUS_EINVAL (or ENXIO/ENOMEM/EBUSY as
 * the chapter says) and leaves the member as it was.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AdminStatus, AdminStatusQualifier } from '../admin-command-handler.js';
import { BlkDevice } from '../../devices/blk/blk-device.js';
import { MemoryBackend } from '../../devices/blk/memory-backend.js';
import { DeviceCore } from '../../device/device-core.js';
import type { DeviceCoreApi } from '../../device/types.js';
import { GuestMemory } from '../../memory/guest-memory.js';
import { F } from '../../spec/features.js';
import { Status } from '../../spec/status.js';
import { EchoDevice } from '../../testing/echo-device.js';
import {
  DEV_PART_F_OPTIONAL,
  DEV_PART_HDR_SIZE,
  type DevicePart,
  DevicePartType,
  DevicePartsGetType,
  DevicePartsMetadataType,
  DevicePartsObjectType,
  DevicePartsOpcode,
  PCI_COMMON_CFG_NUM_QUEUES,
  RESOURCE_OBJ_CMD_HDR_SIZE,
  RESOURCE_OBJ_DEV_PARTS,
  decodeFeatures,
  decodeHeaderList,
  decodePartList,
  encodeFeatures,
  encodePartHeader,
  encodePartList,
  encodeResourceObjectRef,
  encodeVqCfg,
  encodeVqPosition,
  encodedPartsSize,
} from './device-part-format.js';
import { DevicePartsHandler } from './device-parts-handler.js';
import { DevicePartsObjectTable, decodeDevicePartsObjectData } from './device-parts-objects.js';

const SRIOV = 1;

function member(): { core: DeviceCore; memory: GuestMemory } {
  const memory = GuestMemory.allocate(1 << 20);
  const core = new DeviceCore(new BlkDevice(new MemoryBackend(1 << 16)), { memory, interrupts: { usedBuffer: () => undefined, configChange: () => undefined } });
  return { core, memory };
}

function rig() {
  const { core, memory } = member();
  const objects = new DevicePartsObjectTable(2, 2);
  objects.create(SRIOV, 1n, 0, DevicePartsObjectType.GET);
  objects.create(SRIOV, 1n, 1, DevicePartsObjectType.SET);
  const refusals: string[] = [];
  const handler = new DevicePartsHandler({ objects: objects.lookup, onRefusal: (_o, r) => refusals.push(r) });
  const m = { groupType: SRIOV, memberId: 1n, core };
  const run = async (opcode: number, data: Uint8Array, cap = 0) => {
    const result = new Uint8Array(cap);
    const out = await handler.handle(opcode, m, data, result);
    return { ...out, result: result.subarray(0, out.written) };
  };
  return { core, memory, handler, run, refusals, objects };
}

function withRef(objectId: number, rest: Uint8Array): Uint8Array {
  const d = new Uint8Array(RESOURCE_OBJ_CMD_HDR_SIZE + rest.length);
  encodeResourceObjectRef({ type: RESOURCE_OBJ_DEV_PARTS, id: objectId }, d);
  d.set(rest, RESOURCE_OBJ_CMD_HDR_SIZE);
  return d;
}

function setOf(parts: readonly DevicePart[]): Uint8Array {
  const list = new Uint8Array(encodedPartsSize(parts));
  encodePartList(parts, list);
  return withRef(1, list);
}

const p = (type: number, value: Uint8Array, selector = 0, flags = 0): DevicePart => ({ header: { type, flags, selector, length: value.length }, value });
const u16 = (n: number) => Uint8Array.of(n & 0xff, n >> 8);
const EINVAL_FIELD = [AdminStatus.EINVAL, AdminStatusQualifier.INVALID_FIELD];

/** Drives the member's status as a driver would, so its driver features are known. */
function negotiate(core: DeviceCore): bigint {
  core.setStatus(Status.ACKNOWLEDGE | Status.DRIVER);
  const f = core.deviceFeatures() & ~F.RING_PACKED;
  core.setDriverFeatures(f);
  core.setStatus(Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK);
  return f;
}

describe('device parts formats', () => {
  it('headers and lists round-trip; a header cut short, a length past the end, a reserved byte or an unknown flag is a reason, never a throw', () => {
    const parts = [p(DevicePartType.DRV_FEATURES, encodeFeatures(F.VERSION_1 | 1n)), p(DevicePartType.VQ_CFG, new Uint8Array(32), 3)];
    const buf = new Uint8Array(encodedPartsSize(parts));
    encodePartList(parts, buf);
    const back = decodePartList(buf);
    assert.ok(typeof back !== 'string');
    assert.deepEqual(
      back.map((x) => [x.header.type, x.header.selector, x.value.length]),
      [
        [DevicePartType.DRV_FEATURES, 0, 16],
        [DevicePartType.VQ_CFG, 3, 32],
      ],
    );
    assert.equal(decodeFeatures(back[0]!.value), F.VERSION_1 | 1n);
    assert.match(decodePartList(buf.subarray(0, 10)) as string, /cut short/);
    // Zero padding to a multiple of 64 bits (2.12.1) ends the list; anything else does not.
    const padded = new Uint8Array(buf.length + 7);
    padded.set(buf);
    assert.equal((decodePartList(padded) as DevicePart[]).length, 2);
    padded[buf.length + 3] = 1;
    assert.match(decodePartList(padded) as string, /cut short/);
    assert.match(decodePartList(buf.subarray(0, buf.length - 1)) as string, /past the end/);
    const reserved = buf.slice();
    reserved[3] = 1;
    assert.match(decodePartList(reserved) as string, /reserved/);
    const selector = buf.slice();
    selector[8] = 1; // pci offset's reserved half... of a DRV_FEATURES: the whole selector is reserved
    assert.match(decodePartList(selector) as string, /reserved selector/);
    const flags = buf.slice();
    flags[2] = 0x80;
    assert.match(decodePartList(flags) as string, /unknown flags/);
    assert.match(decodeHeaderList(new Uint8Array(DEV_PART_HDR_SIZE + 1)) as string, /multiple of 16/);
    // A huge length never allocates: it is a reason.
    const huge = new Uint8Array(DEV_PART_HDR_SIZE);
    encodePartHeader({ type: DevicePartType.VQ_CFG, flags: 0, selector: 0, length: 0xffffffff }, huge, 0);
    new DataView(huge.buffer).setUint32(12, 0xffffffff, true);
    assert.match(decodePartList(huge) as string, /past the end/);
  });
});

describe('device parts resource objects', () => {
  it('the object data is a GET or SET type with zero reserved bytes; the table keeps the limits of each type', () => {
    assert.equal(decodeDevicePartsObjectData(new Uint8Array(8)), DevicePartsObjectType.GET);
    assert.equal(decodeDevicePartsObjectData(Uint8Array.of(1, 0, 0, 0, 0, 0, 0, 0)), DevicePartsObjectType.SET);
    assert.match(decodeDevicePartsObjectData(Uint8Array.of(2, 0, 0, 0, 0, 0, 0, 0)) as string, /neither/);
    assert.match(decodeDevicePartsObjectData(Uint8Array.of(0, 0, 1, 0, 0, 0, 0, 0)) as string, /reserved/);
    assert.match(decodeDevicePartsObjectData(new Uint8Array(7)) as string, /7 bytes/);
    const t = new DevicePartsObjectTable(1, 1);
    assert.ok(t.create(SRIOV, 1n, 0, DevicePartsObjectType.GET));
    assert.equal(t.create(SRIOV, 1n, 0, DevicePartsObjectType.SET), false, 'id taken');
    assert.equal(t.create(SRIOV, 2n, 1, DevicePartsObjectType.GET), false, 'get limit reached');
    assert.ok(t.create(SRIOV, 2n, 1, DevicePartsObjectType.SET));
    const m = { groupType: SRIOV, memberId: 2n, core: member().core };
    assert.equal(t.lookup(m, 1), DevicePartsObjectType.SET);
    assert.ok(t.destroyId(1));
    assert.equal(t.lookup(m, 1), null);
    t.clear();
    assert.equal(t.lookup({ ...m, memberId: 1n }, 0), null);
  });
});

describe('device parts handler: malformed commands', () => {
  it('short data, a wrong resource object type, an unknown object, an object of the other kind, unknown types and reserved bytes are refused', async () => {
    const { run } = rig();
    assert.deepEqual(Object.values(await run(DevicePartsOpcode.GET, new Uint8Array(4), 64)).slice(0, 2), EINVAL_FIELD);
    const wrongType = new Uint8Array(16);
    encodeResourceObjectRef({ type: 0x200, id: 0 }, wrongType);
    assert.deepEqual([(await run(DevicePartsOpcode.GET, wrongType, 64)).status], [AdminStatus.EINVAL]);
    assert.equal((await run(DevicePartsOpcode.GET, withRef(7, new Uint8Array(8).fill(0, 0)), 64)).status, AdminStatus.ENXIO);
    const onSetObj = await run(DevicePartsOpcode.GET, withRef(1, Uint8Array.of(DevicePartsGetType.ALL, 0, 0, 0, 0, 0, 0, 0)), 4096);
    assert.deepEqual([onSetObj.status, onSetObj.qualifier], EINVAL_FIELD);
    const badGetType = await run(DevicePartsOpcode.GET, withRef(0, Uint8Array.of(9, 0, 0, 0, 0, 0, 0, 0)), 4096);
    assert.deepEqual([badGetType.status, badGetType.qualifier], EINVAL_FIELD);
    const reserved = await run(DevicePartsOpcode.METADATA_GET, withRef(0, Uint8Array.of(0, 0, 0, 1, 0, 0, 0, 0)), 8);
    assert.deepEqual([reserved.status, reserved.qualifier], EINVAL_FIELD);
    const badMeta = await run(DevicePartsOpcode.METADATA_GET, withRef(0, Uint8Array.of(3, 0, 0, 0, 0, 0, 0, 0)), 8);
    assert.deepEqual([badMeta.status, badMeta.qualifier], EINVAL_FIELD);
    const allWithList = await run(DevicePartsOpcode.GET, withRef(0, new Uint8Array(8 + 16).fill(DevicePartsGetType.ALL, 0, 1)), 4096);
    assert.deepEqual([allWithList.status, allWithList.qualifier], EINVAL_FIELD);
    const ragged = await run(DevicePartsOpcode.GET, withRef(0, new Uint8Array(8 + 5)), 4096);
    assert.deepEqual([ragged.status, ragged.qualifier], EINVAL_FIELD);
    const noFlags = await run(DevicePartsOpcode.MODE_SET, new Uint8Array(0));
    assert.deepEqual([noFlags.status, noFlags.qualifier], EINVAL_FIELD);
  });

  it('metadata answers size, count and list, and ENOMEM when the result buffer is too small', async () => {
    const { run } = rig();
    const size = await run(DevicePartsOpcode.METADATA_GET, withRef(0, Uint8Array.of(DevicePartsMetadataType.SIZE, 0, 0, 0, 0, 0, 0, 0)), 8);
    const count = await run(DevicePartsOpcode.METADATA_GET, withRef(0, Uint8Array.of(DevicePartsMetadataType.COUNT, 0, 0, 0, 0, 0, 0, 0)), 8);
    assert.equal(size.status, AdminStatus.OK);
    const n = new DataView(count.result.buffer).getUint32(0, true);
    // DEV_FEATURES, DRV_FEATURES, num_queues, status, then VQ_CFG and VQ_NOTIFY_CFG of blk's one queue.
    assert.equal(n, 6);
    assert.equal(new DataView(size.result.buffer).getUint32(0, true), 6 * 16 + 16 + 16 + 2 + 1 + 32 + 8);
    const tooSmall = await run(DevicePartsOpcode.METADATA_GET, withRef(0, Uint8Array.of(DevicePartsMetadataType.SIZE, 0, 0, 0, 0, 0, 0, 0)), 4);
    assert.equal(tooSmall.status, AdminStatus.ENOMEM);
  });

  it('a member that is not a DeviceCore cannot be stopped: INVALID_MEMBER', async () => {
    const { handler } = rig();
    const plain = Object.create(null) as DeviceCoreApi;
    Object.assign(plain, { status: 0, numQueues: 1 });
    const out = await handler.handle(DevicePartsOpcode.MODE_SET, { groupType: SRIOV, memberId: 1n, core: plain }, Uint8Array.of(1), new Uint8Array(0));
    assert.deepEqual([out.status, out.qualifier], [AdminStatus.EINVAL, AdminStatusQualifier.INVALID_MEMBER]);
  });

  it('a running device without a suspend hook cannot finish its outstanding buffers: the stop is refused and it runs on', async () => {
    const memory = GuestMemory.allocate(1 << 20);
    const core = new DeviceCore(new EchoDevice(), { memory, interrupts: { usedBuffer: () => undefined, configChange: () => undefined } });
    negotiate(core);
    core.setStatus(Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK | Status.DRIVER_OK);
    const objects = new DevicePartsObjectTable();
    const handler = new DevicePartsHandler({ objects: objects.lookup });
    const out = await handler.handle(DevicePartsOpcode.MODE_SET, { groupType: SRIOV, memberId: 1n, core }, Uint8Array.of(1), new Uint8Array(0));
    assert.deepEqual([out.status, out.qualifier], [AdminStatus.EINVAL, AdminStatusQualifier.INVALID_MEMBER]);
    assert.equal(core.stoppedByOwner, false);
  });
});

describe('device parts handler: sets a device cannot take', () => {
  async function stopped() {
    const r = rig();
    const out = await r.run(DevicePartsOpcode.MODE_SET, Uint8Array.of(1));
    assert.equal(out.status, AdminStatus.OK);
    return r;
  }

  it('duplicates, parts out of the table order and parts without their mandatory preceding parts are refused', async () => {
    const { run, core, refusals } = await stopped();
    const drv = p(DevicePartType.DRV_FEATURES, encodeFeatures(F.VERSION_1));
    const nq = p(DevicePartType.PCI_COMMON_CFG, u16(core.numQueues), PCI_COMMON_CFG_NUM_QUEUES);
    const cases: [DevicePart[], RegExp][] = [
      [[drv, drv], /given twice/],
      [[nq, drv], /(out of the table order|without the part)/],
      [[p(DevicePartType.DEVICE_STATUS, Uint8Array.of(1))], /without the part 0x101/],
      [[drv, nq, p(DevicePartType.VQ_CFG, new Uint8Array(32))], /without the part 0x103/],
      [[p(0x1ff, Uint8Array.of(1))], /unknown part type/],
      [[p(DevicePartType.PCI_COMMON_CFG, new Uint8Array(4), 0)], /no such part/],
      [[p(DevicePartType.VQ_CFG, new Uint8Array(32), 5)], /no such part/],
    ];
    for (const [parts, why] of cases) {
      const out = await run(DevicePartsOpcode.SET, setOf(parts));
      assert.deepEqual([out.status, out.qualifier], EINVAL_FIELD, String(why));
      assert.match(refusals.at(-1)!, why);
    }
    // An unknown part marked optional may be ignored: the rest is taken.
    const ok = await run(DevicePartsOpcode.SET, setOf([drv, p(0x1ff, Uint8Array.of(1), 0, DEV_PART_F_OPTIONAL)]));
    assert.equal(ok.status, AdminStatus.OK);
  });

  it('driver features not offered, a status a driver cannot reach, features refused with FEATURES_OK, a bad queue size or a ring outside memory are refused', async () => {
    const { run, core, memory } = await stopped();
    const offered = core.deviceFeatures();
    const nq = p(DevicePartType.PCI_COMMON_CFG, u16(core.numQueues), PCI_COMMON_CFG_NUM_QUEUES);
    const drvOk = p(DevicePartType.DRV_FEATURES, encodeFeatures(F.VERSION_1));
    const cases: [DevicePart[], RegExp][] = [
      [[p(DevicePartType.DRV_FEATURES, encodeFeatures(1n << 100n))], /not offered/],
      [[drvOk, nq, p(DevicePartType.DEVICE_STATUS, Uint8Array.of(Status.DRIVER_OK))], /cannot|without/],
      [[drvOk, nq, p(DevicePartType.DEVICE_STATUS, Uint8Array.of(Status.FAILED | 1))], /cannot be restored/],
      [[p(DevicePartType.DRV_FEATURES, encodeFeatures(offered & ~F.VERSION_1)), nq, p(DevicePartType.DEVICE_STATUS, Uint8Array.of(0x0b))], /refused/],
    ];
    const status = p(DevicePartType.DEVICE_STATUS, Uint8Array.of(Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK));
    const vq = (c: Partial<Parameters<typeof encodeVqCfg>[0]>) =>
      p(DevicePartType.VQ_CFG, encodeVqCfg({ size: 16, vector: 0xffff, enabled: true, descAddr: 0x1000, driverAddr: 0x2000, deviceAddr: 0x3000, ...c }), 0);
    cases.push([[drvOk, nq, status, vq({ size: 12 })], /power of 2|size/]);
    cases.push([[drvOk, nq, status, vq({ size: 4096 })], /not in 1/]);
    cases.push([[drvOk, nq, status, vq({ descAddr: memory.regionSpecs()[0]!.bytes.length + 0x1000 })], /queue 0/]);
    cases.push([[drvOk, nq, p(DevicePartType.DEVICE_STATUS, Uint8Array.of(Status.ACKNOWLEDGE | Status.DRIVER)), vq({})], /without FEATURES_OK/]);
    const badEnabled = encodeVqCfg({ size: 16, vector: 0, enabled: true, descAddr: 0, driverAddr: 0, deviceAddr: 0 });
    badEnabled[4] = 2;
    cases.push([[drvOk, nq, status, p(DevicePartType.VQ_CFG, badEnabled, 0)], /neither 0 nor 1/]);
    cases.push([[p(DevicePartType.VQ_POSITION, encodeVqPosition({ nextAvail: 0, nextUsed: 0, availWrap: true, usedWrap: true }).fill(9, 5, 6), 0)], /reserved/]);
    for (const [parts, why] of cases) {
      const out = await run(DevicePartsOpcode.SET, setOf(parts));
      assert.deepEqual([out.status, out.qualifier], EINVAL_FIELD, String(why));
    }
    // None of it was kept: resuming applies nothing.
    assert.equal((await run(DevicePartsOpcode.MODE_SET, Uint8Array.of(0))).status, AdminStatus.OK);
    assert.equal(core.status, 0);
    assert.equal(core.driverFeatures, 0n);
  });

  it('a valid set restores a member up to FEATURES_OK with its queue registers, applied only at resume', async () => {
    const { run, core } = await stopped();
    const source = member().core;
    const f = negotiate(source);
    source.setQueueSize(0, 16);
    source.setQueueAddress(0, 'descAddr', 0x4000);
    source.setQueueAddress(0, 'driverAddr', 0x5000);
    source.setQueueAddress(0, 'deviceAddr', 0x6000);
    source.enableQueue(0);
    const { captureMemberParts } = await import('./member-parts.js');
    const out = await run(DevicePartsOpcode.SET, setOf(captureMemberParts(source)));
    assert.equal(out.status, AdminStatus.OK);
    assert.equal(core.status, 0);
    await run(DevicePartsOpcode.MODE_SET, Uint8Array.of(0));
    assert.equal(core.status, Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK);
    assert.equal(core.negotiatedFeatures, f);
    assert.deepEqual(core.queueRegisters(0), source.queueRegisters(0));
  });

  it('owner reset resumes the members it stopped and drops staged parts', async () => {
    const { run, core, handler } = await stopped();
    assert.ok(core.stoppedByOwner);
    const drv = p(DevicePartType.DRV_FEATURES, encodeFeatures(F.VERSION_1));
    assert.equal((await run(DevicePartsOpcode.SET, setOf([drv]))).status, AdminStatus.OK);
    handler.reset();
    assert.equal(core.stoppedByOwner, false);
    assert.equal(core.driverFeatures, 0n);
  });
});
