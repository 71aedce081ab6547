/**
 * 5.1.6.5.10 Device statistics (VIRTIO_NET_F_DEVICE_STATS), device side: per-queue counters kept
 * as le64 values in pairs of u32 words (no BigInt, nothing allocated on the data path; a counter
 * wraps to zero past 2^64 - 1, device/net/116), and the VIRTIO_NET_CTRL_STATS commands: QUERY
 * answers struct virtio_net_stats_capabilities, GET checks every entry of struct
 * virtio_net_ctrl_queue_stats before answering anything (device/net/111, /112) and writes one
 * reply per type bit, each with its header (type, vq_index, size: device/net/113, /114).
 *
 * Supported types: RX_BASIC, TX_BASIC and CVQ always; RX_CSUM (GUEST_CSUM), TX_CSUM (CSUM),
 * RX_GSO (GUEST_TSO4 or GUEST_TSO6), TX_GSO (HOST_TSO4, HOST_TSO6 or HOST_USO), each when the
 * device offers its feature and usable in GET only when that feature was negotiated. The SPEED
 * types are not supported: the device has no bitrate allowance and never drops for one.
 */
import { NET_STATS_COUNTERS, NET_STATS_REQUEST_ENTRY, NetCtrlAck, NetCtrlStats, NetF, NetHdrFlag, NetStatsReplyHdr, NetStatsType } from '../../spec/net.js';

/** Counter slots of a receive queue, in reply order (RX_BASIC 0..5, RX_CSUM 6..9, RX_GSO 10..13). */
export const NetRxCounter = {
  NOTIFICATIONS: 0,
  PACKETS: 1,
  BYTES: 2,
  INTERRUPTS: 3,
  DROPS: 4,
  DROP_OVERRUNS: 5,
  CSUM_VALID: 6,
  NEEDS_CSUM: 7,
  CSUM_NONE: 8,
  CSUM_BAD: 9,
  GSO_PACKETS: 10,
  GSO_BYTES: 11,
  GSO_PACKETS_COALESCED: 12,
  GSO_BYTES_COALESCED: 13,
} as const;
/** Counter slots of a transmit queue, in reply order (TX_BASIC 0..5, TX_CSUM 6..7, TX_GSO 8..13). */
export const NetTxCounter = {
  NOTIFICATIONS: 0,
  PACKETS: 1,
  BYTES: 2,
  INTERRUPTS: 3,
  DROPS: 4,
  DROP_MALFORMED: 5,
  CSUM_NONE: 6,
  NEEDS_CSUM: 7,
  GSO_PACKETS: 8,
  GSO_BYTES: 9,
  GSO_SEGMENTS: 10,
  GSO_SEGMENTS_BYTES: 11,
  GSO_PACKETS_NOSEG: 12,
  GSO_BYTES_NOSEG: 13,
} as const;
/** Counter slots of the control queue (CVQ). */
export const NetCvqCounter = { COMMANDS: 0, OK: 1 } as const;

const SLOTS = 14;

/** Where each type's counters start in a queue's slots. */
const FIRST_SLOT: Readonly<Record<number, number>> = {
  [NetStatsType.RX_BASIC]: NetRxCounter.NOTIFICATIONS,
  [NetStatsType.RX_CSUM]: NetRxCounter.CSUM_VALID,
  [NetStatsType.RX_GSO]: NetRxCounter.GSO_PACKETS,
  [NetStatsType.TX_BASIC]: NetTxCounter.NOTIFICATIONS,
  [NetStatsType.TX_CSUM]: NetTxCounter.CSUM_NONE,
  [NetStatsType.TX_GSO]: NetTxCounter.GSO_PACKETS,
  [NetStatsType.CVQ]: NetCvqCounter.COMMANDS,
};
const COUNT = NET_STATS_COUNTERS;
/** The types in reply order (ascending type number, as the bits of types_bitmap). */
const RX_TYPES = [NetStatsType.RX_BASIC, NetStatsType.RX_CSUM, NetStatsType.RX_GSO] as const;
const TX_TYPES = [NetStatsType.TX_BASIC, NetStatsType.TX_CSUM, NetStatsType.TX_GSO] as const;

/** Bytes of the largest reply to one request entry (three receive or transmit types). */
const MAX_ENTRY_REPLY = Math.max(
  ...[RX_TYPES, TX_TYPES].map((ts) => ts.reduce((s: number, t) => s + NetStatsReplyHdr.LENGTH + 8 * COUNT[t]!, 0)),
);

/** The largest GET reply to a command of `maxCommand` bytes (class, command, entries). */
export function netStatsMaxReply(maxCommand: number): number {
  return Math.floor((maxCommand - 2) / NET_STATS_REQUEST_ENTRY) * MAX_ENTRY_REPLY;
}

/** The feature each type needs besides DEVICE_STATS (0: none). */
function typeFeature(type: number): bigint {
  switch (type) {
    case NetStatsType.RX_CSUM:
      return NetF.GUEST_CSUM;
    case NetStatsType.TX_CSUM:
      return NetF.CSUM;
    case NetStatsType.RX_GSO:
      return NetF.GUEST_TSO4 | NetF.GUEST_TSO6;
    case NetStatsType.TX_GSO:
      return NetF.HOST_TSO4 | NetF.HOST_TSO6 | NetF.HOST_USO;
    default:
      return 0n;
  }
}

function typeUsable(type: number, features: bigint): boolean {
  const need = typeFeature(type);
  return need === 0n || (features & need) !== 0n;
}

/** supported_stats_types (5.1.6.5.10.1) for a device offering `offered`, as a 64-bit mask. */
export function supportedStatsTypes(offered: bigint): bigint {
  let m = 0n;
  for (const t of [...RX_TYPES, ...TX_TYPES, NetStatsType.CVQ]) if (typeUsable(t, offered)) m |= 1n << BigInt(t);
  return m;
}

/** Adds `n` (0 <= n < 2^32) to the le64 counter at words w[i] (low), w[i + 1] (high), mod 2^64. */
function bump(w: Uint32Array, i: number, n: number): void {
  const s = w[i]! + n;
  w[i] = s; // stored mod 2^32
  if (s > 0xffff_ffff) w[i + 1] = w[i + 1]! + 1; // stored mod 2^32: the counter wraps at 2^64
}

/** Per-queue le64 counters; queue `dataQueues` is the control queue. */
export class NetQueueCounters {
  private readonly words: Uint32Array;

  constructor(
    /** Receive and transmit queues counted (2 x pairs); the control queue's counters come after them. */
    readonly dataQueues: number,
  ) {
    this.words = new Uint32Array((dataQueues + 1) * SLOTS * 2);
  }

  /** The control queue's counters live after the data queues'. */
  get cvq(): number {
    return this.dataQueues;
  }

  /** Adds `n` (0 <= n < 2^32) to a counter, carrying into the high word (mod 2^64). */
  add(queue: number, slot: number, n: number): void {
    if (queue < 0 || queue > this.dataQueues) return;
    bump(this.words, (queue * SLOTS + slot) * 2, n);
  }

  /** Adds 1 to counter `slot` (NetRxCounter / NetTxCounter / NetCvqCounter) of `queue`; out-of-range queues are ignored. */
  inc(queue: number, slot: number): void {
    this.add(queue, slot, 1);
  }

  /** A transmit chain dropped: malformed (tx_drop_malformed too) or for want of a link. */
  txDropped(queue: number, malformed: boolean): void {
    this.inc(queue, NetTxCounter.DROPS);
    if (malformed) this.inc(queue, NetTxCounter.DROP_MALFORMED);
  }

  /** A frame sent from transmit queue `queue`; a GSO one is handed on whole (never segmented here). */
  txPacket(queue: number, length: number, needsCsum: boolean, gsoType: number): void {
    // Once per transmitted frame: one range check, then the three counters every frame bumps.
    if (queue < 0 || queue > this.dataQueues) return;
    const w = this.words;
    const i = queue * SLOTS * 2;
    bump(w, i + 2 * NetTxCounter.PACKETS, 1);
    bump(w, i + 2 * NetTxCounter.BYTES, length);
    bump(w, i + 2 * (needsCsum ? NetTxCounter.NEEDS_CSUM : NetTxCounter.CSUM_NONE), 1);
    if (gsoType === 0) return;
    this.inc(queue, NetTxCounter.GSO_PACKETS);
    this.add(queue, NetTxCounter.GSO_BYTES, length);
    this.inc(queue, NetTxCounter.GSO_PACKETS_NOSEG);
    this.add(queue, NetTxCounter.GSO_BYTES_NOSEG, length);
  }

  /** A frame passed to the driver, classified by its header's flags and gso_type. */
  rxPacket(queue: number, length: number, hdrFlags: number, gsoType: number): void {
    this.inc(queue, NetRxCounter.PACKETS);
    this.add(queue, NetRxCounter.BYTES, length);
    const csum = (hdrFlags & NetHdrFlag.NEEDS_CSUM) !== 0 ? NetRxCounter.NEEDS_CSUM : (hdrFlags & NetHdrFlag.DATA_VALID) !== 0 ? NetRxCounter.CSUM_VALID : NetRxCounter.CSUM_NONE;
    this.inc(queue, csum);
    if (gsoType === 0) return;
    this.inc(queue, NetRxCounter.GSO_PACKETS);
    this.add(queue, NetRxCounter.GSO_BYTES, length);
  }

  /** A frame dropped for want of receive buffers. */
  rxOverrun(queue: number): void {
    this.inc(queue, NetRxCounter.DROPS);
    this.inc(queue, NetRxCounter.DROP_OVERRUNS);
  }

  /** Takes one back (mod 2^64). */
  dec(queue: number, slot: number): void {
    if (queue < 0 || queue > this.dataQueues) return;
    const w = this.words;
    const i = (queue * SLOTS + slot) * 2;
    if (w[i] === 0) w[i + 1] = w[i + 1]! - 1;
    w[i] = w[i]! - 1;
  }

  /** Counter `slot` of `queue` as the u64 STATS_GET reports (wraps at 2^64). Not for hot paths: BigInt. */
  get(queue: number, slot: number): bigint {
    const i = (queue * SLOTS + slot) * 2;
    return (BigInt(this.words[i + 1]!) << 32n) | BigInt(this.words[i]!);
  }

  /** Sets a counter (tests and diagnostics; not on the data path). */
  set(queue: number, slot: number, value: bigint): void {
    const i = (queue * SLOTS + slot) * 2;
    this.words[i] = Number(value & 0xffff_ffffn);
    this.words[i + 1] = Number((value >> 32n) & 0xffff_ffffn);
  }

  /** Every counter of every queue to 0 (device reset: the STATS counters restart, 5.1.6.5.10). */
  reset(): void {
    this.words.fill(0);
  }

  /** Writes `count` counters from `slot` as le64 at `out[at..]`. */
  writeLe64(out: Uint8Array, at: number, queue: number, slot: number, count: number): void {
    const w = this.words;
    for (let k = 0; k < count; k++) {
      const i = (queue * SLOTS + slot + k) * 2;
      putLe32(out, at + 8 * k, w[i]!);
      putLe32(out, at + 8 * k + 4, w[i + 1]!);
    }
  }
}

function putLe32(b: Uint8Array, o: number, v: number): void {
  b[o] = v & 0xff;
  b[o + 1] = (v >>> 8) & 0xff;
  b[o + 2] = (v >>> 16) & 0xff;
  b[o + 3] = (v >>> 24) & 0xff;
}
function le16(b: Uint8Array, o: number): number {
  return b[o]! | (b[o + 1]! << 8);
}
function le32(b: Uint8Array, o: number): number {
  return (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
}

/** What the STATS commands read from the device. */
export interface NetStatsTarget {
  /** The features the driver negotiated (STATS needs VIRTIO_NET_F_DEVICE_STATS). */
  readonly features: bigint;
  /** The features the device offered (STATS_QUERY answers only the stats types offered). */
  readonly offeredFeatures: bigint;
  /** Receive and transmit queues the driver may use (2 x pairs). */
  readonly dataQueueCount: number;
  /** The control queue's index (-1 without one). */
  readonly controlQueueIndex: number;
  /** Per-queue counters STATS_GET reports from. */
  readonly counters: NetQueueCounters;
  /** Where the command-specific-result is written (at least NET_CTRL_MAX_REPLY bytes). */
  readonly reply: Uint8Array;
  /** Bytes of `reply` the last command wrote (0 when it has no result). */
  replyLength: number;
  /** Set when the reply may be cut to the driver's buffer (device/net/115) instead of failing. */
  replyTruncates: boolean;
}

/**
 * VIRTIO_NET_CTRL_STATS (DEVICE_STATS negotiated; the data is little-endian: DEVICE_STATS needs
 * VERSION_1). Returns the ack; the reply is in `t.reply[0 .. t.replyLength)`.
 */
export function executeNetStats(t: NetStatsTarget, op: number, cmd: Uint8Array, len: number): number {
  const f = t.features;
  if ((f & NetF.DEVICE_STATS) === 0n) return NetCtrlAck.ERR;
  const n = len - 2;
  if (op === NetCtrlStats.QUERY) {
    if (n !== 0) return NetCtrlAck.ERR;
    // device/net/110: every type the device supports.
    const m = supportedStatsTypes(t.offeredFeatures);
    putLe32(t.reply, 0, Number(m & 0xffff_ffffn));
    putLe32(t.reply, 4, Number(m >> 32n));
    t.replyLength = 8;
    return NetCtrlAck.OK;
  }
  if (op !== NetCtrlStats.GET || n === 0 || n % NET_STATS_REQUEST_ENTRY !== 0) return NetCtrlAck.ERR;
  // device/net/111, /112: every entry is checked before anything is written.
  let total = 0;
  for (let at = 2; at < len; at += NET_STATS_REQUEST_ENTRY) {
    const bytes = entryReplyBytes(t, le16(cmd, at), le32(cmd, at + 8), le32(cmd, at + 12));
    if (bytes < 0) return NetCtrlAck.ERR;
    total += bytes;
  }
  if (total > t.reply.length) return NetCtrlAck.ERR;
  let out = 0;
  for (let at = 2; at < len; at += NET_STATS_REQUEST_ENTRY) {
    const vq = le16(cmd, at);
    const lo = le32(cmd, at + 8);
    const hi = le32(cmd, at + 12);
    const cq = vq === t.controlQueueIndex ? t.counters.cvq : vq;
    for (let bit = 0; bit < 64; bit++) {
      if (((bit < 32 ? lo >>> bit : hi >>> (bit - 32)) & 1) === 0) continue;
      const size = NetStatsReplyHdr.LENGTH + 8 * COUNT[bit]!;
      const r = t.reply;
      // device/net/113, /114: type, vq_index and the size of this reply.
      r.fill(0, out, out + NetStatsReplyHdr.LENGTH);
      r[out + NetStatsReplyHdr.TYPE] = bit;
      r[out + NetStatsReplyHdr.VQ_INDEX] = vq & 0xff;
      r[out + NetStatsReplyHdr.VQ_INDEX + 1] = vq >>> 8;
      r[out + NetStatsReplyHdr.SIZE] = size & 0xff;
      r[out + NetStatsReplyHdr.SIZE + 1] = size >>> 8;
      t.counters.writeLe64(r, out + NetStatsReplyHdr.LENGTH, cq, FIRST_SLOT[bit]!, COUNT[bit]!);
      out += size;
    }
  }
  t.replyLength = out;
  // device/net/115: a smaller result buffer gets the bytes that fit.
  t.replyTruncates = true;
  return NetCtrlAck.OK;
}

/**
 * The reply bytes for one entry, or -1 when it is wrong (device/net/112): vq_index beyond the
 * queues, an unknown or unsupported type, a type not valid for that queue, or one whose feature
 * was not negotiated.
 */
function entryReplyBytes(t: NetStatsTarget, vq: number, lo: number, hi: number): number {
  const isCtrl = vq === t.controlQueueIndex && t.controlQueueIndex >= 0;
  if (!isCtrl && vq >= t.dataQueueCount) return -1;
  const valid = isCtrl ? [NetStatsType.CVQ] : (vq & 1) === 0 ? RX_TYPES : TX_TYPES;
  let bytes = 0;
  for (let bit = 0; bit < 64; bit++) {
    if (((bit < 32 ? lo >>> bit : hi >>> (bit - 32)) & 1) === 0) continue;
    if (!(valid as readonly number[]).includes(bit) || !typeUsable(bit, t.features) || !typeUsable(bit, t.offeredFeatures)) return -1;
    bytes += NetStatsReplyHdr.LENGTH + 8 * COUNT[bit]!;
  }
  return bytes;
}
