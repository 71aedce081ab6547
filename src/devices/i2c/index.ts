export { I2cDevice, type I2cDeviceOptions, type I2cDeviceStats } from './i2c-device.js';
export type { I2cTarget } from './i2c-target.js';
export { EepromTarget, type EepromOptions } from './eeprom-target.js';
export { RegisterFileTarget, type RegisterFileOptions } from './register-file-target.js';
export { I2cDriver, I2cTransferError, I2C_MAX_MESSAGE, type I2cMessage, type I2cTransferResult } from './i2c-driver.js';
export { I2C_TYPE, type I2cDeviceArgs } from './i2c-type.js';
export { I2C_CLI, parseI2cAddress, parseI2cTargetSpec, type I2cOptions, type I2cTargetOption } from './cli.js';
