/**
 * 5.1 Network Device, device side. Queue pairs (receiveqN, transmitqN) and the control queue:
 *  - transmit queues are served by the QueueServer: each chain is a virtio_net_hdr and a frame,
 *    checked (5.1.6.2) and handed to the device's link (a switch port) synchronously;
 *  - receive queues are driven by the device: a frame from the link is filtered (rx modes, MAC
 *    and VLAN tables), then written behind a header into one buffer, or with MRG_RXBUF over as
 *    many buffers as it takes, all made visible at once (device/net/32); when the ring holds too
 *    few the popped buffers go back with `undoPop` and the frame is dropped and counted;
 *  - the control queue executes net-control.ts commands.
 * The guest is untrusted: a bad transmit chain (shorter than the header, GSO not negotiated,
 * checksum offsets outside the frame, larger than the MTU allows) is dropped and counted; a bad
 * control command gets VIRTIO_NET_ERR; nothing throws. Nothing is allocated per frame.
 */
import { QueueServer, type QueueRequest } from '../../device/queue-server.js';
import type { DeviceContext, VirtioDevice } from '../../device/types.js';
import { ErrorCode, QueueError, VirtioError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { ChainCursor, type DescriptorChain } from '../../queue/chain.js';
import type { DeviceQueue } from '../../queue/types.js';
import { encodeConfig } from '../../spec/config-layout.js';
import { DeviceId } from '../../spec/device-id.js';
import { F } from '../../spec/features.js';
import {
  ETH_HEADER,
  ETH_VLAN_TAG,
  NET_CONFIG_LAYOUT,
  NET_GUEST_OFFLOADS,
  NET_MQ_PAIRS_MAX,
  NET_MTU_MAX,
  NET_MTU_MIN,
  NET_SPEED_UNKNOWN,
  NetConfig,
  NetDuplex,
  NetF,
  NetGsoType,
  NetHdr,
  NetHdrFlag,
  NetStatus,
  netControlQueue,
  netHeaderSize,
} from '../../spec/net.js';
import { NET_CTRL_MAX_COMMAND, type NetControlTarget, executeNetControl } from './net-control.js';
import { NetPacket, completeChecksum, macKey } from './packet.js';
import type { NetLink, NetPort } from './port.js';
import { RxFilter } from './rx-filter.js';
import type { NetSwitch, SwitchPort } from './switch.js';

export interface NetDeviceOptions {
  /** The device's MAC (VIRTIO_NET_F_MAC). Default 02:76:74:00:00:01 (locally administered). */
  mac?: Uint8Array;
  /** MTU reported with VIRTIO_NET_F_MTU, 68..65535 (default 1500). */
  mtu?: number;
  /** Queue pairs (max_virtqueue_pairs; MQ is offered when above 1). Default 1. */
  queuePairs?: number;
  /** Maximum size of every queue. Default 256. */
  queueSize?: number;
  /** Link state at start (VIRTIO_NET_S_LINK_UP). Default up. */
  linkUp?: boolean;
  /** SPEED_DUPLEX values (default unknown). */
  speedMbps?: number;
  duplex?: number;
  /** For logs and the switch's counters. */
  name?: string;
  logger?: Logger;
}

/** What the device counted since it was made. */
export interface NetDeviceStats {
  txFrames: number;
  txBytes: number;
  /** Transmit chains dropped as malformed (short, oversized, GSO/checksum offload not allowed, unmapped). */
  txErrors: number;
  /** Frames transmitted while the link was down or unconnected. */
  txDropped: number;
  rxFrames: number;
  rxBytes: number;
  /** Frames the receive filter refused. */
  rxFiltered: number;
  /** Frames dropped for want of receive buffers (or with the link down, or no receive queue). */
  rxNoBuffer: number;
  /** Frames dropped as too large for the MTU, or with checksum offsets outside the frame. */
  rxErrors: number;
  /** Receive buffers too small for a frame without MRG_RXBUF: returned with nothing written. */
  rxShortBuffers: number;
  /** Control commands answered OK and ERR. */
  ctrlOk: number;
  ctrlErr: number;
}

export const DEFAULT_NET_MAC = Uint8Array.of(0x02, 0x76, 0x74, 0x00, 0x00, 0x01);

/** Feature bits this device implements (MQ is added when it has more than one pair). */
export const NET_DEVICE_FEATURES =
  NetF.CSUM |
  NetF.GUEST_CSUM |
  NetF.CTRL_GUEST_OFFLOADS |
  NetF.MTU |
  NetF.MAC |
  NetF.MRG_RXBUF |
  NetF.STATUS |
  NetF.CTRL_VQ |
  NetF.CTRL_RX |
  NetF.CTRL_VLAN |
  NetF.CTRL_RX_EXTRA |
  NetF.GUEST_ANNOUNCE |
  NetF.CTRL_MAC_ADDR |
  NetF.SPEED_DUPLEX;

export class NetDevice implements VirtioDevice, NetPort, NetControlTarget {
  readonly deviceId = DeviceId.NET;
  readonly offeredFeatures: bigint;
  readonly queueMaxSizes: readonly number[];
  readonly configSize = NetConfig.SIZE;
  readonly name: string;
  readonly maxPairs: number;
  readonly mtu: number;
  readonly stats: NetDeviceStats = {
    txFrames: 0,
    txBytes: 0,
    txErrors: 0,
    txDropped: 0,
    rxFrames: 0,
    rxBytes: 0,
    rxFiltered: 0,
    rxNoBuffer: 0,
    rxErrors: 0,
    rxShortBuffers: 0,
    ctrlOk: 0,
    ctrlErr: 0,
  };
  readonly filter = new RxFilter();

  private readonly initialMac: Uint8Array;
  /** The primary address now (config mac; CTRL_MAC_ADDR changes it until reset). */
  private readonly mac = new Uint8Array(6);
  private readonly speed: number;
  private readonly duplex: number;
  private readonly server: QueueServer;
  private readonly logger: Logger | undefined;
  private link: NetLink | null = null;
  private ctx: DeviceContext | null = null;
  private negotiated = 0n;
  private hdrLen: number = NetHdr.SIZE;
  private ctrlIndex = -1;
  private activePairs = 1;
  private linkUp: boolean;
  private announce = false;
  private guestOffloads = 0n;
  private guestOffloadsSet = false;
  /** The frame a transmit chain is read into (the sender's buffer on the switch). */
  private readonly txPacket: NetPacket;
  private readonly txHdr = new Uint8Array(NetHdr.HASH_SIZE);
  private readonly rxHdr = new Uint8Array(NetHdr.HASH_SIZE);
  private readonly reader = new ChainCursor(false);
  private readonly writer = new ChainCursor(true);
  private readonly ctrlBuf = new Uint8Array(NET_CTRL_MAX_COMMAND);
  /** Per receive queue: chains for the buffers of one frame, made as first needed (at most the queue size). */
  private rxChains: DescriptorChain[][] = [];
  private readonly rxWritten: Uint32Array;

  constructor(opts: NetDeviceOptions = {}) {
    const qs = opts.queueSize ?? 256;
    if (!Number.isInteger(qs) || qs < 2 || qs > 32768) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `queueSize ${qs} not in 2..32768`);
    const pairs = opts.queuePairs ?? 1;
    if (!Number.isInteger(pairs) || pairs < 1 || pairs > NET_MQ_PAIRS_MAX) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `queuePairs ${pairs} not in 1..${NET_MQ_PAIRS_MAX}`); // device/net/1
    const mtu = opts.mtu ?? 1500;
    if (!Number.isInteger(mtu) || mtu < NET_MTU_MIN || mtu > NET_MTU_MAX) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `mtu ${mtu} not in ${NET_MTU_MIN}..${NET_MTU_MAX}`); // device/net/2
    const mac = opts.mac ?? DEFAULT_NET_MAC;
    if (mac.length !== 6 || (mac[0]! & 1) !== 0) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'mac must be 6 bytes, unicast');
    this.speed = opts.speedMbps ?? NET_SPEED_UNKNOWN;
    this.duplex = opts.duplex ?? NetDuplex.UNKNOWN;
    this.name = opts.name ?? 'virtio-net';
    this.logger = opts.logger;
    this.maxPairs = pairs;
    this.mtu = mtu;
    this.initialMac = Uint8Array.from(mac);
    this.mac.set(mac);
    this.linkUp = opts.linkUp ?? true;
    this.offeredFeatures = NET_DEVICE_FEATURES | (pairs > 1 ? NetF.MQ : 0n) | F.VERSION_1 | F.INDIRECT_DESC | F.EVENT_IDX | F.RING_PACKED | F.RING_RESET;
    this.queueMaxSizes = new Array<number>(2 * pairs + 1).fill(qs);
    // device/net/6: frames up to mtu plus the Ethernet header (and an 802.1Q tag) pass.
    this.txPacket = new NetPacket(mtu + ETH_HEADER + ETH_VLAN_TAG);
    this.rxWritten = new Uint32Array(qs);
    this.filter.reset(this.mac, false, false);
    this.server = new QueueServer({
      name: this.name,
      numQueues: this.queueMaxSizes.length,
      logger: opts.logger,
      handler: (i) => this.handlerFor(i),
      queueStarted: (i) => this.dropRxChains(i),
      queueStopped: (i) => this.dropRxChains(i),
    });
  }

  // ---- links ----

  /** Connects the device to `link` (frames it transmits go there), or disconnects it (null). */
  connect(link: NetLink | null): void {
    this.link = link;
  }

  /** Attaches the device to a switch as a port named after it. */
  attachTo(sw: NetSwitch): SwitchPort {
    const sp = sw.attach(this);
    this.link = sp;
    return sp;
  }

  /** The link state; a change is a configuration change when STATUS was negotiated (5.1.4). */
  get isLinkUp(): boolean {
    return this.linkUp;
  }
  setLinkUp(up: boolean): void {
    if (this.linkUp === up) return;
    this.linkUp = up;
    if (this.ctx !== null && (this.negotiated & NetF.STATUS) !== 0n) this.ctx.notifyConfigChange();
  }

  /**
   * Asks the driver to announce itself (after a move, say): VIRTIO_NET_S_ANNOUNCE until the
   * driver acks (5.1.6.5.4). False when GUEST_ANNOUNCE was not negotiated.
   */
  requestAnnounce(): boolean {
    if (this.ctx === null || (this.negotiated & NetF.GUEST_ANNOUNCE) === 0n || (this.negotiated & NetF.STATUS) === 0n) return false;
    this.announce = true;
    this.ctx.notifyConfigChange();
    return true;
  }

  /** The primary address now. */
  get macAddress(): Uint8Array {
    return Uint8Array.from(this.mac);
  }
  /** Queue pairs in use (VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET; 1 after reset, device/net/91). */
  get queuePairsInUse(): number {
    return this.activePairs;
  }
  /** The negotiated features (0 before activation). */
  get features(): bigint {
    return this.negotiated;
  }
  get littleEndian(): boolean {
    return this.ctx?.littleEndian ?? true;
  }

  // ---- VirtioDevice ----

  /**
   * 5.1.3.1 makes the control features depend on CTRL_VQ, but a vhost-user front-end keeps the
   * control queue to itself and passes the rest (QEMU 7.2 sets MQ without CTRL_VQ): the device
   * accepts such a set, and without CTRL_VQ simply has no control queue.
   */
  validateFeatures(_accepted: bigint): string | null {
    return null;
  }

  readConfig(offset: number, dst: Uint8Array, features: bigint, littleEndian: boolean): void {
    const m = this.mac;
    const status = (this.linkUp ? NetStatus.LINK_UP : 0) | (this.announce ? NetStatus.ANNOUNCE : 0);
    const values = {
      mac0: m[0],
      mac1: m[1],
      mac2: m[2],
      mac3: m[3],
      mac4: m[4],
      mac5: m[5],
      status,
      maxVirtqueuePairs: this.maxPairs,
      mtu: this.mtu, // device/net/4: never changes
      speed: this.speed,
      duplex: this.duplex,
    };
    // A field exists when its feature is offered (5.1.4: "exists only if ... is set"), also
    // before FEATURES_OK when the core passes only the driver's bits so far: a vhost-user
    // front-end reads the whole config once, at connection time.
    encodeConfig(NET_CONFIG_LAYOUT, values, features | this.offeredFeatures, offset, dst, littleEndian);
  }

  /** driver/net/1: the driver must not write the configuration; writes are ignored. */
  writeConfig(): void {}

  activate(ctx: DeviceContext): void {
    this.ctx = ctx;
    const f = ctx.features;
    this.negotiated = f;
    this.hdrLen = netHeaderSize(f);
    this.ctrlIndex = (f & NetF.CTRL_VQ) !== 0n ? netControlQueue(f, this.maxPairs) : -1;
    if (!this.guestOffloadsSet) this.guestOffloads = f & NET_GUEST_OFFLOADS;
    this.filter.vlanFilter = (f & NetF.CTRL_VLAN) !== 0n;
    if ((f & NetF.MAC) !== 0n) this.filter.filterUnicast = true;
    this.server.activate(ctx);
  }

  onQueueNotify(index: number): void {
    this.server.onQueueNotify(index);
  }

  reset(): void {
    this.server.reset();
    this.ctx = null;
    this.negotiated = 0n;
    this.mac.set(this.initialMac);
    this.filter.reset(this.mac, false, false);
    this.activePairs = 1;
    this.announce = false;
    this.guestOffloadsSet = false;
    this.guestOffloads = 0n;
    this.rxChains = [];
  }

  resetQueue(index: number): void {
    this.server.resetQueue(index);
  }

  // ---- NetControlTarget ----

  setMac(src: Uint8Array, offset: number): void {
    this.mac.set(src.subarray(offset, offset + 6));
    this.filter.macKey = macKey(this.mac, 0);
    this.filter.filterUnicast = true;
  }
  setQueuePairs(n: number): void {
    this.activePairs = n;
  }
  ackAnnounce(): void {
    this.announce = false;
  }
  setGuestOffloads(mask: bigint): void {
    this.guestOffloads = mask;
    this.guestOffloadsSet = true;
  }

  // ---- queues ----

  private handlerFor(index: number): ((req: QueueRequest) => number) | null {
    if (index === this.ctrlIndex) return (req) => this.serveControl(req);
    const pairs = (this.negotiated & NetF.MQ) !== 0n ? this.maxPairs : 1;
    if (index >= 2 * pairs) return null;
    return (index & 1) === 1 ? (req) => this.serveTx(req) : null; // receive queues: driven by deliver()
  }

  private dropRxChains(index: number): void {
    if ((index & 1) === 0 && this.rxChains[index >> 1] !== undefined) this.rxChains[index >> 1] = [];
  }

  /** One transmit chain: header, frame (5.1.6.2). Returns 0: nothing is written back. */
  private serveTx({ chain }: QueueRequest): number {
    const st = this.stats;
    const hl = this.hdrLen;
    const p = this.txPacket;
    const frameLen = chain.readableBytes - hl;
    // A frame must hold an Ethernet header and fit the MTU (device/net/6 bounds what must pass).
    if (chain.fault !== null || frameLen < ETH_HEADER || frameLen > p.capacity) {
      st.txErrors++;
      return 0;
    }
    const r = this.reader.reset(chain);
    const h = this.txHdr;
    if (r.read(h, 0, hl) !== hl || r.read(p.data, 0, frameLen) !== frameLen) {
      st.txErrors++;
      return 0;
    }
    // No HOST_TSO/UFO/USO is offered: a GSO request is a driver error (driver/net/18..21).
    if (h[NetHdr.GSO_TYPE] !== NetGsoType.NONE) {
      st.txErrors++;
      return 0;
    }
    p.length = frameLen;
    p.needsCsum = false;
    if ((h[NetHdr.FLAGS]! & NetHdrFlag.NEEDS_CSUM) !== 0) {
      // driver/net/16: without CSUM flags must be 0; device/net/16: offsets used only with the flag.
      const le = this.ctx?.littleEndian ?? true;
      const start = u16(h, NetHdr.CSUM_START, le);
      const off = u16(h, NetHdr.CSUM_OFFSET, le);
      if ((this.negotiated & NetF.CSUM) === 0n || start + off + 2 > frameLen) {
        st.txErrors++;
        return 0;
      }
      p.needsCsum = true;
      p.csumStart = start;
      p.csumOffset = off;
    }
    if (!this.linkUp || this.link === null) {
      st.txDropped++;
      return 0;
    }
    st.txFrames++;
    st.txBytes += frameLen;
    this.link.send(p);
    return 0;
  }

  private serveControl({ chain }: QueueRequest): number {
    // The ack is the first device-writable byte; without one the command cannot be answered.
    if (chain.fault !== null || chain.writableBytes < 1) {
      this.stats.ctrlErr++;
      return 0;
    }
    let ack: number = 1;
    if (chain.readableBytes <= this.ctrlBuf.length) {
      const n = this.reader.reset(chain).read(this.ctrlBuf, 0, chain.readableBytes);
      ack = executeNetControl(this, this.ctrlBuf, n);
    }
    if (ack === 0) this.stats.ctrlOk++;
    else this.stats.ctrlErr++;
    return this.writer.reset(chain).writeU8(ack) ? 1 : 0;
  }

  // ---- receive ----

  /** NetPort: a frame from the link for the driver. */
  deliver(p: NetPacket): void {
    const st = this.stats;
    const ctx = this.ctx;
    if (ctx === null || !this.linkUp || p.length < ETH_HEADER) {
      st.rxNoBuffer++;
      return;
    }
    if (!this.filter.accepts(p)) {
      st.rxFiltered++;
      return;
    }
    // device/net/5: nothing longer than the MTU plus the Ethernet header (and a VLAN tag).
    if (p.length > this.txPacket.capacity) {
      st.rxErrors++;
      return;
    }
    const guestCsum = (this.guestOffloads & NetF.GUEST_CSUM) !== 0n;
    // device/net/33: a driver without GUEST_CSUM gets a complete checksum.
    if (p.needsCsum && !guestCsum && !completeChecksum(p)) {
      st.rxErrors++;
      return;
    }
    const vq = this.pickRxQueue(p);
    if (vq === null) {
      st.rxNoBuffer++; // device/net/94: every receive queue is being reset
      return;
    }
    try {
      this.receiveInto(ctx, vq, p, guestCsum);
    } catch (e) {
      const reason = e instanceof QueueError ? e.message : `receive: ${String(e)}`;
      this.logger?.error(`${this.name}: ${reason}`);
      ctx.needsReset(reason);
    }
  }

  /**
   * device/net/91: receiveq1 only until VQ_PAIRS_SET; then a flow hash over the pairs in use
   * (device/net/90 allows any of them), skipping queues being reset (device/net/93).
   */
  private pickRxQueue(p: NetPacket): DeviceQueue | null {
    const n = this.activePairs;
    let pair = 0;
    if (n > 1) {
      const d = p.data;
      let h = 0;
      for (let i = 0; i < 12; i++) h = (h * 31 + d[i]!) | 0;
      pair = (h >>> 0) % n;
    }
    for (let k = 0; k < n; k++) {
      const vq = this.server.queue(2 * ((pair + k) % n));
      if (vq !== null) return vq;
    }
    return null;
  }

  private receiveInto(ctx: DeviceContext, vq: DeviceQueue, p: NetPacket, guestCsum: boolean): void {
    const st = this.stats;
    const hl = this.hdrLen;
    const total = hl + p.length;
    const mergeable = (this.negotiated & NetF.MRG_RXBUF) !== 0n;
    const pairIndex = vq.index >> 1;
    let chains = this.rxChains[pairIndex];
    if (chains === undefined) chains = this.rxChains[pairIndex] = [];
    let n = 0;
    let room = 0;
    while (room < total && n < vq.size) {
      if (n === chains.length) chains.push(vq.createChain());
      const c = chains[n]!;
      if (!vq.pop(c)) break;
      n++;
      if (c.fault !== null) {
        // A buffer outside guest memory: the driver broke the ring's contract (2.1.2).
        vq.undoPop(n);
        ctx.needsReset(`receive queue ${vq.index}: buffer outside guest memory`);
        return;
      }
      room += c.writableBytes;
      if (!mergeable) break; // device/net/28: one buffer without MRG_RXBUF
    }
    if (n === 0) {
      st.rxNoBuffer++;
      return;
    }
    if (room < total) {
      if (mergeable) {
        // Too few buffers for now: give them back untouched and drop the frame.
        vq.undoPop(n);
        st.rxNoBuffer++;
        return;
      }
      // One buffer smaller than the frame (driver/net/40ff. SHOULD give 1526 bytes): used empty,
      // so the ring moves on.
      vq.push(chains[0]!, 0);
      ctx.notifyUsed(vq.index);
      st.rxShortBuffers++;
      return;
    }
    this.fillRxHeader(p, n, guestCsum, ctx.littleEndian);
    // Header then frame, buffer after buffer; all but the last filled (device/net/31).
    const w = this.writer;
    let at = 0; // position in header ++ frame
    for (let i = 0; i < n; i++) {
      const c = chains[i]!;
      w.reset(c);
      let wrote = 0;
      if (at < hl) {
        const k = w.write(this.rxHdr, at, Math.min(hl - at, c.writableBytes));
        wrote += k;
        at += k;
      }
      if (at >= hl && wrote < c.writableBytes) {
        const k = w.write(p.data, at - hl, Math.min(total - at, c.writableBytes - wrote));
        wrote += k;
        at += k;
      }
      this.rxWritten[i] = wrote;
    }
    // device/net/32: every buffer of the frame becomes visible with one publication.
    for (let i = 0; i < n; i++) vq.pushDeferred(chains[i]!, this.rxWritten[i]!);
    vq.publish();
    st.rxFrames++;
    st.rxBytes += p.length;
    ctx.notifyUsed(vq.index);
  }

  private fillRxHeader(p: NetPacket, buffers: number, guestCsum: boolean, le: boolean): void {
    const h = this.rxHdr;
    h.fill(0);
    // device/net/33: flags 0 without GUEST_CSUM; with it a partial checksum passes through
    // (device/net/43). device/net/45: gso_type NONE (no GUEST_TSO/UFO/USO offered).
    if (guestCsum && p.needsCsum) {
      h[NetHdr.FLAGS] = NetHdrFlag.NEEDS_CSUM;
      put16(h, NetHdr.CSUM_START, p.csumStart, le);
      put16(h, NetHdr.CSUM_OFFSET, p.csumOffset, le);
    }
    // device/net/27, /29, /30: num_buffers (1 without MRG_RXBUF) when the header has it.
    if (this.hdrLen >= NetHdr.SIZE) put16(h, NetHdr.NUM_BUFFERS, buffers, le);
  }
}

function u16(b: Uint8Array, o: number, le: boolean): number {
  return le ? b[o]! | (b[o + 1]! << 8) : (b[o]! << 8) | b[o + 1]!;
}
function put16(b: Uint8Array, o: number, v: number, le: boolean): void {
  b[o + (le ? 0 : 1)] = v & 0xff;
  b[o + (le ? 1 : 0)] = (v >>> 8) & 0xff;
}
