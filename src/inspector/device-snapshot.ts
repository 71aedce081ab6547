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

export interface FeatureBitView {
  readonly bit: number;
  readonly name: string;
  readonly offered: boolean;
  readonly negotiated: boolean;
}

export interface ChainSummary {
  readonly id: number;
  readonly segments: number;
  readonly readableBytes: number;
  readonly writableBytes: number;
}

export interface QueueSnapshot {
  readonly index: number;
  readonly size: number;
  readonly layout: 'split' | 'packed' | null;
  /** vhost-user: the ring was started (SET_VRING_KICK) and enabled; else: the queue is enabled. */
  readonly started: boolean;
  readonly enabled: boolean;
  readonly addresses: { readonly desc: string; readonly driver: string; readonly device: string } | null;
  /** The device's own position (null: no live queue). */
  readonly device: (QueuePeek['position'] & { readonly inFlight: number; readonly notifyEnabled: boolean }) | null;
  /** The ring as guest memory holds it (null: no live queue). */
  readonly ring: RingView | null;
  readonly suppression: SuppressionView | null;
  readonly chains: readonly ChainSummary[] | null;
  /** Why the ring is broken (a driver error), or null. */
  readonly broken: string | null;
  readonly counters: QueueCounters | null;
}

export interface DeviceSnapshot {
  readonly name: string;
  /** Whether there is a device core to show (a front-end is connected). */
  readonly connected: boolean;
  readonly deviceId: number | null;
  readonly deviceType: string | null;
  readonly status: { readonly value: number; readonly bits: { name: string; value: number; set: boolean }[] } | null;
  readonly needsReset: string | null;
  readonly active: boolean;
  readonly features: { readonly offered: string; readonly negotiated: string; readonly bits: readonly FeatureBitView[] } | null;
  readonly protocolFeatures: { readonly offered: string; readonly negotiated: string; readonly bits: readonly FeatureBitView[] } | null;
  /** vhost-user requests refused so far and the last refusal. */
  readonly refusals: { readonly count: number; readonly last: string | null } | null;
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
