export { ConsoleDevice, type ConsoleDeviceOptions, type ConsoleDeviceStats, CONSOLE_TX_PIECE } from './console-device.js';
export { ConsolePort, type ConsolePortOptions } from './console-port.js';
export { ConsoleDriver, ConsoleDriverPort, type ConsoleDriverOptions, type ConsoleDriverStats } from './console-driver.js';
export { CONSOLE_TYPE, type ConsoleDeviceArgs, readPort } from './console-type.js';
