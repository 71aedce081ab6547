/**
 * Split virtqueue placement (2.7): where the three parts go for a queue size, and the checks
 * both sides run on a QueueConfig before touching the rings.
 */
import { ErrorCode, VirtioError } from '../errors.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import { F } from '../spec/features.js';
import { LEGACY_QUEUE_ALIGN, MAX_QUEUE_SIZE, SplitLayout, legacySplitLayout } from '../spec/ring.js';
import type { QueueConfig } from './types.js';

/** Guest addresses of one split ring and the bytes it spans from `descAddr`. */
export interface SplitRingAddresses {
  /** Queue size (a power of two). */
  readonly size: number;
  /** Guest address of the descriptor table (16 bytes per entry, 2.7.5). */
  readonly descAddr: number;
  /** Guest address of the available ring (2.7.6). */
  readonly driverAddr: number;
  /** Guest address of the used ring (2.7.8). */
  readonly deviceAddr: number;
  /** Bytes from descAddr to the end of the used ring (legacy: including the tail padding). */
  readonly total: number;
}

function alignUp(x: number, a: number): number {
  return Math.ceil(x / a) * a;
}

function checkSize(size: number): void {
  if (!Number.isInteger(size) || size <= 0 || size > MAX_QUEUE_SIZE || (size & (size - 1)) !== 0) {
    throw new VirtioError(ErrorCode.QUEUE_BAD_CONFIG, `split queue size ${size} is not a power of two in 1..${MAX_QUEUE_SIZE}`);
  }
}

/**
 * Modern (1.0+) packing: the descriptor table at `base` (16-aligned), the available ring right
 * after it, the used ring at the next 4-byte boundary (2.7 alignment table).
 */
export function splitRingLayout(size: number, base: number): SplitRingAddresses {
  checkSize(size);
  if (!Number.isSafeInteger(base) || base < 0 || base % SplitLayout.DESC_ALIGN !== 0) {
    throw new VirtioError(ErrorCode.QUEUE_BAD_CONFIG, `ring base 0x${base.toString(16)} is not 16-aligned`);
  }
  const descAddr = base;
  const driverAddr = descAddr + SplitLayout.descTableSize(size);
  const deviceAddr = alignUp(driverAddr + SplitLayout.availSize(size), SplitLayout.USED_ALIGN);
  const total = deviceAddr + SplitLayout.usedSize(size) - base;
  return { size, descAddr, driverAddr, deviceAddr, total };
}

/**
 * 2.7.2 Legacy Interfaces: one contiguous area, the used ring on the next `align` boundary
 * (4096 for PCI and MMIO version 1). `base` must itself be `align`-aligned (it is given as a
 * page frame number).
 */
export function legacySplitRingLayout(size: number, base: number, align = LEGACY_QUEUE_ALIGN): SplitRingAddresses {
  checkSize(size);
  if (!Number.isSafeInteger(base) || base < 0 || align <= 0 || (align & (align - 1)) !== 0 || base % align !== 0) {
    throw new VirtioError(ErrorCode.QUEUE_BAD_CONFIG, `legacy ring base 0x${base.toString(16)} is not ${align}-aligned`);
  }
  const l = legacySplitLayout(size, align);
  return { size, descAddr: base + l.desc, driverAddr: base + l.avail, deviceAddr: base + l.used, total: l.total };
}

/** One ring part resolved to a region: everything the hot path needs, looked up once. */
export interface ResolvedArea {
  readonly region: number;
  /** Offset of the part inside the region's bytes. */
  readonly offset: number;
  readonly bytes: Uint8Array;
  readonly view: DataView;
  /** Atomic 16-bit view of the region, or null when the region or part is not 2-aligned. */
  readonly u16: Uint16Array | null;
}

/** Resolves a ring part at `addr` (aligned, inside one region); throws QUEUE_BAD_CONFIG. Split and packed rings share it. */
export function resolveArea(memory: GuestMemory, what: string, addr: number, len: number, align: number): ResolvedArea {
  if (!Number.isSafeInteger(addr) || addr < 0 || addr % align !== 0) {
    // Number(): a caller outside TypeScript may pass anything; the message must not throw.
    throw new VirtioError(ErrorCode.QUEUE_BAD_CONFIG, `${what} at 0x${Number(addr).toString(16)} is not ${align}-aligned`);
  }
  const region = memory.locate(addr, len);
  if (region < 0) {
    throw new VirtioError(ErrorCode.QUEUE_BAD_CONFIG, `${what} 0x${addr.toString(16)}+${len} is not inside one guest memory region`);
  }
  const offset = addr - memory.baseOf(region);
  const u16 = memory.u16Of(region);
  return {
    region,
    offset,
    bytes: memory.bytesOf(region),
    view: memory.dataViewOf(region),
    u16: u16 && (offset & 1) === 0 ? u16 : null,
  };
}

/** A validated split QueueConfig with its booleans derived once (no BigInt afterwards). */
export interface ResolvedSplitConfig {
  readonly size: number;
  readonly index: number;
  readonly littleEndian: boolean;
  readonly indirect: boolean;
  readonly eventIdx: boolean;
  readonly inOrder: boolean;
  readonly notifyOnEmpty: boolean;
  readonly notificationData: boolean;
  readonly desc: ResolvedArea;
  readonly avail: ResolvedArea;
  readonly used: ResolvedArea;
}

/**
 * Checks a split ring config (size a power of two up to 32768, parts aligned as the 2.7 table
 * says and each inside one region) and resolves its parts. Throws QUEUE_BAD_CONFIG.
 */
export function resolveSplitConfig(memory: GuestMemory, config: QueueConfig): ResolvedSplitConfig {
  checkSize(config.size);
  const f = config.features;
  if (typeof f !== 'bigint') throw new VirtioError(ErrorCode.QUEUE_BAD_CONFIG, 'features must be a bigint');
  if ((f & F.RING_PACKED) !== 0n) {
    throw new VirtioError(ErrorCode.QUEUE_BAD_CONFIG, 'RING_PACKED negotiated: not a split ring');
  }
  const q = config.size;
  const desc = resolveArea(memory, 'descriptor table', config.descAddr, SplitLayout.descTableSize(q), SplitLayout.DESC_ALIGN);
  const avail = resolveArea(memory, 'available ring', config.driverAddr, SplitLayout.availSize(q), SplitLayout.AVAIL_ALIGN);
  const used = resolveArea(memory, 'used ring', config.deviceAddr, SplitLayout.usedSize(q), SplitLayout.USED_ALIGN);
  return {
    size: q,
    index: config.index ?? 0,
    littleEndian: config.littleEndian ?? true,
    indirect: (f & F.INDIRECT_DESC) !== 0n,
    eventIdx: (f & F.EVENT_IDX) !== 0n,
    inOrder: (f & F.IN_ORDER) !== 0n,
    notifyOnEmpty: (f & F.NOTIFY_ON_EMPTY) !== 0n,
    notificationData: (f & F.NOTIFICATION_DATA) !== 0n,
    desc,
    avail,
    used,
  };
}

/** Acquire load of a 16-bit ring field at `off` in a resolved area (2.7.13.3.1). */
export function loadU16Acquire(a: ResolvedArea, off: number, le: boolean): number {
  const at = a.offset + off;
  const u16 = a.u16;
  if (u16 !== null) {
    const v = Atomics.load(u16, at >>> 1);
    return le ? v : ((v & 0xff) << 8) | (v >>> 8);
  }
  // No atomic view: a plain read followed by a full fence keeps later reads after it.
  const v = a.view.getUint16(at, le);
  fullFence();
  return v;
}

/** Release store of a 16-bit ring field at `off` in a resolved area (2.7.8.2 / 2.7.13.3). */
export function storeU16Release(a: ResolvedArea, off: number, v: number, le: boolean): void {
  const at = a.offset + off;
  const u16 = a.u16;
  if (u16 !== null) {
    Atomics.store(u16, at >>> 1, le ? v : ((v & 0xff) << 8) | ((v >>> 8) & 0xff));
    return;
  }
  fullFence();
  a.view.setUint16(at, v, le);
}

const FENCE = new Int32Array(new SharedArrayBuffer(4));

/** Full barrier (the mb() of 2.7.10 / 2.7.13.4): a sequentially consistent RMW. */
export function fullFence(): void {
  Atomics.add(FENCE, 0, 0);
}
