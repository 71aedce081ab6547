/**
 * An in-process Platform in plain JS, so everything above the platform layer can be tested
 * without the addon (and on any OS). It follows the native semantics where callers can see
 * them (platform-contract.test.ts runs one suite against both):
 * - fds are fake numbers (from 100000, never reused, so a use after close is EBADF);
 * - a Unix stream is a byte queue; fds travel with the first byte of the send that carried
 *   them and, as in Linux, a read that picks up fds ends after that send's bytes, but may have
 *   glued earlier bytes in front (read exactly the header to keep fds with their message);
 * - fds beyond `maxFds` are closed and counted in `dropped`;
 * - eventfds are counters; memfds are SharedArrayBuffer "files" and every mapping of one is a
 *   view of the same memory, so writes show through every mapping;
 * - readiness is level-triggered through setImmediate, like a libuv poll.
 * Errors are PlatformError with the errno name the kernel would give.
 */
import { PlatformError } from './platform-error.js';
import type { NativeRecvResult } from './native-platform.js';
import type { FdWatcher, Mapping, Platform } from './types.js';

const FIRST_FD = 100000;
/** Per-socket buffered bytes before sendmsg reports "full" (-1), like a socket buffer. */
const SOCKET_BUFFER = 256 * 1024;
const MAX_PASS_FDS = 253;
const MAX_SAFE = Number.MAX_SAFE_INTEGER;

interface Send {
  readonly bytes: Uint8Array;
  pos: number;
  fds: FileObj[] | null;
}
interface SocketFile {
  readonly kind: 'socket';
  refs: number;
  peer: SocketFile | null;
  readonly queue: Send[];
  queued: number;
  /** The peer has gone: reads end (0) once the queue is drained. */
  eof: boolean;
}
interface ListenFile {
  readonly kind: 'listen';
  refs: number;
  readonly path: string;
  readonly pending: SocketFile[];
}
interface EventFile {
  readonly kind: 'event';
  refs: number;
  counter: number;
}
interface MemFile {
  readonly kind: 'mem';
  refs: number;
  readonly buffer: SharedArrayBuffer;
}
type FileObj = SocketFile | ListenFile | EventFile | MemFile;

interface Watch {
  readonly file: FileObj;
  readonly cb: () => void;
  stopped: boolean;
  scheduled: boolean;
}

function fail(errno: string, what: string): PlatformError {
  return new PlatformError(errno, `${what} (${errno})`);
}

function checkUint(v: number, max: number, name: string): void {
  if (!Number.isInteger(v) || v < 0 || v > max) throw fail('EINVAL', `${name} must be an integer in [0, ${max}]`);
}

function checkRange(buf: Uint8Array, offset: number, len: number): void {
  if (!(buf instanceof Uint8Array)) throw fail('EINVAL', 'buf must be a Uint8Array');
  checkUint(offset, MAX_SAFE, 'offset');
  checkUint(len, MAX_SAFE, 'len');
  if (offset + len > buf.length) throw fail('EINVAL', 'offset + len exceeds the buffer');
}

class FakeMapping implements Mapping {
  private view: Uint8Array;
  constructor(
    bytes: Uint8Array,
    private release: (() => void) | null,
  ) {
    this.view = bytes;
  }
  get bytes(): Uint8Array {
    return this.view;
  }
  get length(): number {
    return this.view.byteLength;
  }
  unmap(): void {
    // A SharedArrayBuffer cannot be detached: the mapping forgets it instead.
    const r = this.release;
    if (!r) return;
    this.release = null;
    this.view = new Uint8Array(0);
    r();
  }
}

/**
 * An in-process Platform for tests: sockets, eventfds, memfds and mappings simulated over
 * JavaScript objects with the same ownership rules and errors as the native addon, so everything
 * above the platform is tested without the OS.
 */
export class FakePlatform implements Platform {
  private readonly fds = new Map<number, FileObj>();
  private nextFd = FIRST_FD;
  private readonly listeners = new Map<string, ListenFile>();
  private readonly watches = new Map<FileObj, Set<Watch>>();
  /** Live mappings (for leak checks in tests). */
  mappings = 0;

  // ------------------------------------------------------------------ bookkeeping

  private install(f: FileObj): number {
    const fd = this.nextFd++;
    f.refs++;
    this.fds.set(fd, f);
    return fd;
  }
  private file(fd: number): FileObj {
    const f = Number.isInteger(fd) ? this.fds.get(fd) : undefined;
    if (!f) throw fail('EBADF', `fd ${fd}`);
    return f;
  }
  private socket(fd: number): SocketFile {
    const f = this.file(fd);
    if (f.kind !== 'socket') throw fail('ENOTSOCK', `fd ${fd}`);
    return f;
  }
  private eventFile(fd: number): EventFile {
    const f = this.file(fd);
    if (f.kind !== 'event') throw fail('EINVAL', `fd ${fd} is not an eventfd`);
    return f;
  }
  private unref(f: FileObj): void {
    if (--f.refs > 0) return;
    this.watches.delete(f);
    if (f.kind === 'socket') {
      for (const s of f.queue.splice(0)) for (const x of s.fds ?? []) this.unref(x);
      f.queued = 0;
      const p = f.peer;
      if (p) {
        f.peer = null;
        p.peer = null;
        p.eof = true;
        this.wake(p);
      }
    } else if (f.kind === 'listen') {
      if (this.listeners.get(f.path) === f) this.listeners.delete(f.path);
      for (const s of f.pending.splice(0)) this.unref(s);
    }
  }
  private isReadable(f: FileObj): boolean {
    switch (f.kind) {
      case 'socket':
        return f.queue.length > 0 || f.eof;
      case 'listen':
        return f.pending.length > 0;
      case 'event':
        return f.counter > 0;
      case 'mem':
        return true; // a regular file always polls readable
    }
  }
  private wake(f: FileObj): void {
    const ws = this.watches.get(f);
    if (ws) for (const w of ws) this.schedule(w);
  }
  private schedule(w: Watch): void {
    if (w.scheduled || w.stopped) return;
    w.scheduled = true;
    setImmediate(() => {
      w.scheduled = false;
      if (w.stopped || !this.isReadable(w.file)) return;
      w.cb();
      // Level-triggered: still readable means called again on the next turn.
      if (!w.stopped && this.isReadable(w.file)) this.schedule(w);
    });
  }
  private newPair(): [SocketFile, SocketFile] {
    const a: SocketFile = { kind: 'socket', refs: 0, peer: null, queue: [], queued: 0, eof: false };
    const b: SocketFile = { kind: 'socket', refs: 0, peer: a, queue: [], queued: 0, eof: false };
    a.peer = b;
    return [a, b];
  }

  // ------------------------------------------------------------------ Platform

  listenUnix(path: string, backlog = 128): number {
    if (typeof path !== 'string' || path.length === 0 || Buffer.byteLength(path) > 107) throw fail('EINVAL', 'bad socket path');
    checkUint(backlog, 65535, 'backlog');
    const old = this.listeners.get(path);
    if (old && old.refs > 0) throw fail('EADDRINUSE', `listen ${path}`);
    const l: ListenFile = { kind: 'listen', refs: 0, path, pending: [] };
    this.listeners.set(path, l);
    return this.install(l);
  }
  accept(listenFd: number): number {
    const l = this.file(listenFd);
    if (l.kind !== 'listen') throw fail('EINVAL', `fd ${listenFd} is not listening`);
    const s = l.pending.shift();
    if (!s) return -1;
    const fd = this.install(s);
    s.refs--; // the pending queue's reference passes to the fd
    return fd;
  }
  connectUnix(path: string): number {
    const l = this.listeners.get(path);
    if (!l) throw fail('ENOENT', `connect ${path}`);
    const [mine, theirs] = this.newPair();
    theirs.refs++;
    l.pending.push(theirs);
    this.wake(l);
    return this.install(mine);
  }
  socketpair(): [number, number] {
    const [a, b] = this.newPair();
    return [this.install(a), this.install(b)];
  }
  recvmsg(fd: number, buf: Uint8Array, offset: number, len: number, maxFds: number): NativeRecvResult {
    const s = this.socket(fd);
    checkRange(buf, offset, len);
    checkUint(maxFds, MAX_PASS_FDS, 'maxFds');
    if (s.queue.length === 0) return { bytes: s.eof ? 0 : -1, fds: [], dropped: 0 };
    let got = 0;
    let dropped = 0;
    const fds: number[] = [];
    let gotFds = false;
    // Bounded by the queue length: each pass consumes a send or fills `len`.
    while (got < len && s.queue.length > 0 && !gotFds) {
      const m = s.queue[0]!;
      if (m.fds) {
        gotFds = true;
        for (const f of m.fds) {
          if (fds.length < maxFds) fds.push(this.install(f));
          else dropped++;
          this.unref(f); // the in-flight reference
        }
        m.fds = null;
      }
      const n = Math.min(len - got, m.bytes.length - m.pos);
      buf.set(m.bytes.subarray(m.pos, m.pos + n), offset + got);
      m.pos += n;
      got += n;
      s.queued -= n;
      if (m.pos === m.bytes.length) s.queue.shift();
    }
    return { bytes: got, fds, dropped };
  }
  sendmsg(fd: number, buf: Uint8Array, offset: number, len: number, fds?: readonly number[]): number {
    const s = this.socket(fd);
    checkRange(buf, offset, len);
    const files = fds && fds.length > 0 ? fds.map((f) => this.file(f)) : null;
    if (files && files.length > MAX_PASS_FDS) throw fail('EINVAL', 'at most 253 fds per message');
    if (files && len === 0) throw fail('EINVAL', 'fds need at least one byte to travel with');
    const p = s.peer;
    if (!p) throw fail('EPIPE', 'sendmsg');
    const room = SOCKET_BUFFER - p.queued;
    if (room <= 0 && len > 0) return -1;
    const n = Math.min(len, room);
    if (n === 0) return 0;
    if (files) for (const f of files) f.refs++;
    p.queue.push({ bytes: buf.slice(offset, offset + n), pos: 0, fds: files });
    p.queued += n;
    this.wake(p);
    return n;
  }
  /** Closes a fake fd (throws PlatformError EBADF for one that is not open). */
  close(fd: number): void {
    const f = this.file(fd);
    this.fds.delete(fd);
    this.unref(f);
  }
  watchReadable(fd: number, cb: () => void): FdWatcher {
    const f = this.file(fd);
    if (typeof cb !== 'function') throw fail('EINVAL', 'cb must be a function');
    let set = this.watches.get(f);
    if (!set) this.watches.set(f, (set = new Set()));
    const w: Watch = { file: f, cb, stopped: false, scheduled: false };
    set.add(w);
    this.schedule(w);
    return {
      stop: (): void => {
        w.stopped = true;
        this.watches.get(f)?.delete(w);
      },
    };
  }
  /**
   * Whether `fd` is readable right now. One thread runs every fake fd, so nothing can arrive
   * while a caller waits: a `timeoutMs` wait that finds nothing ready times out at once.
   */
  pollReadable(fd: number, timeoutMs = 0): boolean {
    checkUint(timeoutMs, 2147483647, 'timeoutMs');
    return this.isReadable(this.file(fd));
  }
  mmap(fd: number, offset: number, length: number): Mapping {
    const f = this.file(fd);
    if (f.kind !== 'mem') throw fail('ENODEV', `fd ${fd} cannot be mapped`);
    checkUint(offset, MAX_SAFE, 'offset');
    checkUint(length, 2 ** 32, 'length');
    if (length === 0) throw fail('EINVAL', 'length must be positive');
    // The kernel would map past the end and fault on access; refusing is the safer fake.
    if (offset + length > f.buffer.byteLength) throw fail('ENXIO', 'mapping beyond the end of the memfd');
    f.refs++; // a mapping keeps the file alive after its fd is closed
    this.mappings++;
    return new FakeMapping(new Uint8Array(f.buffer, offset, length), () => {
      this.mappings--;
      this.unref(f);
    });
  }
  eventfd(initial = 0): number {
    checkUint(initial, 0xffffffff, 'initial');
    return this.install({ kind: 'event', refs: 0, counter: initial });
  }
  eventfdWrite(fd: number, value = 1): void {
    const e = this.eventFile(fd);
    checkUint(value, MAX_SAFE, 'value');
    if (e.counter + value > MAX_SAFE) throw fail('EAGAIN', 'eventfd counter overflow');
    e.counter += value;
    if (value > 0) this.wake(e);
  }
  eventfdRead(fd: number): number {
    const e = this.eventFile(fd);
    const v = e.counter;
    e.counter = 0;
    return v;
  }
  memfd(name: string, size: number): number {
    if (typeof name !== 'string') throw fail('EINVAL', 'name must be a string');
    checkUint(size, MAX_SAFE, 'size');
    let buffer: SharedArrayBuffer;
    try {
      buffer = new SharedArrayBuffer(size);
    } catch (e) {
      throw new PlatformError('ENOMEM', `memfd of ${size} bytes (ENOMEM)`, { cause: e });
    }
    return this.install({ kind: 'mem', refs: 0, buffer });
  }
  dup(fd: number): number {
    return this.install(this.file(fd));
  }
  openFdCount(): number {
    return this.fds.size;
  }
}
