/**
 * The registry record of the SPI controller device (5.21). vhost-user.json has no SPI back-end
 * type, QEMU 7.2 has no vhost-user-spi front-end and Linux 6.1 no virtio-spi driver, so there is
 * no `virtio-ts` sub-command: the device is served in process and on every transport of the
 * matrix, against the virtio-ts driver.
 */
import assert from 'node:assert/strict';
import { DeviceId } from '../../spec/device-id.js';
import { SpiConfig, SpiResult } from '../../spec/spi.js';
import type { DeviceType } from '../device-type.js';
import { SpiDevice } from './spi-device.js';
import { SpiDriver } from './spi-driver.js';
import { SPI_FLASH_STATUS_WEL, SpiFlashCommand, SpiFlashTarget, SpiLoopbackTarget } from './spi-targets.js';

/** `createDevice` arguments (structured-cloneable): chip select 0 a loopback target, 1 a flash of `flashBytes`. */
export interface SpiDeviceArgs {
  /** Maximum size of the request queue. Default 256. */
  readonly queueSize?: number;
  /** Size of the flash on chip select 1 (bytes, a multiple of 4 KiB up to 16 MiB). Default 64 KiB. */
  readonly flashBytes?: number;
}

/**
 * The registry record of virtio-spi: its name, device id, vhost-user back-end type, CLI,
 * createDevice and matrix case.
 */
export const SPI_TYPE: DeviceType = {
  name: 'spi',
  deviceId: DeviceId.SPI,
  summary: 'a virtio SPI controller with simulated targets (in process; no vhost-user front-end in QEMU 7.2)',
  vhostUser: null,
  configSize: SpiConfig.SIZE,
  cli: null,
  createDevice(args?: unknown): SpiDevice {
    const a = (args ?? {}) as SpiDeviceArgs;
    return new SpiDevice([new SpiLoopbackTarget(), new SpiFlashTarget(a.flashBytes)], a.queueSize !== undefined ? { queueSize: a.queueSize } : {});
  },
  matrixCase() {
    const flash = new SpiFlashTarget(64 * 1024);
    const device = new SpiDevice([new SpiLoopbackTarget(), flash], { queueSize: 64 });
    return {
      device,
      async exercise(driver) {
        const spi = new SpiDriver(driver.context);
        assert.equal(spi.config.csMaxNumber, 2);
        // Full duplex on the loopback target, 16-bit words.
        const tx = Uint8Array.from({ length: 64 }, (_, i) => i * 3);
        assert.deepEqual(await spi.transfer({ chipSelect: 0, tx, rxLength: 64, bitsPerWord: 16, csChange: 1 }), tx);
        // The flash: JEDEC id, write enable, program a page, read it back.
        const [, id] = await spi.message([{ chipSelect: 1, tx: Uint8Array.of(SpiFlashCommand.READ_ID) }, { chipSelect: 1, rxLength: 3 }]);
        assert.deepEqual([...id!], [...flash.jedecId]);
        await spi.message([{ chipSelect: 1, tx: Uint8Array.of(SpiFlashCommand.WRITE_ENABLE) }]);
        const [, st] = await spi.message([{ chipSelect: 1, tx: Uint8Array.of(SpiFlashCommand.READ_STATUS) }, { chipSelect: 1, rxLength: 1 }]);
        assert.equal(st![0]! & SPI_FLASH_STATUS_WEL, SPI_FLASH_STATUS_WEL);
        const page = Uint8Array.from({ length: 100 }, (_, i) => (i * 7 + 1) & 0xff);
        await spi.message([{ chipSelect: 1, tx: Uint8Array.of(SpiFlashCommand.PAGE_PROGRAM, 0x00, 0x12, 0x00) }, { chipSelect: 1, tx: page }]);
        assert.deepEqual(flash.data.subarray(0x1200, 0x1200 + 100), page);
        const [, back] = await spi.message([{ chipSelect: 1, tx: Uint8Array.of(SpiFlashCommand.READ, 0x00, 0x12, 0x00) }, { chipSelect: 1, rxLength: 100 }]);
        assert.deepEqual(back, page);
        // An unsupported bits_per_word: PARAM_ERR, no rx_buf.
        assert.deepEqual(await spi.transferRaw({ chipSelect: 0, rxLength: 4, bitsPerWord: 7 }), { result: SpiResult.PARAM_ERR });
        spi.detach();
      },
    };
  },
};
