/** The registry record of virtio-scsi (5.6): `virtio-ts scsi`, vhost-user type "scsi". */
import assert from 'node:assert/strict';
import { DeviceId } from '../../spec/device-id.js';
import { ScsiEventType, ScsiResetReason, ScsiResponse, ScsiTmf } from '../../spec/scsi.js';
import { MemoryBackend } from '../blk/memory-backend.js';
import type { DeviceType } from '../device-type.js';
import { SCSI_CLI } from './cli.js';
import { ScsiDevice, type ScsiDeviceOptions } from './scsi-device.js';
import { ScsiDriver } from './scsi-driver.js';

/** `createDevice` arguments (structured-cloneable). */
export interface ScsiDeviceArgs {
  /** Sizes in bytes of RAM-disk LUNs 0, 1, ... (default one of 1 MiB). */
  readonly lunSizes?: readonly number[];
  /** Request queues (num_queues). Default 1. */
  readonly numQueues?: number;
  /** Maximum size of every queue. Default 128. */
  readonly queueSize?: number;
}

const MATRIX_BLOCKS = 128;

function pattern(len: number, seed: number): Uint8Array {
  const b = new Uint8Array(len);
  for (let i = 0; i < len; i++) b[i] = (i * 29 + seed * 11 + (i >> 9)) & 0xff;
  return b;
}

/**
 * The registry record of virtio-scsi: its name, device id, vhost-user back-end type, CLI,
 * createDevice and matrix case.
 */
export const SCSI_TYPE: DeviceType = {
  name: 'scsi',
  deviceId: DeviceId.SCSI,
  summary: 'serve a virtio-scsi host (disks on images or RAM) over vhost-user',
  vhostUser: { type: 'scsi', features: [] },
  // 5.6.4 struct virtio_scsi_config: 36 bytes (the vhost-user front-end reads this much).
  configSize: 36,
  cli: SCSI_CLI,
  createDevice(args?: unknown): ScsiDevice {
    const a = (args ?? {}) as ScsiDeviceArgs;
    const opts: ScsiDeviceOptions = {};
    if (a.numQueues !== undefined) opts.numQueues = a.numQueues;
    if (a.queueSize !== undefined) opts.queueSize = a.queueSize;
    const sizes = a.lunSizes ?? [1 << 20];
    return new ScsiDevice(sizes.map((size) => ({ backend: new MemoryBackend(size) })), opts);
  },
  matrixCase() {
    const disks = [new MemoryBackend(MATRIX_BLOCKS * 512), new MemoryBackend(MATRIX_BLOCKS * 512)];
    const device = new ScsiDevice(disks.map((backend) => ({ backend })), { queueSize: 64 });
    return {
      device,
      async exercise(driver) {
        const scsi = new ScsiDriver(driver.context, { eventBuffers: 4 });
        assert.equal(scsi.config.numQueues, 1);
        assert.equal(scsi.config.senseSize, 96);
        assert.equal(scsi.config.cdbSize, 32);
        assert.deepEqual(await scsi.scan(), [0, 1]);
        const std = await scsi.inquiry(0);
        assert.equal(std[0], 0, 'a direct-access block device');
        assert.equal(new TextDecoder().decode(std.subarray(8, 14)), 'VIRTIO');
        assert.equal((await scsi.readCapacity(1)).blocks, MATRIX_BLOCKS);
        // Several commands in flight on both LUNs at once.
        const writes = [0, 1, 2, 3].map((i) => ({ lun: i & 1, lba: 8 + i * 16, data: pattern(4096 + i * 512, i + 1) }));
        await Promise.all(writes.map((w) => scsi.write(w.lun, w.lba, w.data)));
        for (const w of writes) assert.deepEqual(disks[w.lun]!.data.subarray(w.lba * 512, w.lba * 512 + w.data.length), w.data);
        const reads = await Promise.all(writes.map((w) => scsi.read(w.lun, w.lba, w.data.length / 512)));
        for (let i = 0; i < writes.length; i++) assert.deepEqual(reads[i], writes[i]!.data);
        await scsi.synchronizeCache(0);
        assert.equal(await scsi.taskManagement(ScsiTmf.QUERY_TASK_SET, 0), ScsiResponse.FUNCTION_COMPLETE);
        // A LUN hot-plugged while running: the RESCAN event, after which the driver rescanned.
        const event = scsi.nextEvent();
        device.addLun(2, new MemoryBackend(64 * 512));
        const e = await event;
        assert.equal(e.event, ScsiEventType.TRANSPORT_RESET);
        assert.equal(e.reason, ScsiResetReason.RESCAN);
        assert.equal(e.lun, 2);
        assert.deepEqual(scsi.luns, [0, 1, 2]);
        scsi.detach();
      },
    };
  },
};
