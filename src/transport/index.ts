/**
 * Transports at register level (4.1 PCI, 4.2 MMIO, 4.3 Channel I/O), device and driver sides, plus in-process, device-in-worker, v86 and x-remote transports.
 *
 * @module transport
 */
export * from './bus.js';
export { SHARED_MEMORY_ALIGN, type PlacedSharedMemoryRegion, type SharedMemoryRegionInfo, placeSharedMemory } from './shared-memory.js';
export * from './mmio/registers.js';
export * from './mmio/mmio-device.js';
export * from './mmio/mmio-driver.js';
export * from './pci/constants.js';
export * from './pci/msix.js';
export * from './pci/pci-device.js';
export * from './pci/pci-driver.js';
export * from './pci/sriov-capability.js';
export * from './ccw/constants.js';
export * from './ccw/ccw-device.js';
export * from './ccw/ccw-driver.js';
export * from './loopback.js';
export * from './x-remote/index.js';
export { type V86AttachOptions, type V86Attachment, type V86DeviceSlot, attachV86Devices } from './v86/v86-attach.js';
export { type V86Cpu, type V86PciAdapterOptions, type V86PciBus, type V86PortEntry, V86PciAdapter, v86GuestMemory } from './v86/v86-pci-adapter.js';
