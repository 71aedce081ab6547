export { GpioDevice, GPIO_MAX_LINES, type GpioDeviceOptions, type GpioLineInfo } from './gpio-device.js';
export { GpioLine, type GpioLineSpec } from './gpio-line.js';
export { GpioDriver, GpioRequestError, type GpioInterruptHandler } from './gpio-driver.js';
export { GPIO_TYPE, type GpioDeviceArgs } from './gpio-type.js';
export { GPIO_CLI, parseGpioLineSpec, type GpioOptions, type GpioLineOption } from './cli.js';
export { gpioControlCommand, startGpioControl, type GpioControlTarget } from './gpio-control.js';
