/**
 * Packed virtqueue placement (2.8): where the three parts go for a queue size, the checks both
 * sides run on a QueueConfig before touching the ring, and the event suppression arithmetic
 * (2.8.10) shared by the device and the driver side.
 */
import { ErrorCode, VirtioError } from '../errors.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import { F } from '../spec/features.js';
import { MAX_QUEUE_SIZE, PackedEvent, PackedLayout, needEvent } from '../spec/ring.js';
import { type ResolvedArea, resolveArea } from './split-layout.js';
import type { QueueConfig } from './types.js';

/** Guest addresses of one packed ring and the bytes it spans from `descAddr`. */
export interface PackedRingAddresses {
  /** Queue size. */
  readonly size: number;
  /** Guest address of the descriptor ring (16 bytes per entry, 2.8.13). */
  readonly descAddr: number;
  /** Driver Event Suppression area (written by the driver, read by the device). */
  readonly driverAddr: number;
  /** Device Event Suppression area (written by the device, read by the driver). */
  readonly deviceAddr: number;
  /** Bytes from descAddr to the end of the device area. */
  readonly total: number;
}

/** 2.8: packed queues hold up to 2^15 entries and need not be a power of two. */
export function checkPackedSize(size: number): void {
  if (!Number.isInteger(size) || size <= 0 || size > MAX_QUEUE_SIZE) {
    throw new VirtioError(ErrorCode.QUEUE_BAD_CONFIG, `packed queue size ${size} is not in 1..${MAX_QUEUE_SIZE}`);
  }
}

/**
 * 2.8.10.1 Structure Size and Alignment: the descriptor ring at `base` (16-aligned), the driver
 * event suppression area right after it and the device area after that (both 4-aligned, 4 bytes).
 */
export function packedRingLayout(size: number, base: number): PackedRingAddresses {
  checkPackedSize(size);
  if (!Number.isSafeInteger(base) || base < 0 || base % PackedLayout.DESC_ALIGN !== 0) {
    throw new VirtioError(ErrorCode.QUEUE_BAD_CONFIG, `ring base 0x${base.toString(16)} is not 16-aligned`);
  }
  const descAddr = base;
  const driverAddr = descAddr + PackedLayout.descRingSize(size);
  const deviceAddr = driverAddr + PackedEvent.SIZE;
  return { size, descAddr, driverAddr, deviceAddr, total: deviceAddr + PackedEvent.SIZE - base };
}


/** A validated packed QueueConfig with its booleans derived once (no BigInt afterwards). */
export interface ResolvedPackedConfig {
  readonly size: number;
  readonly index: number;
  readonly littleEndian: boolean;
  readonly indirect: boolean;
  readonly eventIdx: boolean;
  readonly inOrder: boolean;
  readonly notificationData: boolean;
  readonly desc: ResolvedArea;
  /** Driver Event Suppression. */
  readonly driver: ResolvedArea;
  /** Device Event Suppression. */
  readonly device: ResolvedArea;
}

/**
 * Checks a packed ring config (RING_PACKED negotiated, size 1..32768, parts aligned as the
 * 2.8.10.1 table says, each inside one region: driver/packed-ring/1) and resolves its parts.
 * Throws QUEUE_BAD_CONFIG.
 */
export function resolvePackedConfig(memory: GuestMemory, config: QueueConfig): ResolvedPackedConfig {
  checkPackedSize(config.size);
  const f = config.features;
  if (typeof f !== 'bigint') throw new VirtioError(ErrorCode.QUEUE_BAD_CONFIG, 'features must be a bigint');
  if ((f & F.RING_PACKED) === 0n) throw new VirtioError(ErrorCode.QUEUE_BAD_CONFIG, 'RING_PACKED not negotiated: not a packed ring');
  const q = config.size;
  const desc = resolveArea(memory, 'descriptor ring', config.descAddr, PackedLayout.descRingSize(q), PackedLayout.DESC_ALIGN);
  const driver = resolveArea(memory, 'driver event suppression area', config.driverAddr, PackedEvent.SIZE, PackedLayout.EVENT_ALIGN);
  const device = resolveArea(memory, 'device event suppression area', config.deviceAddr, PackedEvent.SIZE, PackedLayout.EVENT_ALIGN);
  return {
    size: q,
    index: config.index ?? 0,
    littleEndian: config.littleEndian ?? true,
    indirect: (f & F.INDIRECT_DESC) !== 0n,
    eventIdx: (f & F.EVENT_IDX) !== 0n,
    inOrder: (f & F.IN_ORDER) !== 0n,
    notificationData: (f & F.NOTIFICATION_DATA) !== 0n,
    desc,
    driver,
    device,
  };
}

/** Bit 15 of the event suppression `desc` field: the wrap counter (2.8.14). */
export const EVENT_WRAP_BIT = 0x8000;

/** `desc` field value for position `off` with wrap counter `wrap` (2.8.14 off_wrap). */
export function offWrap(off: number, wrap: boolean): number {
  return (off & 0x7fff) | (wrap ? EVENT_WRAP_BIT : 0);
}

/**
 * 2.8.10 RING_EVENT_FLAGS_DESC: whether the descriptor named by `eventOffWrap` was made
 * available (driver side) or used (device side) by the last `moved` descriptors, which ended at
 * ring position `newPos` with wrap counter `newWrap`. An event with the other wrap counter lies
 * in the previous lap. Same arithmetic as split's vring_need_event, modulo 2^16.
 */
export function packedNeedEvent(eventOffWrap: number, newPos: number, newWrap: boolean, moved: number, size: number): boolean {
  if (moved <= 0) return false;
  if (moved >= size) return true; // every position went by at least once
  let event = eventOffWrap & 0x7fff;
  if ((eventOffWrap & EVENT_WRAP_BIT) !== 0 !== newWrap) event -= size;
  return needEvent(event & 0xffff, newPos, (newPos - moved) & 0xffff);
}
