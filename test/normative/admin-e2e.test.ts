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
import { AdminDevice } from '../../src/admin/admin-device.js';
import { GuestMemory } from '../../src/memory/guest-memory.js';
import { EchoDevice } from '../../src/testing/echo-device.js';
import { TransportKind, createTransportPair, deviceCoreFactory } from '../../src/transport/loopback.js';
import { Status } from '../../src/spec/status.js';
import { VirtioDriver } from '../../src/driver/virtio-driver.js';
import { ECHO_OPCODE, ASYNC_OPCODE, EchoHandler, adminRig, startAdminDriver, startVirtio } from './admin-rig.js';

describe('administration virtqueue: transports', () => {
  it('admin: VIRTIO_F_ADMIN_VQ is not offered on MMIO or Channel I/O (reserved there), it is on PCI', () => {
    for (const kind of [TransportKind.MMIO, TransportKind.CCW_REV2, TransportKind.PCI_MODERN]) {
      const mem = GuestMemory.allocate(1 << 20);
      const pair = createTransportPair(kind, mem, deviceCoreFactory(new AdminDevice(new EchoDevice()), mem));
      const offered = pair.driver.getDeviceFeatures();
      assert.equal((offered & F.ADMIN_VQ) !== 0n, kind === TransportKind.PCI_MODERN, kind);
    }
  });

  it('admin: a split chain with its readable part after the writable one breaks the ring rule: DEVICE_NEEDS_RESET, no command runs, nothing thrown', () => {
    const handler = new EchoHandler();
    const rig = adminRig({ admin: { handlers: [handler] } });
    const virtio = VirtioDriver.initSync(rig.driverTransport, { wantedFeatures: F.VERSION_1 | F.ADMIN_VQ, dma: rig.dma, queueSizes: [32], adminQueues: 1, indirect: false });
    const idx = virtio.adminQueueIndices[0]!;
    const q = virtio.queue(idx);
    const out = rig.dma.alloc(24, 8);
    const inn = rig.dma.alloc(8, 8);
    rig.mem.fill(out, 24);
    assert.equal(q.add([{ addr: out, len: 24 }], [{ addr: inn, len: 8 }], 1), true);
    const regs = rig.cores.at(-1)!.queueRegisters(idx)!;
    const view = new DataView(rig.mem.slice(regs.descAddr, 16 * regs.size).buffer, rig.mem.slice(regs.descAddr, 16 * regs.size).byteOffset, 16 * regs.size);
    // Find the chain (a readable descriptor with NEXT followed by a writable one) and swap the directions.
    let head = -1;
    for (let i = 0; i < regs.size; i++) if (view.getUint32(i * 16 + 8, true) === 24 && view.getUint16(i * 16 + 12, true) === 1) head = i;
    assert.ok(head >= 0);
    const next = view.getUint16(head * 16 + 14, true);
    view.setUint16(head * 16 + 12, 3, true); // WRITE | NEXT
    view.setUint16(next * 16 + 12, 0, true); // readable, after a writable one
    virtio.kick(idx);
    assert.notEqual(rig.cores.at(-1)!.status & Status.DEVICE_NEEDS_RESET, 0, 'split-ring rule 2 broken: the device needs a reset');
    assert.equal(handler.seen.length, 0);
  });

  it('admin: a command whose buffers are outside guest memory is used with length 0; the device carries on', async () => {
    for (const packed of [false, true]) {
      const rig = adminRig({ admin: { handlers: [new EchoHandler()] } });
      const virtio = startVirtio(rig, packed);
      const idx = virtio.adminQueueIndices[0]!;
      const q = virtio.queue(idx);
      assert.equal(q.add([{ addr: 0x7fff_0000_0000, len: 24 }], [{ addr: 0x7fff_0001_0000, len: 8 }], 1), true);
      virtio.kick(idx);
      assert.equal(q.takeUsed(), 1);
      assert.equal(q.lastUsedLen, 0);
      assert.equal(rig.cores.at(-1)!.status & Status.DEVICE_NEEDS_RESET, 0);
    }
  });
});

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
