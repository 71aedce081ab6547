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
