/**
 * An in-process host side for the vsock device (tests, examples, the transport matrix): host
 * "listeners" by port for guest-initiated connections, and `connect` for host-initiated ones.
 * Each connection collects what the guest sent and lets the host send, end and close.
 */
import { ErrorCode, VirtioError } from '../../../errors.js';
import { VsockType } from '../../../spec/vsock.js';
import type { VsockBackend, VsockHostConnector, VsockHostStream, VsockPeer } from '../vsock-backend.js';

/** One connection as the host sees it. */
export class MemoryVsockConnection implements VsockHostStream {
  /** Bytes the guest sent, in order. */
  readonly received: Uint8Array[] = [];
  /** SEQPACKET: the guest's messages, whole, in order (copied). */
  readonly messages: {
    /** The message's bytes. */
    data: Uint8Array;
    /** It ended a record (VIRTIO_VSOCK_SEQ_EOR). */
    eor: boolean;
  }[] = [];
  /** The guest shut down its sending side. */
  guestEnded = false;
  /** The connection is over. */
  closed = false;
  /** The device's side of the connection, through which the host sends; null until connected. */
  peer: VsockPeer | null = null;
  private waiters: (() => void)[] = [];
  private onConnected: (() => void) | null = null;

  /** Bytes received so far, concatenated. */
  get data(): Uint8Array {
    return Buffer.concat(this.received);
  }

  /** Sends host bytes to the guest (copied). */
  hostSend(data: Uint8Array): boolean {
    return this.peer?.send(data.slice()) ?? false;
  }

  /** SEQPACKET: sends one host message (copied), with a record end when `eor`. */
  hostSendMessage(data: Uint8Array, eor = false): boolean {
    return this.peer?.sendMessage(data.slice(), eor) ?? false;
  }

  /** The host sends no more. */
  hostEnd(): void {
    this.peer?.end();
  }

  /** Closes both ways (clean disconnect). */
  closeHost(): void {
    const p = this.peer;
    this.peer = null;
    p?.close();
  }

  /** Resolves once `pred` holds (checked after each event). */
  until(pred: (c: MemoryVsockConnection) => boolean): Promise<void> {
    if (pred(this)) return Promise.resolve();
    return new Promise((resolve) => {
      const check = (): void => {
        if (pred(this)) resolve();
        else this.waiters.push(check);
      };
      this.waiters.push(check);
    });
  }

  // --- VsockHostStream ---

  write(data: Uint8Array): void {
    this.received.push(data.slice());
    this.peer?.consumed(data.length);
    this.changed();
  }

  writeMessage(head: Uint8Array, tail: Uint8Array, eor: boolean): void {
    const data = new Uint8Array(head.length + tail.length);
    data.set(head);
    data.set(tail, head.length);
    this.messages.push({ data, eor });
    this.peer?.consumed(data.length);
    this.changed();
  }

  end(): void {
    this.guestEnded = true;
    this.changed();
  }

  close(): void {
    this.closed = true;
    this.peer = null;
    this.changed();
  }

  resume(): void {}

  connected(): void {
    this.onConnected?.();
    this.changed();
  }

  /** @internal */
  whenConnected(cb: () => void): void {
    this.onConnected = cb;
  }

  private changed(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}

/** An in-process vsock host side (see the file comment): listeners by port and host-initiated connections. */
export class MemoryVsockBackend implements VsockBackend {
  private readonly listeners = new Map<number, (c: MemoryVsockConnection) => void>();
  private connector: VsockHostConnector | null = null;

  /** Accepts guest connections to `port`. */
  listen(port: number, onConnection: (c: MemoryVsockConnection) => void): void {
    this.listeners.set(port, onConnection);
  }

  /**
   * Connects to the guest's `guestPort` (a stream, or with `type` SEQPACKET a seqpacket socket);
   * resolves once the guest accepted, rejects on RST.
   */
  connect(guestPort: number, type?: number): Promise<MemoryVsockConnection>;
  connect(hostPort: number, peer: VsockPeer): VsockHostStream | null;
  connect(port: number, peer?: VsockPeer | number): Promise<MemoryVsockConnection> | VsockHostStream | null {
    if (peer === undefined || typeof peer === 'number') return this.connectToGuest(port, peer ?? VsockType.STREAM);
    const onConnection = this.listeners.get(port);
    if (onConnection === undefined) return null;
    const c = new MemoryVsockConnection();
    c.peer = peer;
    peer.established();
    onConnection(c);
    return c;
  }

  attach(connector: VsockHostConnector): void {
    this.connector = connector;
  }

  detach(): void {
    this.connector = null;
  }

  private connectToGuest(guestPort: number, type: number): Promise<MemoryVsockConnection> {
    const c = new MemoryVsockConnection();
    return new Promise((resolve, reject) => {
      const peer = this.connector?.connectToGuest(guestPort, c, type) ?? null;
      if (peer === null) return reject(new VirtioError(ErrorCode.REQUEST_FAILED, 'vsock device not active or full'));
      c.peer = peer;
      c.whenConnected(() => resolve(c));
      void c.until((x) => x.closed).then(() => reject(new VirtioError(ErrorCode.REQUEST_FAILED, `guest refused port ${guestPort}`)));
    });
  }
}
