/**
 * 5.1.6.5.10 Device statistics, driver side (NetDriver.queryStats / getStats). The driver asks
 * for types only after VIRTIO_NET_CTRL_STATS_QUERY told it which the device supports, only those
 * valid for the queue named and whose feature was negotiated (driver/net/92), and gives the
 * device a command-specific-result buffer large enough for every reply it asked for, headers
 * included (driver/net/93). Replies are parsed by their headers' size fields.
 */
import { ErrorCode, VirtioError } from '../../errors.js';
import { NET_STATS_COUNTERS, NET_STATS_REQUEST_ENTRY, NetCtrlAck, NetF, NetStatsReplyHdr, NetStatsType } from '../../spec/net.js';

/** One queue and the statistic types (NetStatsType values) wanted for it. */
export interface NetStatsRequest {
  /** Queue index (receive, transmit, or the control queue). */
  vq: number;
  /** NetStatsType values wanted for it (each must be in supported_stats_types). */
  types: readonly number[];
}

/** One reply: its type, queue and le64 counters in the order of the spec's struct. */
export interface NetStatsReply {
  /** NetStatsType of the reply (5.1.6.5.10). */
  type: number;
  /** Queue index the counters are of. */
  vq: number;
  /** The le64 counters of that type, in the spec struct's order (NET_STATS_COUNTERS). */
  counters: bigint[];
}

/** Sends VIRTIO_NET_CTRL_STATS `cmd` with `payload` and room for `resultLen` result bytes. */
export type NetStatsCommand = (cmd: number, payload: Uint8Array, resultLen: number) => Promise<{ ack: number; result: Uint8Array }>;

const RX_TYPES: readonly number[] = [NetStatsType.RX_BASIC, NetStatsType.RX_CSUM, NetStatsType.RX_GSO, NetStatsType.RX_SPEED];
const TX_TYPES: readonly number[] = [NetStatsType.TX_BASIC, NetStatsType.TX_CSUM, NetStatsType.TX_GSO, NetStatsType.TX_SPEED];

/** The feature a type needs besides DEVICE_STATS (5.1.6.5.10: CSUM and GSO statistics). */
function typeFeature(type: number): bigint {
  if (type === NetStatsType.RX_CSUM) return NetF.GUEST_CSUM;
  if (type === NetStatsType.TX_CSUM) return NetF.CSUM;
  if (type === NetStatsType.RX_GSO) return NetF.GUEST_TSO4 | NetF.GUEST_TSO6;
  if (type === NetStatsType.TX_GSO) return NetF.HOST_TSO4 | NetF.HOST_TSO6 | NetF.HOST_USO;
  if (type === NetStatsType.RX_SPEED || type === NetStatsType.TX_SPEED) return NetF.SPEED_DUPLEX;
  return 0n;
}

export class NetStatsQuery {
  private capabilities: bigint | null = null;

  constructor(
    private readonly features: bigint,
    /** Data queues of the device (2 x max_virtqueue_pairs). */
    private readonly dataQueues: number,
    private readonly controlQueue: number,
    private readonly send: NetStatsCommand,
  ) {}

  /** supported_stats_types as the device last answered (null before queryStats). */
  get supported(): bigint | null {
    return this.capabilities;
  }

  /** VIRTIO_NET_CTRL_STATS_QUERY: supported_stats_types. */
  async query(): Promise<bigint> {
    this.requireStats();
    const { ack, result } = await this.send(0, new Uint8Array(0), 8);
    if (ack !== NetCtrlAck.OK || result.length < 8) throw new VirtioError(ErrorCode.REQUEST_FAILED, 'STATS_QUERY answered VIRTIO_NET_ERR');
    const v = new DataView(result.buffer, result.byteOffset, 8);
    this.capabilities = (BigInt(v.getUint32(4, true)) << 32n) | BigInt(v.getUint32(0, true));
    return this.capabilities;
  }

  /**
   * VIRTIO_NET_CTRL_STATS_GET for `requests`; queries the capabilities first when not yet done
   * (driver/net/92) and refuses, sending nothing, a type the device did not report, one not
   * valid for its queue or whose feature was not negotiated.
   */
  async get(requests: readonly NetStatsRequest[]): Promise<NetStatsReply[]> {
    this.requireStats();
    const caps = this.capabilities ?? (await this.query());
    if (requests.length === 0) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'STATS_GET needs at least one queue');
    const payload = new Uint8Array(NET_STATS_REQUEST_ENTRY * requests.length);
    const dv = new DataView(payload.buffer);
    let resultLen = 0;
    requests.forEach((r, i) => {
      const valid = r.vq === this.controlQueue ? [NetStatsType.CVQ] : r.vq < this.dataQueues && r.vq >= 0 ? ((r.vq & 1) === 0 ? RX_TYPES : TX_TYPES) : null;
      if (valid === null) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `STATS_GET: queue ${r.vq} does not exist (driver/net/92)`);
      let bitmap = 0n;
      for (const t of r.types) {
        const bit = 1n << BigInt(t);
        if (!valid.includes(t)) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `STATS_GET: type ${t} not valid for queue ${r.vq} (driver/net/92)`);
        if ((caps & bit) === 0n) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `STATS_GET: type ${t} not in the device's supported_stats_types (driver/net/92)`);
        const need = typeFeature(t);
        if (need !== 0n && (this.features & need) === 0n) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `STATS_GET: type ${t} needs a feature not negotiated (driver/net/92)`);
        if ((bitmap & bit) === 0n) resultLen += NetStatsReplyHdr.LENGTH + 8 * NET_STATS_COUNTERS[t]!; // driver/net/93
        bitmap |= bit;
      }
      dv.setUint16(i * NET_STATS_REQUEST_ENTRY, r.vq, true);
      dv.setUint32(i * NET_STATS_REQUEST_ENTRY + 8, Number(bitmap & 0xffff_ffffn), true);
      dv.setUint32(i * NET_STATS_REQUEST_ENTRY + 12, Number(bitmap >> 32n), true);
    });
    const { ack, result } = await this.send(1, payload, resultLen);
    if (ack !== NetCtrlAck.OK) throw new VirtioError(ErrorCode.REQUEST_FAILED, 'STATS_GET answered VIRTIO_NET_ERR');
    return parseStatsReplies(result);
  }

  private requireStats(): void {
    if ((this.features & NetF.DEVICE_STATS) === 0n) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'VIRTIO_NET_F_DEVICE_STATS not negotiated');
  }
}

/** Splits a STATS_GET result into its replies (each sized by its header; a short tail is left out). */
export function parseStatsReplies(result: Uint8Array): NetStatsReply[] {
  const dv = new DataView(result.buffer, result.byteOffset, result.byteLength);
  const out: NetStatsReply[] = [];
  let at = 0;
  while (at + NetStatsReplyHdr.LENGTH <= result.length) {
    const size = dv.getUint16(at + NetStatsReplyHdr.SIZE, true);
    if (size < NetStatsReplyHdr.LENGTH || at + size > result.length) break;
    const counters: bigint[] = [];
    for (let o = at + NetStatsReplyHdr.LENGTH; o + 8 <= at + size; o += 8) counters.push(dv.getBigUint64(o, true));
    out.push({ type: result[at + NetStatsReplyHdr.TYPE]!, vq: dv.getUint16(at + NetStatsReplyHdr.VQ_INDEX, true), counters });
    at += size;
  }
  return out;
}
