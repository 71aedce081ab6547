/**
 * 5.10 Socket Device, driver side (for tests and in-process use): stream and seqpacket sockets
 * to the host (connect) and from it (listen), over RequestQueues on rx, tx and event. Rx buffers stay posted
 * and are made available again as soon as they are read; event buffers too (driver/vsock/9).
 */
import { type DeviceDriver, type DeviceDriverType, checkDriverContext } from '../../driver/device-driver.js';
import { RequestQueue } from '../../driver/request-queue.js';
import type { DriverContext } from '../../driver/types.js';
import { ErrorCode, VirtioError } from '../../errors.js';
import { readConfigField } from '../../spec/config-layout.js';
import { DeviceId } from '../../spec/device-id.js';
import {
  VSOCK_CONFIG_LAYOUT,
  VSOCK_EVENT_SIZE,
  VSOCK_EVENTQ,
  VSOCK_HOST_CID,
  VSOCK_RXQ,
  VSOCK_TXQ,
  VsockEvent,
  VsockF,
  VsockHdr,
  VsockOp,
  VsockShutdown,
  VsockType,
} from '../../spec/vsock.js';
import { VsockHeader } from './vsock-header.js';
import { SocketState, VsockSocket, type VsockSocketOwner } from './vsock-socket.js';

/** Options of VsockDriver. */
export interface VsockDriverOptions {
  /**
   * The guest CID to use instead of reading guest_cid (a transport that shows no config, such as
   * a vhost-user front-end that does not ask GET_CONFIG).
   */
  guestCid?: number;
  /** Rx buffers kept posted. Default 16. */
  rxBuffers?: number;
  /** Payload bytes per rx buffer (after the 44-byte header). Default 4096. */
  rxBufferSize?: number;
  /** Receive buffer per socket (buf_alloc). Default 64 KiB. */
  bufAlloc?: number;
  /** Payload bytes per RW packet sent at most. Default 4096. */
  maxPayload?: number;
  /** How long close() waits for the peer's RST. Default 2000 ms. */
  closeTimeoutMs?: number;
}

const EVENT_BUFFERS = 4;
const FIRST_EPHEMERAL = 49152;

/**
 * The virtio-vsock driver (5.10): typed requests over the device's queues. Construct it on a
 * DriverContext, or start it with startDeviceDriver and its static `type`.
 */
export class VsockDriver implements DeviceDriver, VsockSocketOwner {
  /** driver/vsock/1: NO_IMPLIED_STREAM accepted when offered, with STREAM (and SEQPACKET). */
  static readonly type: DeviceDriverType<VsockDriver, VsockDriverOptions> = {
    name: 'virtio-vsock',
    deviceId: DeviceId.VSOCK,
    wantedFeatures: VsockF.STREAM | VsockF.SEQPACKET | VsockF.NO_IMPLIED_STREAM,
    requiredFeatures: 0n,
    attach: (ctx, opts) => new VsockDriver(ctx, opts),
  };

  /** The CID used as source (driver/vsock/7); fetched again on TRANSPORT_RESET (driver/vsock/10). */
  guestCid: number;
  /** Transport resets seen. */
  transportResets = 0;
  readonly maxPayload: number;
  /** How long a close waits for the peer's shutdown before it resets the connection. */
  readonly closeTimeoutMs: number;

  private readonly ctx: DriverContext;
  private readonly le: boolean;
  private readonly cidOverride: number | undefined;
  private readonly tx: RequestQueue;
  private readonly rx: RequestQueue;
  private readonly ev: RequestQueue;
  private readonly rxSize: number;
  private readonly bufAlloc: number;
  private readonly sockets = new Map<string, VsockSocket>();
  private readonly listeners = new Map<number, { onConnection: (s: VsockSocket) => void; type: number }>();
  /** Socket types usable with the negotiated features (5.10.3). */
  private readonly streamOk: boolean;
  private readonly seqpacketOk: boolean;
  private readonly hdr = new VsockHeader();
  private readonly rxHdr = new VsockHeader();
  private readonly buffers: number[] = [];
  private readonly replies = new Set<Promise<void>>();
  private resetWaiters: (() => void)[] = [];
  private nextPort = FIRST_EPHEMERAL;
  private detached = false;

  constructor(ctx: DriverContext, opts: VsockDriverOptions = {}) {
    checkDriverContext(VsockDriver.type, ctx);
    this.ctx = ctx;
    this.le = ctx.littleEndian;
    this.cidOverride = opts.guestCid;
    // driver/vsock/2, driver/vsock/3: no bit, or SEQPACKET without NO_IMPLIED_STREAM, keeps streams.
    this.streamOk = (ctx.features & VsockF.STREAM) !== 0n || (ctx.features & VsockF.NO_IMPLIED_STREAM) === 0n;
    this.seqpacketOk = (ctx.features & VsockF.SEQPACKET) !== 0n;
    this.guestCid = this.fetchCid();
    this.rxSize = opts.rxBufferSize ?? 4096;
    this.bufAlloc = opts.bufAlloc ?? 64 * 1024;
    this.maxPayload = opts.maxPayload ?? 4096;
    this.closeTimeoutMs = opts.closeTimeoutMs ?? 2000;
    this.tx = new RequestQueue(ctx, VSOCK_TXQ);
    this.rx = new RequestQueue(ctx, VSOCK_RXQ);
    this.ev = new RequestQueue(ctx, VSOCK_EVENTQ);
    const n = opts.rxBuffers ?? 16;
    if (!Number.isInteger(n) || n < 1) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `bad rxBuffers ${n}`);
    for (let i = 0; i < n; i++) this.postRx(this.alloc(VsockHdr.SIZE + this.rxSize));
    for (let i = 0; i < EVENT_BUFFERS; i++) this.postEvent(this.alloc(VSOCK_EVENT_SIZE));
  }

  /** Whether sockets of `type` can be used (the negotiated features, 5.10.3). */
  supports(type: number): boolean {
    return type === VsockType.STREAM ? this.streamOk : type === VsockType.SEQPACKET && this.seqpacketOk;
  }

  /**
   * Connects to `port` on the host (CID 2), a stream or (`type` SEQPACKET) a seqpacket socket;
   * rejects on RST (nothing listens there).
   */
  async connect(port: number, type: number = VsockType.STREAM): Promise<VsockSocket> {
    if (!this.supports(type)) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `vsock socket type ${type} was not negotiated`);
    const local = this.freePort(port);
    const s = new VsockSocket(this, local, port, SocketState.CONNECTING, this.bufAlloc, type);
    this.sockets.set(key(local, port), s);
    await this.sendPacket(s, VsockOp.REQUEST, 0);
    await s.until(() => s.state !== SocketState.CONNECTING);
    if (s.state !== SocketState.OPEN) throw new VirtioError(ErrorCode.REQUEST_FAILED, `vsock connect to host port ${port}: ${s.closeReason ?? 'refused'}`);
    return s;
  }

  /** Accepts host connections of `type` (default stream) to `port` (until `unlisten`). */
  listen(port: number, onConnection: (s: VsockSocket) => void, type: number = VsockType.STREAM): void {
    if (!this.supports(type)) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `vsock socket type ${type} was not negotiated`);
    this.listeners.set(port, { onConnection, type });
  }

  /** Stops listening on `port` (connections already accepted stay). */
  unlisten(port: number): void {
    this.listeners.delete(port);
  }

  /** Resolves once every reply the driver sent on its own (RST, RESPONSE, CREDIT_UPDATE) was used by the device. */
  async flush(): Promise<void> {
    while (this.replies.size > 0) await Promise.all([...this.replies]);
  }

  /** Resolves at the next TRANSPORT_RESET event. */
  nextTransportReset(): Promise<void> {
    return new Promise((resolve) => this.resetWaiters.push(resolve));
  }

  /** Open sockets. */
  get openSockets(): number {
    return this.sockets.size;
  }

  detach(): void {
    this.detached = true;
    for (const s of [...this.sockets.values()]) s.ended('detached');
    this.tx.detach();
    this.rx.detach();
    this.ev.detach();
    for (const a of this.buffers) this.ctx.dma.free(a);
    this.buffers.length = 0;
  }

  // --- VsockSocketOwner ---

  async sendPacket(s: VsockSocket, op: number, flags: number, payload?: Uint8Array): Promise<void> {
    const len = payload?.length ?? 0;
    this.hdr.set(this.guestCid, s.localPort, VSOCK_HOST_CID, s.remotePort, op, len, flags, s.bufAlloc, s.fwdCnt, s.type);
    s.announcedFwdCnt = s.fwdCnt;
    await this.submit(this.hdr.encode(this.le), payload);
  }

  forget(s: VsockSocket): void {
    if (this.sockets.get(key(s.localPort, s.remotePort)) === s) this.sockets.delete(key(s.localPort, s.remotePort));
  }

  // --- internals ---

  private fetchCid(): number {
    if (this.cidOverride !== undefined) return this.cidOverride;
    return readConfigField(VSOCK_CONFIG_LAYOUT, 'guest_cid', (o, l) => this.ctx.readConfig(o, l), this.le);
  }

  private alloc(len: number): number {
    const a = this.ctx.dma.alloc(len, 16);
    this.buffers.push(a);
    return a;
  }

  /** One tx packet: the header and payload in one device-readable buffer. */
  private async submit(header: Uint8Array, payload?: Uint8Array): Promise<void> {
    const len = VsockHdr.SIZE + (payload?.length ?? 0);
    const addr = this.ctx.dma.alloc(len, 16);
    try {
      this.ctx.memory.write(addr, header);
      if (payload && payload.length > 0) this.ctx.memory.write(addr + VsockHdr.SIZE, payload);
      await this.tx.submit([{ addr, len }]);
    } finally {
      this.ctx.dma.free(addr);
    }
  }

  private postRx(addr: number): void {
    const len = VsockHdr.SIZE + this.rxSize;
    this.rx.submit([], [{ addr, len }]).then(
      (used) => {
        if (this.detached) return;
        this.onRx(addr, Math.min(used, len));
        this.postRx(addr);
      },
      () => undefined, // reset or detached: the buffer is not reposted
    );
  }

  private postEvent(addr: number): void {
    this.ev.submit([], [{ addr, len: VSOCK_EVENT_SIZE }]).then(
      (used) => {
        if (this.detached) return;
        if (used >= VSOCK_EVENT_SIZE) {
          const b = new Uint8Array(VSOCK_EVENT_SIZE);
          this.ctx.memory.read(addr, b);
          if (new DataView(b.buffer).getUint32(0, this.le) === VsockEvent.TRANSPORT_RESET) this.onTransportReset();
        }
        this.postEvent(addr); // driver/vsock/9: replenished at once
      },
      () => undefined,
    );
  }

  /** driver/vsock/10..12: fetch guest_cid again, end every connection, keep the listeners. */
  private onTransportReset(): void {
    this.transportResets++;
    const w = this.resetWaiters;
    this.resetWaiters = [];
    for (const f of w) f();
    this.guestCid = this.fetchCid();
    for (const s of [...this.sockets.values()]) s.ended('transport reset');
  }

  private onRx(addr: number, used: number): void {
    if (used < VsockHdr.SIZE) return;
    const h = this.rxHdr;
    this.ctx.memory.read(addr, h.bytes);
    h.decode(this.le);
    if (h.dstCid !== this.guestCid || h.srcCid !== VSOCK_HOST_CID) return;
    const local = h.dstPort;
    const remote = h.srcPort;
    const s = this.sockets.get(key(local, remote));
    // driver/vsock/8: an unknown type (or one not negotiated, or not the socket's) -> RST.
    if (!this.supports(h.type) || (s !== undefined && s.type !== h.type)) {
      if (h.op !== VsockOp.RST) this.rst(local, remote, h.type);
      s?.ended('reset');
      return;
    }
    if (s === undefined) {
      const l = this.listeners.get(local);
      if (h.op === VsockOp.REQUEST && l !== undefined && l.type === h.type) {
        const n = new VsockSocket(this, local, remote, SocketState.OPEN, this.bufAlloc, h.type);
        n.peerBufAlloc = h.bufAlloc;
        n.peerFwdCnt = h.fwdCnt;
        this.sockets.set(key(local, remote), n);
        this.background(this.sendPacket(n, VsockOp.RESPONSE, 0));
        l.onConnection(n);
      } else if (h.op !== VsockOp.RST) this.rst(local, remote, h.type);
      return;
    }
    s.peerBufAlloc = h.bufAlloc;
    s.peerFwdCnt = h.fwdCnt;
    const op = h.op;
    const flags = h.flags;
    if (op === VsockOp.RESPONSE && s.state === SocketState.CONNECTING) s.state = SocketState.OPEN;
    else if (op === VsockOp.RST) s.ended(s.state === SocketState.CONNECTING ? 'refused' : s.closing ? 'closed' : 'reset');
    else if (op === VsockOp.RW && s.state === SocketState.OPEN) {
      const n = Math.min(h.len, used - VsockHdr.SIZE);
      const payload = new Uint8Array(n);
      this.ctx.memory.read(addr + VsockHdr.SIZE, payload);
      if (!s.deliver(payload, flags)) return this.abort(s);
    } else if (op === VsockOp.SHUTDOWN && s.state === SocketState.OPEN) {
      s.peerShutdown |= flags & (VsockShutdown.RECEIVE | VsockShutdown.SEND);
      if (s.peerShutdown === (VsockShutdown.RECEIVE | VsockShutdown.SEND)) return this.abort(s, 'closed'); // 5.10.6.4: answer RST
    } else if (op === VsockOp.CREDIT_REQUEST) this.background(this.sendPacket(s, VsockOp.CREDIT_UPDATE, 0));
    else if (op !== VsockOp.CREDIT_UPDATE) return this.abort(s);
    s.wake();
  }

  /** Ends `s` with a RST to the peer. */
  private abort(s: VsockSocket, reason = 'reset'): void {
    this.rst(s.localPort, s.remotePort, s.type);
    s.ended(reason);
  }

  private rst(local: number, remote: number, type: number): void {
    const t = type === VsockType.SEQPACKET ? type : VsockType.STREAM;
    this.hdr.set(this.guestCid, local, VSOCK_HOST_CID, remote, VsockOp.RST, 0, 0, 0, 0, t);
    this.background(this.submit(this.hdr.encode(this.le)));
  }

  /** A packet the driver sends on its own (replies): tracked so `flush` can wait for it. */
  private background(p: Promise<void>): void {
    const settled = p.catch(() => undefined);
    this.replies.add(settled);
    void settled.then(() => this.replies.delete(settled));
  }

  private freePort(remote: number): number {
    for (;;) {
      const p = this.nextPort;
      this.nextPort = p >= 0xffff_fffe ? FIRST_EPHEMERAL : p + 1;
      if (!this.sockets.has(key(p, remote))) return p;
    }
  }
}

function key(local: number, remote: number): string {
  return `${local}:${remote}`;
}
