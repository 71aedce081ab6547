/**
 * One stream connection of the vsock device (5.10.6.4): its state, credit both ways
 * (5.10.6.3), the guest's bytes on their way to the host (a receive buffer of `buf_alloc`
 * bytes that credit keeps from overflowing), the host's bytes waiting for rx buffers, and the
 * control packets it owes the guest.
 */
import { peerCredit, shouldAnnounceCredit } from './vsock-header.js';
import type { VsockHostStream, VsockPeer } from './vsock-backend.js';

export const ConnState = {
  /** The guest asked (REQUEST); the host side is connecting. */
  CONNECTING: 0,
  /** The host asked; REQUEST sent or owed, waiting for the guest's RESPONSE. */
  REQUESTING: 1,
  ESTABLISHED: 2,
  /** SHUTDOWN with both flags sent; waiting for the guest's RST. */
  CLOSING: 3,
  CLOSED: 4,
} as const;
export type ConnState = (typeof ConnState)[keyof typeof ConnState];

/** Control packets a connection owes the guest (bit mask). */
export const Owe = {
  REQUEST: 1,
  RESPONSE: 2,
  CREDIT_UPDATE: 4,
  /** SHUTDOWN with the flags in `shutdownFlags`, once every host byte is out. */
  SHUTDOWN: 8,
  RST: 16,
} as const;

/** What the connection needs from its device. */
export interface ConnectionOwner {
  /** The connection has something to send: put it on the ready list and pump rx. */
  wake(c: VsockConnection): void;
  /** The connection ends (RST owed or sent): the device forgets it. */
  drop(c: VsockConnection): void;
}

export class VsockConnection implements VsockPeer {
  state: ConnState;
  stream: VsockHostStream | null = null;
  /** Control packets owed (Owe bits). */
  owe = 0;
  /** Flags of the SHUTDOWN owed (VsockShutdown bits). */
  shutdownFlags = 0;
  /** SHUTDOWN flags the guest sent (permanent, 5.10.6.5). */
  guestShutdown = 0;
  /** On the device's ready list. */
  ready = false;
  /** The host ended: SHUTDOWN(SEND) once `outBytes` is 0. */
  hostEnded = false;
  closeTimer: ReturnType<typeof setTimeout> | null = null;

  // Credit toward the guest (what the device may send).
  peerBufAlloc = 0;
  peerFwdCnt = 0;
  txCnt = 0;

  // Credit the device gives the guest: its receive buffer.
  readonly rxBuf: Uint8Array;
  rxCnt = 0;
  fwdCnt = 0;
  announcedFwdCnt = 0;

  // Host bytes waiting for rx buffers (the chunks the host gave, not copied).
  readonly out: Uint8Array[] = [];
  outHead = 0;
  outOff = 0;
  outBytes = 0;
  paused = false;

  constructor(
    private readonly owner: ConnectionOwner,
    readonly guestPort: number,
    readonly hostPort: number,
    state: ConnState,
    bufAlloc: number,
    /** Host bytes held at most before `send` says stop. */
    private readonly maxOutBytes: number,
  ) {
    this.state = state;
    this.rxBuf = new Uint8Array(bufAlloc);
  }

  get bufAlloc(): number {
    return this.rxBuf.length;
  }

  /** Bytes the device may send the guest now. */
  get credit(): number {
    return peerCredit(this.peerBufAlloc, this.txCnt, this.peerFwdCnt);
  }

  /** Whether the connection has a packet to send now. */
  get hasWork(): boolean {
    if (this.owe & ~Owe.SHUTDOWN) return true;
    if (this.state === ConnState.ESTABLISHED && this.outBytes > 0 && this.credit > 0) return true;
    return (this.owe & Owe.SHUTDOWN) !== 0 && this.outBytes === 0;
  }

  /** Queues a control packet and wakes the device. */
  oweControl(bits: number): void {
    this.owe |= bits;
    this.owner.wake(this);
  }

  // --- VsockPeer (the host side calls these) ---

  established(): void {
    if (this.state !== ConnState.CONNECTING) return;
    this.state = ConnState.ESTABLISHED;
    this.oweControl(Owe.RESPONSE);
  }

  send(data: Uint8Array): boolean {
    if (this.state === ConnState.CLOSED || this.hostEnded || data.length === 0) return !this.paused;
    // 5.10.6.5: the guest said it receives no more: the bytes go nowhere (and hold no memory).
    if (this.guestShutdown & 1) return true;
    this.out.push(data);
    this.outBytes += data.length;
    if (this.outBytes >= this.maxOutBytes) this.paused = true;
    this.owner.wake(this);
    return !this.paused;
  }

  end(): void {
    if (this.state === ConnState.CLOSED || this.hostEnded) return;
    this.hostEnded = true;
    this.shutdownFlags |= 2; // VsockShutdown.SEND
    this.oweControl(Owe.SHUTDOWN);
  }

  close(): void {
    if (this.state === ConnState.CLOSED) return;
    this.stream = null; // the host side hears nothing more
    this.hostEnded = true;
    this.shutdownFlags = 3; // VsockShutdown.RECEIVE | SEND
    this.oweControl(Owe.SHUTDOWN);
  }

  reset(): void {
    if (this.state === ConnState.CLOSED) return;
    this.stream = null; // the host side is gone: it hears nothing more
    this.owe = Owe.RST;
    this.owner.wake(this);
  }

  consumed(n: number): void {
    if (this.state === ConnState.CLOSED || !(n > 0)) return;
    const inBuffer = (this.rxCnt - this.fwdCnt) >>> 0;
    this.fwdCnt = (this.fwdCnt + Math.min(n, inBuffer)) >>> 0;
    if (shouldAnnounceCredit(this.bufAlloc, this.rxCnt, this.fwdCnt, this.announcedFwdCnt)) this.oweControl(Owe.CREDIT_UPDATE);
  }

  /** Takes up to `max` host bytes into `dst` through `write` (the rx buffer); returns the count. */
  takeOut(max: number, write: (chunk: Uint8Array, off: number, len: number) => number): number {
    let done = 0;
    while (done < max && this.outHead < this.out.length) {
      const chunk = this.out[this.outHead]!;
      const n = Math.min(chunk.length - this.outOff, max - done);
      const w = write(chunk, this.outOff, n);
      done += w;
      this.outOff += w;
      if (w < n) break;
      if (this.outOff === chunk.length) {
        this.out[this.outHead++] = EMPTY;
        this.outOff = 0;
      }
    }
    if (this.outHead === this.out.length) {
      this.out.length = 0;
      this.outHead = 0;
    }
    this.outBytes -= done;
    this.txCnt = (this.txCnt + done) >>> 0;
    if (this.paused && this.outBytes < this.maxOutBytes / 2) {
      this.paused = false;
      this.stream?.resume();
    }
    return done;
  }

  /** Forgets host bytes not sent (RST, or the guest receives no more); a paused host may go on. */
  dropOut(): void {
    this.out.length = 0;
    this.outHead = 0;
    this.outOff = 0;
    this.outBytes = 0;
    if (this.paused) {
      this.paused = false;
      this.stream?.resume();
    }
  }
}

const EMPTY = new Uint8Array(0);
