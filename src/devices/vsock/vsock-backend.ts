/**
 * The host side of a vsock device: what the device asks of it (a stream per connection) and what
 * it offers it (a peer per connection). The device speaks virtio (5.10) to the guest; a backend
 * speaks whatever the host uses (Unix sockets in the hybrid model of vhost-device-vsock and
 * Firecracker, in-process streams for tests).
 */

/** The device's side of one connection, as the host side sees it. */
export interface VsockPeer {
  /** The guest's port. */
  readonly guestPort: number;
  /** The host's port (the one the guest connected to, or the one the device chose). */
  readonly hostPort: number;
  /** VsockType.STREAM or VsockType.SEQPACKET (5.10.6.2). */
  readonly type: number;
  /** The host side of a guest's REQUEST is ready: the device answers RESPONSE. */
  established(): void;
  /**
   * Host bytes for the guest. The device keeps `data` (no copy) until it has gone into rx
   * buffers. Returns false once the device holds more than its bound for the connection: the
   * host should stop reading until `VsockHostStream.resume`.
   */
  send(data: Uint8Array): boolean;
  /**
   * SEQPACKET: one whole host message (kept, no copy); the guest gets it in RW packets, the last
   * with VIRTIO_VSOCK_SEQ_EOM (and SEQ_EOR when `eor`, 5.10.6.6.1). A message longer than the
   * guest's buf_alloc could never be received whole and is dropped (counted by the device). On a
   * SEQPACKET connection `send` is `sendMessage(data, false)`. Returns as `send`.
   */
  sendMessage(data: Uint8Array, eor?: boolean): boolean;
  /** The host will send no more (the guest gets SHUTDOWN with SEND once the data is out). */
  end(): void;
  /**
   * The host side closed both ways: the guest gets SHUTDOWN with RECEIVE and SEND once the data
   * is out, then RST ends the connection (5.10.6.4 clean disconnect). No stream call after this.
   */
  close(): void;
  /** The host side is gone or refused: the guest gets RST, the connection is forgotten. */
  reset(): void;
  /**
   * `n` bytes handed to `VsockHostStream.write` are consumed (flushed to the host): the guest gets
   * that credit back (5.10.6.3 fwd_cnt). Calls report bytes in the order they were written.
   */
  consumed(n: number): void;
}

/** The host side of one connection, as the device sees it. */
export interface VsockHostStream {
  /**
   * Guest bytes, a view of the connection's receive buffer valid until the host reports them
   * through `VsockPeer.consumed` (credit keeps the guest from overwriting them meanwhile).
   */
  write(data: Uint8Array): void;
  /**
   * SEQPACKET connections (required for them): one whole guest message, `head` then `tail`
   * (views of the receive buffer, `tail` empty unless the message wrapped), `eor` when the guest
   * marked a record end. Consumed like `write` bytes (`VsockPeer.consumed(head + tail length)`).
   */
  writeMessage?(head: Uint8Array, tail: Uint8Array, eor: boolean): void;
  /** The guest will send no more (SHUTDOWN with SEND, 5.10.6.5). */
  end(): void;
  /** The connection is gone (RST, clean close, device reset): release it; no peer call after this. */
  close(): void;
  /** The device takes more bytes through `VsockPeer.send` again. */
  resume(): void;
  /** A host-initiated connection was accepted by the guest (RESPONSE). */
  connected?(): void;
}

/** Host-initiated connections go through this (given to the backend while the device is active). */
export interface VsockHostConnector {
  /**
   * Asks the guest for a connection to its port `guestPort` (REQUEST from a host port the device
   * chooses), of `type` (default STREAM; SEQPACKET once the guest negotiated it). Returns the peer, or null when the device cannot (not active, table full). The
   * stream hears `connected` on RESPONSE, `close` on RST.
   */
  connectToGuest(guestPort: number, stream: VsockHostStream, type?: number): VsockPeer | null;
}

/** The host side of a vsock device: where guest connections go, and where host connections come from. */
export interface VsockBackend {
  /**
   * The guest connects to host port `hostPort` (`peer.type` says stream or seqpacket): the host
   * side, or null when nothing listens there or not of that type (the device answers RST). A
   * SEQPACKET host side implements `writeMessage`. The host side later calls `peer.established()` or
   * `peer.reset()`.
   */
  connect(hostPort: number, peer: VsockPeer): VsockHostStream | null;
  /** The device became active: host-initiated connections may start through `connector`. */
  attach?(connector: VsockHostConnector): void;
  /** The device was reset: no more host-initiated connections until the next `attach`. */
  detach?(): void;
}
