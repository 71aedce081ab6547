/**
 * 5.1 Network Device, device side. Queue pairs (receiveqN, transmitqN) and the control queue:
 *  - transmit queues are served by the QueueServer: each chain is a virtio_net_hdr and a frame,
 *    checked (5.1.6.2, net-header.ts) and handed to the device's link (a switch port)
 *    synchronously, with its checksum and segmentation requests (HOST_TSO4/6, UFO, USO, ECN);
 *  - receive queues are driven by the device: a frame from the link goes through the receive
 *    path (net-receive.ts: filter, GSO whole or segmented, queue choice, buffers, header);
 *  - the control queue executes net-control.ts commands; used-buffer notifications of the data
 *    queues pass through notification coalescing (net-coalescing.ts).
 * The guest is untrusted: a bad transmit chain (shorter than the header, GSO not negotiated or
 * malformed, checksum offsets outside the frame, larger than the MTU allows) is dropped and
 * counted; a bad control command gets VIRTIO_NET_ERR; nothing throws. Nothing is allocated per
 * frame.
 */
import { QueueServer, type QueueRequest } from '../../device/queue-server.js';
import type { DeviceContext, VirtioDevice } from '../../device/types.js';
import { ErrorCode, VirtioError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { ChainCursor } from '../../queue/chain.js';
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
  NetHdr,
  NetStatus,
  netControlQueue,
  netHeaderSize,
} from '../../spec/net.js';
import { FlowSteering } from './flow-steering.js';
import { CoalescingContext, NetCoalescing } from './net-coalescing.js';
import { NET_CTRL_MAX_COMMAND, NET_CTRL_MAX_REPLY, type NetControlTarget, executeNetControl } from './net-control.js';
import { NET_GSO_MAX_FRAME, NET_GUEST_GSO, NET_HOST_GSO, TxHeaderReader } from './net-header.js';
import { NET_RSS_MAX_KEY_SIZE, NET_RSS_MAX_TABLE, NET_SUPPORTED_HASH_TYPES, NetRss } from './net-rss.js';
import { DEFAULT_NET_MAC, NET_DEVICE_FEATURES, type NetDeviceOptions, type NetDeviceStats, newNetDeviceStats, withoutDependents } from './net-device-options.js';
import { NetCvqCounter, NetQueueCounters, NetRxCounter } from './net-stats.js';
import { NetReceiver, type NetReceiveState, netRxFlags } from './net-receive.js';
import { NET_SUPPORTED_TUNNEL_TYPES } from './net-hash-tunnel.js';
import { type FrameSource, NET_PARTIAL_FRAME, NetPacket, macKey } from './packet.js';
import type { NetLink, NetPort } from './port.js';
import { RxFilter } from './rx-filter.js';
import { TxChainReader } from './tx-chain-reader.js';
import { TxDirect, type TxDirectHost } from './tx-direct.js';
import { ChainTxSource, type TxSource } from './tx-source.js';
import type { NetSwitch, SwitchPort } from './switch.js';

export { DEFAULT_NET_MAC, NET_DEVICE_FEATURES, type NetDeviceOptions, type NetDeviceStats } from './net-device-options.js';

/**
 * The virtio-net device (5.1): frames to and from a NetPort (a switch port), offloads, multiqueue,
 * the control queue. What it implements and its normative coverage: docs/devices/net.md.
 */
export class NetDevice implements VirtioDevice, NetPort, NetControlTarget, NetReceiveState, FrameSource, TxDirectHost {
  readonly deviceId = DeviceId.NET;
  /** NetPort: GSO packets come whole; the device passes them on or segments them itself. */
  readonly takesGso = true;
  readonly offeredFeatures: bigint;
  readonly queueMaxSizes: readonly number[];
  readonly configSize = NetConfig.SIZE;
  readonly name: string;
  /** max_virtqueue_pairs offered (1 without MQ). */
  readonly maxPairs: number;
  /** The MTU: the config's mtu field (1500 unless given). */
  readonly mtu: number;
  /** Counts of frames and control commands, and of what was dropped. */
  readonly stats: NetDeviceStats = newNetDeviceStats();
  /** Per-queue counters for VIRTIO_NET_CTRL_STATS (net-stats.ts). */
  readonly counters: NetQueueCounters;
  /** The receive filter the driver programs (promiscuous, MAC table, VLANs). */
  readonly filter = new RxFilter();
  readonly rss = new NetRss();
  readonly coalescing: NetCoalescing;
  /** The data the last control command returns (beyond its ack), `replyLength` bytes. */
  readonly reply = new Uint8Array(NET_CTRL_MAX_REPLY);
  /** Bytes of `reply` in use. */
  replyLength = 0;
  replyTruncates = false;

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
  /** The context's byte order, read once at activation (not per frame through its getters). */
  private le = true;
  private hdrLen: number = NetHdr.SIZE;
  private ctrlIndex = -1;
  private activePairs = 1;
  private linkUp: boolean;
  private announce = false;
  private guestOffloads = 0n;
  /** NetRxFlag bits of `negotiated` and `guestOffloads` (no BigInt per frame). */
  private rxFlagBits = 0;
  private guestOffloadsSet = false;
  private hashReport = false;
  /** The frame a transmit chain is read into (the sender's buffer on the switch). */
  private readonly txPacket: NetPacket;
  /** The largest frame without GSO: MTU, Ethernet header, VLAN tag (device/net/5, /6). */
  private readonly maxFrame: number;
  private readonly txHeader = new TxHeaderReader();
  private readonly flows = new FlowSteering();
  private readonly receiver: NetReceiver;
  private readonly txHdr = new Uint8Array(NetHdr.HASH_SIZE);
  private readonly txReader = new TxChainReader();
  /** A chain the queue server popped, as a TxSource. */
  private readonly txChainSource = new ChainTxSource(this.txReader);
  /** Per transmit queue (index 2k + 1 at k): its direct path (tx-direct.ts). */
  private readonly txDirect: TxDirect[];
  /** txPacket's bytes as words, for the transmit copies (tx-chain-reader.ts). */
  private readonly txData32: Uint32Array | null;
  /** Frame bytes of txPacket read so far (all but a partial frame's, see serveTx). */
  private txFilled = 0;
  /** The chain txPacket is read from while it is sent, and its header length (fillFrame). */
  private txSrc: TxSource | null = null;
  private txHl = 0;
  private readonly reader = new ChainCursor(false);
  private readonly writer = new ChainCursor(true);
  private readonly ctrlBuf = new Uint8Array(NET_CTRL_MAX_COMMAND);

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
    // device/net/10, /11: speed 0..0x7fffffff or unknown; duplex full, half or unknown.
    if (!Number.isInteger(this.speed) || this.speed < 0 || (this.speed > 0x7fff_ffff && this.speed !== NET_SPEED_UNKNOWN)) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `speed ${this.speed}`);
    if (this.duplex !== NetDuplex.FULL && this.duplex !== NetDuplex.HALF && this.duplex !== NetDuplex.UNKNOWN) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `duplex ${this.duplex}`);
    this.name = opts.name ?? 'virtio-net';
    this.logger = opts.logger;
    this.maxPairs = pairs;
    this.mtu = mtu;
    this.initialMac = Uint8Array.from(mac);
    this.mac.set(mac);
    this.linkUp = opts.linkUp ?? true;
    const gso = opts.gso ?? true;
    this.offeredFeatures = withoutDependents(
      NET_DEVICE_FEATURES |
      (pairs > 1 ? NetF.MQ : 0n) |
      (gso ? NET_HOST_GSO | NET_GUEST_GSO | NetF.GUEST_HDRLEN : 0n) |
      (gso && (opts.rsc ?? true) ? NetF.RSC_EXT : 0n) |
      ((opts.rss ?? true) ? NetF.RSS | NetF.HASH_REPORT : 0n) |
      ((opts.rss ?? true) && (opts.hashTunnel ?? true) ? NetF.HASH_TUNNEL : 0n) |
      ((opts.coalescing ?? true) ? NetF.NOTF_COAL | NetF.VQ_NOTF_COAL : 0n) |
      ((opts.deviceStats ?? true) ? NetF.DEVICE_STATS : 0n) |
      F.VERSION_1 |
      F.INDIRECT_DESC |
      F.EVENT_IDX |
      F.RING_PACKED |
      (opts.inOrder === true ? F.IN_ORDER : 0n) |
      F.RING_RESET,
      opts.withoutFeatures ?? 0n,
    );
    this.queueMaxSizes = new Array<number>(2 * pairs + 1).fill(qs);
    // device/net/6: frames up to mtu plus the Ethernet header (and an 802.1Q tag) pass; a GSO
    // frame up to a 64 KiB IP packet.
    this.maxFrame = mtu + ETH_HEADER + ETH_VLAN_TAG;
    this.txPacket = new NetPacket(gso ? Math.max(NET_GSO_MAX_FRAME, this.maxFrame) : this.maxFrame);
    this.txData32 = this.txPacket.data32;
    this.txDirect = Array.from({ length: pairs }, (_, k) => new TxDirect(this, 2 * k + 1));
    this.counters = new NetQueueCounters(2 * pairs);
    this.coalescing = new NetCoalescing(2 * pairs, this.counters);
    this.filter.reset(this.mac, false, false);
    this.server = new QueueServer({
      name: this.name,
      numQueues: this.queueMaxSizes.length,
      logger: opts.logger,
      handler: (i) => this.handlerFor(i),
      direct: (i) => this.directFor(i),
      queueStarted: (i) => {
        this.receiver.dropChains(i);
        this.coalescing.queueStarted(i);
      },
      queueStopped: (i) => this.receiver.dropChains(i),
    });
    this.receiver = new NetReceiver({
      name: this.name,
      logger: this.logger,
      state: this,
      server: this.server,
      stats: this.stats,
      counters: this.counters,
      coalescing: this.coalescing,
      filter: this.filter,
      rss: this.rss,
      flows: this.flows,
      maxFrame: this.maxFrame,
      queueSize: qs,
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
  /**
   * Sets the link status (VIRTIO_NET_S_LINK_UP); when it changed and VIRTIO_NET_F_STATUS was
   * negotiated, sends a configuration change notification.
   */
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
  /** Whether the driver's fields are little-endian (false only for a legacy big-endian guest). */
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
      rssMaxKeySize: NET_RSS_MAX_KEY_SIZE, // device/net/7
      rssMaxIndirectionTableLength: NET_RSS_MAX_TABLE, // device/net/8
      supportedHashTypes: NET_SUPPORTED_HASH_TYPES,
      supportedTunnelTypes: NET_SUPPORTED_TUNNEL_TYPES,
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
    this.le = ctx.littleEndian;
    this.hdrLen = netHeaderSize(f);
    this.ctrlIndex = (f & NetF.CTRL_VQ) !== 0n ? netControlQueue(f, this.maxPairs) : -1;
    if (!this.guestOffloadsSet) this.guestOffloads = f & NET_GUEST_OFFLOADS;
    this.rxFlagBits = netRxFlags(f, this.guestOffloads);
    this.filter.vlanFilter = (f & NetF.CTRL_VLAN) !== 0n;
    if ((f & NetF.MAC) !== 0n) this.filter.filterUnicast = true;
    this.hashReport = (f & NetF.HASH_REPORT) !== 0n;
    this.coalescing.attach(ctx);
    // The queue server's used-buffer notifications go through coalescing (the kit's server
    // knows nothing of max_packets / max_usecs).
    this.server.activate(new CoalescingContext(ctx, this.coalescing));
  }

  onQueueNotify(index: number): void {
    if (index < 2 * this.maxPairs) this.counters.inc(index, NetRxCounter.NOTIFICATIONS);
    this.server.onQueueNotify(index);
  }

  reset(): void {
    this.server.reset();
    this.ctx = null;
    this.negotiated = 0n;
    this.le = true;
    this.mac.set(this.initialMac);
    this.filter.reset(this.mac, false, false);
    this.activePairs = 1;
    this.announce = false;
    this.guestOffloadsSet = false;
    this.guestOffloads = 0n;
    this.rxFlagBits = 0;
    this.hashReport = false;
    this.rss.reset(); // device/net/100
    this.flows.reset();
    this.coalescing.reset(); // device/net/109
    this.coalescing.attach(null);
    this.counters.reset();
    this.receiver.reset();
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
    this.rxFlagBits = netRxFlags(this.negotiated, mask);
  }
  isDataQueueEnabled(index: number): boolean {
    if (!(Number.isInteger(index) && index >= 0 && index < 2 * this.pairsNegotiated())) return false;
    const vq = this.ctx?.queue(index) ?? null;
    if (vq === null) return false;
    // A queue reset and enabled again is restarted by the server when next notified; start it
    // now so its coalescing parameters are the re-enabled ones (device/net/105, /106).
    if (this.server.queue(index) !== vq) this.server.onQueueNotify(index);
    return true;
  }
  /** Receive and transmit queues the driver may use (NetStatsTarget). */
  get dataQueueCount(): number {
    return 2 * this.pairsNegotiated();
  }
  get controlQueueIndex(): number {
    return this.ctrlIndex;
  }
  /** The receive offloads in effect (negotiated, as CTRL_GUEST_OFFLOADS last set them). */
  get guestOffloadsInEffect(): bigint {
    return this.guestOffloads;
  }

  // ---- queues ----

  private handlerFor(index: number): ((req: QueueRequest) => number) | null {
    if (index === this.ctrlIndex) return (req) => this.serveControl(req);
    if (index >= 2 * this.pairsNegotiated()) return null;
    return (index & 1) === 1 ? (req) => this.serveTx(req) : null; // receive queues: driven by deliver()
  }

  /** The direct path of transmit queue `index` (tx-direct.ts): every transmit queue has one. */
  private directFor(index: number): TxDirect | null {
    if (index === this.ctrlIndex || (index & 1) === 0 || index >= 2 * this.pairsNegotiated()) return null;
    return this.txDirect[index >> 1] ?? null;
  }

  /** 5.1.2: the pairs the driver may use: max_virtqueue_pairs with MQ or RSS, else 1. */
  private pairsNegotiated(): number {
    return (this.negotiated & (NetF.MQ | NetF.RSS)) !== 0n ? this.maxPairs : 1;
  }

  /** One transmit chain the queue server popped (the general path; tx-direct.ts is the other). */
  private serveTx({ chain, queueIndex }: QueueRequest): number {
    const src = this.txChainSource;
    src.chain = chain;
    this.sendTx(queueIndex, src);
    src.chain = null;
    return 0;
  }

  /**
   * One transmit chain: header, frame (5.1.6.2); nothing is written back. Into a link that takes
   * partial frames (a switch) only the Ethernet header is read first: the switch completes the
   * frame (fillFrame) before any port or monitor sees it, so a frame nobody receives (the sink
   * of bench/net-pps.sh, unknown unicast on a one-port switch) is never copied whole.
   * TxDirectHost: the direct path sends its chains through here too.
   */
  sendTx(queueIndex: number, src: TxSource): void {
    const st = this.stats;
    const hl = this.hdrLen;
    const p = this.txPacket;
    const frameLen = src.readableBytes - hl;
    const link = this.link;
    this.coalescing.packet(queueIndex);
    // A frame must hold an Ethernet header and fit the largest frame allowed; then the header
    // must be one the negotiated features allow.
    if (!this.readTx(src, hl, frameLen, link !== null && link.partialFrames === true)) return this.txDrop(queueIndex, true);
    if (!this.linkUp || link === null) return this.txDrop(queueIndex, false);
    st.txFrames++;
    st.txBytes += frameLen;
    this.counters.txPacket(queueIndex, frameLen, p.needsCsum, p.gsoType);
    if (p.gsoType !== 0) st.txGso++;
    if (this.txFilled < frameLen) {
      this.txSrc = src;
      this.txHl = hl;
      p.pending = this;
    }
    // device/net/89: remember the pair a flow was sent on (only while more than one is in use).
    if (this.activePairs > 1 && !this.rss.steering) {
      p.ensureFrame();
      this.flows.sent(p.data, p.length, queueIndex >> 1);
    }
    link.send(p);
    // The chain is the driver's again once used: nothing may read it through txPacket now. (A
    // throw above breaks the device; readTx starts the next frame from scratch anyway.)
    p.pending = null;
    this.txSrc = null;
  }

  /** A transmit chain dropped: malformed (txErrors) or for want of a link (txDropped). */
  private txDrop(queueIndex: number, malformed: boolean): void {
    if (malformed) this.stats.txErrors++;
    else this.stats.txDropped++;
    this.counters.txDropped(queueIndex, malformed);
  }

  /**
   * Reads a transmit chain into txPacket; false when it is malformed (5.1.6.2, net-header.ts).
   * With `partial`, only the first NET_PARTIAL_FRAME bytes of an ordinary frame (`txFilled`);
   * a GSO frame is read whole (the header check parses it).
   */
  private readTx(src: TxSource, hl: number, frameLen: number, partial: boolean): boolean {
    const p = this.txPacket;
    p.pending = null;
    if (src.faulted || frameLen < ETH_HEADER || frameLen > p.capacity) return false;
    const first = partial && frameLen > NET_PARTIAL_FRAME ? NET_PARTIAL_FRAME : frameLen;
    if (!src.read(this.txHdr, hl, p.data, this.txData32, first)) return false;
    if (first < frameLen && this.txHdr[NetHdr.GSO_TYPE] !== 0) {
      if (!src.readRest(hl, p.data, this.txData32, first, frameLen)) return false;
      this.txFilled = frameLen;
    } else this.txFilled = first;
    p.length = frameLen;
    const h = this.txHdr;
    // The common header, no flags and no GSO (5.1.6.2): of TxHeaderReader.apply's checks only
    // the frame's length bound applies (device/net/6); every other header goes through them all.
    if ((h[NetHdr.FLAGS]! | h[NetHdr.GSO_TYPE]!) === 0) {
      p.clearOffloads();
      return frameLen <= this.maxFrame;
    }
    return this.txHeader.apply(h, p, this.negotiated, this.mtu, this.le);
  }

  /**
   * FrameSource: the rest of a partial txPacket, from the chain being sent. The chain was
   * walked without fault and holds frameLen bytes, so this cannot fall short; if it did, the
   * rest is zeroed rather than left holding an earlier frame's bytes.
   */
  fillFrame(p: NetPacket): void {
    const src = this.txSrc;
    const from = this.txFilled;
    if (p !== this.txPacket || from >= p.length) return;
    if (src === null || !src.readRest(this.txHl, p.data, this.txData32, from, p.length)) p.data.fill(0, from, p.length);
    this.txFilled = p.length;
  }

  private serveControl({ chain }: QueueRequest): number {
    const c = this.counters;
    const cvq = c.cvq;
    c.inc(cvq, NetCvqCounter.COMMANDS); // command_num and ok_num include the current command
    // The ack is the first device-writable byte; without one the command cannot be answered.
    if (chain.fault !== null || chain.writableBytes < 1) {
      this.stats.ctrlErr++;
      return 0;
    }
    let ack: number = 1;
    this.replyLength = 0;
    if (chain.readableBytes <= this.ctrlBuf.length) {
      c.inc(cvq, NetCvqCounter.OK); // taken back below if the command fails
      const n = this.reader.reset(chain).read(this.ctrlBuf, 0, chain.readableBytes);
      ack = executeNetControl(this, this.ctrlBuf, n);
      if (ack !== 0) c.dec(cvq, NetCvqCounter.OK);
    }
    // command-specific-result follows the ack (5.1.6.5); without room for it: VIRTIO_NET_ERR,
    // except for STATS_GET, whose reply is cut to the buffer (device/net/115).
    const room = chain.writableBytes - 1;
    const fits = this.replyLength <= room;
    const replyLen = ack !== 0 ? 0 : fits ? this.replyLength : this.replyTruncates ? room : 0;
    if (ack === 0 && replyLen !== this.replyLength && !this.replyTruncates) {
      ack = 1;
      c.dec(cvq, NetCvqCounter.OK);
    }
    if (ack === 0) this.stats.ctrlOk++;
    else this.stats.ctrlErr++;
    const w = this.writer.reset(chain);
    if (!w.writeU8(ack)) return 0;
    return 1 + (replyLen > 0 ? w.write(this.reply, 0, replyLen) : 0);
  }

  // ---- receive (net-receive.ts) ----

  /** NetPort: a frame from the link for the driver. */
  deliver(p: NetPacket): void {
    this.receiver.deliver(p);
  }

  // NetReceiveState
  get rxContext(): DeviceContext | null {
    return this.ctx;
  }
  get negotiatedFeatures(): bigint {
    return this.negotiated;
  }
  /** Bytes of the virtio-net header in front of each received frame, for the negotiated features (5.1.6). */
  get rxHeaderSize(): number {
    return this.hdrLen;
  }
  get hashReporting(): boolean {
    return this.hashReport;
  }
  get rxFlags(): number {
    return this.rxFlagBits;
  }
  get activePairCount(): number {
    return this.activePairs;
  }
}
