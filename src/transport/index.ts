export * from './bus.js';
export * from './mmio/registers.js';
export * from './mmio/mmio-device.js';
export * from './mmio/mmio-driver.js';
export * from './pci/constants.js';
export * from './pci/msix.js';
export * from './pci/pci-device.js';
export * from './pci/pci-driver.js';
