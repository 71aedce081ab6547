/**
 * Device groups and administration virtqueues (2.12, 2.13): the device side (AdminDevice,
 * AdminDispatcher, AdminQueueServer, groups) and the driver side (AdminDriver), with the
 * contract command modules implement (AdminCommandHandler, AdminCommandSender).
 */
export * from './admin-command-handler.js';
export * from './admin-group.js';
export * from './admin-dispatcher.js';
export * from './admin-queue-server.js';
export * from './admin-device.js';
export * from './admin-driver.js';
export * from './sriov-driver.js';
export * from './device-parts/index.js';
export * from './admin-command-status-error.js';
export * from './capabilities/index.js';
export * from './resource-objects/index.js';
export * from './legacy-interface/index.js';
export * from './admin-owner.js';
export * from './admin-owner-driver.js';
