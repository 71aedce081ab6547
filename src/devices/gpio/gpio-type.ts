/**
 * The registry record of the GPIO device (5.18): `virtio-ts gpio`. vhost-user.json defines no
 * back-end type for GPIO (QEMU's vhost-user-gpio-pci is its front-end all the same).
 */
import assert from 'node:assert/strict';
import { DeviceId } from '../../spec/device-id.js';
import { GpioDirection, GpioIrqType } from '../../spec/gpio.js';
import type { DeviceType } from '../device-type.js';
import { GPIO_CLI } from './cli.js';
import { GpioDevice } from './gpio-device.js';
import { GpioDriver } from './gpio-driver.js';

/** `createDevice` arguments (structured-cloneable). */
export interface GpioDeviceArgs {
  /** Line names (null: unnamed); default "led", "button" and two unnamed lines. */
  readonly names?: readonly (string | null)[];
  /** Offer VIRTIO_GPIO_F_IRQ. Default true. */
  readonly irq?: boolean;
  /** Maximum queue size of both queues. Default 256. */
  readonly queueSize?: number;
}

/**
 * The registry record of virtio-gpio: its name, device id, vhost-user back-end type, CLI,
 * createDevice and matrix case.
 */
export const GPIO_TYPE: DeviceType = {
  name: 'gpio',
  deviceId: DeviceId.GPIO,
  summary: 'serve a virtio GPIO device (named lines, interrupts driven by the host) over vhost-user',
  vhostUser: null,
  // 5.18.4 struct virtio_gpio_config: 8 bytes (QEMU's vhost-user-gpio asks GET_CONFIG for them).
  configSize: 8,
  cli: GPIO_CLI,
  createDevice(args?: unknown): GpioDevice {
    const a = (args ?? {}) as GpioDeviceArgs;
    const names = a.names ?? ['led', 'button', null, null];
    return new GpioDevice(
      names.map((name) => ({ name })),
      { ...(a.irq !== undefined ? { irq: a.irq } : {}), ...(a.queueSize !== undefined ? { queueSize: a.queueSize } : {}) },
    );
  },
  matrixCase() {
    const outputs: string[] = [];
    const device = new GpioDevice([{ name: 'led' }, { name: 'button', direction: GpioDirection.IN }, {}, { name: 'reset' }], {
      queueSize: 64,
      onOutput: (line, level) => outputs.push(`${line}=${level}`),
    });
    return {
      device,
      async exercise(driver) {
        const gpio = new GpioDriver(driver.context);
        assert.equal(gpio.ngpio, 4);
        assert.equal(gpio.hasIrq, true);
        assert.deepEqual(await gpio.lineNames(), ['led', 'button', null, 'reset']);
        // An output: the value first, then the direction; the host sees the level.
        await gpio.setDirection(0, GpioDirection.OUT, 1);
        assert.deepEqual(outputs, ['0=1']);
        assert.equal(await gpio.getValue(0), 1);
        assert.equal(await gpio.getDirection(1), GpioDirection.IN);
        device.setInput('button', 1);
        assert.equal(await gpio.getValue(1), 1);
        // An edge interrupt raised by the host reaches the handler; disabling returns the buffer.
        let count = 0;
        let wake: (() => void) | null = null;
        const next = (): Promise<void> => new Promise<void>((r) => (wake = r));
        let interrupt = next();
        await gpio.enableInterrupt(1, GpioIrqType.EDGE_FALLING, () => {
          count++;
          wake?.();
        });
        device.setInput('button', 0);
        await interrupt;
        // A second edge: delivered at once if the driver already unmasked again, else latched
        // until it does (device/gpio/9). A rising edge does not count.
        interrupt = next();
        device.setInput('button', 1);
        device.setInput('button', 0);
        await interrupt;
        assert.equal(count, 2);
        await gpio.disableInterrupt(1);
        assert.equal(device.line('button').irqUnmasked, false);
        // Several messages in flight at once, for different lines.
        await Promise.all([gpio.setValue(3, 1), gpio.setDirection(2, GpioDirection.IN), gpio.setValue(0, 0)]);
        assert.deepEqual(outputs, ['0=1', '0=0']);
        await gpio.setDirection(0, GpioDirection.NONE);
        assert.equal(device.line('led').direction, GpioDirection.NONE);
        gpio.detach();
      },
    };
  },
};
