/**
 * The registry record of the IOMMU device (5.13). vhost-user.json has no "iommu" back-end type;
 * QEMU 7.2's virtio-iommu is a device of its own machine (x-remote cannot start it) and the
 * Debian guests have no ACPI VIOT to find one: no sub-command, no real peer. The device is a
 * library object, proven on every transport of the matrix.
 */
import assert from 'node:assert/strict';
import { DeviceId } from '../../spec/device-id.js';
import { IommuConfig, IommuFaultReason, IommuMapFlag, IommuResvMem } from '../../spec/iommu.js';
import type { DeviceType } from '../device-type.js';
import { IommuDevice } from './iommu-device.js';
import { IommuDriver, type IommuFaultReport } from './iommu-driver.js';

/** `createDevice` arguments (structured-cloneable). */
export interface IommuDeviceArgs {
  /** Endpoint ids behind the IOMMU. Default [0]. */
  readonly endpoints?: readonly number[];
  /** Maximum size of the request and event queues. Default 128. */
  readonly queueSize?: number;
}

/**
 * The registry record of virtio-iommu: its name, device id, vhost-user back-end type, CLI,
 * createDevice and matrix case.
 */
export const IOMMU_TYPE: DeviceType = {
  name: 'iommu',
  deviceId: DeviceId.IOMMU,
  summary: 'a virtio-iommu translating other devices\' guest memory accesses (library only: no vhost-user front-end exists for it)',
  vhostUser: null,
  configSize: IommuConfig.SIZE,
  cli: null,
  createDevice(args?: unknown): IommuDevice {
    const a = (args ?? {}) as IommuDeviceArgs;
    return new IommuDevice({ endpoints: (a.endpoints ?? [0]).map((id) => ({ id })), ...(a.queueSize !== undefined ? { queueSize: a.queueSize } : {}) });
  },
  matrixCase() {
    const device = new IommuDevice({ queueSize: 64, endpoints: [{ id: 7, reserved: [{ subtype: IommuResvMem.MSI, start: 0xfee0_0000, end: 0xfeef_ffff }] }, { id: 8 }] });
    return {
      device,
      async exercise(driver) {
        const iommu = new IommuDriver(driver.context, { eventBuffers: 4 });
        assert.equal(iommu.granule, 0x1000);
        assert.deepEqual(await iommu.probe(7), [{ subtype: IommuResvMem.MSI, start: 0xfee0_0000, end: 0xfeef_ffff }]);
        await iommu.attach(3, 7);
        await iommu.map(3, 0x10_0000, 0x10_ffff, 0x20_0000, { read: true, write: true });
        const t = device.translation;
        assert.deepEqual(t.translate(7, 0x10_0010, 16, IommuMapFlag.WRITE), { ok: true, address: 0x20_0010, reason: 0 });
        const fault = new Promise<IommuFaultReport>((resolve) => iommu.onFault(resolve));
        assert.equal(t.translate(7, 0x30_0000, 4, IommuMapFlag.READ).ok, false);
        const f = await fault;
        assert.deepEqual([f.endpoint, f.reason, f.address], [7, IommuFaultReason.MAPPING, 0x30_0000]);
        await iommu.unmap(3, 0x10_0000, 0x10_ffff);
        assert.equal(t.translate(7, 0x10_0010, 16, IommuMapFlag.READ).ok, false);
        await iommu.detachEndpoint(3, 7);
        iommu.detach();
      },
    };
  },
};
