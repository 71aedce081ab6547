/**
 * Giving pages of a mapping back to the host kernel (native/memory-advice.c): what a balloon
 * does with pages the guest gave up (5.5.6: inflated pages, free page reporting) when guest
 * memory is an mmapped area (a vhost-user session maps the front-end's memfds MAP_SHARED).
 */
import { loadNativeAddon } from './native-platform.js';
import { PlatformError, toPlatformError } from './platform-error.js';

/** How to release: the madvise advice (numbers shared with the addon). */
export const MemoryAdvice = {
  /** MADV_DONTNEED: private mappings; anonymous pages read back zero. */
  DONTNEED: 0,
  /**
   * MADV_REMOVE: shared mappings of shmem/memfd (vhost-user guest memory); frees the backing
   * pages, so every mapping of them (the front-end's too) reads back zero.
   */
  REMOVE: 1,
} as const;
export type MemoryAdvice = (typeof MemoryAdvice)[keyof typeof MemoryAdvice];

interface MemoryAdviceAddon {
  madviseRange(bytes: Uint8Array, offset: number, len: number, advice: number): number;
}

let addon: MemoryAdviceAddon | null = null;

function load(): MemoryAdviceAddon {
  if (addon) return addon;
  const a = loadNativeAddon();
  if (typeof a['madviseRange'] !== 'function') throw new PlatformError('ENOSYS', 'the native addon has no madviseRange (rebuild it: npm run install)');
  addon = a as unknown as MemoryAdviceAddon;
  return addon;
}

/**
 * Advises the whole host pages inside `bytes[offset, offset + len)`; returns how many bytes
 * that covered (partial pages at either end are left alone). `bytes` must view an mmapped
 * area (a Mapping's bytes): on a JS heap buffer the result is undefined. Throws PlatformError.
 */
export function adviseMemory(bytes: Uint8Array, offset: number, len: number, advice: MemoryAdvice): number {
  const a = load();
  try {
    return a.madviseRange(bytes, offset, len, advice);
  } catch (e) {
    throw toPlatformError('madvise', e);
  }
}
