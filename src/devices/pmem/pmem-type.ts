/**
 * The registry record of virtio-pmem (5.19). No back-end command and no vhost-user type:
 * vhost-user.json has no pmem back-end and QEMU 7.2 has no vhost-user pmem front-end (the VMM
 * owns the memory map, see docs/devices/pmem.md).
 */
import assert from 'node:assert/strict';
import { DeviceId } from '../../spec/device-id.js';
import { PmemConfig, PmemF, PmemRet } from '../../spec/pmem.js';
import type { DeviceType } from '../device-type.js';
import { PmemMemoryBackend } from './pmem-backend.js';
import { PmemDevice } from './pmem-device.js';
import { PmemDriver, PmemFlushError } from './pmem-driver.js';

/** `createDevice` arguments (structured-cloneable). */
export interface PmemDeviceArgs {
  /** Bytes of the RAM range (a multiple of 4096). Default 1 MiB. */
  readonly size?: number;
  /** Guest physical address reported in start. Default 4 GiB. */
  readonly start?: number;
  /** Maximum queue size. Default 128. */
  readonly queueSize?: number;
}

/**
 * The registry record of virtio-pmem: its name, device id, vhost-user back-end type, CLI,
 * createDevice and matrix case.
 */
export const PMEM_TYPE: DeviceType = {
  name: 'pmem',
  deviceId: DeviceId.PMEM,
  summary: 'a virtio-pmem device (no back-end command: no vhost-user pmem front-end exists)',
  vhostUser: null,
  configSize: PmemConfig.SIZE,
  cli: null,
  createDevice(args?: unknown): PmemDevice {
    const a = (args ?? {}) as PmemDeviceArgs;
    return new PmemDevice(new PmemMemoryBackend(a.size ?? 1 << 20), { start: a.start ?? 2 ** 32, ...(a.queueSize === undefined ? {} : { queueSize: a.queueSize }) });
  },
  matrixCase() {
    const backend = new PmemMemoryBackend(64 * 1024);
    const device = new PmemDevice(backend, { start: 0x1_2000_0000, queueSize: 64 });
    return {
      device,
      async exercise(driver) {
        const pmem = new PmemDriver(driver.context);
        assert.equal(driver.context.features & PmemF.SHMEM_REGION, 0n, 'not offered');
        assert.deepEqual(pmem.range, { base: 0x1_2000_0000, length: 64 * 1024 });
        // Several flushes in flight; each completes after the backend's flush.
        await Promise.all([pmem.flush(), pmem.flush(), pmem.flush()]);
        assert.equal(backend.flushes, 3);
        // A bad request type and a failing flush: ret -1, never a device error.
        assert.equal(await pmem.request(7), PmemRet.ERROR);
        backend.failFlush = true;
        await assert.rejects(pmem.flush(), (e: unknown) => e instanceof PmemFlushError && e.ret === -1);
        backend.failFlush = false;
        await pmem.flush();
        assert.equal(backend.flushes, 4);
        pmem.detach();
      },
    };
  },
};
