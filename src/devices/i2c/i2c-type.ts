/**
 * The registry record of the I2C adapter (5.16): `virtio-ts i2c`. vhost-user.json defines no
 * back-end type for I2C (QEMU's vhost-user-i2c-pci is its front-end all the same).
 */
import assert from 'node:assert/strict';
import { DeviceId } from '../../spec/device-id.js';
import type { DeviceType } from '../device-type.js';
import { I2C_CLI } from './cli.js';
import { EepromTarget } from './eeprom-target.js';
import { I2cDevice } from './i2c-device.js';
import { I2cDriver } from './i2c-driver.js';
import { RegisterFileTarget } from './register-file-target.js';

/** `createDevice` arguments (structured-cloneable). */
export interface I2cDeviceArgs {
  /** EEPROMs: address and size (default one of 256 bytes at 0x50). */
  readonly eeproms?: readonly {
    /** 7-bit I2C address. */
    readonly address: number;
    /** Bytes of the EEPROM. */
    readonly size: number;
  }[];
  /** Register files: address and register count (default 16 at 0x20). */
  readonly registerFiles?: readonly {
    /** 7-bit I2C address. */
    readonly address: number;
    /** Registers (bytes) in the file. */
    readonly count: number;
  }[];
  /** Maximum size of the request queue. Default 256. */
  readonly queueSize?: number;
}

/**
 * The registry record of virtio-i2c: its name, device id, vhost-user back-end type, CLI,
 * createDevice and matrix case.
 */
export const I2C_TYPE: DeviceType = {
  name: 'i2c',
  deviceId: DeviceId.I2C_ADAPTER,
  summary: 'serve a virtio I2C adapter with simulated targets (EEPROM, registers) over vhost-user',
  vhostUser: null,
  // 5.16.4: no configuration.
  configSize: 0,
  cli: I2C_CLI,
  createDevice(args?: unknown): I2cDevice {
    const a = (args ?? {}) as I2cDeviceArgs;
    const device = new I2cDevice(a.queueSize !== undefined ? { queueSize: a.queueSize } : {});
    for (const e of a.eeproms ?? [{ address: 0x50, size: 256 }]) device.attach(e.address, new EepromTarget({ size: e.size }));
    for (const r of a.registerFiles ?? [{ address: 0x20, count: 16 }]) device.attach(r.address, new RegisterFileTarget({ count: r.count }));
    return device;
  },
  matrixCase() {
    const device = new I2cDevice({ queueSize: 64 });
    const eeprom = new EepromTarget({ size: 256 });
    const regs = new RegisterFileTarget({ count: 16 });
    device.attach(0x50, eeprom);
    device.attach(0x20, regs);
    return {
      device,
      async exercise(driver) {
        const i2c = new I2cDriver(driver.context);
        assert.equal(await i2c.probe(0x50), true);
        assert.equal(await i2c.probe(0x51), false, 'nobody at 0x51');
        // A page write, then a write-read (repeated START) that wraps at the page end.
        await i2c.write(0x50, Uint8Array.of(0x10, 1, 2, 3, 4, 5, 6, 7, 8));
        assert.deepEqual(eeprom.memory.subarray(0x10, 0x18), Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8));
        assert.deepEqual(await i2c.writeRead(0x50, Uint8Array.of(0x10), 8), Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8));
        // Register file: set two, read back through the registers' own bytes.
        await i2c.write(0x20, Uint8Array.of(3, 0xab, 0xcd));
        assert.deepEqual(regs.registers.subarray(3, 5), Uint8Array.of(0xab, 0xcd));
        regs.registers[9] = 0x5a;
        assert.deepEqual(await i2c.writeRead(0x20, Uint8Array.of(9), 1), Uint8Array.of(0x5a));
        // A failing group: the register byte is NACKed, so the read after it fails too (FAIL_NEXT).
        const bad = await i2c.transfer([
          { address: 0x20, write: Uint8Array.of(200) },
          { address: 0x20, read: 2 },
        ]);
        assert.equal(bad.ok, false);
        assert.equal(bad.completed, 0);
        assert.deepEqual(bad.reads, [null, null]);
        // Several transactions in flight at once, each answered in order.
        const reads = await Promise.all([0, 1, 2, 3].map((i) => i2c.writeRead(0x50, Uint8Array.of(0x10 + i), 2)));
        assert.deepEqual(reads, [Uint8Array.of(1, 2), Uint8Array.of(2, 3), Uint8Array.of(3, 4), Uint8Array.of(4, 5)]);
        i2c.detach();
      },
    };
  },
};
