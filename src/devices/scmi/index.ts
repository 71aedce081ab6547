export { ScmiDevice, type ScmiDeviceOptions } from './scmi-device.js';
export { ScmiDriver, ScmiStatusError, type ScmiDriverOptions, type ScmiP2aMessage, type ScmiResponse, type ScmiSensorInfo } from './scmi-driver.js';
export { ScmiBaseProtocol, type ScmiBaseIdentity } from './scmi-base-protocol.js';
export { ScmiSensorProtocol, SCMI_MAX_PENDING_ASYNC, type ScmiSensorSpec } from './scmi-sensor-protocol.js';
export { ScmiEventQueue, MAX_PENDING_NOTIFICATIONS } from './scmi-events.js';
export { SCMI_TYPE, type ScmiDeviceArgs } from './scmi-type.js';
export type { ScmiCommand, ScmiProtocolHandler } from './scmi-command.js';
