/**
 * One socket of the vsock driver (5.10.6.4), stream or seqpacket: connect/accept state, credit
 * both ways (5.10.6.3), received bytes (seqpacket: whole messages, 5.10.6.6.1) until the
 * application reads them.
 */
import { ErrorCode, VirtioError } from '../../errors.js';
import { VsockOp, VsockSeq, VsockShutdown, VsockType } from '../../spec/vsock.js';
import { peerCredit, shouldAnnounceCredit } from './vsock-header.js';

/** What a socket needs from its driver. */
export interface VsockSocketOwner {
  /** Sends a packet of `s` (with its credit) and resolves once the device took it. */
  sendPacket(s: VsockSocket, op: number, flags: number, payload?: Uint8Array): Promise<void>;
  /** Payload bytes per RW packet at most. */
  readonly maxPayload: number;
  /** How long `close()` waits for the peer's RST after its SHUTDOWN before giving up (ms). */
  readonly closeTimeoutMs: number;
  /** The socket is over: forget it. */
  forget(s: VsockSocket): void;
}

/** Life of a driver-side vsock socket (5.10.6.4). */
export const SocketState = {
  /** REQUEST sent, waiting for the peer's RESPONSE (or RST: refused). */
  CONNECTING: 'connecting',
  /** Connected: data may flow (unless the peer shut a direction down). */
  OPEN: 'open',
  /** Over (RST received or sent); `closeReason` says why. */
  CLOSED: 'closed',
} as const;
export type SocketState = (typeof SocketState)[keyof typeof SocketState];

/**
 * A connection as the driver sees it (5.10.6.4): `connect()` or an accepted listener gives one;
 * `send`/`recv` (stream) or `sendMessage`/`recvMessage` (seqpacket) move bytes within the
 * credit of 5.10.6.3.
 */
export class VsockSocket {
  /** Where the socket is in its life (SocketState). */
  state: SocketState;
  /** Why it closed: 'reset' (RST), 'closed' (clean), 'refused' (RST to a REQUEST). */
  closeReason: string | null = null;
  /** The peer's `buf_alloc` from its last packet (bytes, 5.10.6.3). */
  peerBufAlloc = 0;
  /** The peer's `fwd_cnt` from its last packet: bytes it has consumed of what we sent (wraps at 2^32). */
  peerFwdCnt = 0;
  /** Payload bytes sent to the peer so far (wraps at 2^32). */
  txCnt = 0;
  /** Payload bytes received from the peer so far (wraps at 2^32). */
  rxCnt = 0;
  /** Received bytes the application has read: the `fwd_cnt` we report (wraps at 2^32). */
  fwdCnt = 0;
  /** The `fwd_cnt` last carried in a packet to the peer; decides when a CREDIT_UPDATE is owed. */
  announcedFwdCnt = 0;
  /** close() sent SHUTDOWN with both flags: the peer's RST is the clean end. */
  closing = false;
  /** SHUTDOWN flags the peer sent. */
  peerShutdown = 0;
  private readonly received: Uint8Array[] = [];
  /** SEQPACKET: complete messages not read yet, and the parts of the one arriving. */
  private readonly messages: { data: Uint8Array; eor: boolean }[] = [];
  private partial: Uint8Array[] = [];
  private partialBytes = 0;
  private waiters: (() => void)[] = [];

  constructor(
    private readonly owner: VsockSocketOwner,
    /** The guest's (our) port: src_port of our packets. */
    readonly localPort: number,
    /** The host's port: dst_port of our packets. */
    readonly remotePort: number,
    state: SocketState,
    /** Receive buffer we advertise as `buf_alloc` (bytes): unread received bytes stay below it. */
    readonly bufAlloc: number,
    /** VsockType.STREAM or VsockType.SEQPACKET. */
    readonly type: number = VsockType.STREAM,
  ) {
    this.state = state;
  }

  /**
   * SEQPACKET: sends `data` as one message (5.10.6.6.1): RW packets within the peer's credit
   * (driver/vsock/5), the last with VIRTIO_VSOCK_SEQ_EOM, and SEQ_EOR too when `eor`. A message
   * longer than the peer's buf_alloc could never be received whole: refused, as Linux does.
   */
  async sendMessage(data: Uint8Array, eor = false): Promise<void> {
    if (this.type !== VsockType.SEQPACKET) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'sendMessage on a stream socket');
    if (data.length > this.peerBufAlloc) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `vsock message of ${data.length} bytes exceeds the peer's buf_alloc ${this.peerBufAlloc}`);
    }
    await this.sendBytes(data, VsockSeq.EOM | (eor ? VsockSeq.EOR : 0));
  }

  /** SEQPACKET: the next whole message, or null at the end (peer SHUTDOWN SEND, or closed). */
  async recvMessage(): Promise<{
    /** The message's bytes, all its RW packets joined. */
    data: Uint8Array;
    /** Its last packet carried VIRTIO_VSOCK_SEQ_EOR (record end). */
    eor: boolean;
  } | null> {
    for (;;) {
      const m = this.messages.shift();
      if (m !== undefined) {
        await this.consumed(m.data.length);
        return m;
      }
      if (this.state !== SocketState.OPEN || this.peerShutdown & VsockShutdown.SEND) return null;
      await this.changed();
    }
  }

  /**
   * Sends `data` in RW packets within the peer's credit (driver/vsock/5), waiting for credit. On a
   * seqpacket socket: `sendMessage(data)`.
   */
  async send(data: Uint8Array): Promise<void> {
    if (this.type === VsockType.SEQPACKET) return this.sendMessage(data);
    await this.sendBytes(data, 0);
  }

  /** RW packets for `data`; the last carries `lastFlags` (an empty message is one empty packet). */
  private async sendBytes(data: Uint8Array, lastFlags: number): Promise<void> {
    let off = 0;
    let first = true;
    while (off < data.length || (first && lastFlags !== 0)) {
      first = false;
      if (this.state !== SocketState.OPEN || this.peerShutdown & VsockShutdown.RECEIVE) {
        throw new VirtioError(ErrorCode.REQUEST_FAILED, `vsock ${this.localPort}->${this.remotePort}: not open (${this.closeReason ?? this.state})`);
      }
      const credit = peerCredit(this.peerBufAlloc, this.txCnt, this.peerFwdCnt);
      if (credit === 0 && data.length > 0) {
        // One CREDIT_REQUEST, then wait for credit (the peer announces freed space itself): asking
        // again at every packet would ping-pong while the peer has nothing to free.
        const hasCredit = (): boolean => this.state !== SocketState.OPEN || peerCredit(this.peerBufAlloc, this.txCnt, this.peerFwdCnt) > 0;
        const waiting = this.until(hasCredit);
        await this.owner.sendPacket(this, VsockOp.CREDIT_REQUEST, 0);
        await waiting;
        continue;
      }
      const n = Math.min(credit, data.length - off, this.owner.maxPayload);
      this.txCnt = (this.txCnt + n) >>> 0;
      await this.owner.sendPacket(this, VsockOp.RW, off + n === data.length ? lastFlags : 0, data.subarray(off, off + n));
      off += n;
    }
  }

  /** The next bytes received, or null at the end of the stream (peer SHUTDOWN SEND, or closed). */
  async recv(): Promise<Uint8Array | null> {
    for (;;) {
      if (this.type === VsockType.SEQPACKET) return (await this.recvMessage())?.data ?? null;
      const b = this.received.shift();
      if (b !== undefined) {
        await this.consumed(b.length);
        return b;
      }
      if (this.state !== SocketState.OPEN || this.peerShutdown & VsockShutdown.SEND) return null;
      await this.changed();
    }
  }

  /** `n` received bytes were read: fwd_cnt moves, the peer hears of it when it should. */
  private async consumed(n: number): Promise<void> {
    this.fwdCnt = (this.fwdCnt + n) >>> 0;
    if (this.state === SocketState.OPEN && shouldAnnounceCredit(this.bufAlloc, this.rxCnt, this.fwdCnt, this.announcedFwdCnt)) {
      await this.owner.sendPacket(this, VsockOp.CREDIT_UPDATE, 0);
    }
  }

  /** Every byte until the end of the stream. */
  async readAll(): Promise<Uint8Array> {
    const parts: Uint8Array[] = [];
    for (let b = await this.recv(); b !== null; b = await this.recv()) parts.push(b);
    return Buffer.concat(parts);
  }

  /** Sends no more (SHUTDOWN with SEND). */
  async shutdownSend(): Promise<void> {
    if (this.state === SocketState.OPEN) await this.owner.sendPacket(this, VsockOp.SHUTDOWN, VsockShutdown.SEND);
  }

  /**
   * Clean disconnect (5.10.6.4): SHUTDOWN with both flags, then the peer's RST; without one in
   * `closeTimeoutMs`, a RST ends it.
   */
  async close(): Promise<void> {
    if (this.state === SocketState.CLOSED) return;
    if (this.state === SocketState.OPEN) {
      this.closing = true;
      await this.owner.sendPacket(this, VsockOp.SHUTDOWN, VsockShutdown.RECEIVE | VsockShutdown.SEND);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, this.owner.closeTimeoutMs)));
      await Promise.race([this.until(() => this.state === SocketState.CLOSED), timeout]);
      clearTimeout(timer);
    }
    if ((this.state as SocketState) !== SocketState.CLOSED) {
      await this.owner.sendPacket(this, VsockOp.RST, 0).catch(() => undefined);
      this.ended('closed');
    }
  }

  /**
   * @internal A payload arrived (copied) with the packet's flags. Returns false when it broke the
   * credit the socket gave (or, seqpacket, a message filled the whole buffer without EOM).
   */
  deliver(payload: Uint8Array, flags = 0): boolean {
    if ((this.rxCnt - this.fwdCnt) >>> 0 > this.bufAlloc - payload.length) return false;
    this.rxCnt = (this.rxCnt + payload.length) >>> 0;
    if (this.type !== VsockType.SEQPACKET) {
      if (payload.length > 0) this.received.push(payload);
      return true;
    }
    if (payload.length > 0) this.partial.push(payload);
    this.partialBytes += payload.length;
    if ((flags & VsockSeq.EOM) === 0) return this.partialBytes < this.bufAlloc;
    const parts = this.partial;
    this.partial = [];
    this.partialBytes = 0;
    this.messages.push({ data: parts.length === 1 ? parts[0]! : Buffer.concat(parts), eor: (flags & VsockSeq.EOR) !== 0 });
    return true;
  }

  /** @internal The socket is over. */
  ended(reason: string): void {
    if (this.state === SocketState.CLOSED) return;
    this.state = SocketState.CLOSED;
    this.closeReason = reason;
    this.owner.forget(this);
    this.wake();
  }

  /** @internal Something changed (a packet for the socket). */
  wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Resolves at the next change. */
  changed(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Resolves once `pred` holds. */
  async until(pred: () => boolean): Promise<void> {
    while (!pred()) await this.changed();
  }
}
