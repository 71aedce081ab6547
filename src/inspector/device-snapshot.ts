/**
 * One device as the inspector shows it, as plain JSON: its status bits and NEEDS_RESET reason
 * (2.1), offered and negotiated features by name (2.2), and per queue the size, addresses,
 * the device's position (last_avail, next used, wrap counters), the ring's indices and event
 * suppression read from guest memory, the chains in flight and the QueueStats counters. Taking a
 * snapshot changes nothing: the queues are peeked (QueuePeek), guest memory is only read, and an
 * unmapped field reads as null.
 */
import type { DeviceCore } from '../device/device-core.js';
import { queueServerOf } from '../device/queue-server.js';
import type { QueueCounters, QueueStats } from '../device/queue-stats.js';
import type { DescriptorChain } from '../queue/chain.js';
import { PackedQueue } from '../queue/packed-queue.js';
import { SplitQueue } from '../queue/split-queue.js';
import type { DeviceQueue, QueueConfig, QueuePeek } from '../queue/types.js';
import { deviceIdName } from '../spec/device-id.js';
import { F } from '../spec/features.js';
import type { VhostUserBackend } from '../vhost-user/backend.js';
import { VhostQueue } from '../vhost-user/vhost-queue.js';
import { featureBitName, namedBits, protocolFeatureName, statusBits } from './feature-names.js';
import { type ChainDetail, type RingView, type SuppressionView, chainSegments, hex, readRing, readSplitChain, suppression } from './ring-peek.js';

/** Most in-flight chains listed per queue (the count is always exact). */
export const MAX_CHAINS_LISTED = 256;

/** A device the inspector watches. */
export interface InspectedDevice {
  /** Its label (`blk`; `net0`, `net1` for net's ports), unique within an inspector. */
  readonly name: string;
  /** Its counters (kept across connections), for the queue figures and the plots. */
  readonly stats?: QueueStats;
  /** The device core now (null while there is none, e.g. between vhost-user front-ends). */
  readonly core?: () => DeviceCore | null;
  /** vhost-user: the current connection's back-end (its core, rings and protocol state). */
  readonly backend?: () => VhostUserBackend | null;
}

/** One feature bit (2.2) or vhost-user protocol feature bit that was offered or negotiated. */
export interface FeatureBitView {
  /** The bit number (0..63). */
  readonly bit: number;
  /** The bit's name in the code's spec tables (for device features those of 6 and of the device type's 5.x), or `bit N` when it has none. */
  readonly name: string;
  /** Whether the device (or vhost-user back-end) offers the bit. */
  readonly offered: boolean;
  /** Whether the bit was negotiated (accepted by the driver or front-end). */
  readonly negotiated: boolean;
}

/** One descriptor chain in flight on a queue, in short; {@link chainDetail} gives its descriptors. */
export interface ChainSummary {
  /** The chain's id: split, its head descriptor's index; packed, the buffer id. */
  readonly id: number;
  /** Segments (descriptors, indirect ones expanded) in the chain. */
  readonly segments: number;
  /** Total bytes of its device-readable segments (what the driver sent). */
  readonly readableBytes: number;
  /** Total bytes of its device-writable segments (room for the device's answer). */
  readonly writableBytes: number;
}

/** One virtqueue of a {@link DeviceSnapshot}. Fields read from a ring are null when the queue is not live. */
export interface QueueSnapshot {
  /** The queue's index in the device. */
  readonly index: number;
  /** Queue size in descriptors (0 when the queue was never set up). */
  readonly size: number;
  /** Split (2.7) or packed (2.8) virtqueue; null when the queue is not live. */
  readonly layout: 'split' | 'packed' | null;
  /** vhost-user: the ring was started (SET_VRING_KICK) and enabled; else: the queue is enabled. */
  readonly started: boolean;
  /** The queue is enabled: by the transport's queue enable (PCI queue_enable, MMIO QueueReady) or, for vhost-user, SET_VRING_ENABLE. */
  readonly enabled: boolean;
  /** The ring's guest addresses as hex; null when the queue was never set up. */
  readonly addresses: {
    /** The descriptor table (Descriptor Area). */
    readonly desc: string;
    /** The available ring (split) or driver event suppression structure (packed): the Driver Area. */
    readonly driver: string;
    /** The used ring (split) or device event suppression structure (packed): the Device Area. */
    readonly device: string;
  } | null;
  /** The device's own position (null: no live queue). */
  readonly device:
    | (QueuePeek['position'] & {
        /** Buffers the device popped and has not returned yet. */
        readonly inFlight: number;
        /** Whether the device currently asks for available-buffer notifications (2.7.10 / 2.8.10). */
        readonly notifyEnabled: boolean;
      })
    | null;
  /** The ring as guest memory holds it (null: no live queue). */
  readonly ring: RingView | null;
  /** What each side asked about notifications, derived from `ring` (null: no live queue). */
  readonly suppression: SuppressionView | null;
  /** The chains in flight, at most MAX_CHAINS_LISTED (256); null when the device has no queue server. */
  readonly chains: readonly ChainSummary[] | null;
  /** Why the ring is broken (a driver error), or null. */
  readonly broken: string | null;
  /** The queue's QueueStats counters (kicks, calls, requests, bytes, ...); null when the device keeps none. */
  readonly counters: QueueCounters | null;
}

/**
 * One watched device as the inspector shows it (see the module description). The fields of the
 * device core are null while there is none (`connected` false).
 */
export interface DeviceSnapshot {
  /** The device's label ({@link InspectedDevice.name}). */
  readonly name: string;
  /** Whether there is a device core to show (a front-end is connected). */
  readonly connected: boolean;
  /** The virtio device ID (chapter 5, Device Types: 1 network, 2 block, ...). */
  readonly deviceId: number | null;
  /** The device ID's name (`NETWORK`, `BLOCK`, ...; `UNKNOWN(n)` for others). */
  readonly deviceType: string | null;
  /** The device status field (2.1). */
  readonly status: {
    /** The status byte. */
    readonly value: number;
    /** Every status bit, in bit order, with whether it is set. */
    readonly bits: {
      /** The bit's name (ACKNOWLEDGE, DRIVER, DRIVER_OK, FEATURES_OK, DEVICE_NEEDS_RESET, FAILED). */
      name: string;
      /** The bit's mask in the status byte. */
      value: number;
      /** Whether `value` of the status has it. */
      set: boolean;
    }[];
  } | null;
  /** Why DEVICE_NEEDS_RESET was set, or null when it is not set. */
  readonly needsReset: string | null;
  /** The device was activated (DRIVER_OK accepted) and not reset since. */
  readonly active: boolean;
  /** The device feature bits (2.2). */
  readonly features: {
    /** The bits the device offers, as hex (`0x...`). */
    readonly offered: string;
    /** The bits negotiated, as hex (`0x0` before FEATURES_OK). */
    readonly negotiated: string;
    /** Each bit offered or negotiated, by name. */
    readonly bits: readonly FeatureBitView[];
  } | null;
  /** vhost-user protocol features (GET/SET_PROTOCOL_FEATURES); null for other transports. */
  readonly protocolFeatures: {
    /** The protocol features the back-end offers, as hex (`0x...`). */
    readonly offered: string;
    /** The protocol features the front-end set, as hex. */
    readonly negotiated: string;
    /** Each protocol feature bit offered or negotiated, by name. */
    readonly bits: readonly FeatureBitView[];
  } | null;
  /** vhost-user requests refused so far and the last refusal. */
  readonly refusals: {
    /** Requests refused since the front-end connected. */
    readonly count: number;
    /** The last refusal's message, or null when there was none. */
    readonly last: string | null;
  } | null;
  /** Each virtqueue of the device (without a device core: only the queues with counters). */
  readonly queues: readonly QueueSnapshot[];
}

function bitsOf(offered: bigint, negotiated: bigint, name: (n: number) => string): FeatureBitView[] {
  return namedBits(offered | negotiated, name).map(({ bit, name: n }) => ({
    bit,
    name: n,
    offered: ((offered >> BigInt(bit)) & 1n) === 1n,
    negotiated: ((negotiated >> BigInt(bit)) & 1n) === 1n,
  }));
}

/** The split or packed queue under a vhost-user wrapper, peeked; null for other queue kinds. */
function peekQueue(q: DeviceQueue): QueuePeek | null {
  const inner = q instanceof VhostQueue ? q.inner : q;
  return inner instanceof SplitQueue || inner instanceof PackedQueue ? inner.peek() : null;
}

/** The live queues of a device: vhost-user's started rings, or the core's enabled queues. */
function liveQueue(core: DeviceCore, backend: VhostUserBackend | null, i: number): DeviceQueue | null {
  return backend ? backend.ringQueue(i) : core.queue(i);
}

function chainsInFlight(core: DeviceCore, i: number): DescriptorChain[] | null {
  const ctx = core.activeContext;
  const server = ctx ? queueServerOf(ctx) : null;
  return server ? server.inFlightChains(i) : null;
}

function queueSnapshot(core: DeviceCore, backend: VhostUserBackend | null, i: number, counters: QueueCounters | null): QueueSnapshot {
  const q = liveQueue(core, backend, i);
  const peek = q ? peekQueue(q) : null;
  const regs = core.queueRegisters(i);
  const info = backend?.ringInfo(i) ?? null;
  const config: QueueConfig | null = peek?.config ?? null;
  const ring = peek && q ? readRing(q.memory, peek.config, peek) : null;
  const chains = chainsInFlight(core, i);
  const addresses = config
    ? { desc: hex(config.descAddr), driver: hex(config.driverAddr), device: hex(config.deviceAddr) }
    : !backend && regs && regs.size > 0
      ? { desc: hex(regs.descAddr), driver: hex(regs.driverAddr), device: hex(regs.deviceAddr) }
      : null;
  return {
    index: i,
    size: config?.size ?? info?.num ?? regs?.size ?? 0,
    layout: config ? ((config.features & F.RING_PACKED) !== 0n ? 'packed' : 'split') : null,
    started: info ? info.started : q !== null,
    enabled: info ? info.enabled : (regs?.enabled ?? false),
    addresses,
    device: peek ? { ...peek.position, inFlight: peek.inFlight, notifyEnabled: peek.notifyEnabled } : null,
    ring,
    suppression: ring && config ? suppression(ring, config) : null,
    chains: chains
      ? chains.slice(0, MAX_CHAINS_LISTED).map((c) => ({ id: c.id, segments: c.count, readableBytes: c.readableBytes, writableBytes: c.writableBytes }))
      : null,
    broken: info?.broken?.message ?? q?.broken?.message ?? null,
    counters,
  };
}

/** The device's snapshot now. */
export function snapshotDevice(d: InspectedDevice): DeviceSnapshot {
  const backend = d.backend?.() ?? null;
  const core = backend && !backend.closed ? backend.core : backend ? null : (d.core?.() ?? null);
  const counters = d.stats?.snapshot() ?? [];
  if (core === null) {
    return {
      name: d.name,
      connected: false,
      deviceId: null,
      deviceType: null,
      status: null,
      needsReset: null,
      active: false,
      features: null,
      protocolFeatures: null,
      refusals: null,
      queues: counters.map((c) => ({
        index: c.queue,
        size: 0,
        layout: null,
        started: false,
        enabled: false,
        addresses: null,
        device: null,
        ring: null,
        suppression: null,
        chains: null,
        broken: null,
        counters: c,
      })),
    };
  }
  const deviceId = core.device.deviceId;
  const offered = backend ? backend.offeredFeatures : core.deviceFeatures();
  const negotiated = backend ? backend.features : core.negotiatedFeatures;
  const numQueues = backend ? backend.numQueues : core.numQueues;
  const queues: QueueSnapshot[] = [];
  for (let i = 0; i < numQueues; i++) queues.push(queueSnapshot(core, backend, i, counters[i] ?? null));
  return {
    name: d.name,
    connected: true,
    deviceId,
    deviceType: deviceIdName(deviceId),
    status: { value: core.status, bits: statusBits(core.status) },
    needsReset: core.needsResetReason,
    active: core.active,
    features: { offered: hex0(offered), negotiated: hex0(negotiated), bits: bitsOf(offered, negotiated, (n) => featureBitName(deviceId, n)) },
    protocolFeatures: backend
      ? {
          offered: hex0(backend.offeredProtocolFeatures),
          negotiated: hex0(backend.protocolFeatures),
          bits: bitsOf(backend.offeredProtocolFeatures, backend.protocolFeatures, protocolFeatureName),
        }
      : null,
    refusals: backend ? { count: backend.errorCount, last: backend.lastError?.message ?? null } : null,
    queues,
  };
}

function hex0(v: bigint): string {
  return `0x${v.toString(16)}`;
}

/**
 * The descriptors of the chain with `id` in flight on queue `index`: read from the split
 * descriptor table in guest memory, or the popped chain's segments for a packed ring. Null when
 * no such chain is in flight (it completed meanwhile) or the device has no queue server.
 */
export function chainDetail(d: InspectedDevice, index: number, id: number): ChainDetail | null {
  const backend = d.backend?.() ?? null;
  const core = backend && !backend.closed ? backend.core : backend ? null : (d.core?.() ?? null);
  if (core === null) return null;
  const chain = chainsInFlight(core, index)?.find((c) => c.id === id);
  if (!chain) return null;
  const q = liveQueue(core, backend, index);
  const peek = q ? peekQueue(q) : null;
  if (q && peek && (peek.config.features & F.RING_PACKED) === 0n) return readSplitChain(q.memory, peek.config, id);
  return chainSegments(chain);
}
