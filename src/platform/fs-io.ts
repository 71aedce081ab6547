/**
 * Typed wrapper of native/fs-io.c: a file's pread/pwrite on the libuv thread pool, into or out
 * of a bounce buffer the slot owns (never guest memory: a vhost-user memory-table change may
 * unmap that while a pool thread works; the caller copies at completion, on the JS thread,
 * after checking the request is still live).
 *
 * A slot is made once and reused (no allocation per request): `submit` queues one transfer,
 * `onDone(result)` runs on the JS thread with the bytes moved (a short count at end of file or
 * on a full disk) or -errno when nothing moved. One transfer at a time per slot; the caller keeps
 * the descriptor open until `onDone`. `free()` when the slot will not be used again.
 */
import { loadNativeAddon } from './native-platform.js';
import { PlatformError, toPlatformError } from './platform-error.js';

export const FsIoOp = { READ: 0, WRITE: 1 } as const;
export type FsIoOp = (typeof FsIoOp)[keyof typeof FsIoOp];

export interface FsIoSlot {
  /** The slot's bounce buffer: READ fills it, WRITE sends what the caller put there. */
  readonly bounce: Buffer;
  /** The completion callback (held here: the addon keeps only a weak reference while idle). */
  readonly onDone: (result: number) => void;
  /** Queues `op` of `len` bytes (at most bounce.length) at `position` of `fd`. */
  submit(op: FsIoOp, fd: number, position: number, len: number): void;
  free(): void;
}

/** Spans one vectored call takes at most (IOV_MAX), and guest memory views. */
export const VECTORED_SPANS_MAX = 1024;
export const VECTORED_VIEWS_MAX = 64;

/**
 * preadv/pwritev over guest memory, synchronously: `spans` holds `count` triples (index into
 * `views`, offset in that view, length). Bytes moved, or -errno.
 */
export interface VectoredIo {
  preadv(fd: number, position: number, views: readonly Uint8Array[], spans: Float64Array, count: number): number;
  pwritev(fd: number, position: number, views: readonly Uint8Array[], spans: Float64Array, count: number): number;
}

interface FsIoAddon {
  fsPreadv(fd: number, position: number, views: readonly Uint8Array[], spans: Float64Array, count: number): number;
  fsPwritev(fd: number, position: number, views: readonly Uint8Array[], spans: Float64Array, count: number): number;
  fsIoSlot(bounce: Uint8Array, done: (result: number) => void): object;
  fsIoSubmit(slot: object, op: number, fd: number, position: number, len: number): void;
  fsIoFree(slot: object): void;
}

let addon: FsIoAddon | undefined;

function load(): FsIoAddon {
  if (addon) return addon;
  let a: Readonly<Record<string, unknown>>;
  try {
    a = loadNativeAddon();
  } catch (e) {
    throw toPlatformError('fsIo', e);
  }
  if (typeof a['fsIoSlot'] !== 'function') throw new PlatformError('ENOSYS', 'the native addon has no fs-io functions (rebuild it)');
  addon = a as unknown as FsIoAddon;
  return addon;
}

/** Whether the addon has the thread-pool I/O calls. */
export function fsIoAvailable(): boolean {
  try {
    load();
    return true;
  } catch {
    return false;
  }
}

/** The vectored calls (PlatformError ENOSYS/ENOENT when the addon lacks them). */
export function loadVectoredIo(): VectoredIo {
  const a = load();
  if (typeof a.fsPreadv !== 'function') throw new PlatformError('ENOSYS', 'the native addon has no fsPreadv (rebuild it)');
  return {
    preadv: (fd, position, views, spans, count) => {
      try {
        return a.fsPreadv(fd, position, views, spans, count);
      } catch (e) {
        throw toPlatformError('fsPreadv', e);
      }
    },
    pwritev: (fd, position, views, spans, count) => {
      try {
        return a.fsPwritev(fd, position, views, spans, count);
      } catch (e) {
        throw toPlatformError('fsPwritev', e);
      }
    },
  };
}

/** A slot with a bounce buffer of `size` bytes; `onDone` gets each transfer's result. */
export function createFsIoSlot(size: number, onDone: (result: number) => void): FsIoSlot {
  const a = load();
  const bounce = Buffer.allocUnsafeSlow(size);
  let handle: object;
  try {
    handle = a.fsIoSlot(bounce, onDone);
  } catch (e) {
    throw toPlatformError('fsIoSlot', e);
  }
  return {
    bounce,
    // The addon holds `onDone` weakly while the slot is idle (so a dropped slot can be
    // collected); this object keeps it alive for as long as the slot is used.
    onDone,
    submit(op, fd, position, len) {
      try {
        a.fsIoSubmit(handle, op, fd, position, len);
      } catch (e) {
        throw toPlatformError('fsIoSubmit', e);
      }
    },
    free() {
      try {
        a.fsIoFree(handle);
      } catch {
        // freed twice: nothing more to release
      }
    },
  };
}
