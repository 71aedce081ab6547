/**
 * A small in-process Platform for the vhost-user tests: stream sockets carrying fds with the
 * first byte of each send (as SCM_RIGHTS does), eventfds, memfds over SharedArrayBuffers, and
 * level-triggered readiness callbacks. Every fd is counted, so leak tests are exact.
 */
import { ErrorCode, VirtioError } from '../errors.js';
import type { FdWatcher, Mapping, Platform, RecvResult } from '../platform/types.js';

interface Chunk {
  bytes: Uint8Array;
  off: number;
  fds: Obj[] | null;
}
interface SocketObj {
  kind: 'socket';
  refs: number;
  peer: SocketObj | null;
  queue: Chunk[];
  peerClosed: boolean;
}
interface EventObj {
  kind: 'event';
  refs: number;
  counter: number;
}
interface MemObj {
  kind: 'mem';
  refs: number;
  buf: SharedArrayBuffer;
}
interface ListenObj {
  kind: 'listen';
  refs: number;
  path: string;
  pending: SocketObj[];
}
type Obj = SocketObj | EventObj | MemObj | ListenObj;

function err(msg: string): VirtioError {
  return new VirtioError(ErrorCode.PLATFORM, msg);
}

export class LoopbackPlatform implements Platform {
  private readonly fds = new Map<number, Obj>();
  private nextFd = 1000;
  private readonly listeners = new Map<string, ListenObj>();
  private readonly watchers = new Map<Obj, Set<{ fd: number; cb: () => void; stopped: boolean }>>();
  mappings = 0;

  private add(o: Obj): number {
    const fd = this.nextFd++;
    o.refs++;
    this.fds.set(fd, o);
    return fd;
  }
  private get(fd: number): Obj {
    const o = this.fds.get(fd);
    if (!o) throw err(`EBADF: fd ${fd}`);
    return o;
  }
  private sock(fd: number): SocketObj {
    const o = this.get(fd);
    if (o.kind !== 'socket') throw err(`ENOTSOCK: fd ${fd}`);
    return o;
  }
  private readable(o: Obj): boolean {
    switch (o.kind) {
      case 'socket':
        return o.queue.length > 0 || o.peerClosed;
      case 'event':
        return o.counter > 0;
      case 'listen':
        return o.pending.length > 0;
      default:
        return false;
    }
  }
  private kick(o: Obj): void {
    const ws = this.watchers.get(o);
    if (!ws) return;
    for (const w of ws) this.schedule(o, w);
  }
  private schedule(o: Obj, w: { fd: number; cb: () => void; stopped: boolean }): void {
    setImmediate(() => {
      if (w.stopped || !this.readable(o)) return;
      w.cb();
      if (!w.stopped && this.readable(o)) this.schedule(o, w);
    });
  }
  private release(o: Obj): void {
    if (--o.refs > 0) return;
    if (o.kind === 'socket') {
      for (const c of o.queue) for (const f of c.fds ?? []) this.release(f);
      o.queue = [];
      if (o.peer) {
        o.peer.peerClosed = true;
        o.peer.peer = null;
        this.kick(o.peer);
      }
    } else if (o.kind === 'listen') {
      this.listeners.delete(o.path);
      for (const s of o.pending) this.release(s);
    }
  }

  listenUnix(path: string): number {
    const o: ListenObj = { kind: 'listen', refs: 0, path, pending: [] };
    this.listeners.set(path, o);
    return this.add(o);
  }
  accept(listenFd: number): number {
    const o = this.get(listenFd);
    if (o.kind !== 'listen') throw err('EINVAL');
    const s = o.pending.shift();
    if (!s) return -1;
    const fd = this.add(s);
    s.refs--; // the pending reference moves to the fd
    return fd;
  }
  connectUnix(path: string): number {
    const l = this.listeners.get(path);
    if (!l) throw err(`ECONNREFUSED: ${path}`);
    const [a, b] = this.pair();
    b.refs++;
    l.pending.push(b);
    this.kick(l);
    return this.add(a);
  }
  private pair(): [SocketObj, SocketObj] {
    const a: SocketObj = { kind: 'socket', refs: 0, peer: null, queue: [], peerClosed: false };
    const b: SocketObj = { kind: 'socket', refs: 0, peer: a, queue: [], peerClosed: false };
    a.peer = b;
    return [a, b];
  }
  socketpair(): [number, number] {
    const [a, b] = this.pair();
    return [this.add(a), this.add(b)];
  }
  recvmsg(fd: number, buf: Uint8Array, offset: number, len: number, maxFds: number): RecvResult {
    const s = this.sock(fd);
    if (s.queue.length === 0) return { bytes: s.peerClosed ? 0 : -1, fds: [] };
    let got = 0;
    const fds: number[] = [];
    while (got < len && s.queue.length > 0) {
      const c = s.queue[0]!;
      if (c.fds && got > 0) break; // fds start a new read, as with SCM_RIGHTS
      if (c.fds) {
        for (const o of c.fds.slice(0, maxFds)) fds.push(this.add(o));
        for (const o of c.fds) this.release(o);
        c.fds = null;
      }
      const n = Math.min(len - got, c.bytes.length - c.off);
      buf.set(c.bytes.subarray(c.off, c.off + n), offset + got);
      c.off += n;
      got += n;
      if (c.off === c.bytes.length) s.queue.shift();
    }
    return { bytes: got, fds };
  }
  sendmsg(fd: number, buf: Uint8Array, offset: number, len: number, fds?: readonly number[]): number {
    const s = this.sock(fd);
    const peer = s.peer;
    if (!peer) throw err('EPIPE');
    const objs = fds && fds.length > 0 ? fds.map((f) => this.get(f)) : null;
    if (objs) for (const o of objs) o.refs++;
    peer.queue.push({ bytes: buf.slice(offset, offset + len), off: 0, fds: objs });
    this.kick(peer);
    return len;
  }
  close(fd: number): void {
    const o = this.get(fd);
    this.fds.delete(fd);
    this.release(o);
  }
  watchReadable(fd: number, cb: () => void): FdWatcher {
    const o = this.get(fd);
    let set = this.watchers.get(o);
    if (!set) this.watchers.set(o, (set = new Set()));
    const w = { fd, cb, stopped: false };
    set.add(w);
    this.schedule(o, w);
    return {
      stop: () => {
        w.stopped = true;
        set.delete(w);
      },
    };
  }
  mmap(fd: number, offset: number, length: number): Mapping {
    const o = this.get(fd);
    if (o.kind !== 'mem') throw err('ENODEV');
    if (offset + length > o.buf.byteLength) throw err('EINVAL: beyond the memfd');
    let bytes: Uint8Array = new Uint8Array(o.buf, offset, length);
    this.mappings++;
    let mapped = true;
    o.refs++;
    return {
      get bytes() {
        return bytes;
      },
      length,
      unmap: () => {
        if (!mapped) return;
        mapped = false;
        bytes = new Uint8Array(0);
        this.mappings--;
        this.release(o);
      },
    };
  }
  eventfd(initial = 0): number {
    return this.add({ kind: 'event', refs: 0, counter: initial });
  }
  eventfdWrite(fd: number, value = 1): void {
    const o = this.get(fd);
    if (o.kind !== 'event') throw err('EINVAL');
    o.counter += value;
    if (value > 0) this.kick(o);
  }
  eventfdRead(fd: number): number {
    const o = this.get(fd);
    if (o.kind !== 'event') throw err('EINVAL');
    const v = o.counter;
    o.counter = 0;
    return v;
  }
  memfd(_name: string, size: number): number {
    return this.add({ kind: 'mem', refs: 0, buf: new SharedArrayBuffer(size) });
  }
  dup(fd: number): number {
    return this.add(this.get(fd));
  }
  openFdCount(): number {
    return this.fds.size;
  }
}
