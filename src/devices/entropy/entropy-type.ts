/** The registry record of the entropy device (5.4): `virtio-ts rng`, vhost-user type "rng". */
import assert from 'node:assert/strict';
import { EntropyDriver } from './entropy-driver.js';
import { DeviceId } from '../../spec/device-id.js';
import type { DeviceType } from '../device-type.js';
import { ENTROPY_CLI } from './cli.js';
import { EntropyDevice, type EntropyDeviceOptions } from './entropy-device.js';

/** `createDevice` arguments (structured-cloneable). */
export interface EntropyDeviceArgs {
  /** Maximum queue size. Default 256. */
  readonly queueSize?: number;
  /** Bytes given per buffer at most. Default 64 KiB. */
  readonly maxBytesPerBuffer?: number;
}

/**
 * The registry record of the entropy device: `virtio-ts rng`, vhost-user type `rng`, its matrix
 * case.
 */
export const ENTROPY_TYPE: DeviceType = {
  name: 'rng',
  deviceId: DeviceId.ENTROPY,
  summary: 'serve a virtio entropy device over vhost-user',
  vhostUser: { type: 'rng', features: [] },
  // 5.4.4: no configuration.
  configSize: 0,
  cli: ENTROPY_CLI,
  createDevice(args?: unknown): EntropyDevice {
    const a = (args ?? {}) as EntropyDeviceArgs;
    const opts: EntropyDeviceOptions = {};
    if (a.queueSize !== undefined) opts.queueSize = a.queueSize;
    if (a.maxBytesPerBuffer !== undefined) opts.maxBytesPerBuffer = a.maxBytesPerBuffer;
    return new EntropyDevice(opts);
  },
  matrixCase() {
    // A counting source: the bytes the driver reads must be the ones the device's source made.
    let calls = 0;
    const device = new EntropyDevice({
      queueSize: 64,
      source: (dst) => {
        calls++;
        for (let i = 0; i < dst.length; i++) dst[i] = (i * 13 + calls) & 0xff;
      },
    });
    return {
      device,
      async exercise(driver) {
        const rng = new EntropyDriver(driver.context, { chunk: 1000 });
        const [a, b] = await Promise.all([rng.read(2500), rng.read(64)]);
        assert.equal(a!.length, 2500);
        assert.equal(b!.length, 64);
        assert.ok(calls >= 4, `the source filled every buffer (${calls} calls)`);
        // Each 1000-byte buffer starts at the source's pattern for its call number.
        assert.ok(a!.some((x) => x !== 0));
        assert.equal((a![1]! - a![0]!) & 0xff, 13, 'the bytes are the source pattern');
      },
    };
  },
};
