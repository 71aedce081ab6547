/**
 * The owner of `createAdminOwner` end to end: a blk PF on the in-process PCI bus with the SR-IOV
 * capability and all four command modules; its driver (VirtioDriver + AdminDriver +
 * AdminOwnerDriver, split or packed rings) enables 2 blk VFs through the capability, sets
 * VIRTIO_DEV_PARTS_CAP and migrates VF 1, serving its own BlkDriver with requests in flight, to
 * VF 2 with device parts objects created and destroyed through RESOURCE_OBJ_CREATE / DESTROY.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { ADMIN_GROUP_SRIOV, AdminStatus } from '../../src/admin/admin-command-handler.js';
import { AdminCommandStatusError } from '../../src/admin/admin-command-status-error.js';
import { AdminDriver } from '../../src/admin/admin-driver.js';
import { createAdminOwner } from '../../src/admin/admin-owner.js';
import { AdminOwnerDriver } from '../../src/admin/admin-owner-driver.js';
import { DevicePartsObjectType } from '../../src/admin/device-parts/device-part-format.js';
import { DevicePartsCommandError } from '../../src/admin/device-parts/device-parts-driver.js';
import { DEV_PARTS_CAP_LAYOUT, DEV_PARTS_OBJECT_KIND, devPartsObjectData } from '../../src/admin/device-parts/dev-parts-resource-type.js';
import { ResourceObjectOpcode } from '../../src/admin/resource-objects/resource-object-handler.js';
import { AdminResourceObjectDriver, encodeResourceObjectCommand } from '../../src/admin/resource-objects/resource-object-driver.js';
import { VIRTIO_RESOURCE_OBJ_DEV_PARTS } from '../../src/admin/resource-objects/resource-object-type.js';
import { SriovDriverControl } from '../../src/admin/sriov-driver.js';
import { BlkDevice } from '../../src/devices/blk/blk-device.js';
import { BlkDriver } from '../../src/devices/blk/blk-driver.js';
import { MemoryBackend } from '../../src/devices/blk/memory-backend.js';
import { DmaAllocator } from '../../src/driver/dma-allocator.js';
import { VirtioDriver } from '../../src/driver/virtio-driver.js';
import { GuestMemory } from '../../src/memory/guest-memory.js';
import { F } from '../../src/spec/features.js';
import { LoopbackBus } from '../../src/transport/bus.js';
import { type InProcessConnection, connectInProcess } from '../../src/transport/in-process/in-process-transport.js';
import { deviceCoreFactory } from '../../src/transport/loopback.js';
import { PciDeviceTransport } from '../../src/transport/pci/pci-device.js';
import { PciDriverTransport } from '../../src/transport/pci/pci-driver.js';
import { HoldingCountingBackend, SwitchTransport } from '../support/device-parts-rig.js';
import { CapabilityHandler } from '../../src/admin/capabilities/capability-handler.js';
import { ErrorCode, VirtioError } from '../../src/errors.js';
import { adminRig, startAdminDriver } from '../normative/admin-rig.js';

const SECTOR = 512;
const PF_MEMORY = 4 << 20;
const DMA_BASE = 0x10_0000;

function pattern(seed: number): Uint8Array {
  const out = new Uint8Array(SECTOR);
  for (let i = 0; i < SECTOR; i++) out[i] = (seed * 131 + i * 7) & 0xff;
  return out;
}

/** The PF (owner) with 2 blk VFs on one disk, its driver, and a blk driver on VF 1 switchable to VF 2. */
async function ownerWithVfs(packed: boolean, limits = { get: 2, set: 2 }) {
  const vfMemory = GuestMemory.allocate(16 << 20);
  const disk = new HoldingCountingBackend(1 << 20);
  const vfs: InProcessConnection[] = [];
  const refusals: string[] = [];
  const owner = createAdminOwner({
    device: new BlkDevice(new MemoryBackend(1 << 20)),
    sriov: {
      totalVfs: 2,
      createVf: () => {
        const vf = connectInProcess(new BlkDevice(disk), { memory: vfMemory });
        vfs.push(vf);
        return { core: vf.core };
      },
    },
    devicePartsLimits: limits,
    onDevicePartsRefusal: (_op, reason) => refusals.push(reason),
  });
  const memory = GuestMemory.allocate(PF_MEMORY);
  const bus = new LoopbackBus(memory, false);
  const pci = new PciDeviceTransport(bus, owner.coreFactory(deviceCoreFactory(owner.device, memory)), { sriov: owner.sriov! });
  const pfTransport = new PciDriverTransport(pci, memory, { useMsix: true });
  bus.onMsi = (a, d) => pfTransport.handleMsi(a, d);
  bus.onIrq = () => pfTransport.handleIntx();
  const wanted = F.VERSION_1 | F.EVENT_IDX | F.INDIRECT_DESC | F.ADMIN_VQ | F.SR_IOV | (packed ? F.RING_PACKED : 0n);
  const pf = VirtioDriver.initSync(pfTransport, { wantedFeatures: wanted, dma: new DmaAllocator(DMA_BASE, PF_MEMORY - DMA_BASE), queueSizes: [32], adminQueues: 1 });
  const control = new SriovDriverControl(pfTransport);
  control.observe(pf);
  control.enableVfs(2);
  const admin = AdminDriver.attach(pf, { sriov: control });
  const ownerDriver = await AdminOwnerDriver.open(admin);
  assert.equal(vfs.length, 2, 'VF Enable brought up 2 VFs');
  // VF 1's own driver (a guest of VF 1), its transport switchable to VF 2 for the migration.
  const vfTransport = new SwitchTransport([vfs[0]!.transport, vfs[1]!.transport]);
  let vfWanted = (1n << 128n) - 1n;
  if (!packed) vfWanted &= ~F.RING_PACKED;
  vfWanted &= ~F.IN_ORDER;
  const vfDriver = await VirtioDriver.init(vfTransport, { wantedFeatures: vfWanted, dma: vfs[0]!.dma, queueSizes: [16], indirect: true });
  const blk = new BlkDriver(vfDriver.context);
  return {
    owner,
    pf,
    admin,
    ownerDriver,
    vfs,
    disk,
    vfTransport,
    blk,
    refusals,
    async close() {
      disk.release();
      for (const vf of vfs) vf.core.reset();
      pf.reset();
      await new Promise<void>((resolve) => setImmediate(resolve));
    },
  };
}

let open: Awaited<ReturnType<typeof ownerWithVfs>> | null = null;
afterEach(async () => {
  await open?.close();
  open = null;
});

function isStatus(status: number) {
  return (e: unknown): boolean => (e instanceof AdminCommandStatusError || e instanceof DevicePartsCommandError) && e.status === status;
}

for (const packed of [false, true]) {
  const ring = packed ? 'packed' : 'split';
  describe(`createAdminOwner: blk PF with SR-IOV, VF migration through the administration virtqueue (${ring})`, { timeout: 20_000 }, () => {
    it('VF 1 serves its driver, then migrates to VF 2 with requests in flight (device/admin-cmds-device-parts/1 device/admin-cmds-device-parts/8 driver/admin-cmds-device-parts/1 driver/admin-cmds-resource-objects/6)', async () => {
      const o = await ownerWithVfs(packed);
      open = o;
      assert.equal(o.ownerDriver.getLimit, 2);
      assert.equal(o.ownerDriver.setLimit, 2);
      assert.deepEqual([...o.owner.capabilities.driverCapability(0)!], [2, 2], 'VIRTIO_DEV_PARTS_CAP set by the driver');
      for (let s = 0; s < 8; s++) await o.blk.write(s, pattern(s));
      for (let s = 0; s < 8; s++) assert.deepEqual(await o.blk.read(s, SECTOR), pattern(s), `VF 1 reads back sector ${s}`);

      const opsBefore = o.disk.reads + o.disk.writes;
      o.disk.holding = true;
      const inFlight: Promise<unknown>[] = [];
      for (let s = 0; s < 4; s++) inFlight.push(o.blk.read(s, SECTOR).then((d) => assert.deepEqual(d, pattern(s))));
      await new Promise<void>((resolve) => setImmediate(resolve));
      const objectsDuring: number[] = [];
      const migration = o.ownerDriver.migrateMember(1n, 2n, {
        beforeResume: () => {
          objectsDuring.push(o.owner.resourceObjects.count(VIRTIO_RESOURCE_OBJ_DEV_PARTS));
          o.vfTransport.current = o.vfs[1]!.transport;
        },
      });
      for (let s = 8; s < 12; s++) inFlight.push(o.blk.write(s, pattern(s)));
      await new Promise<void>((resolve) => setImmediate(resolve));
      o.disk.release();
      const parts = await migration;
      await Promise.all(inFlight);
      assert.ok(parts.length > 0, 'parts moved');
      assert.deepEqual(objectsDuring, [2], 'a get and a set object existed during the move (created through RESOURCE_OBJ_CREATE)');
      assert.equal(o.owner.resourceObjects.count(VIRTIO_RESOURCE_OBJ_DEV_PARTS), 0, 'and were destroyed after it');
      assert.equal(o.ownerDriver.liveObjects.size, 0);
      for (let s = 0; s < 12; s++) assert.deepEqual(await o.blk.read(s, SECTOR), pattern(s), `VF 2 reads sector ${s}`);
      assert.equal(o.disk.reads + o.disk.writes - opsBefore, 4 + 4 + 12, 'each request reached the disk exactly once');
      assert.equal(o.vfs[0]!.core.stoppedByOwner, true, 'VF 1 left stopped');
      assert.equal(o.vfs[1]!.core.stoppedByOwner, false, 'VF 2 running');
      assert.deepEqual(o.refusals, []);
    });

    it('DEV_PARTS_GET with an object id never created: ENXIO; with a SET object: EINVAL', async () => {
      const o = await ownerWithVfs(packed);
      open = o;
      await assert.rejects(o.ownerDriver.parts.get({ memberId: 1n, objectId: 3 }), isStatus(AdminStatus.ENXIO));
      const setId = await o.ownerDriver.createObject(1n, DevicePartsObjectType.SET);
      await assert.rejects(o.ownerDriver.parts.get({ memberId: 1n, objectId: setId }), isStatus(AdminStatus.EINVAL));
      // An object belongs to the member it was created for.
      const getId = await o.ownerDriver.createObject(1n, DevicePartsObjectType.GET);
      await assert.rejects(o.ownerDriver.parts.get({ memberId: 2n, objectId: getId }), isStatus(AdminStatus.ENXIO));
      assert.ok((await o.ownerDriver.parts.get({ memberId: 1n, objectId: getId })).length > 0);
    });

    it('device/admin-cmds-resource-objects/3: creating a device parts object beyond its kind\'s limit of VIRTIO_DEV_PARTS_CAP is refused with ENOSPC; ids outside the limits with EINVAL; the kind cannot be modified', async () => {
      const o = await ownerWithVfs(packed, { get: 1, set: 2 });
      open = o;
      assert.equal(await o.ownerDriver.createObject(1n, DevicePartsObjectType.GET), 0);
      // The driver refuses before sending; the device refuses what is sent anyway.
      await assert.rejects(o.ownerDriver.createObject(2n, DevicePartsObjectType.GET), /get_parts_resource_objects_limit is 1/);
      await assert.rejects(o.ownerDriver.createObjectAt(2n, DevicePartsObjectType.GET, 1), isStatus(AdminStatus.ENOSPC));
      await o.ownerDriver.createObjectAt(2n, DevicePartsObjectType.SET, 1);
      await o.ownerDriver.createObjectAt(1n, DevicePartsObjectType.SET, 2);
      await assert.rejects(o.ownerDriver.createObjectAt(2n, DevicePartsObjectType.SET, 3), isStatus(AdminStatus.EINVAL), 'id 3 is outside 0..get+set-1');
      await assert.rejects(o.ownerDriver.createObject(2n, DevicePartsObjectType.SET), /set_parts_resource_objects_limit is 2/);
      const modify = encodeResourceObjectCommand(VIRTIO_RESOURCE_OBJ_DEV_PARTS, 1, 0, devPartsObjectData(DevicePartsObjectType.GET));
      const r = await o.admin.send(ResourceObjectOpcode.MODIFY, ADMIN_GROUP_SRIOV, 2n, modify, 0);
      assert.equal(r.status, AdminStatus.EINVAL, 'a set object does not become a get object');
      assert.equal(o.owner.resourceObjects.count(VIRTIO_RESOURCE_OBJ_DEV_PARTS), 3);
      await o.ownerDriver.destroyObject(0);
      assert.equal(await o.ownerDriver.createObject(2n, DevicePartsObjectType.GET), 0, 'room again once destroyed');
    });

    it('device/admin-cmds-resource-objects/11: an owner reset destroys the device parts objects', async () => {
      const o = await ownerWithVfs(packed);
      open = o;
      const getId = await o.ownerDriver.createObject(1n, DevicePartsObjectType.GET);
      const setId = await o.ownerDriver.createObject(2n, DevicePartsObjectType.SET);
      const vf1 = { groupType: ADMIN_GROUP_SRIOV, memberId: 1n, core: o.vfs[0]!.core };
      const vf2 = { groupType: ADMIN_GROUP_SRIOV, memberId: 2n, core: o.vfs[1]!.core };
      assert.equal(o.owner.devicePartsObjects.lookup(vf1, getId), DevicePartsObjectType.GET);
      assert.equal(o.owner.devicePartsObjects.lookup(vf2, setId), DevicePartsObjectType.SET);
      o.pf.reset();
      o.ownerDriver.forgetObjects();
      assert.equal(o.owner.resourceObjects.count(VIRTIO_RESOURCE_OBJ_DEV_PARTS), 0);
      assert.equal(o.owner.devicePartsObjects.lookup(vf1, getId), null);
      assert.equal(o.owner.devicePartsObjects.lookup(vf2, setId), null);
      assert.equal(o.owner.capabilities.driverCapability(0), null, 'the driver capability is reset too');
    });
  });
}

describe('AdminOwnerDriver.open on an owner without the device parts commands', () => {
  it('refuses with REQUEST_FAILED, naming what is missing', async () => {
    const rig = adminRig({ admin: { handlers: [new CapabilityHandler([])] } });
    const { admin } = startAdminDriver(rig, false);
    await assert.rejects(AdminOwnerDriver.open(admin), (e: unknown) => e instanceof VirtioError && e.code === ErrorCode.REQUEST_FAILED && /SR-IOV group/.test(e.message));
  });
});

describe('AdminResourceObjectDriver with the device parts kind', () => {
  it('driver/admin-cmds-resource-objects/2: ids over get + set limits, each kind bounded by its own limit before sending', async () => {
    const o = await ownerWithVfs(false, { get: 1, set: 1 });
    open = o;
    const objects = new AdminResourceObjectDriver(o.admin.send, o.ownerDriver.capabilities, [{ kind: DEV_PARTS_OBJECT_KIND, capability: DEV_PARTS_CAP_LAYOUT }], ADMIN_GROUP_SRIOV, 1n);
    await objects.create(VIRTIO_RESOURCE_OBJ_DEV_PARTS, 0, devPartsObjectData(DevicePartsObjectType.GET));
    await assert.rejects(objects.create(VIRTIO_RESOURCE_OBJ_DEV_PARTS, 1, devPartsObjectData(DevicePartsObjectType.GET)), /get_parts_resource_objects_limit is 1/);
    await objects.create(VIRTIO_RESOURCE_OBJ_DEV_PARTS, 1, devPartsObjectData(DevicePartsObjectType.SET));
    await assert.rejects(objects.create(VIRTIO_RESOURCE_OBJ_DEV_PARTS, 2, devPartsObjectData(DevicePartsObjectType.SET)), /id outside 0\.\.1/);
    assert.equal(o.owner.resourceObjects.count(VIRTIO_RESOURCE_OBJ_DEV_PARTS), 2);
    assert.equal(o.owner.devicePartsObjects.lookup({ groupType: ADMIN_GROUP_SRIOV, memberId: 1n, core: o.vfs[0]!.core }, 1), DevicePartsObjectType.SET);
  });
});
