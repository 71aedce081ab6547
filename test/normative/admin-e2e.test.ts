/**
 * The administration virtqueue end to end on the in-process PCI bus: AdminDevice (EchoDevice +
 * an administration queue + a test command module) driven by VirtioDriver and AdminDriver,
 * split and packed rings.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ADMIN_GROUP_SELF, AdminStatus, AdminStatusQualifier } from '../../src/admin/admin-command-handler.js';
import { AdminOpcode } from '../../src/spec/admin.js';
import { F } from '../../src/spec/features.js';
import { ECHO_OPCODE, ASYNC_OPCODE, EchoHandler, adminRig, startAdminDriver } from './admin-rig.js';

for (const packed of [false, true]) {
  const ring = packed ? 'packed' : 'split';
  describe(`administration virtqueue end to end (${ring})`, () => {
    it('negotiates ADMIN_VQ, sets up the admin queue after the device queues, LIST_QUERY + LIST_USE, then a command', async () => {
      const handler = new EchoHandler();
      const rig = adminRig({ admin: { handlers: [handler] } });
      const { virtio, admin } = startAdminDriver(rig, packed);
      assert.notEqual(virtio.features & F.ADMIN_VQ, 0n);
      assert.equal(virtio.numQueues, 2);
      assert.deepEqual(virtio.adminQueueIndices, [2]);
      const used = await admin.enableGroup(ADMIN_GROUP_SELF, [ECHO_OPCODE]);
      assert.deepEqual(used, [AdminOpcode.LIST_QUERY, AdminOpcode.LIST_USE, ECHO_OPCODE]);
      assert.deepEqual(admin.supportedCommands(ADMIN_GROUP_SELF), [0, 1, ECHO_OPCODE, ASYNC_OPCODE]);
      const r = await admin.send(ECHO_OPCODE, ADMIN_GROUP_SELF, 0n, Uint8Array.of(1, 2, 3), 3);
      assert.equal(r.status, AdminStatus.OK);
      assert.equal(r.qualifier, AdminStatusQualifier.OK);
      assert.deepEqual([...r.result], [0xfe, 0xfd, 0xfc]);
      assert.equal(handler.seen.length, 1);
      assert.equal(handler.seen[0]!.member.core, rig.cores.at(-1));
      const resets = handler.resets;
      virtio.reset();
      assert.equal(handler.resets, resets + 1, 'the owner reset reached the handler');
      assert.deepEqual(rig.device.dispatcher.used(ADMIN_GROUP_SELF), [0, 1], 'the used list is back to LIST_QUERY and LIST_USE');
    });
  });
}
