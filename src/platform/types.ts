/**
 * The only OS access in virtio-ts: everything Node cannot do by itself (fd passing, mmap,
 * eventfd, memfd, fd readiness). Implemented by the native addon (native-platform.ts) and by
 * an in-process fake (fake-platform.ts) that everything above is also tested against.
 *
 * File descriptors are plain numbers; each has exactly one owner, who closes it once.
 * Non-blocking calls return -1 / null results for EAGAIN rather than throwing; other OS errors
 * throw VirtioError code PLATFORM with the errno name in the message.
 */
export interface RecvResult {
  /** Bytes received (0 at end of stream). -1 when nothing is ready (EAGAIN). */
  readonly bytes: number;
  /** File descriptors that came with these bytes (SCM_RIGHTS); the caller owns them. */
  readonly fds: number[];
}

/** A readiness watch on an fd (Platform.watchReadable). */
export interface FdWatcher {
  /** Stops watching; the fd is not closed. Idempotent. */
  stop(): void;
}

/** A shared mapping of (part of) an fd (Platform.mmap), owned by whoever made it. */
export interface Mapping {
  /** The mapped bytes (an external ArrayBuffer); detached after unmap. */
  readonly bytes: Uint8Array;
  /** Length of the mapping in bytes. */
  readonly length: number;
  /** Unmaps it and detaches `bytes`; idempotent. */
  unmap(): void;
}

/**
 * Everything virtio-ts needs from the OS that Node cannot do itself: Unix sockets with fd passing,
 * readiness watches, mmap, eventfd, memfd. NativePlatform (the addon) implements it; FakePlatform
 * does in process, for tests.
 */
export interface Platform {
  /** Creates, binds and listens on a Unix stream socket (removing a stale socket file). */
  listenUnix(path: string, backlog?: number): number;
  /** Accepts a connection (non-blocking, close-on-exec); -1 when none is pending. */
  accept(listenFd: number): number;
  /** Connects to a Unix stream socket (blocking connect, then the fd is made non-blocking). */
  connectUnix(path: string): number;
  /** A connected pair of Unix stream sockets (for tests and in-process peers). */
  socketpair(): [number, number];
  /** Non-blocking recvmsg of up to `len` bytes into `buf` at `offset`, with up to `maxFds` fds. */
  recvmsg(fd: number, buf: Uint8Array, offset: number, len: number, maxFds: number): RecvResult;
  /** sendmsg of the bytes with the fds attached (the fds stay owned by the caller). */
  sendmsg(fd: number, buf: Uint8Array, offset: number, len: number, fds?: readonly number[]): number;
  /** Closes an fd this process owns. */
  close(fd: number): void;
  /** Calls `cb` whenever `fd` is readable (libuv poll), until stopped. */
  watchReadable(fd: number, cb: () => void): FdWatcher;
  /** Maps `length` bytes of `fd` at `offset` shared read-write; chunk callers above 4 GiB. */
  mmap(fd: number, offset: number, length: number): Mapping;
  /** eventfd(2), non-blocking, close-on-exec. */
  eventfd(initial?: number): number;
  /** Adds to an eventfd counter. */
  eventfdWrite(fd: number, value?: number): void;
  /** Reads and clears an eventfd counter; 0 when it was 0 (EAGAIN). */
  eventfdRead(fd: number): number;
  /** memfd_create + ftruncate: anonymous shareable memory of `size` bytes. */
  memfd(name: string, size: number): number;
  /** Duplicates an fd (close-on-exec). */
  dup(fd: number): number;
  /** Number of open fds of this process (for leak tests). */
  openFdCount(): number;
}
