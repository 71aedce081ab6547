/**
 * The control virtqueue's commands (5.1.6.5): class, command, command-specific data (device-
 * readable), ack (device-writable). A command the device does not know, one whose feature was not
 * negotiated, and one whose payload is short, long or out of range each get VIRTIO_NET_ERR and
 * change nothing.
 */
import {
  NET_GUEST_OFFLOADS,
  NET_MQ_PAIRS_MIN,
  NET_VLAN_IDS,
  NetCtrlAck,
  NetCtrlAnnounce,
  NetCtrlClass,
  NetCtrlGuestOffloads,
  NetCtrlHashTunnel,
  NetCtrlMac,
  NetCtrlMq,
  NetCtrlNotfCoal,
  NetCtrlRx,
  NetCtrlVlan,
  NetF,
} from '../../spec/net.js';
import type { NetCoalescing } from './net-coalescing.js';
import type { NetRss } from './net-rss.js';
import { macKey } from './packet.js';
import { MAC_TABLE_ENTRIES, type RxFilter } from './rx-filter.js';
import { type NetStatsTarget, executeNetStats, netStatsMaxReply } from './net-stats.js';

/** Largest command the device reads (class, command and a MAC_TABLE_SET of 2 x 64 entries fit). */
export const NET_CTRL_MAX_COMMAND = 2 + 2 * (4 + 6 * 256);

/** What a control command may change on the device. */
export interface NetControlTarget extends NetStatsTarget {
  /** The features the driver negotiated: a command of a class not negotiated answers ERR. */
  readonly features: bigint;
  /** Byte order of multi-byte command fields: false only for a legacy big-endian guest. */
  readonly littleEndian: boolean;
  /** Receive filter the RX and MAC classes change (promiscuous, all-multicast, MAC and VLAN tables). */
  readonly filter: RxFilter;
  /** max_virtqueue_pairs (5.1.4): VQ_PAIRS_SET and RSS_CONFIG beyond it answer ERR. */
  readonly maxPairs: number;
  /** VIRTIO_NET_CTRL_MAC_ADDR_SET: the new primary address (device/net/79: config mac first). */
  setMac(src: Uint8Array, offset: number): void;
  /** VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET with a checked count. */
  setQueuePairs(n: number): void;
  /** VIRTIO_NET_CTRL_ANNOUNCE_ACK: clear VIRTIO_NET_S_ANNOUNCE (device/net/84). */
  ackAnnounce(): void;
  /** VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET with a checked mask. */
  setGuestOffloads(mask: bigint): void;
  /** RSS and hash-report state (VIRTIO_NET_CTRL_MQ_RSS_CONFIG, _HASH_CONFIG). */
  readonly rss: NetRss;
  /** Notification coalescing state (VIRTIO_NET_CTRL_NOTF_COAL). */
  readonly coalescing: NetCoalescing;
  /** Whether data queue `index` is an enabled receive or transmit queue (device/net/104). */
  isDataQueueEnabled(index: number): boolean;
}

/**
 * Bytes of command-specific-result the device may write after the ack: the largest STATS_GET
 * reply (VQ_GET's struct virtio_net_ctrl_coal and STATS_QUERY's capabilities are 8).
 */
export const NET_CTRL_MAX_REPLY = Math.max(8, netStatsMaxReply(NET_CTRL_MAX_COMMAND));

function u16(b: Uint8Array, o: number, le: boolean): number {
  return le ? b[o]! | (b[o + 1]! << 8) : (b[o]! << 8) | b[o + 1]!;
}
function u32(b: Uint8Array, o: number, le: boolean): number {
  return le ? (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0 : ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

/**
 * Executes the command in `cmd[0 .. len)` (class, command, data) and returns the ack. The
 * guest's byte order applies to multi-byte fields (legacy interface: 5.1.6.5.3, 5.1.6.5.5 legacy).
 */
export function executeNetControl(t: NetControlTarget, cmd: Uint8Array, len: number): number {
  t.replyLength = 0;
  t.replyTruncates = false;
  if (len < 2) return NetCtrlAck.ERR;
  const cls = cmd[0]!;
  const op = cmd[1]!;
  const n = len - 2; // payload bytes, from offset 2
  const f = t.features;
  const le = t.littleEndian;
  const ok = (b: boolean): number => (b ? NetCtrlAck.OK : NetCtrlAck.ERR);
  switch (cls) {
    case NetCtrlClass.RX: {
      if ((f & NetF.CTRL_RX) === 0n || n !== 1) return NetCtrlAck.ERR;
      const on = cmd[2] !== 0;
      const fl = t.filter;
      // device/net/64: PROMISC and ALLMULTI with CTRL_RX; device/net/68: the rest with CTRL_RX_EXTRA.
      if (op === NetCtrlRx.PROMISC) fl.promisc = on;
      else if (op === NetCtrlRx.ALLMULTI) fl.allMulti = on;
      else if ((f & NetF.CTRL_RX_EXTRA) === 0n) return NetCtrlAck.ERR;
      else if (op === NetCtrlRx.ALLUNI) fl.allUni = on;
      else if (op === NetCtrlRx.NOMULTI) fl.noMulti = on;
      else if (op === NetCtrlRx.NOUNI) fl.noUni = on;
      else if (op === NetCtrlRx.NOBCAST) fl.noBcast = on;
      else return NetCtrlAck.ERR;
      return NetCtrlAck.OK;
    }
    case NetCtrlClass.MAC:
      if (op === NetCtrlMac.ADDR_SET) {
        if ((f & NetF.CTRL_MAC_ADDR) === 0n || n !== 6) return NetCtrlAck.ERR;
        t.setMac(cmd, 2);
        return NetCtrlAck.OK;
      }
      if (op === NetCtrlMac.TABLE_SET) {
        if ((f & NetF.CTRL_RX) === 0n) return NetCtrlAck.ERR;
        return ok(setMacTables(t.filter, cmd, len, le));
      }
      return NetCtrlAck.ERR;
    case NetCtrlClass.VLAN: {
      if ((f & NetF.CTRL_VLAN) === 0n || n !== 2 || (op !== NetCtrlVlan.ADD && op !== NetCtrlVlan.DEL)) return NetCtrlAck.ERR;
      const vid = u16(cmd, 2, le); // device/net/83: guest-native with the legacy interface
      if (vid >= NET_VLAN_IDS) return NetCtrlAck.ERR;
      t.filter.setVlan(vid, op === NetCtrlVlan.ADD);
      return NetCtrlAck.OK;
    }
    case NetCtrlClass.ANNOUNCE:
      if ((f & NetF.GUEST_ANNOUNCE) === 0n || op !== NetCtrlAnnounce.ACK || n !== 0) return NetCtrlAck.ERR;
      t.ackAnnounce();
      return NetCtrlAck.OK;
    case NetCtrlClass.MQ:
      return executeMq(t, op, cmd, len, f, le);
    case NetCtrlClass.GUEST_OFFLOADS: {
      if ((f & NetF.CTRL_GUEST_OFFLOADS) === 0n || op !== NetCtrlGuestOffloads.SET || n !== 8) return NetCtrlAck.ERR;
      const lo = u32(cmd, 2, le);
      const hi = u32(cmd, 6, le);
      const mask = le ? (BigInt(hi) << 32n) | BigInt(lo) : (BigInt(lo) << 32n) | BigInt(hi);
      // 5.1.6.5.6.1: only receive offloads that were negotiated may be enabled.
      if ((mask & ~(f & NET_GUEST_OFFLOADS)) !== 0n) return NetCtrlAck.ERR;
      t.setGuestOffloads(mask);
      return NetCtrlAck.OK;
    }
    case NetCtrlClass.NOTF_COAL:
      return executeNotfCoal(t, op, cmd, len, f, le);
    case NetCtrlClass.HASH_TUNNEL:
      // 5.1.6.4.3 Inner Header Hash: SET with a le32 enabled_tunnel_types (HASH_TUNNEL).
      if ((f & NetF.HASH_TUNNEL) === 0n || op !== NetCtrlHashTunnel.SET) return NetCtrlAck.ERR;
      return ok(t.rss.setHashTunnel(cmd, 2, len, le));
    case NetCtrlClass.STATS:
      return executeNetStats(t, op, cmd, len);
    default:
      return NetCtrlAck.ERR;
  }
}

/** 5.1.6.5.5 VIRTIO_NET_CTRL_MQ: VQ_PAIRS_SET (MQ), RSS_CONFIG (RSS), HASH_CONFIG (HASH_REPORT). */
function executeMq(t: NetControlTarget, op: number, cmd: Uint8Array, len: number, f: bigint, le: boolean): number {
  const n = len - 2;
  if (op === NetCtrlMq.VQ_PAIRS_SET) {
    if ((f & NetF.MQ) === 0n || n !== 2) return NetCtrlAck.ERR;
    const pairs = u16(cmd, 2, le); // device/net/95: guest-native with the legacy interface
    if (pairs < NET_MQ_PAIRS_MIN || pairs > t.maxPairs) return NetCtrlAck.ERR;
    t.rss.steering = false; // automatic steering again
    t.setQueuePairs(pairs);
    return NetCtrlAck.OK;
  }
  if (op === NetCtrlMq.RSS_CONFIG) {
    if ((f & NetF.RSS) === 0n) return NetCtrlAck.ERR;
    const maxTx = t.rss.setRssConfig(cmd, 2, len, le, t.maxPairs);
    if (maxTx < 0) return NetCtrlAck.ERR;
    t.setQueuePairs(maxTx);
    return NetCtrlAck.OK;
  }
  if (op === NetCtrlMq.HASH_CONFIG) {
    if ((f & NetF.HASH_REPORT) === 0n) return NetCtrlAck.ERR;
    return t.rss.setHashConfig(cmd, 2, len, le) ? NetCtrlAck.OK : NetCtrlAck.ERR;
  }
  return NetCtrlAck.ERR;
}

/**
 * 5.1.6.5.9 VIRTIO_NET_CTRL_NOTF_COAL: TX_SET / RX_SET (NOTF_COAL; struct virtio_net_ctrl_coal,
 * le32 max_packets, le32 max_usecs), VQ_SET / VQ_GET (VQ_NOTF_COAL; le16 vq_index, le16
 * reserved ignored (device/net/101), then the parameters, or for GET the parameters written as
 * command-specific-result). A vq_index that is not an enabled data queue: VIRTIO_NET_ERR
 * (device/net/104).
 */
function executeNotfCoal(t: NetControlTarget, op: number, cmd: Uint8Array, len: number, f: bigint, le: boolean): number {
  const n = len - 2;
  const c = t.coalescing;
  if (op === NetCtrlNotfCoal.TX_SET || op === NetCtrlNotfCoal.RX_SET) {
    if ((f & NetF.NOTF_COAL) === 0n || n !== 8) return NetCtrlAck.ERR;
    c.setClass(op === NetCtrlNotfCoal.TX_SET, u32(cmd, 2, le), u32(cmd, 6, le));
    return NetCtrlAck.OK;
  }
  if (op === NetCtrlNotfCoal.VQ_SET || op === NetCtrlNotfCoal.VQ_GET) {
    if ((f & NetF.VQ_NOTF_COAL) === 0n || n !== (op === NetCtrlNotfCoal.VQ_SET ? 12 : 4)) return NetCtrlAck.ERR;
    const vq = u16(cmd, 2, le);
    if (!t.isDataQueueEnabled(vq)) return NetCtrlAck.ERR;
    if (op === NetCtrlNotfCoal.VQ_SET) {
      c.set(vq, u32(cmd, 6, le), u32(cmd, 10, le));
      return NetCtrlAck.OK;
    }
    const p = c.get(vq);
    put32(t.reply, 0, p.maxPackets, le);
    put32(t.reply, 4, p.maxUsecs, le);
    t.replyLength = 8;
    return NetCtrlAck.OK;
  }
  return NetCtrlAck.ERR;
}

function put32(b: Uint8Array, o: number, v: number, le: boolean): void {
  for (let k = 0; k < 4; k++) b[o + (le ? k : 3 - k)] = (v >>> (8 * k)) & 0xff;
}

/**
 * VIRTIO_NET_CTRL_MAC_TABLE_SET: two struct virtio_net_ctrl_mac (le32 entries, macs[entries][6]),
 * unicast then multicast, exactly filling the payload. The tables change only when both parse
 * (device/net/78: updated before the command is used).
 */
function setMacTables(fl: RxFilter, cmd: Uint8Array, len: number, le: boolean): boolean {
  let at = 2;
  if (at + 4 > len) return false;
  const ucN = u32(cmd, at, le);
  at += 4;
  if (ucN > (len - at) / 6) return false;
  const ucAt = at;
  at += ucN * 6;
  if (at + 4 > len) return false;
  const mcN = u32(cmd, at, le);
  at += 4;
  if (mcN * 6 !== len - at) return false;
  const mcAt = at;
  fl.ucOverflow = ucN > MAC_TABLE_ENTRIES;
  fl.ucCount = fl.ucOverflow ? 0 : ucN;
  for (let i = 0; i < fl.ucCount; i++) fl.uc[i] = macKey(cmd, ucAt + 6 * i);
  fl.mcOverflow = mcN > MAC_TABLE_ENTRIES;
  fl.mcCount = fl.mcOverflow ? 0 : mcN;
  for (let i = 0; i < fl.mcCount; i++) fl.mc[i] = macKey(cmd, mcAt + 6 * i);
  return true;
}
