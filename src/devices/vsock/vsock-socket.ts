/**
 * One stream socket of the vsock driver (5.10.6.4): connect/accept state, credit both ways
 * (5.10.6.3), received bytes until the application reads them.
 */
import { ErrorCode, VirtioError } from '../../errors.js';
import { VsockOp, VsockShutdown } from '../../spec/vsock.js';
import { peerCredit, shouldAnnounceCredit } from './vsock-header.js';

/** What a socket needs from its driver. */
export interface VsockSocketOwner {
  /** Sends a packet of `s` (with its credit) and resolves once the device took it. */
  sendPacket(s: VsockSocket, op: number, flags: number, payload?: Uint8Array): Promise<void>;
  /** Payload bytes per RW packet at most. */
  readonly maxPayload: number;
  readonly closeTimeoutMs: number;
  /** The socket is over: forget it. */
  forget(s: VsockSocket): void;
}

export const SocketState = {
  CONNECTING: 'connecting',
  OPEN: 'open',
  CLOSED: 'closed',
} as const;
export type SocketState = (typeof SocketState)[keyof typeof SocketState];

export class VsockSocket {
  state: SocketState;
  /** Why it closed: 'reset' (RST), 'closed' (clean), 'refused' (RST to a REQUEST). */
  closeReason: string | null = null;
  peerBufAlloc = 0;
  peerFwdCnt = 0;
  txCnt = 0;
  rxCnt = 0;
  fwdCnt = 0;
  announcedFwdCnt = 0;
  /** close() sent SHUTDOWN with both flags: the peer's RST is the clean end. */
  closing = false;
  /** SHUTDOWN flags the peer sent. */
  peerShutdown = 0;
  private readonly received: Uint8Array[] = [];
  private waiters: (() => void)[] = [];

  constructor(
    private readonly owner: VsockSocketOwner,
    readonly localPort: number,
    readonly remotePort: number,
    state: SocketState,
    readonly bufAlloc: number,
  ) {
    this.state = state;
  }

  /** Sends `data` in RW packets within the peer's credit (driver/vsock/5), waiting for credit. */
  async send(data: Uint8Array): Promise<void> {
    let off = 0;
    while (off < data.length) {
      if (this.state !== SocketState.OPEN || this.peerShutdown & VsockShutdown.RECEIVE) {
        throw new VirtioError(ErrorCode.REQUEST_FAILED, `vsock ${this.localPort}->${this.remotePort}: not open (${this.closeReason ?? this.state})`);
      }
      const credit = peerCredit(this.peerBufAlloc, this.txCnt, this.peerFwdCnt);
      if (credit === 0) {
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
      await this.owner.sendPacket(this, VsockOp.RW, 0, data.subarray(off, off + n));
      off += n;
    }
  }

  /** The next bytes received, or null at the end of the stream (peer SHUTDOWN SEND, or closed). */
  async recv(): Promise<Uint8Array | null> {
    for (;;) {
      const b = this.received.shift();
      if (b !== undefined) {
        this.fwdCnt = (this.fwdCnt + b.length) >>> 0;
        if (this.state === SocketState.OPEN && shouldAnnounceCredit(this.bufAlloc, this.rxCnt, this.fwdCnt, this.announcedFwdCnt)) {
          await this.owner.sendPacket(this, VsockOp.CREDIT_UPDATE, 0);
        }
        return b;
      }
      if (this.state !== SocketState.OPEN || this.peerShutdown & VsockShutdown.SEND) return null;
      await this.changed();
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

  /** @internal A payload arrived (copied). Returns false when it broke the credit the socket gave. */
  deliver(payload: Uint8Array): boolean {
    if ((this.rxCnt - this.fwdCnt) >>> 0 > this.bufAlloc - payload.length) return false;
    this.rxCnt = (this.rxCnt + payload.length) >>> 0;
    if (payload.length > 0) this.received.push(payload);
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
