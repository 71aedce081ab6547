/** The driver side of QEMU's multi-process protocol (x-remote): QEMU device models as PCI functions. */
export * from './x-remote-error.js';
export * from './messages.js';
export * from './connection.js';
export * from './pci-function.js';
export * from './guest-ram.js';
export * from './intx-line.js';
export * from './start-device.js';
export * from './qmp-client.js';
