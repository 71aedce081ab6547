/**
 * Public device API: the device contract and the transport-independent device lifecycle core.
 *
 * @module device
 */
export type { AdminQueueRange, DeviceContext, DeviceCoreApi, InterruptSink, QueueRefusal, QueueRegisters, SharedMemoryRegion, VirtioDevice } from './types.js';
export { QueueArea, QueueRefusalReason } from './types.js';
export { QueueRegisterFile, queueSizeProblem, refusalError, setUpQueue } from './queue-register-file.js';
export { DeviceCore } from './device-core.js';
export type { DeviceCoreOptions } from './device-core-options.js';
export { type DirectServer, QueueRequest, QueueServer, queueServerOf, type QueueServerOptions, type RequestHandler, type RequestResult } from './queue-server.js';
export { type WorkerDeviceFactory, type WorkerDeviceSpec, openWorkerDevice } from './worker-device.js';
export type { CoreQueuesHost } from './core-queues.js';
export type { QueueStats } from './queue-stats.js';
export type { QueueCounters } from './queue-stats.js';
