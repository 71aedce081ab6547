/**
 * 5.1 Network Device, driver side, over RequestQueue: keeps receive buffers posted on the
 * receive queues in use (mergeable ones reassembled by num_buffers when MRG_RXBUF is
 * negotiated; large enough for a 64 KiB GSO frame when a GUEST_* segmentation offload is),
 * sends frames (optionally with a partial checksum for the device to complete,
 * VIRTIO_NET_F_CSUM, and with TCP/UDP segmentation offload, HOST_TSO4/6, HOST_USO, HOST_UFO),
 * issues control queue commands (rx modes, MAC and VLAN tables, announce ack, queue pairs, RSS
 * and hash configuration, receive offloads, notification coalescing), reads the MAC and link
 * status, and reports per frame what the receive header said (checksum state, GSO, hash).
 */
import { type DeviceDriver, type DeviceDriverType, checkDriverContext } from '../../driver/device-driver.js';
import { RequestQueue } from '../../driver/request-queue.js';
import type { DriverContext } from '../../driver/types.js';
import { ErrorCode, VirtioError } from '../../errors.js';
import type { Segment } from '../../queue/types.js';
import { readConfigField } from '../../spec/config-layout.js';
import { DeviceId } from '../../spec/device-id.js';
import {
  ETH_HEADER,
  ETH_VLAN_TAG,
  NET_CONFIG_LAYOUT,
  NetConfig,
  NetCtrlAck,
  NetCtrlAnnounce,
  NetCtrlClass,
  NetCtrlMac,
  NetCtrlGuestOffloads,
  NetCtrlHashTunnel,
  NetCtrlMq,
  NetCtrlNotfCoal,
  NetCtrlRx,
  NetCtrlVlan,
  NetDuplex,
  NetF,
  NetStatus,
  netControlQueue,
  netHeaderSize,
  netRxQueue,
  netTxQueue,
} from '../../spec/net.js';
import { NET_GSO_MAX_FRAME } from './net-header.js';
import { NET_SUPPORTED_TUNNEL_TYPES } from './net-hash-tunnel.js';
import { type NetSendOptions, NetTransmitHeader } from './net-driver-transmit.js';
import { type NetStatsReply, NetStatsQuery, type NetStatsRequest } from './net-driver-stats.js';
import { NetReceiveAssembler } from './net-driver-receive.js';
import { GUEST_GSO, NET_DRIVER_FEATURES, NET_NEEDS_CTRL_VQ, type NetDriverOptions, type NetFrame, type NetLinkSettings, type NetRssParams } from './net-driver-types.js';

export { NET_DRIVER_FEATURES, type NetDriverOptions, type NetFrame, type NetLinkSettings, type NetRssParams } from './net-driver-types.js';
export type { NetSendOptions } from './net-driver-transmit.js';
export type { NetStatsReply, NetStatsRequest } from './net-driver-stats.js';

const NO_SEGMENTS: readonly Segment[] = [];
/** 02:76:74:00:00:fe: a locally administered default (driver/net/4). */
const LOCAL_DEFAULT_MAC = Uint8Array.of(0x02, 0x76, 0x74, 0x00, 0x00, 0xfe);

/**
 * The virtio-net driver (5.1): typed requests over the device's queues. Construct it on a
 * DriverContext, or start it with startDeviceDriver and its static `type`.
 */
export class NetDriver implements DeviceDriver {
  /**
   * The DeviceDriver contract: the device id, the feature bits this driver can use and needs,
   * and how to attach it (startDeviceDriver).
   */
  static readonly type: DeviceDriverType<NetDriver, NetDriverOptions> = {
    name: 'virtio-net',
    deviceId: DeviceId.NET,
    wantedFeatures: NET_DRIVER_FEATURES,
    requiredFeatures: 0n,
    attach: (ctx, opts) => new NetDriver(ctx, opts),
  };
  /** The same driver negotiating HASH_REPORT too (a 20-byte header carrying each frame's hash). */
  static readonly hashReportingType: DeviceDriverType<NetDriver, NetDriverOptions> = {
    ...NetDriver.type,
    wantedFeatures: NET_DRIVER_FEATURES | NetF.HASH_REPORT,
  };
  /** The same driver negotiating RSC_EXT too: whole TCP GSO frames carry RSC_INFO (segments coalesced, duplicated ACKs). */
  static readonly rscType: DeviceDriverType<NetDriver, NetDriverOptions> = {
    ...NetDriver.type,
    wantedFeatures: NET_DRIVER_FEATURES | NetF.RSC_EXT,
  };

  /**
   * The contract for a device offering `offered`: NetDriver.type without the features that
   * need the control queue when the device does not offer CTRL_VQ (driver/net/12: HASH_REPORT,
   * driver/net/13: CTRL_RX_EXTRA, and the other control-queue features of 5.1.3.1).
   */
  static typeFor(offered: bigint, base: DeviceDriverType<NetDriver, NetDriverOptions> = NetDriver.type): DeviceDriverType<NetDriver, NetDriverOptions> {
    if ((offered & NetF.CTRL_VQ) !== 0n) return base;
    return { ...base, wantedFeatures: base.wantedFeatures & ~NET_NEEDS_CTRL_VQ };
  }

  /** Length of the virtio_net_hdr in front of each frame (10, 12 or 20 bytes by the features). */
  readonly hdrLen: number;
  /** VIRTIO_NET_F_MRG_RXBUF was negotiated: a received frame may span several buffers. */
  readonly mergeable: boolean;
  /** RSC_EXT negotiated: RSC_INFO is read (driver/net/51). */
  readonly rsc: boolean;
  /** max_virtqueue_pairs (1 without MQ). */
  readonly maxPairs: number;
  /** Pairs whose queues exist on this transport (at most maxPairs). */
  readonly usablePairs: number;
  /** The MTU the device reported (VIRTIO_NET_F_MTU), else 1500. */
  readonly mtu: number;
  /** The driver's address: the device's with VIRTIO_NET_F_MAC (driver/net/3), else locally administered. */
  readonly mac: Uint8Array;
  /** Frames dropped because nobody called receive() in time. */
  droppedPending = 0;
  /** Announcements sent for VIRTIO_NET_S_ANNOUNCE (each a RARP then ANNOUNCE_ACK). */
  announcements = 0;

  private readonly ctx: DriverContext;
  private readonly le: boolean;
  private readonly rxBuffers: number;
  private readonly rxBufferSize: number;
  private readonly maxPending: number;
  private readonly rx: RequestQueue[] = [];
  private readonly tx: RequestQueue[] = [];
  private readonly receiver: NetReceiveAssembler;
  private readonly ctrl: RequestQueue | null;
  private readonly transmit: NetTransmitHeader;
  private readonly statsQuery: NetStatsQuery;
  private pairsInUse = 1;
  /** Receive queues (pairs from 0) that have buffers posted. */
  private postedPairs = 1;
  private readonly pending: NetFrame[] = [];
  private readonly waiters: ((f: NetFrame) => void)[] = [];
  private linkListener: ((up: boolean) => void) | null = null;
  private link: NetLinkSettings;
  private announcing = false;
  private detached = false;

  constructor(ctx: DriverContext, opts: NetDriverOptions = {}) {
    checkDriverContext(NetDriver.type, ctx);
    this.ctx = ctx;
    this.le = ctx.littleEndian;
    const f = ctx.features;
    this.hdrLen = netHeaderSize(f);
    this.mergeable = (f & NetF.MRG_RXBUF) !== 0n;
    this.rsc = (f & NetF.RSC_EXT) !== 0n;
    this.maxPairs = (f & NetF.MQ) !== 0n ? this.configField('maxVirtqueuePairs') : 1;
    this.mtu = (f & NetF.MTU) !== 0n ? this.configField('mtu') : 1500;
    this.mac = (f & NetF.MAC) !== 0n ? ctx.readConfig(NetConfig.MAC, 6).slice() : LOCAL_DEFAULT_MAC.slice();
    // driver/net/7: buffers for at least one MTU-sized frame (header, Ethernet header, VLAN tag);
    // driver/net/43: with a GUEST_* segmentation offload, room for a 64 KiB frame, in one
    // buffer or (MRG_RXBUF) over the buffers posted.
    const largeFrames = (f & GUEST_GSO) !== 0n;
    const oneFrame = this.hdrLen + (largeFrames ? NET_GSO_MAX_FRAME : this.mtu + ETH_HEADER + ETH_VLAN_TAG);
    this.rxBufferSize = opts.rxBufferSize ?? (this.mergeable ? 2048 : oneFrame);
    if (!Number.isInteger(this.rxBufferSize) || this.rxBufferSize < 1) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `bad rxBufferSize ${this.rxBufferSize}`);
    this.rxBuffers = opts.rxBuffers ?? Math.max(32, Math.ceil(oneFrame / this.rxBufferSize) + 1);
    this.maxPending = opts.maxPending ?? 1024;
    this.transmit = new NetTransmitHeader(this.le);
    this.receiver = new NetReceiveAssembler({ le: this.le, hdrLen: this.hdrLen, mergeable: this.mergeable, rsc: this.rsc, rxBuffers: this.rxBuffers });
    // A vhost-user front-end may run fewer queues than the device has pairs (QEMU keeps the
    // control queue to itself): only the pairs whose queues exist are used.
    this.usablePairs = Math.min(this.maxPairs, Math.floor(ctx.numQueues / 2));
    if (this.usablePairs < 1) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `virtio-net needs receiveq1 and transmitq1, the device has ${ctx.numQueues} queues`);
    for (let p = 0; p < this.usablePairs; p++) {
      this.rx.push(new RequestQueue(ctx, netRxQueue(p)));
      this.tx.push(new RequestQueue(ctx, netTxQueue(p)));
    }
    const ci = netControlQueue(f, this.maxPairs);
    this.ctrl = (f & NetF.CTRL_VQ) !== 0n && ci < ctx.numQueues ? new RequestQueue(ctx, ci) : null;
    this.statsQuery = new NetStatsQuery(f, 2 * this.maxPairs, ci, (cmd, payload, n) => this.commandWithResult(NetCtrlClass.STATS, cmd, payload, n));
    this.link = this.readLinkSettings();
    ctx.onConfigChange(() => {
      // driver/net/11: speed and duplex are read again at every configuration change.
      this.link = this.readLinkSettings();
      if ((opts.announce ?? true) && this.announceRequested) this.announce();
      this.linkListener?.(this.linkUp);
    });
    this.postReceiveBuffers(0);
  }

  /** driver/net/5: without STATUS the link is up. */
  get linkUp(): boolean {
    if ((this.ctx.features & NetF.STATUS) === 0n) return true;
    return (this.configField('status') & NetStatus.LINK_UP) !== 0;
  }
  /** VIRTIO_NET_S_ANNOUNCE: the device asks for a gratuitous announcement. */
  get announceRequested(): boolean {
    if ((this.ctx.features & NetF.STATUS) === 0n) return false;
    return (this.configField('status') & NetStatus.ANNOUNCE) !== 0;
  }
  /**
   * speed (Mb/s) and duplex with SPEED_DUPLEX, as last read (at attach and at every
   * configuration change, driver/net/11); a speed above 0x7fffffff and a duplex other than 0 or 1
   * are unknown: null (driver/net/10).
   */
  get linkSettings(): NetLinkSettings {
    return this.link;
  }
  /** Told the link state at every configuration change. */
  onLinkChange(cb: ((up: boolean) => void) | null): void {
    this.linkListener = cb;
  }
  /** Receive buffers the device returned malformed (shorter than the header, bad num_buffers). */
  get receiveErrors(): number {
    return this.receiver.errors;
  }
  /** Whether the control queue is there (CTRL_VQ negotiated and the queue exists). */
  get hasControlQueue(): boolean {
    return this.ctrl !== null;
  }
  /** Queue pairs in use (set with VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET; 1 without MQ). */
  get queuePairsInUse(): number {
    return this.pairsInUse;
  }

  /**
   * Sends one frame on transmitq `pair`; resolves when the device used it. `csum` asks the
   * device to complete a partial checksum (VIRTIO_NET_F_CSUM, driver/net/30); `gso` asks it to
   * segment (driver/net/18..22, /31, /32). Refuses what was not negotiated (driver/net/16,
   * /18..21) and, without GSO, a frame longer than the MTU allows (driver/net/8).
   */
  async send(frame: Uint8Array, opts: NetSendOptions = {}): Promise<void> {
    const pair = opts.pair ?? 0;
    const q = this.tx[pair];
    if (q === undefined || pair >= this.pairsInUse) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `transmit pair ${pair} not in use`);
    const hl = this.hdrLen;
    const { hdr, body } = this.transmit.prepare(frame, opts, this.ctx.features, this.mtu, hl);
    const len = hl + body.length;
    const addr = this.ctx.dma.alloc(len, 16);
    try {
      this.ctx.memory.write(addr, hdr);
      this.ctx.memory.write(addr + hl, body);
      await q.submit([{ addr, len }], NO_SEGMENTS);
    } finally {
      this.ctx.dma.free(addr);
    }
  }

  /** The next received frame (waits for one). */
  receive(): Promise<NetFrame> {
    const f = this.pending.shift();
    if (f !== undefined) return Promise.resolve(f);
    if (this.detached) return Promise.reject(new VirtioError(ErrorCode.DEVICE_NEEDS_RESET, 'virtio-net driver detached'));
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Frames received and not yet taken. */
  get pendingFrames(): number {
    return this.pending.length;
  }

  // ---- control queue (5.1.6.5) ----

  /** Sends a control command; resolves with the ack (VIRTIO_NET_OK 0, VIRTIO_NET_ERR 1). */
  async command(cls: number, cmd: number, payload: Uint8Array = new Uint8Array(0)): Promise<number> {
    return (await this.commandWithResult(cls, cmd, payload, 0)).ack;
  }

  /** A control command whose device-writable part holds the ack and `resultLen` bytes of command-specific-result. */
  async commandWithResult(cls: number, cmd: number, payload: Uint8Array, resultLen: number): Promise<{
    /** VIRTIO_NET_OK (0) or VIRTIO_NET_ERR (1). */
    ack: number;
    /** The `resultLen` bytes of command-specific-result the device wrote after the ack (a copy). */
    result: Uint8Array;
  }> {
    if (this.ctrl === null) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'no control queue (VIRTIO_NET_F_CTRL_VQ not negotiated)');
    const outLen = 2 + payload.length;
    const addr = this.ctx.dma.alloc(outLen + 1 + resultLen, 16);
    try {
      const b = new Uint8Array(outLen + 1);
      b[0] = cls;
      b[1] = cmd;
      b.set(payload, 2);
      b[outLen] = 0xff; // the device overwrites it
      this.ctx.memory.write(addr, b);
      const used = await this.ctrl.submit([{ addr, len: outLen }], [{ addr: addr + outLen, len: 1 + resultLen }]);
      if (used < 1) throw new VirtioError(ErrorCode.REQUEST_FAILED, 'control command not acknowledged');
      const r = new Uint8Array(1 + resultLen);
      this.ctx.memory.read(addr + outLen, r);
      return { ack: r[0]!, result: r.subarray(1, Math.min(used, 1 + resultLen)) };
    } finally {
      this.ctx.dma.free(addr);
    }
  }

  /**
   * Sends a command that must be answered VIRTIO_NET_OK; refuses first (a rejected promise, no
   * command sent) when the features `need` were not negotiated (driver/net/64..66, /78, /89, /90).
   */
  private async expectOk(cls: number, cmd: number, payload: Uint8Array | undefined, need: bigint, rule: string): Promise<void> {
    this.requireFeatures(need, `control command ${cls}/${cmd}`, rule);
    const ack = await this.command(cls, cmd, payload);
    if (ack !== NetCtrlAck.OK) throw new VirtioError(ErrorCode.REQUEST_FAILED, `control command ${cls}/${cmd} answered VIRTIO_NET_ERR`);
  }

  private requireFeatures(need: bigint, what: string, rule: string): void {
    if ((this.ctx.features & need) !== need) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `${what} needs features 0x${need.toString(16)}, not negotiated (${rule})`);
  }

  /** VIRTIO_NET_CTRL_RX: one of PROMISC, ALLMULTI, ALLUNI, NOMULTI, NOUNI, NOBCAST on or off. */
  setRxMode(mode: (typeof NetCtrlRx)[keyof typeof NetCtrlRx], on: boolean): Promise<void> {
    const basic = mode === NetCtrlRx.PROMISC || mode === NetCtrlRx.ALLMULTI;
    return this.expectOk(NetCtrlClass.RX, mode, Uint8Array.of(on ? 1 : 0), basic ? NetF.CTRL_RX : NetF.CTRL_RX_EXTRA, basic ? 'driver/net/64' : 'driver/net/65');
  }

  /** VIRTIO_NET_CTRL_MAC_TABLE_SET: the unicast and multicast filter tables. */
  setMacTable(unicast: readonly Uint8Array[], multicast: readonly Uint8Array[]): Promise<void> {
    const b = new Uint8Array(8 + 6 * (unicast.length + multicast.length));
    let at = 0;
    for (const table of [unicast, multicast]) {
      this.put32(b, at, table.length);
      at += 4;
      for (const m of table) {
        b.set(m.subarray(0, 6), at);
        at += 6;
      }
    }
    return this.expectOk(NetCtrlClass.MAC, NetCtrlMac.TABLE_SET, b, NetF.CTRL_RX, 'driver/net/66');
  }

  /** VIRTIO_NET_CTRL_MAC_ADDR_SET: the device's primary address. */
  async setMac(mac: Uint8Array): Promise<void> {
    // driver/net/67: the command only when the address differs from the one in use.
    if (mac.length >= 6 && mac.subarray(0, 6).every((b, i) => b === this.mac[i])) return;
    await this.expectOk(NetCtrlClass.MAC, NetCtrlMac.ADDR_SET, mac.slice(0, 6), NetF.CTRL_RX | NetF.CTRL_MAC_ADDR, 'driver/net/66');
    this.mac.set(mac.subarray(0, 6));
  }

  /** VIRTIO_NET_CTRL_VLAN_ADD / _DEL. */
  setVlan(vid: number, on: boolean): Promise<void> {
    const b = new Uint8Array(2);
    this.put16(b, 0, vid);
    return this.expectOk(NetCtrlClass.VLAN, on ? NetCtrlVlan.ADD : NetCtrlVlan.DEL, b, NetF.CTRL_VLAN, '5.1.6.5.3');
  }

  /** VIRTIO_NET_CTRL_ANNOUNCE_ACK (after sending the announcement). */
  ackAnnounce(): Promise<void> {
    return this.expectOk(NetCtrlClass.ANNOUNCE, NetCtrlAnnounce.ACK, undefined, NetF.GUEST_ANNOUNCE, '5.1.6.5.4');
  }

  /** VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET: use `n` pairs; their receive queues get buffers first. */
  async setQueuePairs(n: number): Promise<void> {
    if (!Number.isInteger(n) || n < 1 || n > this.usablePairs) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `queue pairs ${n} not in 1..${this.usablePairs}`);
    this.requireFeatures(NetF.MQ, 'VQ_PAIRS_SET', '5.1.6.5.5');
    // driver/net/47, /74: the receive queues to be used get buffers before the command.
    for (let p = this.postedPairs; p < n; p++) this.postReceiveBuffers(p);
    this.postedPairs = Math.max(this.postedPairs, n);
    // driver/net/77: fewer pairs: no frame goes on the dropped transmit queues from now on.
    if (n < this.pairsInUse) this.pairsInUse = n;
    const b = new Uint8Array(2);
    this.put16(b, 0, n);
    await this.expectOk(NetCtrlClass.MQ, NetCtrlMq.VQ_PAIRS_SET, b, NetF.MQ, '5.1.6.5.5');
    this.pairsInUse = n;
  }

  /** VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET: the receive offloads to use (negotiated ones only, driver/net/86). */
  setGuestOffloads(mask: bigint): Promise<void> {
    const b = new Uint8Array(8);
    this.put32(b, 0, Number(mask & 0xffff_ffffn));
    this.put32(b, 4, Number(mask >> 32n));
    // A legacy big-endian guest writes the le64 as one native 64-bit value (driver/net/87).
    const payload = this.le ? b : Uint8Array.of(...b.subarray(4, 8), ...b.subarray(0, 4));
    if ((mask & ~this.ctx.features) !== 0n) return Promise.reject(new VirtioError(ErrorCode.INVALID_ARGUMENT, `offloads 0x${(mask & ~this.ctx.features).toString(16)} not negotiated (driver/net/86)`));
    return this.expectOk(NetCtrlClass.GUEST_OFFLOADS, NetCtrlGuestOffloads.SET, payload, NetF.CTRL_GUEST_OFFLOADS, '5.1.6.5.6');
  }

  /** VIRTIO_NET_CTRL_MQ_RSS_CONFIG (RSS negotiated): hash types, indirection table, key. */
  async setRss(p: NetRssParams): Promise<void> {
    this.requireFeatures(NetF.RSS, 'RSS_CONFIG', 'driver/net/78');
    const n = p.table.length;
    if (n < 1 || (n & (n - 1)) !== 0) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `indirection table of ${n} entries: not a power of two (driver/net/80)`);
    for (const q of [...p.table, p.unclassified]) if (!Number.isInteger(q) || q < 0 || q >= this.usablePairs) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `receive queue ${q} not enabled (driver/net/79)`);
    const maxTx = p.maxTxPairs ?? this.pairsInUse;
    const b = new Uint8Array(8 + 2 * n + 3 + p.key.length);
    this.put32(b, 0, p.hashTypes);
    this.put16(b, 4, n - 1);
    this.put16(b, 6, p.unclassified);
    p.table.forEach((q, i) => this.put16(b, 8 + 2 * i, q));
    this.put16(b, 8 + 2 * n, maxTx);
    b[10 + 2 * n] = p.key.length;
    b.set(p.key, 11 + 2 * n);
    // The queues the table names get buffers first (driver/net/74).
    for (const q of [...p.table, p.unclassified]) for (; this.postedPairs <= q; this.postedPairs++) this.postReceiveBuffers(this.postedPairs);
    await this.expectOk(NetCtrlClass.MQ, NetCtrlMq.RSS_CONFIG, b, NetF.RSS, 'driver/net/78');
    this.pairsInUse = Math.max(this.pairsInUse, maxTx, ...p.table.map((q) => q + 1), p.unclassified + 1);
  }

  /** VIRTIO_NET_CTRL_MQ_HASH_CONFIG (HASH_REPORT negotiated): what hash each frame reports. */
  setHashConfig(hashTypes: number, key: Uint8Array): Promise<void> {
    const b = new Uint8Array(13 + key.length);
    this.put32(b, 0, hashTypes);
    b[12] = key.length;
    b.set(key, 13);
    return this.expectOk(NetCtrlClass.MQ, NetCtrlMq.HASH_CONFIG, b, NetF.HASH_REPORT, '5.1.6.5.6.4');
  }

  /**
   * supported_tunnel_types with HASH_TUNNEL (else 0), bits the spec does not define dropped
   * (driver/net/63).
   */
  get supportedTunnelTypes(): number {
    return (this.ctx.features & NetF.HASH_TUNNEL) !== 0n ? this.configField('supportedTunnelTypes') & NET_SUPPORTED_TUNNEL_TYPES : 0;
  }

  /**
   * VIRTIO_NET_CTRL_HASH_TUNNEL_SET: encapsulation types whose inner header RSS and hash reports
   * use (0: none). Refused unsent without HASH_TUNNEL (driver/net/61) or with a type the device
   * does not support (driver/net/62).
   */
  setHashTunnel(types: number): Promise<void> {
    if ((types & ~this.supportedTunnelTypes) !== 0) return Promise.reject(new VirtioError(ErrorCode.INVALID_ARGUMENT, `tunnel types 0x${types.toString(16)} not in supported_tunnel_types (driver/net/62)`));
    const b = new Uint8Array(4);
    this.put32(b, 0, types);
    return this.expectOk(NetCtrlClass.HASH_TUNNEL, NetCtrlHashTunnel.SET, b, NetF.HASH_TUNNEL, 'driver/net/61');
  }

  /** VIRTIO_NET_CTRL_NOTF_COAL_TX_SET / _RX_SET (NOTF_COAL): every queue of one direction. */
  setCoalescing(direction: 'tx' | 'rx', maxPackets: number, maxUsecs: number): Promise<void> {
    const b = new Uint8Array(8);
    this.put32(b, 0, maxPackets);
    this.put32(b, 4, maxUsecs);
    return this.expectOk(NetCtrlClass.NOTF_COAL, direction === 'tx' ? NetCtrlNotfCoal.TX_SET : NetCtrlNotfCoal.RX_SET, b, NetF.NOTF_COAL, 'driver/net/89');
  }

  /** VIRTIO_NET_CTRL_NOTF_COAL_VQ_SET (VQ_NOTF_COAL): one enabled data queue (driver/net/88). */
  setQueueCoalescing(vq: number, maxPackets: number, maxUsecs: number): Promise<void> {
    if (!this.isDataQueue(vq)) return Promise.reject(new VirtioError(ErrorCode.INVALID_ARGUMENT, `queue ${vq} is not an enabled receive or transmit queue (driver/net/88)`));
    const b = new Uint8Array(12);
    this.put16(b, 0, vq);
    this.put32(b, 4, maxPackets);
    this.put32(b, 8, maxUsecs);
    return this.expectOk(NetCtrlClass.NOTF_COAL, NetCtrlNotfCoal.VQ_SET, b, NetF.VQ_NOTF_COAL, 'driver/net/90');
  }

  /** VIRTIO_NET_CTRL_NOTF_COAL_VQ_GET; values of an ERR answer are not used (driver/net/91). */
  async getQueueCoalescing(vq: number): Promise<{
    /** max_packets of queue `vq` (0: not coalescing by count). */
    maxPackets: number;
    /** max_usecs of queue `vq`, microseconds (0: not coalescing by time). */
    maxUsecs: number;
  }> {
    this.requireFeatures(NetF.VQ_NOTF_COAL, 'VQ_GET', 'driver/net/90');
    if (!this.isDataQueue(vq)) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `queue ${vq} is not an enabled receive or transmit queue (driver/net/88)`);
    const b = new Uint8Array(4);
    this.put16(b, 0, vq);
    const { ack, result } = await this.commandWithResult(NetCtrlClass.NOTF_COAL, NetCtrlNotfCoal.VQ_GET, b, 8);
    if (ack !== NetCtrlAck.OK || result.length < 8) throw new VirtioError(ErrorCode.REQUEST_FAILED, `VQ_GET of queue ${vq} answered VIRTIO_NET_ERR`);
    return { maxPackets: this.get32(result, 0), maxUsecs: this.get32(result, 4) };
  }

  /** VIRTIO_NET_CTRL_STATS_QUERY (DEVICE_STATS): the device's supported_stats_types. */
  queryStats(): Promise<bigint> {
    return this.statsQuery.query();
  }

  /** VIRTIO_NET_CTRL_STATS_GET: the counters of the types asked per queue (net-driver-stats.ts). */
  getStats(requests: readonly NetStatsRequest[]): Promise<NetStatsReply[]> {
    return this.statsQuery.get(requests);
  }

  detach(): void {
    this.detached = true;
    for (const q of [...this.rx, ...this.tx]) q.detach();
    this.ctrl?.detach();
  }

  // ---- receive ----

  private postReceiveBuffers(pair: number): void {
    const q = this.rx[pair]!;
    const n = Math.max(1, Math.min(this.rxBuffers, this.ctx.queue(netRxQueue(pair)).size));
    for (let i = 0; i < n; i++) {
      const addr = this.ctx.dma.alloc(this.rxBufferSize, 16);
      this.post(pair, q, addr);
    }
  }

  private post(pair: number, q: RequestQueue, addr: number): void {
    if (this.detached || q.stopped) {
      this.ctx.dma.free(addr);
      return;
    }
    q.submit(NO_SEGMENTS, [{ addr, len: this.rxBufferSize }]).then(
      (used) => {
        this.onReceived(pair, addr, used);
        this.post(pair, q, addr);
      },
      () => this.ctx.dma.free(addr),
    );
  }

  private onReceived(pair: number, addr: number, used: number): void {
    const len = Math.min(used, this.rxBufferSize);
    const bytes = new Uint8Array(len);
    if (len > 0) this.ctx.memory.read(addr, bytes);
    const frame = this.receiver.take(pair, bytes);
    if (frame !== null) this.deliver(frame);
  }

  /** To the oldest waiting receive(), else queued (the oldest dropped beyond maxPending). */
  private deliver(frame: NetFrame): void {
    const w = this.waiters.shift();
    if (w) {
      w(frame);
      return;
    }
    if (this.pending.length >= this.maxPending) {
      this.pending.shift();
      this.droppedPending++;
    }
    this.pending.push(frame);
  }

  /** driver/net/72, /73: a RARP broadcast from the driver's address (peers learn where it is), then ANNOUNCE_ACK. */
  private announce(): void {
    if (this.announcing || this.detached || this.ctrl === null || (this.ctx.features & NetF.GUEST_ANNOUNCE) === 0n) return;
    this.announcing = true;
    const rarp = new Uint8Array(60);
    rarp.fill(0xff, 0, 6);
    rarp.set(this.mac, 6);
    rarp.set([0x80, 0x35, 0, 1, 0x08, 0x00, 6, 4, 0, 3], 12); // ETHERTYPE_RARP, reverse request
    rarp.set(this.mac, 22);
    rarp.set(this.mac, 32);
    this.send(rarp)
      .then(() => this.ackAnnounce())
      .then(
        () => this.announcements++,
        () => undefined, // detached or reset meanwhile: nothing to announce to
      )
      .finally(() => (this.announcing = false));
  }

  /** A receive or transmit queue of a pair whose queues are set up. */
  private isDataQueue(vq: number): boolean {
    return Number.isInteger(vq) && vq >= 0 && vq < 2 * this.usablePairs;
  }

  private readLinkSettings(): NetLinkSettings {
    if ((this.ctx.features & NetF.SPEED_DUPLEX) === 0n) return { speedMbps: null, duplex: null };
    const speed = this.configField('speed');
    const duplex = this.configField('duplex');
    return { speedMbps: speed <= 0x7fff_ffff ? speed : null, duplex: duplex === NetDuplex.FULL ? 'full' : duplex === NetDuplex.HALF ? 'half' : null };
  }

  // ---- helpers ----

  private configField(name: 'maxVirtqueuePairs' | 'mtu' | 'status' | 'speed' | 'duplex' | 'supportedTunnelTypes'): number {
    return readConfigField(NET_CONFIG_LAYOUT, name, (o, l) => this.ctx.readConfig(o, l), this.le);
  }
  private put16(b: Uint8Array, o: number, v: number): void {
    b[o + (this.le ? 0 : 1)] = v & 0xff;
    b[o + (this.le ? 1 : 0)] = (v >>> 8) & 0xff;
  }
  private put32(b: Uint8Array, o: number, v: number): void {
    for (let k = 0; k < 4; k++) b[o + (this.le ? k : 3 - k)] = (v >>> (8 * k)) & 0xff;
  }
  private get32(b: Uint8Array, o: number): number {
    return this.le ? (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0 : ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
  }
}
