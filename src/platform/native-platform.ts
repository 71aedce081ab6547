/**
 * The Platform over the native addon (native/*.c, one file per concept): prebuilt for linux-x64
 * and linux-arm64 in the package (prebuilds/, scripts/prebuild.mjs at pack time), or built by
 * `npm install` through node-gyp into build/Release/virtio_ts_platform.node. The addon only maps arguments to
 * syscalls; this wrapper gives it the Platform shape and turns every failure into a
 * PlatformError (VirtioError code PLATFORM) carrying the errno name.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { PlatformError, toPlatformError } from './platform-error.js';
import type { FdWatcher, Mapping, Platform, RecvResult } from './types.js';

/** What the addon exports (see the comments in native/*.c). */
interface Addon {
  listenUnix(path: string, backlog?: number): number;
  accept(listenFd: number): number;
  connectUnix(path: string): number;
  socketpair(): [number, number];
  recvmsg(fd: number, buf: Uint8Array, offset: number, len: number, maxFds: number): NativeRecvResult;
  sendmsg(fd: number, buf: Uint8Array, offset: number, len: number, fds?: readonly number[]): number;
  close(fd: number): void;
  watchReadable(fd: number, cb: () => void): object;
  stopWatch(handle: object): void;
  pollReadable(fd: number, timeoutMs?: number): boolean;
  mmap(fd: number, offset: number, length: number): [ArrayBuffer, object];
  munmap(buffer: ArrayBuffer, handle: object): void;
  memfd(name: string, size: number): number;
  eventfd(initial?: number): number;
  eventfdWrite(fd: number, value?: number): void;
  eventfdRead(fd: number): number;
  dup(fd: number): number;
  openFdCount(): number;
}

/** recvmsg's result from the addon: also how many fds beyond `maxFds` arrived and were closed. */
export interface NativeRecvResult extends RecvResult {
  /** File descriptors beyond `maxFds` that arrived with the message and were closed. */
  readonly dropped: number;
}

/** Largest single mapping: Node 20 caps an external ArrayBuffer at 4 GiB. */
export const MAX_MAPPING = 2 ** 32;
/** Default chunk of `mapChunked`: 1 GiB, page-aligned and well under the cap. */
export const DEFAULT_MAP_CHUNK = 2 ** 30;

// The package root, relative to dist/src/platform/ (the compiled location of this file).
const PACKAGE_ROOT = new URL('../../../', import.meta.url);

/** What to do when no addon loads: said in the error, for a package user (not a contributor). */
const ADDON_HELP =
  'the native addon of virtio-ts is needed for vhost-user (fd passing, mmap, eventfd): no prebuilt binary ' +
  `matches linux-${process.arch} and none was built from source. Install a C compiler, make and Python 3, ` +
  'then run `npm rebuild virtio-ts` (in a clone of virtio-ts: `npm install`)';

let addon: Addon | undefined;
let loadError: PlatformError | undefined;

function loadAddon(): Addon {
  if (addon) return addon;
  if (loadError) throw loadError;
  if (process.platform !== 'linux') {
    loadError = new PlatformError('ENOSYS', `the native platform needs Linux (this is ${process.platform})`);
    throw loadError;
  }
  const require = createRequire(import.meta.url);
  try {
    // node-gyp-build looks in build/Release (built from source), then prebuilds/linux-<arch>/
    // (shipped in the package, prebuildify's layout), by N-API version.
    const load = require('node-gyp-build') as (dir: string) => unknown;
    addon = load(fileURLToPath(PACKAGE_ROOT)) as Addon;
    return addon;
  } catch (e) {
    loadError = new PlatformError('ENOENT', `${ADDON_HELP} (${(e as Error).message.split('\n')[0] ?? ''})`);
    throw loadError;
  }
}

/**
 * The addon's raw exports, for the typed wrappers of one concept each (src/platform/<concept>.ts)
 * that add functions without widening the Platform interface. Throws PlatformError like
 * loadNativePlatform when the addon is not built.
 */
export function loadNativeAddon(): Readonly<Record<string, unknown>> {
  return loadAddon() as unknown as Readonly<Record<string, unknown>>;
}

class NativeMapping implements Mapping {
  private view: Uint8Array;
  private mapped = true;
  constructor(
    private readonly a: Addon,
    private readonly buffer: ArrayBuffer,
    private readonly handle: object,
  ) {
    this.view = new Uint8Array(buffer);
  }
  get bytes(): Uint8Array {
    return this.view;
  }
  get length(): number {
    return this.mapped ? this.view.byteLength : 0;
  }
  unmap(): void {
    if (!this.mapped) return;
    this.mapped = false;
    try {
      // Detaches `buffer` first: every view of it (here and in callers) reads as empty.
      this.a.munmap(this.buffer, this.handle);
    } catch (e) {
      throw toPlatformError('munmap', e);
    }
    this.view = new Uint8Array(0); // a view over the detached buffer cannot even be constructed
  }
}

/** The addon-backed Platform. Stateless: one instance serves the whole process. */
export class NativePlatform implements Platform {
  constructor(private readonly a: Addon = loadAddon()) {}

  listenUnix(path: string, backlog = 128): number {
    try {
      return this.a.listenUnix(path, backlog);
    } catch (e) {
      throw toPlatformError(`listen ${path}`, e);
    }
  }
  accept(listenFd: number): number {
    try {
      return this.a.accept(listenFd);
    } catch (e) {
      throw toPlatformError('accept', e);
    }
  }
  connectUnix(path: string): number {
    try {
      return this.a.connectUnix(path);
    } catch (e) {
      throw toPlatformError(`connect ${path}`, e);
    }
  }
  socketpair(): [number, number] {
    try {
      return this.a.socketpair();
    } catch (e) {
      throw toPlatformError('socketpair', e);
    }
  }
  recvmsg(fd: number, buf: Uint8Array, offset: number, len: number, maxFds: number): NativeRecvResult {
    try {
      return this.a.recvmsg(fd, buf, offset, len, maxFds);
    } catch (e) {
      throw toPlatformError('recvmsg', e);
    }
  }
  sendmsg(fd: number, buf: Uint8Array, offset: number, len: number, fds?: readonly number[]): number {
    try {
      return this.a.sendmsg(fd, buf, offset, len, fds);
    } catch (e) {
      throw toPlatformError('sendmsg', e);
    }
  }
  /** Closes an fd this process owns (throws PlatformError EBADF for one it does not). */
  close(fd: number): void {
    try {
      this.a.close(fd);
    } catch (e) {
      throw toPlatformError('close', e);
    }
  }
  watchReadable(fd: number, cb: () => void): FdWatcher {
    let handle: object;
    try {
      handle = this.a.watchReadable(fd, cb);
    } catch (e) {
      throw toPlatformError('watchReadable', e);
    }
    const a = this.a;
    return {
      stop(): void {
        a.stopWatch(handle); // idempotent, and safe from inside `cb`
      },
    };
  }
  /**
   * Whether `fd` is readable (or at end of stream): right now (a zero-timeout poll) for busy
   * checks without a watcher, or, with `timeoutMs`, after blocking this thread up to that long
   * (synchronous request/reply protocols such as x-remote register accesses).
   */
  pollReadable(fd: number, timeoutMs = 0): boolean {
    try {
      return this.a.pollReadable(fd, timeoutMs);
    } catch (e) {
      throw toPlatformError('poll', e);
    }
  }
  mmap(fd: number, offset: number, length: number): Mapping {
    if (length > MAX_MAPPING) {
      throw new PlatformError('EINVAL', `mmap of ${length} bytes exceeds the 4 GiB buffer cap: use mapChunked`);
    }
    let r: [ArrayBuffer, object];
    try {
      r = this.a.mmap(fd, offset, length);
    } catch (e) {
      throw toPlatformError('mmap', e);
    }
    return new NativeMapping(this.a, r[0], r[1]);
  }
  eventfd(initial = 0): number {
    try {
      return this.a.eventfd(initial);
    } catch (e) {
      throw toPlatformError('eventfd', e);
    }
  }
  eventfdWrite(fd: number, value = 1): void {
    try {
      this.a.eventfdWrite(fd, value);
    } catch (e) {
      throw toPlatformError('eventfd write', e);
    }
  }
  eventfdRead(fd: number): number {
    try {
      return this.a.eventfdRead(fd);
    } catch (e) {
      throw toPlatformError('eventfd read', e);
    }
  }
  memfd(name: string, size: number): number {
    try {
      return this.a.memfd(name, size);
    } catch (e) {
      throw toPlatformError('memfd', e);
    }
  }
  dup(fd: number): number {
    try {
      return this.a.dup(fd);
    } catch (e) {
      throw toPlatformError('dup', e);
    }
  }
  openFdCount(): number {
    try {
      return this.a.openFdCount();
    } catch (e) {
      throw toPlatformError('openFdCount', e);
    }
  }
}

let instance: NativePlatform | undefined;

/** The native Platform; throws PlatformError (ENOENT) when the addon is not built. */
export function loadNativePlatform(): Platform {
  instance ??= new NativePlatform();
  return instance;
}

/** Whether the addon loads here (Linux, built). Never throws. */
export const nativePlatformAvailable = (): boolean => {
  try {
    loadAddon();
    return true;
  } catch {
    return false;
  }
};

/** A mapping made of several chunks (each its own Mapping), for areas beyond the 4 GiB cap. */
export interface ChunkedMapping {
  /** `start` is the chunk's position within the mapped area (0 for the first). */
  readonly chunks: readonly {
    /** Byte position of the chunk within the mapped area (0 for the first chunk). */
    readonly start: number;
    /** The chunk's own mapping (its own ArrayBuffer) of at most the chunk size. */
    readonly mapping: Mapping;
  }[];
  /** Total length mapped, in bytes. */
  readonly length: number;
  /** Unmaps every chunk; idempotent. */
  unmap(): void;
}

/**
 * Maps `length` bytes of `fd` from `offset` as consecutive chunks of at most `chunk` bytes.
 * Each chunk is a separate ArrayBuffer, so an access straddling two chunks must be split by
 * the caller (GuestMemory treats each chunk as a region). All or nothing: on failure the chunks
 * already mapped are unmapped.
 */
export function mapChunked(platform: Platform, fd: number, offset: number, length: number, chunk = DEFAULT_MAP_CHUNK): ChunkedMapping {
  if (!Number.isSafeInteger(chunk) || chunk <= 0 || chunk % 4096 !== 0 || chunk > MAX_MAPPING) {
    throw new PlatformError('EINVAL', `map chunk ${chunk} must be a positive multiple of 4096 up to 4 GiB`);
  }
  if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length <= 0 || !Number.isSafeInteger(offset + length)) {
    throw new PlatformError('EINVAL', `bad mapping range offset=${offset} length=${length}`);
  }
  const chunks: { start: number; mapping: Mapping }[] = [];
  const unmapAll = (): void => {
    let first: unknown;
    for (const c of chunks.splice(0)) {
      try {
        c.mapping.unmap();
      } catch (e) {
        first ??= e;
      }
    }
    if (first !== undefined) throw toPlatformError('munmap', first);
  };
  try {
    for (let start = 0; start < length; start += chunk) {
      chunks.push({ start, mapping: platform.mmap(fd, offset + start, Math.min(chunk, length - start)) });
    }
  } catch (e) {
    try {
      unmapAll();
    } catch {
      // the mapping error is the one to report
    }
    throw toPlatformError('mmap', e);
  }
  return { chunks: chunks.slice(), length, unmap: unmapAll };
}
