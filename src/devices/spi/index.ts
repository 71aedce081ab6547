export { SpiDevice, type SpiDeviceOptions, type SpiControllerConfig, type SpiConfigValues } from './spi-device.js';
export { SpiDriver, SpiTransferError, type SpiTransfer, type SpiTransferResult, type SpiDriverConfig } from './spi-driver.js';
export { SPI_TYPE, type SpiDeviceArgs } from './spi-type.js';
export { SpiFlashTarget, SpiLoopbackTarget, SpiFlashCommand, SPI_FLASH_STATUS_WEL, type SpiTarget, type SpiTransferInfo } from './spi-targets.js';
