export { VsockDevice, type VsockDeviceOptions, type VsockDeviceStats } from './vsock-device.js';
export { VsockDriver, type VsockDriverOptions } from './vsock-driver.js';
export { VsockSocket } from './vsock-socket.js';
export type { VsockBackend, VsockHostConnector, VsockHostStream, VsockPeer } from './vsock-backend.js';
export { MemoryVsockBackend, MemoryVsockConnection } from './backends/memory-backend.js';
export { UnixVsockBackend, type UnixVsockBackendOptions } from './backends/unix-backend.js';
export { VSOCK_TYPE, type VsockDeviceArgs } from './vsock-type.js';
