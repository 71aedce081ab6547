/**
 * Public vhost-user API. Back-end: serve any VirtioDevice to a VMM (`serveVhostUser`,
 * `VhostUserServer`, `VhostUserBackend`) and describe it (`capabilities`). Front-end: drive any
 * vhost-user back-end from TypeScript without a VM (`VhostUserDriverTransport`,
 * `startVhostUserDriver`, `spawnBackend`), the lower-level `VhostUserFrontend`, and the wire
 * constants (vhost-user.rst).
 *
 * @module vhost-user
 */
export {
  type ConnectEvent,
  type DisconnectEvent,
  type ServeVhostUserOptions,
  type VhostUserConnection,
  type VhostUserConnectionOptions,
  VhostUserServer,
  type VhostUserServerOptions,
  serveVhostUser,
} from './server.js';
export {
  type QueueFactory,
  type RingInfo,
  type RingPhase,
  SUPPORTED_PROTOCOL_FEATURES,
  VHOST_USER_TRANSPORT_FEATURES,
  VhostUserBackend,
  type VhostUserBackendOptions,
  defaultQueueFactory,
} from './backend.js';
export {
  VHOST_USER_BACKEND_TYPES,
  VHOST_USER_TYPE_FEATURES,
  type VhostUserBackendDescription,
  type VhostUserBackendType,
  type VhostUserCapabilities,
  backendDescription,
  backendTypeOf,
  capabilities,
  printCapabilities,
} from './capabilities.js';
export { type BackendRequestOptions, MAX_PENDING_REPLIES } from './backend-channel.js';
export { VhostUserError, VhostUserFault } from './codec.js';
export { noFds, takeFds } from './dispatcher.js';
export { type DeviceRequestReply, type VhostUserDevice, type VhostUserDeviceHooks, type VhostUserSession } from './device-hooks.js';
export { VhostUserFrontend } from './frontend.js';
export {
  FRONTEND_PROTOCOL_FEATURES,
  VhostUserDriverTransport,
  type VhostUserTransportOptions,
  offers,
  startVhostUserDriver,
} from './frontend-transport.js';
export { type BackendProcess, spawnBackend, startBackendProcess, waitForSocket } from './frontend-process.js';
export { BackendReq, FrontendReq, HeaderFlag, ProtocolFeature, type VhostUserMessage, frontendReqName } from './messages.js';
export { WORKER_PROTOCOL_FEATURES, WorkerPool, type WorkerPin, type WorkerPoolOptions } from './worker-pool.js';
export type { ConfigMsg, InflightDesc, MemRegion, VringAddr } from './messages.js';
export type { MessageSink } from './dispatcher.js';
export type { VhostQueue } from './vhost-queue.js';
export type { DirtyLog } from './vhost-queue.js';
export type { PackedInflight, SplitInflight } from './inflight.js';
export type { RingWorkers, VhostUserMessageRouter } from './worker-router.js';
export type { WorkerCallChannel } from './worker-call-channel.js';
export type { WorkerAnswer, WorkerCall, WorkerReply } from './worker-protocol.js';
