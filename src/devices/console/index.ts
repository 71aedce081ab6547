export { ConsoleDevice, CONSOLE_TX_PIECE } from './console-device.js';
export type { ConsoleDeviceOptions, ConsoleDeviceStats } from './console-device-options.js';
export { ConsolePort, type ConsolePortOptions } from './console-port.js';
export { ConsoleDriver, ConsoleDriverPort, type ConsoleDriverOptions, type ConsoleDriverStats } from './console-driver.js';
export { CONSOLE_TYPE, type ConsoleDeviceArgs, readPort } from './console-type.js';
export { CONSOLE_CLI, type ConsoleCliOptions } from './cli.js';
export { type ConsoleHostSpec, type ConsolePortSpec, parsePortSpec } from './port-spec.js';
export { ConsolePortLink } from './port-link.js';
export { RebindTolerantContext } from './rebind-tolerant-context.js';
