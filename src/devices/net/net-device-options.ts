/** The options, counters and base feature set of NetDevice (net-device.ts). */
import type { Logger } from '../../log.js';
import { NetF } from '../../spec/net.js';

/** Options of NetDevice. */
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
  /** The duplex value of the config (NetDuplex; VIRTIO_NET_F_SPEED_DUPLEX). */
  duplex?: number;
  /**
   * Offer the segmentation offloads (HOST_TSO4/6, HOST_ECN, HOST_UFO, HOST_USO, GUEST_TSO4/6,
   * GUEST_ECN, GUEST_UFO, GUEST_USO4/6, GUEST_HDRLEN). Default true.
   */
  gso?: boolean;
  /** Offer RSC_EXT: TCP segments coalesced on receive (needs `gso`; default true). */
  rsc?: boolean;
  /** Offer RSS and HASH_REPORT (default true). */
  rss?: boolean;
  /** Offer HASH_TUNNEL (inner header hash of encapsulated packets; needs `rss`; default true). */
  hashTunnel?: boolean;
  /** Offer NOTF_COAL and VQ_NOTF_COAL (default true). */
  coalescing?: boolean;
  /** Offer DEVICE_STATS: per-queue statistics over the control queue (default true). */
  deviceStats?: boolean;
  /**
   * Offer VIRTIO_F_IN_ORDER (2.7.9 / 2.8.8; default false): every queue uses its buffers in the
   * order they were made available, and a pass's transmit chains go back as one used entry.
   * Off by default: against DPDK's testpmd it measured no faster with split rings and slower
   * with packed ones (bench/README.md, session 15).
   */
  inOrder?: boolean;
  /**
   * Feature bits not to offer (e.g. from `virtio-ts net --no-offload`); features that depend on
   * a removed one (5.1.3.1) go with it (`withoutDependents`).
   */
  withoutFeatures?: bigint;
  /** For logs and the switch's counters. */
  name?: string;
  /** Where the device logs; silent by default. */
  logger?: Logger;
}

/** What the device counted since it was made. */
export interface NetDeviceStats {
  /** Frames the driver transmitted that were accepted (a GSO packet counts once). */
  txFrames: number;
  /** Bytes of those frames, without the virtio-net header. */
  txBytes: number;
  /** Transmit chains dropped as malformed (short, oversized, GSO/checksum offload not allowed or malformed, unmapped). */
  txErrors: number;
  /** GSO frames among txFrames (sent whole to the switch). */
  txGso: number;
  /** Frames transmitted while the link was down or unconnected. */
  txDropped: number;
  /** Frames delivered to the driver's receive buffers. */
  rxFrames: number;
  /** Bytes of those frames, without the virtio-net header. */
  rxBytes: number;
  /** Frames the receive filter refused. */
  rxFiltered: number;
  /** Frames dropped for want of receive buffers (or with the link down, or no receive queue). */
  rxNoBuffer: number;
  /** Frames dropped as too large for the MTU, with checksum offsets outside the frame, or GSO frames that could not be segmented. */
  rxErrors: number;
  /** GSO frames passed whole to the driver, and GSO frames segmented for it. */
  rxGsoWhole: number;
  /** GSO packets segmented in software because the driver did not negotiate the matching GUEST_* offload. */
  rxGsoSegmented: number;
  /** Frames dropped because RSS steered them to a queue being reset (device/net/98). */
  rxSteeredToStopped: number;
  /** Receive buffers too small for a frame without MRG_RXBUF: returned with nothing written. */
  rxShortBuffers: number;
  /** RSC_EXT: frames the device coalesced from two or more segments (or with duplicated ACKs). */
  rxRscFrames: number;
  /** Control commands answered OK and ERR. */
  ctrlOk: number;
  /** Control commands answered VIRTIO_NET_ERR (unknown, not negotiated, or malformed). */
  ctrlErr: number;
}

/** Every counter at zero. */
export function newNetDeviceStats(): NetDeviceStats {
  return {
    txFrames: 0,
    txBytes: 0,
    txErrors: 0,
    txGso: 0,
    txDropped: 0,
    rxFrames: 0,
    rxBytes: 0,
    rxFiltered: 0,
    rxNoBuffer: 0,
    rxErrors: 0,
    rxGsoWhole: 0,
    rxGsoSegmented: 0,
    rxSteeredToStopped: 0,
    rxShortBuffers: 0,
    rxRscFrames: 0,
    ctrlOk: 0,
    ctrlErr: 0,
  };
}

/** The MAC a net device reports when none is given: 02:76:74:00:00:01 (locally administered, "vt"). */
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

/** 5.1.3.1 Feature bit requirements: each feature and the features one of which it needs. */
const NET_FEATURE_NEEDS: readonly (readonly [bigint, bigint])[] = [
  [NetF.GUEST_TSO4, NetF.GUEST_CSUM],
  [NetF.GUEST_TSO6, NetF.GUEST_CSUM],
  [NetF.GUEST_UFO, NetF.GUEST_CSUM],
  [NetF.GUEST_USO4, NetF.GUEST_CSUM],
  [NetF.GUEST_USO6, NetF.GUEST_CSUM],
  [NetF.GUEST_ECN, NetF.GUEST_TSO4 | NetF.GUEST_TSO6],
  [NetF.HOST_TSO4, NetF.CSUM],
  [NetF.HOST_TSO6, NetF.CSUM],
  [NetF.HOST_UFO, NetF.CSUM],
  [NetF.HOST_USO, NetF.CSUM],
  [NetF.HOST_ECN, NetF.HOST_TSO4 | NetF.HOST_TSO6],
  // RSC_EXT: the feature list asks for HOST_TSO4/6, the receive text for GUEST_TSO4/6 (what it coalesces into).
  [NetF.RSC_EXT, NetF.HOST_TSO4 | NetF.HOST_TSO6],
  [NetF.RSC_EXT, NetF.GUEST_TSO4 | NetF.GUEST_TSO6],
  [NetF.HASH_REPORT, NetF.CTRL_VQ],
  [NetF.HASH_TUNNEL, NetF.CTRL_VQ],
  [NetF.HASH_TUNNEL, NetF.RSS | NetF.HASH_REPORT],
  [NetF.RSS, NetF.CTRL_VQ],
  [NetF.CTRL_RX, NetF.CTRL_VQ],
  [NetF.CTRL_RX_EXTRA, NetF.CTRL_VQ],
  [NetF.CTRL_VLAN, NetF.CTRL_VQ],
  [NetF.GUEST_ANNOUNCE, NetF.CTRL_VQ],
  [NetF.CTRL_MAC_ADDR, NetF.CTRL_VQ],
  [NetF.CTRL_GUEST_OFFLOADS, NetF.CTRL_VQ],
  [NetF.NOTF_COAL, NetF.CTRL_VQ],
  [NetF.VQ_NOTF_COAL, NetF.CTRL_VQ],
  [NetF.DEVICE_STATS, NetF.CTRL_VQ], // its commands go over the control queue
];

/** `offered` without `removed` and without every feature left lacking what it needs. */
export function withoutDependents(offered: bigint, removed: bigint): bigint {
  let f = offered & ~removed;
  for (let changed = true; changed; ) {
    changed = false;
    for (const [feature, needs] of NET_FEATURE_NEEDS) {
      if ((f & feature) !== 0n && (f & needs) === 0n) {
        f &= ~feature;
        changed = true;
      }
    }
  }
  return f;
}
