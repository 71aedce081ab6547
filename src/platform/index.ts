/**
 * The only OS access: fd passing, mmap, eventfd, memfd, `*at` file calls, TAP, pty, seqpacket sockets (a native N-API addon) and an in-process fake for tests.
 *
 * @module platform
 */
export type { FdWatcher, Mapping, Platform, RecvResult } from './types.js';
export { PlatformError, toPlatformError } from './platform-error.js';
export {
  DEFAULT_MAP_CHUNK,
  MAX_MAPPING,
  NativePlatform,
  loadNativeAddon,
  loadNativePlatform,
  mapChunked,
  nativePlatformAvailable,
} from './native-platform.js';
export type { ChunkedMapping, NativeRecvResult } from './native-platform.js';
export { FakePlatform } from './fake-platform.js';

import { loadNativePlatform } from './native-platform.js';
import type { Platform } from './types.js';

/** The platform for real use: the native addon (throws PlatformError ENOENT if it is not built). */
export function defaultPlatform(): Platform {
  return loadNativePlatform();
}
export type { FsAt } from './fs-at.js';
export type { MemoryAdvice } from './memory-advice.js';
export type { SeqpacketSockets } from './seqpacket.js';
export type { FsName } from './fs-at.js';
