export { CanBus, CanBusSlot, CanHostPort, type CanBusNode, type CanFrame } from './can-bus.js';
export { CanDevice, type CanDeviceOptions } from './can-device.js';
export { CanDriver, CanRequestError, type CanDriverOptions } from './can-driver.js';
export { CAN_TYPE, type CanDeviceArgs } from './can-type.js';
