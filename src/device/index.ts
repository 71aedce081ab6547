/** Public device API: the device contract and the transport-independent device lifecycle core. */
export type { DeviceContext, DeviceCoreApi, InterruptSink, QueueRegisters, VirtioDevice } from './types.js';
export { DeviceCore, type DeviceCoreOptions } from './device-core.js';
export { QueueRequest, QueueServer, type QueueServerOptions, type RequestHandler, type RequestResult } from './queue-server.js';
