/**
 * 5.10 Socket Device, device side: stream and seqpacket connections between the guest (CID
 * `guestCid`) and the host (CID 2), the host side supplied by a VsockBackend. The queue server serves tx (each packet
 * handled at once), holds rx and event buffers until the device has something to put in them.
 *
 * The guest is untrusted: a packet with a short header, a fault, a wrong CID is dropped; an unknown
 * type, an unknown operation, a payload longer than the chain or than the credit the device gave,
 * a packet for no connection get RST (5.10.6.4, device/vsock/8). The connection table, each
 * connection's receive buffer (its buf_alloc) and the RST replies owed are bounded; when the RST
 * replies fill up the device stops taking tx buffers until rx buffers let it send them
 * (5.10.6.1: processing stops once the extra resources are exhausted).
 */
import { QueueServer, type QueueRequest } from '../../device/queue-server.js';
import type { DeviceContext, VirtioDevice } from '../../device/types.js';
import type { Logger } from '../../log.js';
import { ChainCursor, type DescriptorChain } from '../../queue/chain.js';
import { encodeConfig } from '../../spec/config-layout.js';
import { DeviceId } from '../../spec/device-id.js';
import { F } from '../../spec/features.js';
import {
  VSOCK_CONFIG_LAYOUT,
  VSOCK_CONFIG_SIZE,
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
  isReservedGuestCid,
} from '../../spec/vsock.js';
import { ErrorCode, VirtioError } from '../../errors.js';
import type { VsockBackend, VsockHostConnector, VsockHostStream, VsockPeer } from './vsock-backend.js';
import { ConnectionTable } from './connection-table.js';
import { RstReplies } from './rst-replies.js';
import { ConnState, Owe, VsockConnection, type ConnectionOwner } from './vsock-connection.js';
import { VsockHeader } from './vsock-header.js';

/** Options of VsockDevice. */
export interface VsockDeviceOptions {
  /** The guest's CID (5.10.4; device/vsock/7: not a reserved one). */
  guestCid: number;
  /** The host side. */
  backend: VsockBackend;
  /** Maximum queue size. Default 256. */
  queueSize?: number;
  /** Connections at most; a REQUEST beyond gets RST. Default 256. */
  maxConnections?: number;
  /** Receive buffer per connection, the buf_alloc the guest sees (5.10.6.3). Default 256 KiB. */
  bufAlloc?: number;
  /** Host bytes held per connection before the host is asked to wait. Default 256 KiB. */
  maxHostBytes?: number;
  /** Payload bytes per RW packet at most, both ways. Default 64 KiB. */
  maxPayload?: number;
  /** How long a SHUTDOWN waits for the guest's RST before the device sends one. Default 2000 ms. */
  closeTimeoutMs?: number;
  /** Where the device logs; silent by default. */
  logger?: Logger;
}

/** What the device counts (tests and logs). */
export interface VsockDeviceStats {
  /** tx packets dropped without answer (short, faulty, misaddressed). */
  dropped: number;
  /** RST packets sent. */
  resets: number;
  /** Guest REQUESTs refused because the connection table was full (a connection flood). */
  refused: number;
  /** Host SEQPACKET messages dropped: longer than the guest's buf_alloc, never receivable whole. */
  droppedMessages: number;
}

/** RST replies for packets of no connection, owed at most before tx stops. */
const RST_RING = 64;

/**
 * The virtio-vsock device (5.10): stream sockets between guest and host, the host side on Unix
 * sockets. What it implements and its normative coverage: docs/devices/vsock.md.
 */
export class VsockDevice implements VirtioDevice, VsockHostConnector, ConnectionOwner {
  readonly deviceId = DeviceId.VSOCK;
  /**
   * Stream and seqpacket sockets (device/vsock/1: NO_IMPLIED_STREAM offered). Rx buffers complete
   * in the order the device fills them, not the order they were made available, so no IN_ORDER.
   */
  readonly offeredFeatures = VsockF.STREAM | VsockF.SEQPACKET | VsockF.NO_IMPLIED_STREAM | F.VERSION_1 | F.INDIRECT_DESC | F.EVENT_IDX | F.RING_PACKED | F.RING_RESET;
  readonly queueMaxSizes: readonly number[];
  readonly configSize = VSOCK_CONFIG_SIZE;
  /** Counts of dropped packets, resets sent and refused connections. */
  readonly stats: VsockDeviceStats = { dropped: 0, resets: 0, refused: 0, droppedMessages: 0 };

  private guestCid: number;
  private readonly backend: VsockBackend;
  private readonly maxConnections: number;
  private readonly bufAlloc: number;
  private readonly maxHostBytes: number;
  private readonly maxPayload: number;
  private readonly closeTimeoutMs: number;
  private readonly logger: Logger | undefined;
  private readonly server: QueueServer;

  private le = true;
  private streamOk = true;
  private seqpacketOk = false;
  private active = false;
  private readonly table = new ConnectionTable();
  private readonly ready: VsockConnection[] = [];
  private readyHead = 0;
  private readonly rx: (QueueRequest | null)[] = [];
  private rxHead = 0;
  private readonly events: QueueRequest[] = [];
  private readonly stalled: QueueRequest[] = [];
  private readonly rsts = new RstReplies(RST_RING);
  private readonly rstOut = { guestPort: 0, hostPort: 0, type: 0 };
  private pumping = false;
  private pumpAgain = false;

  private readonly hdr = new VsockHeader();
  private readonly reader = new ChainCursor(false);
  private readonly writer = new ChainCursor(true);
  private readonly copyOut = (chunk: Uint8Array, off: number, len: number): number => this.writer.write(chunk, off, len);
  private readonly copyIn = (dst: Uint8Array, off: number, len: number): void => void this.reader.read(dst, off, len);

  constructor(opts: VsockDeviceOptions) {
    if (isReservedGuestCid(opts.guestCid)) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `guest CID ${opts.guestCid} is reserved or out of range (5.10.4)`);
    const qs = opts.queueSize ?? 256;
    if (!Number.isInteger(qs) || qs < 1 || qs > 32768) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `queueSize ${qs} not in 1..32768`);
    this.queueMaxSizes = [qs, qs, qs];
    this.guestCid = opts.guestCid;
    this.backend = opts.backend;
    this.maxConnections = positive(opts.maxConnections ?? 256, 'maxConnections');
    this.bufAlloc = positive(opts.bufAlloc ?? 256 * 1024, 'bufAlloc');
    this.maxHostBytes = positive(opts.maxHostBytes ?? 256 * 1024, 'maxHostBytes');
    this.maxPayload = positive(opts.maxPayload ?? 64 * 1024, 'maxPayload');
    this.closeTimeoutMs = positive(opts.closeTimeoutMs ?? 2000, 'closeTimeoutMs');
    this.logger = opts.logger;
    const onRx = (req: QueueRequest): void => {
      this.rx.push(req);
      this.pump();
    };
    const onTx = (req: QueueRequest): number | void => this.onTx(req);
    const onEvent = (req: QueueRequest): void => void this.events.push(req);
    this.server = new QueueServer({
      name: 'virtio-vsock',
      numQueues: 3,
      logger: opts.logger,
      handler: (i) => (i === VSOCK_RXQ ? onRx : i === VSOCK_TXQ ? onTx : i === VSOCK_EVENTQ ? onEvent : null),
      queueStopped: (i) => this.queueStopped(i),
    });
  }

  /** Connections in the table now. */
  get connections(): number {
    return this.table.size;
  }

  readConfig(offset: number, dst: Uint8Array, features: bigint, littleEndian: boolean): void {
    encodeConfig(VSOCK_CONFIG_LAYOUT, { guest_cid: this.guestCid }, features, offset, dst, littleEndian);
  }

  writeConfig(): void {} // 5.10.4: guest_cid is read-only

  activate(ctx: DeviceContext): void {
    this.le = ctx.littleEndian;
    // 5.10.3 device/vsock/2: no vsock bit means stream; NO_IMPLIED_STREAM alone means none.
    // device/vsock/3: SEQPACKET without NO_IMPLIED_STREAM keeps stream sockets too (the same rule).
    this.streamOk = (ctx.features & VsockF.STREAM) !== 0n || (ctx.features & VsockF.NO_IMPLIED_STREAM) === 0n;
    this.seqpacketOk = (ctx.features & VsockF.SEQPACKET) !== 0n;
    this.active = true;
    this.server.activate(ctx);
    this.backend.attach?.(this);
  }

  onQueueNotify(index: number): void {
    this.server.onQueueNotify(index);
  }

  reset(): void {
    this.active = false;
    this.backend.detach?.();
    this.server.reset();
    this.closeAll();
    this.rx.length = 0;
    this.rxHead = 0;
    this.events.length = 0;
    this.stalled.length = 0;
    this.rsts.clear();
  }

  resetQueue(index: number): void {
    this.server.resetQueue(index);
  }

  /**
   * 5.10.6.7 VIRTIO_VSOCK_EVENT_TRANSPORT_RESET: every connection ends (the host sides are
   * closed), the guest hears the event (when it has an event buffer) and fetches guest_cid again,
   * which is `guestCid` from now on. Returns whether the event reached the guest.
   */
  transportReset(guestCid = this.guestCid): boolean {
    if (isReservedGuestCid(guestCid)) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `guest CID ${guestCid} is reserved (5.10.4)`);
    this.guestCid = guestCid;
    this.closeAll();
    this.rsts.clear();
    while (this.events.length > 0) {
      const req = this.events.shift()!;
      if (!this.server.isLive(req)) continue;
      const chain = req.chain;
      if (chain.fault !== null || chain.writableBytes < VSOCK_EVENT_SIZE) {
        this.server.complete(req, 0);
        continue;
      }
      const ev = this.hdr.bytes; // scratch: the 4-byte event id
      new DataView(ev.buffer).setUint32(0, VsockEvent.TRANSPORT_RESET, this.le);
      this.server.complete(req, this.writer.reset(chain).write(ev, 0, VSOCK_EVENT_SIZE));
      return true;
    }
    return false;
  }

  // --- VsockHostConnector ---

  connectToGuest(guestPort: number, stream: VsockHostStream, type: number = VsockType.STREAM): VsockPeer | null {
    if (!this.active || this.table.size >= this.maxConnections || !(Number.isInteger(guestPort) && guestPort >= 0 && guestPort <= 0xffff_ffff)) return null;
    if (!this.typeOk(type) || (type === VsockType.SEQPACKET && stream.writeMessage === undefined)) return null;
    const hostPort = this.table.freeHostPort(guestPort, this.maxConnections + 1);
    if (hostPort < 0) return null;
    const c = new VsockConnection(this, guestPort, hostPort, ConnState.REQUESTING, this.bufAlloc, this.maxHostBytes, type);
    c.stream = stream;
    this.table.insert(c);
    c.oweControl(Owe.REQUEST);
    return c;
  }

  // --- ConnectionOwner ---

  wake(c: VsockConnection): void {
    if (!c.ready && c.state !== ConnState.CLOSED) {
      c.ready = true;
      this.ready.push(c);
    }
    this.pump();
  }

  drop(c: VsockConnection): void {
    this.remove(c);
  }

  messageDropped(): void {
    this.stats.droppedMessages++;
  }

  /** Whether the guest may use socket type `type` (5.10.3, device/vsock/2, device/vsock/3). */
  private typeOk(type: number): boolean {
    return type === VsockType.STREAM ? this.streamOk : type === VsockType.SEQPACKET && this.seqpacketOk;
  }

  // --- tx ---

  private onTx(req: QueueRequest): number | void {
    if (this.rsts.full) {
      this.stalled.push(req); // answered once rx buffers let the RST replies out
      return;
    }
    this.handleTx(req.chain);
    return 0;
  }

  private handleTx(chain: DescriptorChain): void {
    const h = this.hdr;
    if (chain.fault !== null || chain.readableBytes < VsockHdr.SIZE) {
      this.stats.dropped++;
      return;
    }
    this.reader.reset(chain).read(h.bytes, 0, VsockHdr.SIZE);
    h.decode(this.le);
    // driver/vsock/7: the source is guest_cid; only the host is reachable through this device.
    if (h.srcCid !== this.guestCid || h.dstCid !== VSOCK_HOST_CID) {
      this.stats.dropped++;
      return;
    }
    const guestPort = h.srcPort;
    const hostPort = h.dstPort;
    const c = this.table.get(hostPort, guestPort);
    if (h.op === VsockOp.RST) {
      if (c !== null) this.closeConn(c); // no reply to a RST
      return;
    }
    const payload = chain.readableBytes - VsockHdr.SIZE;
    // device/vsock/8: unknown type (or one not negotiated, or not the connection's) -> RST; a
    // payload the chain does not hold or beyond the device's bound -> RST (the packet is not
    // trusted any further).
    const bad = !this.typeOk(h.type) || (c !== null && h.type !== c.type) || (h.op === VsockOp.RW && (h.len > payload || h.len > this.maxPayload));
    if (c === null) {
      if (!bad && h.op === VsockOp.REQUEST) this.accept(guestPort, hostPort, h.type);
      else this.replyRst(guestPort, hostPort, h.type);
      return;
    }
    if (bad) {
      this.resetConn(c);
      return;
    }
    // device/vsock/6 (driver side driver/vsock/6): every packet carries the guest's credit.
    c.peerBufAlloc = h.bufAlloc;
    c.peerFwdCnt = h.fwdCnt;
    switch (h.op) {
      case VsockOp.RESPONSE:
        if (c.state !== ConnState.REQUESTING) return this.resetConn(c);
        c.state = ConnState.ESTABLISHED;
        c.stream?.connected?.();
        break;
      case VsockOp.RW:
        if (c.state !== ConnState.ESTABLISHED || !c.receive(h.len, h.flags, this.copyIn)) return this.resetConn(c);
        break;
      case VsockOp.SHUTDOWN:
        this.guestShutdown(c, h.flags);
        if (c.state === ConnState.CLOSED || c.owe & Owe.RST) return;
        break;
      case VsockOp.CREDIT_UPDATE:
        break;
      case VsockOp.CREDIT_REQUEST:
        c.owe |= Owe.CREDIT_UPDATE;
        break;
      default:
        // A second REQUEST on a live connection, INVALID, an op the spec does not define.
        return this.resetConn(c);
    }
    if (c.hasWork) this.wake(c);
  }

  /** The guest's REQUEST for a host port with no connection yet. */
  private accept(guestPort: number, hostPort: number, type: number): void {
    if (!this.active || this.table.size >= this.maxConnections) {
      this.stats.refused++;
      return this.replyRst(guestPort, hostPort, type);
    }
    const c = new VsockConnection(this, guestPort, hostPort, ConnState.CONNECTING, this.bufAlloc, this.maxHostBytes, type);
    c.peerBufAlloc = this.hdr.bufAlloc;
    c.peerFwdCnt = this.hdr.fwdCnt;
    this.table.insert(c);
    let stream: VsockHostStream | null;
    try {
      stream = this.backend.connect(hostPort, c);
    } catch (e) {
      this.logger?.warn(`virtio-vsock: backend connect to port ${hostPort} threw: ${String(e)}`);
      stream = null;
    }
    if (stream !== null && type === VsockType.SEQPACKET && stream.writeMessage === undefined) {
      // A host side that cannot keep message boundaries cannot serve a seqpacket socket.
      c.stream = null;
      stream.close();
      stream = null;
    }
    if (stream === null) {
      this.remove(c);
      return this.replyRst(guestPort, hostPort, type);
    }
    // The host side may have refused (reset) or closed already, from inside connect.
    if (c.state !== ConnState.CLOSED && !(c.owe & Owe.RST) && !c.hostEnded) c.stream = stream;
  }

  /** 5.10.6.5: SHUTDOWN flags are permanent; both set ends the connection (the device answers RST). */
  private guestShutdown(c: VsockConnection, flags: number): void {
    const before = c.guestShutdown;
    c.guestShutdown |= flags & (VsockShutdown.RECEIVE | VsockShutdown.SEND);
    if (c.guestShutdown & VsockShutdown.SEND && !(before & VsockShutdown.SEND)) c.stream?.end();
    if (c.guestShutdown & VsockShutdown.RECEIVE) c.dropOut();
    if (c.guestShutdown === (VsockShutdown.RECEIVE | VsockShutdown.SEND)) this.resetConn(c);
  }

  // --- rx ---

  /** Fills rx buffers with what connections and RST replies owe, while both last. */
  private pump(): void {
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    this.pumping = true;
    try {
      do {
        this.pumpAgain = false;
        this.fill();
        // Stalled tx buffers go on once RST replies have room again (5.10.6.1).
        while (this.stalled.length > 0 && !this.rsts.full) {
          const req = this.stalled.shift()!;
          if (!this.server.isLive(req)) continue;
          this.handleTx(req.chain);
          this.server.complete(req, 0);
          this.pumpAgain = true;
        }
      } while (this.pumpAgain);
    } finally {
      this.pumping = false;
    }
  }

  private fill(): void {
    for (;;) {
      const req = this.peekRx();
      if (req === null) return;
      let written: number;
      if (this.rsts.count > 0) {
        const r = this.rstOut;
        this.rsts.shift(r);
        written = this.writeControl(req.chain, r.hostPort, r.guestPort, VsockOp.RST, 0, 0, 0, r.type);
        this.stats.resets++;
      } else {
        const c = this.nextReady();
        if (c === null) return;
        written = this.writeFor(c, req.chain);
        if (c.state !== ConnState.CLOSED && c.hasWork) this.wake(c);
      }
      this.rx[this.rxHead++] = null;
      this.server.complete(req, written);
    }
  }

  /** The next usable rx buffer (unusable ones go back empty), or null. */
  private peekRx(): QueueRequest | null {
    while (this.rxHead < this.rx.length) {
      const req = this.rx[this.rxHead]!;
      if (!this.server.isLive(req)) {
        this.rx[this.rxHead++] = null;
        continue;
      }
      if (req.chain.fault !== null || req.chain.writableBytes < VsockHdr.SIZE) {
        this.rx[this.rxHead++] = null;
        this.server.complete(req, 0);
        continue;
      }
      return req;
    }
    this.rx.length = 0;
    this.rxHead = 0;
    return null;
  }

  private nextReady(): VsockConnection | null {
    while (this.readyHead < this.ready.length) {
      const c = this.ready[this.readyHead++]!;
      c.ready = false;
      if (c.state !== ConnState.CLOSED && c.hasWork) return c;
    }
    this.ready.length = 0;
    this.readyHead = 0;
    return null;
  }

  /** One packet of connection `c` into `chain`; returns the bytes written. */
  private writeFor(c: VsockConnection, chain: DescriptorChain): number {
    if (c.owe & Owe.RST) {
      const n = this.writeControl(chain, c.hostPort, c.guestPort, VsockOp.RST, 0, 0, 0, c.type);
      this.stats.resets++;
      this.closeConn(c);
      return n;
    }
    let op: number;
    let flags = 0;
    if (c.owe & Owe.REQUEST) {
      op = VsockOp.REQUEST;
      c.owe &= ~Owe.REQUEST;
    } else if (c.owe & Owe.RESPONSE) {
      op = VsockOp.RESPONSE;
      c.owe &= ~Owe.RESPONSE;
    } else if (c.state === ConnState.ESTABLISHED && c.outBytes > 0 && c.credit > 0) {
      // device/vsock/5: never more than the guest's free buffer space. Seqpacket: one message
      // per chunk, its last packet marked EOM (and EOR when the host asked, 5.10.6.6.1).
      const seq = c.type === VsockType.SEQPACKET;
      const n = Math.min(seq ? c.chunkLeft : c.outBytes, c.credit, chain.writableBytes - VsockHdr.SIZE, this.maxPayload);
      this.header(c, VsockOp.RW, n, seq && n === c.chunkLeft ? c.chunkEnds : 0);
      this.writer.reset(chain).write(this.hdr.encode(this.le), 0, VsockHdr.SIZE);
      c.takeOut(n, this.copyOut);
      return VsockHdr.SIZE + n;
    } else if (c.owe & Owe.SHUTDOWN && c.outBytes === 0) {
      op = VsockOp.SHUTDOWN;
      flags = c.shutdownFlags;
      c.owe &= ~Owe.SHUTDOWN;
      if (flags === (VsockShutdown.RECEIVE | VsockShutdown.SEND)) this.startClosing(c);
    } else {
      op = VsockOp.CREDIT_UPDATE;
    }
    this.header(c, op, 0, flags);
    return this.writer.reset(chain).write(this.hdr.encode(this.le), 0, VsockHdr.SIZE);
  }

  /** Fills the header for a packet of `c` (device/vsock/6: with its credit, which it announces). */
  private header(c: VsockConnection, op: number, len: number, flags: number): void {
    this.hdr.set(VSOCK_HOST_CID, c.hostPort, this.guestCid, c.guestPort, op, len, flags, c.bufAlloc, c.fwdCnt, c.type);
    c.announcedFwdCnt = c.fwdCnt;
    c.owe &= ~Owe.CREDIT_UPDATE;
  }

  private writeControl(chain: DescriptorChain, hostPort: number, guestPort: number, op: number, flags: number, bufAlloc: number, fwdCnt: number, type: number): number {
    this.hdr.set(VSOCK_HOST_CID, hostPort, this.guestCid, guestPort, op, 0, flags, bufAlloc, fwdCnt, type);
    return this.writer.reset(chain).write(this.hdr.encode(this.le), 0, VsockHdr.SIZE);
  }

  // --- connection table ---

  private replyRst(guestPort: number, hostPort: number, type: number): void {
    // The type answered is the packet's (a Linux guest ignores a RST not of its socket's type);
    // an unknown one is answered as stream.
    if (!this.rsts.push(guestPort, hostPort, type === VsockType.SEQPACKET ? type : VsockType.STREAM)) {
      this.stats.dropped++; // cannot happen from tx (it stalls first); kept as a bound
      return;
    }
    this.pump();
  }

  /** The device ends `c`: the host side closes, the guest gets RST. */
  private resetConn(c: VsockConnection): void {
    if (c.state === ConnState.CLOSED) return;
    const s = c.stream;
    c.stream = null;
    s?.close();
    c.dropOut();
    c.owe = Owe.RST;
    this.wake(c);
  }

  /** `c` is over (RST sent or received): forget it. */
  private closeConn(c: VsockConnection): void {
    if (c.state === ConnState.CLOSED) return;
    const s = c.stream;
    c.stream = null;
    c.state = ConnState.CLOSED;
    c.owe = 0;
    c.dropOut();
    if (c.closeTimer !== null) clearTimeout(c.closeTimer);
    c.closeTimer = null;
    this.remove(c);
    s?.close();
  }

  private startClosing(c: VsockConnection): void {
    c.state = ConnState.CLOSING;
    if (c.closeTimer !== null) return;
    // 5.10.6.4: no RST from the guest in time -> the device sends one.
    c.closeTimer = setTimeout(() => {
      c.closeTimer = null;
      this.resetConn(c);
    }, this.closeTimeoutMs);
  }

  private closeAll(): void {
    for (const c of this.table.drain()) {
      const s = c.stream;
      c.stream = null;
      c.state = ConnState.CLOSED;
      if (c.closeTimer !== null) clearTimeout(c.closeTimer);
      c.closeTimer = null;
      s?.close();
    }
    this.ready.length = 0;
    this.readyHead = 0;
  }

  private remove(c: VsockConnection): void {
    if (this.table.remove(c)) c.state = ConnState.CLOSED;
  }

  private queueStopped(index: number): void {
    if (index === VSOCK_RXQ) {
      this.rx.length = 0;
      this.rxHead = 0;
    } else if (index === VSOCK_TXQ) this.stalled.length = 0;
    else if (index === VSOCK_EVENTQ) this.events.length = 0;
  }
}

function positive(v: number, name: string): number {
  if (!Number.isInteger(v) || v < 1) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `${name} ${v} is not a positive integer`);
  return v;
}
