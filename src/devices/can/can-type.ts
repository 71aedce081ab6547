/**
 * The registry record of the CAN device (5.20). No vhost-user back-end type exists for it and
 * Linux 6.1 / QEMU 7.2 have no virtio-can, so there is no `virtio-ts` sub-command: the device is
 * served in process and on every transport of the matrix, against the virtio-ts driver.
 */
import assert from 'node:assert/strict';
import { DeviceId } from '../../spec/device-id.js';
import { CanConfig, CanResult } from '../../spec/can.js';
import type { DeviceType } from '../device-type.js';
import { CanBus, CanHostPort } from './can-bus.js';
import { CanDevice } from './can-device.js';
import { CanDriver } from './can-driver.js';

/** `createDevice` arguments (structured-cloneable): the device is alone on a new loopback bus. */
export interface CanDeviceArgs {
  /** Maximum size of each queue, 1..32768. Default 256. */
  readonly queueSize?: number;
}

const bytes = (n: number, seed: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 11 + seed) & 0xff);

/**
 * The registry record of virtio-can: its name, device id, vhost-user back-end type, CLI,
 * createDevice and matrix case.
 */
export const CAN_TYPE: DeviceType = {
  name: 'can',
  deviceId: DeviceId.CAN,
  summary: 'a virtio CAN controller on a host loopback bus (in process; no vhost-user front-end in QEMU 7.2)',
  vhostUser: null,
  configSize: CanConfig.SIZE,
  cli: null,
  createDevice(args?: unknown): CanDevice {
    const a = (args ?? {}) as CanDeviceArgs;
    return new CanDevice(new CanBus(), a.queueSize !== undefined ? { queueSize: a.queueSize } : {});
  },
  matrixCase() {
    const bus = new CanBus();
    const host = new CanHostPort(bus);
    const device = new CanDevice(bus, { queueSize: 64 });
    return {
      device,
      async exercise(driver) {
        const can = new CanDriver(driver.context, { rxBuffers: 4 });
        // Initially STOPPED: a frame is refused.
        assert.equal(await can.sendRaw(can.encode({ id: 1, extended: false, fd: false, rtr: false, length: 1, data: bytes(1, 0) })), CanResult.NOT_OK);
        await can.start();
        const frames = [
          { id: 0x123, extended: false, fd: false, rtr: false, length: 8, data: bytes(8, 1) },
          { id: 0x1abcdef0, extended: true, fd: true, rtr: false, length: 64, data: bytes(64, 2) },
          { id: 0x7ff, extended: false, fd: false, rtr: true, length: 4, data: new Uint8Array(0) },
        ];
        for (const f of frames) await can.send(f);
        for (const f of frames) {
          const got = await host.next();
          assert.deepEqual({ ...got, data: [...got.data], dlc: 0 }, { ...f, data: [...f.data], dlc: 0 });
        }
        // From the bus to the driver.
        const incoming = can.nextFrame();
        host.send({ id: 0x42, extended: false, fd: true, rtr: false, length: 12, data: bytes(12, 3) });
        const got = await incoming;
        assert.deepEqual([got.id, got.fd, got.length, [...got.data]], [0x42, true, 12, [...bytes(12, 3)]]);
        await can.stop();
        assert.equal(device.isStarted, false);
        can.detach();
        host.close();
      },
    };
  },
};
