/** The registry record of virtio-blk (5.2): `virtio-ts blk`, vhost-user type "block". */
import assert from 'node:assert/strict';
import { BlkDriver } from './blk-driver.js';
import { DeviceId } from '../../spec/device-id.js';
import type { DeviceType } from '../device-type.js';
import { BlkDevice, type BlkDeviceOptions } from './blk-device.js';
import { BLK_CLI } from './cli.js';
import { MemoryBackend } from './memory-backend.js';

/** `createDevice` arguments (structured-cloneable, so a device worker can be given them). */
export interface BlkMemoryDeviceArgs {
  /** Disk contents; pass a view of a SharedArrayBuffer to see the disk from another thread. */
  readonly data?: Uint8Array;
  /** Disk size when `data` is not given (default 1 MiB). */
  readonly size?: number;
  /** Maximum size of each queue. Default 256. */
  readonly queueSize?: number;
  /** GET_ID answer: up to 20 bytes (UTF-8). Default empty. */
  readonly serial?: string;
}

const MATRIX_SECTORS = 128;
const MATRIX_SERIAL = 'virtio-ts-matrix';

function pattern(len: number, seed: number): Uint8Array {
  const b = new Uint8Array(len);
  for (let i = 0; i < len; i++) b[i] = (i * 31 + seed * 7 + (i >> 9)) & 0xff;
  return b;
}

/** The registry record of virtio-blk: `virtio-ts blk`, vhost-user type `block`, its matrix case. */
export const BLK_TYPE: DeviceType = {
  name: 'blk',
  deviceId: DeviceId.BLOCK,
  summary: 'serve a virtio-blk device over vhost-user',
  // @VHostUserBackendBlockFeature: we take --read-only and --blk-file.
  vhostUser: { type: 'block', features: ['read-only', 'blk-file'] },
  // QEMU 7.2's struct virtio_blk_config is 60 bytes and libvhost-user refuses larger GET_CONFIGs.
  configSize: 60,
  cli: BLK_CLI,
  /** A virtio-blk device on a RAM disk. */
  createDevice(args?: unknown): BlkDevice {
    const a = (args ?? {}) as BlkMemoryDeviceArgs;
    const backend = a.data ? new MemoryBackend(a.data.length, { data: a.data }) : new MemoryBackend(a.size ?? 1 << 20);
    const opts: BlkDeviceOptions = {};
    if (a.queueSize !== undefined) opts.queueSize = a.queueSize;
    if (a.serial !== undefined) opts.serial = a.serial;
    return new BlkDevice(backend, opts);
  },
  matrixCase() {
    const backend = new MemoryBackend(MATRIX_SECTORS * 512);
    const device = new BlkDevice(backend, { serial: MATRIX_SERIAL, queueSize: 64 });
    return {
      device,
      async exercise(driver) {
        const blk = new BlkDriver(driver.context);
        assert.equal(blk.capacity, MATRIX_SECTORS);
        // Several requests in flight at once: interrupts and event suppression are exercised.
        const writes = [0, 1, 2, 3].map((i) => ({ sector: 8 + i * 16, data: pattern(4096 + i * 512, i + 1) }));
        await Promise.all(writes.map((w) => blk.write(w.sector, w.data)));
        for (const w of writes) {
          assert.deepEqual(backend.data.subarray(w.sector * 512, w.sector * 512 + w.data.length), w.data);
        }
        const reads = await Promise.all(writes.map((w) => blk.read(w.sector, w.data.length)));
        for (let i = 0; i < writes.length; i++) assert.deepEqual(reads[i], writes[i]!.data);
        // A sector written outside the driver reads back through the transport too.
        backend.data.set(pattern(512, 99), 100 * 512);
        assert.deepEqual(await blk.read(100, 512), pattern(512, 99));
        await blk.flush();
        assert.equal(await blk.getId(), MATRIX_SERIAL);
      },
    };
  },
};
