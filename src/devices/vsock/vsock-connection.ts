/**
 * One connection of the vsock device (5.10.6.4), stream or seqpacket: its state, credit both
 * ways (5.10.6.3), the guest's bytes on their way to the host (a receive buffer of `buf_alloc`
 * bytes that credit keeps from overflowing; for seqpacket the bytes of the message being
 * received stay there until its EOM), the host's bytes waiting for rx buffers (for seqpacket
 * one chunk per message, with its end flags), and the control packets it owes the guest.
 */
import { VsockSeq, VsockShutdown, VsockType } from '../../spec/vsock.js';
import { peerCredit, shouldAnnounceCredit } from './vsock-header.js';
import type { VsockHostStream, VsockPeer } from './vsock-backend.js';

/** States of a vsock stream connection on the device side (5.10.6). */
export const ConnState = {
  /** The guest asked (REQUEST); the host side is connecting. */
  CONNECTING: 0,
  /** The host asked; REQUEST sent or owed, waiting for the guest's RESPONSE. */
  REQUESTING: 1,
  /** Connected both ways: RW packets flow under credit. */
  ESTABLISHED: 2,
  /** SHUTDOWN with both flags sent; waiting for the guest's RST. */
  CLOSING: 3,
  /** Over: RST sent or received; the device has forgotten it and sends nothing more for it. */
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
  /** A host message the guest could never receive whole was dropped (counted). */
  messageDropped(c: VsockConnection): void;
}

/**
 * Device-side state of one guest<->host vsock connection (5.10.6.4): the host side talks to it
 * as a {@link VsockPeer}, the device drains its owed control packets and host bytes into the
 * guest's rx queue and feeds it the guest's OP_RW payloads.
 */
export class VsockConnection implements VsockPeer {
  /** Where the connection is in its life (ConnState). */
  state: ConnState;
  /** The host side's end of the connection; null until the backend has accepted or connected it. */
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
  /** Runs out when the guest has not answered our SHUTDOWN with RST in time (5.10.6.4); the device then resets. Null when not closing. */
  closeTimer: ReturnType<typeof setTimeout> | null = null;

  // Credit toward the guest (what the device may send).
  /** The guest's `buf_alloc` from its last packet (bytes, 5.10.6.3). */
  peerBufAlloc = 0;
  /** The guest's `fwd_cnt` from its last packet: bytes it has consumed of what we sent (wraps at 2^32). */
  peerFwdCnt = 0;
  /** Payload bytes sent to the guest so far (wraps at 2^32); credit is `peerBufAlloc - (txCnt - peerFwdCnt)`. */
  txCnt = 0;

  // Credit the device gives the guest: its receive buffer.
  /** Receive buffer for the guest's bytes; its length is the `buf_alloc` we advertise. */
  readonly rxBuf: Uint8Array;
  /** Payload bytes received from the guest so far (wraps at 2^32). */
  rxCnt = 0;
  /** SEQPACKET: rxCnt where the message being received began. */
  msgStart = 0;
  /** Bytes of `rxBuf` passed on to the host side: the `fwd_cnt` we report (5.10.6.3, wraps at 2^32). */
  fwdCnt = 0;
  /** The `fwd_cnt` last carried in a packet to the guest; decides when a CREDIT_UPDATE is owed. */
  announcedFwdCnt = 0;

  /** Host bytes waiting for rx buffers: the chunks the host gave, not copied, sent from `outHead` on. */
  readonly out: Uint8Array[] = [];
  /** SEQPACKET: per chunk of `out`, the flags its last packet carries (EOM, EOR); 0 for streams. */
  readonly outEnds: number[] = [];
  /** Index in `out` of the chunk being sent. */
  outHead = 0;
  /** Bytes of `out[outHead]` already sent. */
  outOff = 0;
  /** Host bytes queued in `out` and not yet sent. */
  outBytes = 0;
  /** `send` returned false (more than `maxOutBytes` queued); the host is resumed when half has drained. */
  paused = false;

  constructor(
    private readonly owner: ConnectionOwner,
    /** The guest's port (src_port of its packets). */
    readonly guestPort: number,
    /** The host's port (dst_port of the guest's packets). */
    readonly hostPort: number,
    state: ConnState,
    /** Size of the receive buffer, the `buf_alloc` we advertise (bytes). */
    bufAlloc: number,
    /** Host bytes held at most before `send` says stop. */
    private readonly maxOutBytes: number,
    /** VsockType.STREAM or VsockType.SEQPACKET. */
    readonly type: number = VsockType.STREAM,
  ) {
    this.state = state;
    this.rxBuf = new Uint8Array(bufAlloc);
  }

  /** The `buf_alloc` we advertise to the guest: the size of `rxBuf` (bytes). */
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
    if (this.type === VsockType.SEQPACKET) return this.sendMessage(data, false);
    return this.queueOut(data, 0);
  }

  sendMessage(data: Uint8Array, eor = false): boolean {
    if (this.type !== VsockType.SEQPACKET) return this.queueOut(data, 0);
    // The guest only frees credit for a message once it has all of it (Linux refuses to send
    // one longer than the peer's buf_alloc too, EMSGSIZE): a longer one could never arrive.
    if (data.length > this.peerBufAlloc && this.peerBufAlloc > 0) {
      this.owner.messageDropped(this);
      return !this.paused;
    }
    return this.queueOut(data, VsockSeq.EOM | (eor ? VsockSeq.EOR : 0));
  }

  /** The bytes of the current out chunk not yet sent, and the flags its last packet carries. */
  get chunkLeft(): number {
    return this.outHead < this.out.length ? this.out[this.outHead]!.length - this.outOff : 0;
  }

  /** SEQPACKET: the flags (EOM, EOR) the last packet of the current out chunk carries; 0 for streams or when nothing is queued. */
  get chunkEnds(): number {
    return this.outHead < this.outEnds.length ? this.outEnds[this.outHead]! : 0;
  }

  private queueOut(data: Uint8Array, ends: number): boolean {
    if (this.state === ConnState.CLOSED || this.hostEnded || data.length === 0) return !this.paused;
    // 5.10.6.5: the guest said it receives no more: the bytes go nowhere (and hold no memory).
    if (this.guestShutdown & 1) return true;
    this.out.push(data);
    this.outEnds.push(ends);
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

  /**
   * RW payload of `len` bytes (read through `copyIn`) into the receive buffer; false when it breaks the
   * credit (driver/vsock/5), or, for seqpacket, when a message fills the whole buffer without its
   * EOM (it could never end: the guest has no credit left for the rest).
   */
  receive(len: number, flags: number, copyIn: (dst: Uint8Array, off: number, len: number) => void): boolean {
    if (this.guestShutdown & VsockShutdown.SEND) return false;
    const seq = this.type === VsockType.SEQPACKET;
    if (len === 0 && !seq) return true;
    const inBuffer = (this.rxCnt - this.fwdCnt) >>> 0;
    if (len > this.bufAlloc - inBuffer) return false;
    const buf = this.rxBuf;
    const pos = this.rxCnt % buf.length;
    const first = Math.min(len, buf.length - pos);
    copyIn(buf, pos, first);
    if (first < len) copyIn(buf, 0, len - first);
    this.rxCnt = (this.rxCnt + len) >>> 0;
    if (seq) return this.receiveMessagePart(flags);
    const s = this.stream;
    if (s === null) {
      this.consumed(len); // the host side closed its receiving side: the bytes go nowhere
      return true;
    }
    s.write(buf.subarray(pos, pos + first));
    if (first < len) s.write(buf.subarray(0, len - first));
    return true;
  }

  /** 5.10.6.6.1: the message grows until a packet with EOM; then the host gets it whole. */
  private receiveMessagePart(flags: number): boolean {
    const size = (this.rxCnt - this.msgStart) >>> 0;
    if ((flags & VsockSeq.EOM) === 0) return size < this.bufAlloc;
    const buf = this.rxBuf;
    const pos = this.msgStart % buf.length;
    this.msgStart = this.rxCnt;
    const s = this.stream;
    if (s === null || s.writeMessage === undefined) {
      if (size > 0) this.consumed(size);
      return true;
    }
    const first = Math.min(size, buf.length - pos);
    s.writeMessage(buf.subarray(pos, pos + first), buf.subarray(0, size - first), (flags & VsockSeq.EOR) !== 0);
    return true;
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
      this.outEnds.length = 0;
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
    this.outEnds.length = 0;
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
