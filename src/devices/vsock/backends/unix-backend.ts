/**
 * The host side of the vsock device over Unix sockets, in the "hybrid" model of
 * vhost-device-vsock and Firecracker:
 *  - the guest connecting to host port P reaches the Unix socket `<udsPath>_P` (a host program
 *    listens there);
 *  - a host program connecting to `<udsPath>` and writing `CONNECT <port>\n` reaches the guest's
 *    listening port; once the guest accepts it reads `OK <host port>\n`, then the stream.
 * Half-closes carry over both ways (SHUTDOWN SEND <-> end of the socket's stream).
 * SEQPACKET connections (5.10.6.6) use Unix SOCK_SEQPACKET sockets, one message per message:
 * the guest's go to `<udsPath>_P` (which must be a seqpacket listener); host programs connect to
 * `<udsPath>_seqpacket` and send the message `CONNECT <port>\n`, answered `OK <host port>\n`.
 */
import { existsSync, lstatSync, unlinkSync } from 'node:fs';
import { type Server, type Socket, connect, createServer } from 'node:net';
import { ErrorCode, VirtioError } from '../../../errors.js';
import type { Logger } from '../../../log.js';
import { loadNativePlatform } from '../../../platform/native-platform.js';
import { type SeqpacketSockets, seqpacketSockets } from '../../../platform/seqpacket.js';
import type { FdWatcher, Platform } from '../../../platform/types.js';
import { VsockType } from '../../../spec/vsock.js';
import { SeqpacketHostStream } from './seqpacket-host-stream.js';
import type { VsockBackend, VsockHostConnector, VsockHostStream, VsockPeer } from '../vsock-backend.js';

/** Options of UnixVsockBackend. */
export interface UnixVsockBackendOptions {
  /** The main socket; guest connections to port P go to `<udsPath>_P`. */
  readonly udsPath: string;
  /** Where the backend logs (socket errors, refused connections); silent by default. */
  readonly logger?: Logger;
  /** SEQPACKET host sides (native addon); default: the native platform when it loads; null: no SEQPACKET. */
  readonly seqpacket?: {
    /** Watches the seqpacket sockets' fds for readiness. */
    platform: Platform;
    /** The SOCK_SEQPACKET calls (listen, connect, send, recv, shutdown). */
    sockets: SeqpacketSockets;
  } | null;
  /** Longest host message a seqpacket connection reads (default 256 KiB, the device's buf_alloc). */
  readonly maxMessage?: number;
}

/** A CONNECT line longer than this is refused (the host is trusted, but bounded anyway). */
const MAX_LINE = 64;
/** A socket the guest half-closed and the device closed gets this long to finish. */
const LINGER_MS = 2000;

/** One Unix socket bound to one vsock connection. */
class UnixHostStream implements VsockHostStream {
  peer: VsockPeer | null = null;
  private written = 0;
  private reported = 0;
  private guestEnded = false;
  private readonly onFlushed = (): void => {
    const flushed = this.written - this.socket.writableLength;
    if (flushed > this.reported) {
      const n = flushed - this.reported;
      this.reported = flushed;
      this.peer?.consumed(n);
    }
  };

  constructor(private readonly socket: Socket) {}

  /** Routes the socket's events to `peer`. */
  wire(peer: VsockPeer): void {
    this.peer = peer;
    const s = this.socket;
    s.on('data', (d: Buffer) => {
      if (this.peer !== null && !this.peer.send(d)) s.pause();
    });
    s.on('end', () => this.peer?.end());
    s.on('close', (hadError: boolean) => {
      const p = this.peer;
      this.peer = null;
      if (hadError) p?.reset();
      else p?.close();
    });
    s.on('error', () => undefined); // 'close' follows with hadError
  }

  write(data: Uint8Array): void {
    if (this.socket.destroyed) {
      this.peer?.consumed(data.length);
      return;
    }
    this.written += data.length;
    this.socket.write(data, this.onFlushed);
  }

  end(): void {
    this.guestEnded = true;
    this.socket.end();
  }

  close(): void {
    this.peer = null;
    if (!this.guestEnded) {
      this.socket.destroy();
      return;
    }
    // The guest's bytes may still be flushing after its SHUTDOWN: let them, bounded.
    setTimeout(() => this.socket.destroy(), LINGER_MS).unref();
  }

  resume(): void {
    this.socket.resume();
  }

  /** A host-initiated connection was accepted: tell the host program, then stream. */
  connected(): void {
    if (this.peer === null) return;
    this.socket.write(`OK ${this.peer.hostPort}\n`);
    this.socket.resume();
  }
}

/** The vsock device's host side over Unix sockets (the hybrid vsock model described at the top of this file). */
export class UnixVsockBackend implements VsockBackend {
  private connector: VsockHostConnector | null = null;
  private readonly sockets = new Set<Socket>();
  private readonly seq: { platform: Platform; sockets: SeqpacketSockets } | null;
  private readonly recvBuf: Uint8Array;
  private readonly seqStreams = new Set<SeqpacketHostStream>();
  private seqListenFd = -1;
  private seqWatcher: FdWatcher | null = null;

  private constructor(
    private readonly opts: UnixVsockBackendOptions,
    private readonly server: Server,
  ) {
    this.seq = opts.seqpacket !== undefined ? opts.seqpacket : nativeSeqpacket();
    this.recvBuf = new Uint8Array(this.seq === null ? 0 : (opts.maxMessage ?? 256 * 1024));
  }

  /** Where host programs open seqpacket connections to the guest. */
  get seqpacketPath(): string {
    return `${this.opts.udsPath}_seqpacket`;
  }

  /** Listens on `udsPath` (a stale socket file there is replaced). */
  static async listen(opts: UnixVsockBackendOptions): Promise<UnixVsockBackend> {
    removeStaleSocket(opts.udsPath);
    const server = createServer({ allowHalfOpen: true, pauseOnConnect: true });
    const b = new UnixVsockBackend(opts, server);
    server.on('connection', (s) => b.onHostConnection(s));
    if (b.seq !== null) {
      const { platform, sockets } = b.seq;
      b.seqListenFd = sockets.listen(b.seqpacketPath);
      b.seqWatcher = platform.watchReadable(b.seqListenFd, () => b.onSeqpacketHost());
    }
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.udsPath, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return b;
  }

  connect(hostPort: number, peer: VsockPeer): VsockHostStream | null {
    const path = `${this.opts.udsPath}_${hostPort}`;
    if (peer.type === VsockType.SEQPACKET) return this.connectSeqpacket(path, peer);
    if (!existsSync(path)) return null; // nothing listens there: RST at once
    const s = connect({ path, allowHalfOpen: true });
    this.track(s);
    const stream = new UnixHostStream(s);
    let opened = false;
    s.once('connect', () => {
      opened = true;
      stream.wire(peer);
      peer.established();
    });
    s.once('error', (e) => {
      if (opened) return;
      this.opts.logger?.debug(`vsock: connecting to ${path}: ${e.message}`);
      peer.reset();
    });
    return stream;
  }

  attach(connector: VsockHostConnector): void {
    this.connector = connector;
  }

  detach(): void {
    this.connector = null;
  }

  /** A guest seqpacket connection to `path`: null (RST) when no seqpacket listener is there. */
  private connectSeqpacket(path: string, peer: VsockPeer): VsockHostStream | null {
    if (this.seq === null) return null;
    let fd: number;
    try {
      fd = this.seq.sockets.connect(path);
    } catch (e) {
      this.opts.logger?.debug(`vsock: seqpacket connect to ${path}: ${(e as Error).message}`);
      return null;
    }
    const stream = this.trackSeq(new SeqpacketHostStream(this.seq.platform, this.seq.sockets, fd, this.recvBuf, this.opts.logger));
    stream.wire(peer);
    peer.established();
    return stream;
  }

  private trackSeq(s: SeqpacketHostStream): SeqpacketHostStream {
    this.seqStreams.add(s);
    const close = s.close.bind(s);
    s.close = () => {
      this.seqStreams.delete(s);
      close();
    };
    return s;
  }

  /** Host programs on the seqpacket socket: the first message is `CONNECT <port>\n`. */
  private onSeqpacketHost(): void {
    const seq = this.seq!;
    for (let i = 0; i < 16; i++) {
      let fd: number;
      try {
        fd = seq.platform.accept(this.seqListenFd);
      } catch {
        return;
      }
      if (fd < 0) return;
      const line = new Uint8Array(MAX_LINE);
      let timer: ReturnType<typeof setTimeout> | null = null;
      const watcher = seq.platform.watchReadable(fd, () => {
        let n: number;
        try {
          n = seq.sockets.recv(fd, line);
        } catch {
          n = 0;
        }
        if (n < 0) return;
        watcher.stop();
        if (timer !== null) clearTimeout(timer);
        const m = n > 0 && n <= MAX_LINE ? /^CONNECT (\d{1,10})\r?\n?$/.exec(new TextDecoder().decode(line.subarray(0, n))) : null;
        const port = m ? Number(m[1]) : -1;
        const stream = port >= 0 && port <= 0xffff_ffff && this.connector !== null ? new SeqpacketHostStream(seq.platform, seq.sockets, fd, this.recvBuf, this.opts.logger) : null;
        const peer = stream !== null ? this.connector!.connectToGuest(port, stream, VsockType.SEQPACKET) : null;
        if (stream === null || peer === null) {
          seq.platform.close(fd);
          return;
        }
        this.trackSeq(stream).wire(peer);
      });
      // A host program that never sends its CONNECT line is dropped (bounded).
      timer = setTimeout(() => {
        watcher.stop();
        seq.platform.close(fd);
      }, 10_000);
      timer.unref();
    }
  }

  /** Stops listening, closes every socket and removes the main socket file. */
  async close(): Promise<void> {
    this.seqWatcher?.stop();
    this.seqWatcher = null;
    if (this.seqListenFd >= 0) {
      this.seq!.platform.close(this.seqListenFd);
      this.seqListenFd = -1;
      try {
        unlinkSync(this.seqpacketPath);
      } catch {
        // already gone
      }
    }
    for (const s of [...this.seqStreams]) s.close();
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private track(s: Socket): void {
    this.sockets.add(s);
    s.once('close', () => this.sockets.delete(s));
  }

  /** A host program on the main socket: `CONNECT <port>\n`, then the stream. */
  private onHostConnection(s: Socket): void {
    this.track(s);
    s.on('error', () => undefined);
    let line = '';
    const onData = (d: Buffer): void => {
      line += d.toString('latin1');
      const nl = line.indexOf('\n');
      if (nl < 0) {
        if (line.length > MAX_LINE) s.destroy();
        return;
      }
      s.off('data', onData);
      s.pause();
      const m = /^CONNECT (\d{1,10})\r?$/.exec(line.slice(0, nl));
      const port = m ? Number(m[1]) : -1;
      if (port < 0 || port > 0xffff_ffff || this.connector === null) {
        s.destroy();
        return;
      }
      const stream = new UnixHostStream(s);
      const peer = this.connector.connectToGuest(port, stream);
      if (peer === null) {
        s.destroy();
        return;
      }
      stream.wire(peer);
      const rest = Buffer.from(line.slice(nl + 1), 'latin1');
      if (rest.length > 0) peer.send(rest);
    };
    s.on('data', onData);
    s.resume();
  }
}

function removeStaleSocket(path: string): void {
  try {
    if (lstatSync(path).isSocket()) unlinkSync(path);
    else throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `${path} exists and is not a socket`);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}

/** The native platform's seqpacket sockets, or null when the addon is not built. */
function nativeSeqpacket(): { platform: Platform; sockets: SeqpacketSockets } | null {
  try {
    return { platform: loadNativePlatform(), sockets: seqpacketSockets() };
  } catch {
    return null;
  }
}
