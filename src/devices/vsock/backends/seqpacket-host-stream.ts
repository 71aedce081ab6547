/**
 * The host side of one vsock SEQPACKET connection (5.10.6.6): a Unix SOCK_SEQPACKET socket,
 * one host message per guest message both ways. Guest messages are views of the device's
 * receive buffer, sent whole with one sendmsg and reported consumed once the kernel took them
 * (a full socket buffer is retried on a short timer; the device's credit bounds what waits).
 * Host messages are read one at a time into the backend's shared buffer and copied out at their
 * exact length. Record ends (EOR) have no Unix equivalent and are not carried over.
 */
import type { Logger } from '../../../log.js';
import type { SeqpacketSockets } from '../../../platform/seqpacket.js';
import { SeqpacketShutdown } from '../../../platform/seqpacket.js';
import type { FdWatcher, Platform } from '../../../platform/types.js';
import type { VsockHostStream, VsockPeer } from '../vsock-backend.js';

/** Messages read per readiness callback at most (fairness between connections). */
const READ_BATCH = 64;
/** Retry delay when the socket buffer is full. */
const RETRY_MS = 5;
/** A socket the guest half-closed gets this long to flush its last messages. */
const LINGER_MS = 2000;

export class SeqpacketHostStream implements VsockHostStream {
  peer: VsockPeer | null = null;
  private watcher: FdWatcher | null = null;
  private readonly pending: { head: Uint8Array; tail: Uint8Array; guest: boolean }[] = [];
  private retry: ReturnType<typeof setTimeout> | null = null;
  private guestEnded = false;
  private hostEnded = false;
  private closed = false;
  private paused = false;

  constructor(
    private readonly platform: Platform,
    private readonly seq: SeqpacketSockets,
    readonly fd: number,
    /** Shared by every stream of a backend (single-threaded): one message at a time. */
    private readonly recvBuf: Uint8Array,
    private readonly logger?: Logger,
  ) {}

  /** Routes the socket to `peer` and starts reading host messages. */
  wire(peer: VsockPeer): void {
    this.peer = peer;
    this.watch();
  }

  writeMessage(head: Uint8Array, tail: Uint8Array): void {
    if (this.closed) {
      this.peer?.consumed(head.length + tail.length);
      return;
    }
    this.pending.push({ head, tail, guest: true });
    if (this.pending.length === 1) this.flush();
  }

  /** A stream write on a seqpacket connection cannot happen (the device sends messages); kept whole. */
  write(data: Uint8Array): void {
    this.writeMessage(data, new Uint8Array(0));
  }

  end(): void {
    this.guestEnded = true;
    if (this.pending.length === 0) this.shutdownSend();
  }

  close(): void {
    this.peer = null;
    if (this.guestEnded && this.pending.length > 0 && !this.closed) {
      // Let the guest's last messages out, bounded.
      setTimeout(() => this.destroy(), LINGER_MS).unref();
      return;
    }
    this.destroy();
  }

  resume(): void {
    this.paused = false;
    this.watch();
    this.onReadable();
  }

  /** A host-initiated connection was accepted by the guest: tell the host program, then stream. */
  connected(): void {
    if (this.peer === null) return;
    const ok = new TextEncoder().encode(`OK ${this.peer.hostPort}\n`);
    this.pending.unshift({ head: ok, tail: new Uint8Array(0), guest: false });
    if (this.pending.length === 1) this.flush();
    this.watch();
  }

  private watch(): void {
    if (this.watcher === null && !this.closed && !this.hostEnded && !this.paused && this.peer !== null) {
      this.watcher = this.platform.watchReadable(this.fd, () => this.onReadable());
    }
  }

  private unwatch(): void {
    this.watcher?.stop();
    this.watcher = null;
  }

  private onReadable(): void {
    for (let i = 0; i < READ_BATCH && this.peer !== null && !this.hostEnded && !this.paused; i++) {
      let n: number;
      try {
        n = this.seq.recv(this.fd, this.recvBuf);
      } catch (e) {
        this.logger?.debug(`vsock seqpacket: ${(e as Error).message}`);
        return this.fail();
      }
      if (n < 0) return;
      if (n === 0) {
        // The host program closed its end (or sent an empty message: Unix cannot tell).
        this.hostEnded = true;
        this.unwatch();
        const p = this.peer;
        if (this.guestEnded) {
          this.peer = null;
          p.close();
        } else p.end();
        return;
      }
      if (n > this.recvBuf.length) {
        this.logger?.warn(`vsock seqpacket: a ${n}-byte host message is longer than ${this.recvBuf.length}: dropped`);
        continue;
      }
      if (!this.peer.sendMessage(this.recvBuf.slice(0, n))) {
        this.paused = true;
        this.unwatch();
      }
    }
  }

  private flush(): void {
    this.retry = null;
    while (this.pending.length > 0 && !this.closed) {
      const m = this.pending[0]!;
      let n: number;
      try {
        n = this.seq.send(this.fd, m.head, m.tail);
      } catch (e) {
        // EMSGSIZE (longer than the socket buffer allows) drops the message; EPIPE ends it all.
        const errno = (e as { errno?: string }).errno;
        this.logger?.debug(`vsock seqpacket send: ${(e as Error).message}`);
        this.pending.shift();
        this.report(m);
        if (errno !== 'EMSGSIZE') return this.fail();
        continue;
      }
      if (n < 0) {
        this.retry = setTimeout(() => this.flush(), RETRY_MS);
        return;
      }
      this.pending.shift();
      this.report(m);
    }
    if (this.guestEnded && this.pending.length === 0) this.shutdownSend();
  }

  /** A guest message left (or was dropped): the guest gets the credit back. */
  private report(m: { head: Uint8Array; tail: Uint8Array; guest: boolean }): void {
    if (m.guest) this.peer?.consumed(m.head.length + m.tail.length);
  }

  private shutdownSend(): void {
    if (this.closed) return;
    try {
      this.seq.shutdown(this.fd, SeqpacketShutdown.SEND);
    } catch {
      // The host program is gone: reading tells.
    }
  }

  private fail(): void {
    const p = this.peer;
    this.peer = null;
    this.destroy();
    p?.reset();
  }

  private destroy(): void {
    if (this.closed) return;
    this.closed = true;
    this.unwatch();
    if (this.retry !== null) clearTimeout(this.retry);
    this.retry = null;
    this.pending.length = 0;
    this.platform.close(this.fd);
  }
}
