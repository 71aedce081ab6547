/**
 * The registry record of the SCMI device (5.17). vhost-user.json defines no "scmi" back-end type
 * and QEMU 7.2 has no vhost-user-scmi front-end (Linux 6.1's virtio SCMI transport needs a device
 * tree / ACPI description x86 guests here lack), so there is no sub-command: the device is a
 * library object, proven on every transport of the matrix.
 */
import assert from 'node:assert/strict';
import { DeviceId } from '../../spec/device-id.js';
import { ScmiMessageType, ScmiProtocol, ScmiSensorNotification, ScmiSensorType, ScmiTripPoint } from '../../spec/scmi.js';
import type { DeviceType } from '../device-type.js';
import { ScmiDevice, type ScmiDeviceOptions } from './scmi-device.js';
import { ScmiDriver, type ScmiP2aMessage } from './scmi-driver.js';
import type { ScmiSensorSpec } from './scmi-sensor-protocol.js';

/** `createDevice` arguments (structured-cloneable). */
export interface ScmiDeviceArgs {
  /** The sensors of the Sensor protocol. Default: one "cpu-temp" in degrees C reading 45. */
  readonly sensors?: readonly {
    /** Sensor name: ASCII, at most 15 characters. */
    readonly name: string;
    /** SCMI unit type (ScmiSensorType). Default DEGREES_C. */
    readonly type?: number;
    /** The sensor's fixed reading (safe integer). Default 0. */
    readonly value?: number;
  }[];
  /** BASE_DISCOVER_VENDOR: ASCII, at most 15 characters. Default "virtio-ts". */
  readonly vendor?: string;
  /** Maximum queue size of each queue. Default 128. */
  readonly queueSize?: number;
}

/**
 * The registry record of virtio-scmi: its name, device id, vhost-user back-end type, CLI,
 * createDevice and matrix case.
 */
export const SCMI_TYPE: DeviceType = {
  name: 'scmi',
  deviceId: DeviceId.SCMI,
  summary: 'a virtio SCMI platform with Base and Sensor protocols (library only: no vhost-user front-end exists for it)',
  vhostUser: null,
  configSize: 0,
  cli: null,
  createDevice(args?: unknown): ScmiDevice {
    const a = (args ?? {}) as ScmiDeviceArgs;
    const opts: ScmiDeviceOptions = {
      ...(a.queueSize !== undefined ? { queueSize: a.queueSize } : {}),
      ...(a.vendor !== undefined ? { vendor: a.vendor } : {}),
      sensors: (a.sensors ?? [{ name: 'cpu-temp', type: ScmiSensorType.DEGREES_C, value: 45 }]).map((s): ScmiSensorSpec => ({ ...s })),
    };
    return new ScmiDevice(opts);
  },
  matrixCase() {
    const device = new ScmiDevice({
      queueSize: 64,
      vendor: 'matrix',
      sensors: [
        { name: 'soc-temp', value: 41 },
        { name: 'vbat', type: ScmiSensorType.VOLTS, scale: -3, value: 3300 },
      ],
    });
    return {
      device,
      async exercise(driver) {
        const scmi = new ScmiDriver(driver.context);
        assert.equal(scmi.p2a, true);
        assert.equal(await scmi.vendor(), 'matrix');
        assert.deepEqual(await scmi.listProtocols(), [ScmiProtocol.SENSOR]);
        const sensors = await scmi.sensorDescriptions();
        assert.deepEqual(
          sensors.map((s) => [s.id, s.name, s.type, s.scale]),
          [
            [0, 'soc-temp', ScmiSensorType.DEGREES_C, 0],
            [1, 'vbat', ScmiSensorType.VOLTS, -3],
          ],
        );
        assert.equal(await scmi.readSensor(1), 3300);
        device.sensors.setValue(0, -5);
        assert.equal(await scmi.readSensorAsync(0), -5);
        // A trip point at 50, upwards: crossing it raises SENSOR_TRIP_POINT_EVENT on the eventq.
        await scmi.sensorTripPointConfig(0, 1, ScmiTripPoint.POSITIVE, 50);
        await scmi.sensorTripPointNotify(0, true);
        const event = new Promise<ScmiP2aMessage>((resolve) => scmi.onNotification(resolve));
        device.sensors.setValue(0, 60);
        const e = await event;
        assert.equal(e.type, ScmiMessageType.NOTIFICATION);
        assert.equal(e.messageId, ScmiSensorNotification.TRIP_POINT_EVENT);
        assert.deepEqual([...new Uint32Array(e.payload.slice(0, 12).buffer)].slice(1), [0, 1 | ScmiTripPoint.DESC_ASCENDING]);
        scmi.detach();
      },
    };
  },
};
