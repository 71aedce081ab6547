/**
 * Test helpers: an in-process device/driver pair and a small echo device.
 *
 * @module testing
 */
export { type Loopback, type LoopbackOptions, createLoopback } from './loopback.js';
export { ECHO_CONFIG_SIZE, EchoDevice, type EchoDeviceOptions } from './echo-device.js';
export {
  type ConnectInProcessOptions,
  type InProcessConnection,
  InProcessTransport,
  type InterruptDelivery,
  connectInProcess,
  dmaFor,
} from '../transport/in-process/in-process-transport.js';
export {
  type DeviceWorkerConnection,
  type DeviceWorkerOptions,
  WorkerTransport,
  startDeviceWorker,
} from '../transport/in-process/worker-transport.js';
export {
  type BlkMemoryDeviceArgs,
  DEVICE_FACTORIES_MODULE,
  type RegistryDeviceArgs,
  blkMemoryDevice,
  echoDevice,
  registryDevice,
} from './device-factories.js';
export {
  MATRIX_TRANSPORTS,
  MatrixTransport,
  type MatrixRunOptions,
  isLegacyTransport,
  matrixCells,
  runMatrixCase,
  transportServes,
} from './transport-matrix.js';
export type { WorkerChannel } from '../transport/in-process/worker-protocol.js';
export { xorshift32, xorshiftBelow, xorshiftBytes } from './xorshift.js';
