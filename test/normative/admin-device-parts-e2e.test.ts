/**
 * Device parts end to end: the owner (AdminDevice on the in-process PCI bus, administration
 * virtqueue split or packed) serves DevicePartsHandler for an SR-IOV group whose members are two
 * blk devices; the owner driver (VirtioDriver + AdminDriver) migrates the member serving a
 * BlkDriver to the other member with requests in flight.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { ADMIN_GROUP_SRIOV } from '../../src/admin/admin-command-handler.js';
import type { AdminGroup } from '../../src/admin/admin-group.js';
import { DevicePartsOpcode } from '../../src/admin/device-parts/device-part-format.js';
import { DevicePartsDriver, migrateMember } from '../../src/admin/device-parts/device-parts-driver.js';
import { RIG_GET_OBJECT, RIG_SET_OBJECT, type MigrationRig, createMigrationRig } from '../support/device-parts-rig.js';
import { adminRig, startAdminDriver } from './admin-rig.js';

const SECTOR = 512;

function pattern(seed: number): Uint8Array {
  const out = new Uint8Array(SECTOR);
  for (let i = 0; i < SECTOR; i++) out[i] = (seed * 131 + i * 7) & 0xff;
  return out;
}

let members: MigrationRig | null = null;
afterEach(async () => {
  await members?.close();
  members = null;
});

for (const packed of [false, true]) {
  const ring = packed ? 'packed' : 'split';
  describe(`device parts through the administration virtqueue (${ring} admin queue)`, { timeout: 20_000 }, () => {
    it(`migrateMember over AdminDriver moves a blk member with requests in flight to another member: nothing lost or duplicated (device/admin-cmds-device-parts/1 device/admin-cmds-device-parts/8 driver/admin-cmds-device-parts/1 driver/admin-cmds-device-parts/2)`, async () => {
      const m = await createMigrationRig({ packed });
      members = m;
      for (let s = 0; s < 8; s++) await m.blk.write(s, pattern(s));
      const cores = new Map([
        [1n, m.source],
        [2n, m.destination],
      ]);
      const sriov: AdminGroup = { groupType: ADMIN_GROUP_SRIOV, exists: () => true, member: (id) => cores.get(id) ?? null };
      const rig = adminRig({ admin: { handlers: [m.handler], groups: [sriov] } });
      const { admin } = startAdminDriver(rig, packed);
      admin.setSriovState({ numVfs: () => 2, vfEnabled: () => true, vfMigrationCapable: () => false });
      const used = await admin.enableGroup(ADMIN_GROUP_SRIOV, Object.values(DevicePartsOpcode));
      assert.ok(used !== null);
      for (const op of Object.values(DevicePartsOpcode)) assert.ok(used.includes(op), `opcode 0x${op.toString(16)} in use`);
      const parts = new DevicePartsDriver(admin.send);
      await assert.rejects(parts.set({ memberId: 2n, objectId: RIG_SET_OBJECT }, []), /not stopped/);

      const opsBefore = m.backend.reads + m.backend.writes;
      m.backend.holding = true;
      const inFlight: Promise<unknown>[] = [];
      for (let s = 0; s < 4; s++) inFlight.push(m.blk.read(s, SECTOR).then((d) => assert.deepEqual(d, pattern(s))));
      await new Promise<void>((resolve) => setImmediate(resolve));
      const migration = migrateMember(parts, { memberId: 1n, objectId: RIG_GET_OBJECT }, { memberId: 2n, objectId: RIG_SET_OBJECT }, {
        beforeResume: () => void (m.transport.current = m.destinationTransport),
      });
      for (let s = 8; s < 12; s++) inFlight.push(m.blk.write(s, pattern(s)));
      await new Promise<void>((resolve) => setImmediate(resolve));
      m.backend.release();
      await migration;
      await Promise.all(inFlight);
      for (let s = 0; s < 12; s++) assert.deepEqual(await m.blk.read(s, SECTOR), pattern(s), `sector ${s}`);
      assert.equal(m.backend.reads + m.backend.writes - opsBefore, 4 + 4 + 12, 'each request reached the disk once');
      assert.ok(m.source.stoppedByOwner);
      assert.equal(m.destination.stoppedByOwner, false);
      assert.deepEqual(m.refusals, []);
    });
  });
}
