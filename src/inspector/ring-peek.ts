/**
 * Read-only looks into a ring in guest memory for the inspector: the indices and flags the
 * driver and the device published (split 2.7, packed 2.8), what they mean for notification
 * suppression (2.7.7, 2.7.10, 2.8.10), and one chain's descriptors. Nothing here writes, and
 * nothing throws on a bad guest address: a field outside mapped memory reads as null
 * ("unmapped"). Walks are bounded by the queue size, so a looping chain cannot hang it.
 */
import type { GuestMemory } from '../memory/guest-memory.js';
import type { DescriptorChain } from '../queue/chain.js';
import type { QueueConfig, QueuePeek } from '../queue/types.js';
import { F } from '../spec/features.js';
import { DESC_SIZE, DescFlag, PackedEvent, PackedLayout, SplitLayout, VIRTQ_AVAIL_F_NO_INTERRUPT, VIRTQ_USED_F_NO_NOTIFY } from '../spec/ring.js';

/** Most entries of one indirect table shown (a driver may point at a huge one). */
export const MAX_INDIRECT_SHOWN = 1024;

/** A u16 at `addr`, or null when it is not in mapped guest memory. */
export function peekU16(memory: GuestMemory, addr: number, le: boolean): number | null {
  try {
    return memory.isMapped(addr, 2) ? memory.readU16(addr, le) : null;
  } catch {
    return null;
  }
}

function peekU32(memory: GuestMemory, addr: number, le: boolean): number | null {
  try {
    return memory.isMapped(addr, 4) ? memory.readU32(addr, le) : null;
  } catch {
    return null;
  }
}

function peekU64Hex(memory: GuestMemory, addr: number, le: boolean): string | null {
  try {
    return memory.isMapped(addr, 8) ? `0x${memory.readU64(addr, le).toString(16)}` : null;
  } catch {
    return null;
  }
}

export function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

/** The split ring fields in guest memory (null: unmapped). */
export interface SplitRingView {
  /** Discriminates the {@link RingView} union: a split virtqueue (2.7). */
  readonly layout: 'split';
  /** The available ring's flags (2.7.6): VIRTQ_AVAIL_F_NO_INTERRUPT (1) asks for no used-buffer notifications; ignored with EVENT_IDX. */
  readonly availFlags: number | null;
  /** The driver's avail idx: buffers made available so far (free-running). */
  readonly availIdx: number | null;
  /** used_event (2.7.10), meaningful with EVENT_IDX. */
  readonly usedEvent: number | null;
  /** The used ring's flags (2.7.8): VIRTQ_USED_F_NO_NOTIFY (1) asks for no available-buffer notifications; ignored with EVENT_IDX. */
  readonly usedFlags: number | null;
  /** The used idx the device published. */
  readonly usedIdx: number | null;
  /** avail_event (2.7.10), meaningful with EVENT_IDX. */
  readonly availEvent: number | null;
}

/** One packed event suppression structure (2.8.10): flags and desc (off / wrap). */
export interface PackedEventView {
  /** The structure's flags field (low 2 bits): 0 enable, 1 disable, 2 desc (notify at `off`/`wrap`, with EVENT_IDX). */
  readonly flags: number;
  /** desc's event offset (bits 0-14): the ring position the notification is wanted at, with flags 2. */
  readonly off: number;
  /** desc's event wrap counter (bit 15): the wrap counter that position is meant with. */
  readonly wrap: boolean;
}

/** The packed ring fields in guest memory (null: unmapped). */
export interface PackedRingView {
  /** Discriminates the {@link RingView} union: a packed virtqueue (2.8). */
  readonly layout: 'packed';
  /** Written by the driver: when the device should send used-buffer notifications. */
  readonly driverEvent: PackedEventView | null;
  /** Written by the device: when the driver should send available-buffer notifications. */
  readonly deviceEvent: PackedEventView | null;
  /** Descriptors available from the device's next avail position on (null: unmapped). */
  readonly availableAhead: number | null;
}

/** A ring's driver- and device-published fields as read from guest memory, by `layout`. */
export type RingView = SplitRingView | PackedRingView;

/** How notifications are suppressed in each direction, in words. */
export interface SuppressionView {
  /** VIRTIO_F_EVENT_IDX was negotiated: the event indices (split) or desc events (packed) apply. */
  readonly eventIdx: boolean;
  /** Available-buffer notifications (driver to device), as the device asked. */
  readonly driverNotifications: string;
  /** Used-buffer notifications (device to driver), as the driver asked. */
  readonly deviceNotifications: string;
}

/**
 * The ring fields of a live queue read from guest memory: for a split ring the avail and used
 * flags, indices and event indices (2.7.6, 2.7.8, 2.7.10); for a packed ring both event
 * suppression structures (2.8.10) and the descriptors available from the device's position
 * (`peek`). Reads only; unmapped fields are null.
 */
export function readRing(memory: GuestMemory, config: QueueConfig, peek: QueuePeek): RingView {
  const le = config.littleEndian ?? true;
  if ((config.features & F.RING_PACKED) === 0n) {
    const q = config.size;
    return {
      layout: 'split',
      availFlags: peekU16(memory, config.driverAddr + SplitLayout.AVAIL_FLAGS, le),
      availIdx: peekU16(memory, config.driverAddr + SplitLayout.AVAIL_IDX, le),
      usedEvent: peekU16(memory, config.driverAddr + SplitLayout.usedEventOffset(q), le),
      usedFlags: peekU16(memory, config.deviceAddr + SplitLayout.USED_FLAGS, le),
      usedIdx: peekU16(memory, config.deviceAddr + SplitLayout.USED_IDX, le),
      availEvent: peekU16(memory, config.deviceAddr + SplitLayout.availEventOffset(q), le),
    };
  }
  return {
    layout: 'packed',
    driverEvent: readEvent(memory, config.driverAddr, le),
    deviceEvent: readEvent(memory, config.deviceAddr, le),
    availableAhead: countAvailable(memory, config, peek, le),
  };
}

function readEvent(memory: GuestMemory, addr: number, le: boolean): PackedEventView | null {
  const desc = peekU16(memory, addr + PackedEvent.DESC, le);
  const flags = peekU16(memory, addr + PackedEvent.FLAGS, le);
  if (desc === null || flags === null) return null;
  return { flags: flags & 3, off: desc & 0x7fff, wrap: (desc & 0x8000) !== 0 };
}

/**
 * 2.8.1: a descriptor is available when its AVAIL bit equals the driver's wrap counter and its
 * USED bit differs. Counts them from the device's next position, at most one lap.
 */
function countAvailable(memory: GuestMemory, config: QueueConfig, peek: QueuePeek, le: boolean): number | null {
  let pos = peek.position.nextAvail;
  let wrap = peek.position.availWrap;
  let n = 0;
  for (; n < config.size; n++) {
    const flags = peekU16(memory, config.descAddr + DESC_SIZE * pos + PackedLayout.FLAGS, le);
    if (flags === null) return n === 0 ? null : n;
    const avail = (flags & DescFlag.AVAIL) !== 0;
    const used = (flags & DescFlag.USED) !== 0;
    if (avail !== wrap || used === wrap) break;
    if (++pos === config.size) {
      pos = 0;
      wrap = !wrap;
    }
  }
  return n;
}

const EVENT_FLAG_NAMES = ['enabled', 'disabled', 'at a descriptor', 'reserved (3)'] as const;

/** What each side asked of the other (2.7.7 / 2.7.10 split, 2.8.10 packed). */
export function suppression(ring: RingView, config: QueueConfig): SuppressionView {
  const eventIdx = (config.features & F.EVENT_IDX) !== 0n;
  const unmapped = 'unmapped';
  if (ring.layout === 'split') {
    // With EVENT_IDX the flags are ignored (2.7.10): the event indices decide.
    const kicks = eventIdx
      ? ring.availEvent === null
        ? unmapped
        : `when avail idx passes ${ring.availEvent} (avail_event)`
      : ring.usedFlags === null
        ? unmapped
        : ring.usedFlags & VIRTQ_USED_F_NO_NOTIFY
          ? 'disabled (VIRTQ_USED_F_NO_NOTIFY)'
          : 'enabled';
    const calls = eventIdx
      ? ring.usedEvent === null
        ? unmapped
        : `when used idx passes ${ring.usedEvent} (used_event)`
      : ring.availFlags === null
        ? unmapped
        : ring.availFlags & VIRTQ_AVAIL_F_NO_INTERRUPT
          ? 'disabled (VIRTQ_AVAIL_F_NO_INTERRUPT)'
          : 'enabled';
    return { eventIdx, driverNotifications: kicks, deviceNotifications: calls };
  }
  const word = (e: PackedEventView | null): string => {
    if (e === null) return unmapped;
    const what = EVENT_FLAG_NAMES[e.flags]!;
    return e.flags === PackedEvent.DESC_SPECIFIC ? `${what} ${e.off}, wrap ${e.wrap ? 1 : 0}${eventIdx ? '' : ' (ignored without EVENT_IDX)'}` : what;
  };
  return { eventIdx, driverNotifications: word(ring.deviceEvent), deviceNotifications: word(ring.driverEvent) };
}

/** One descriptor as the driver wrote it (null fields: unmapped). */
export interface DescriptorView {
  /** Index in its table (the ring's, or the indirect table's). */
  readonly index: number;
  /** The buffer's guest-physical address as hex (`0x...`). */
  readonly addr: string | null;
  /** The buffer's length in bytes (for INDIRECT, the indirect table's). */
  readonly len: number | null;
  /** The descriptor's flags (VIRTQ_DESC_F_NEXT 1, WRITE 2, INDIRECT 4; 2.7.5). */
  readonly flags: number | null;
  /** The set flags by name (`NEXT`, `WRITE`, `INDIRECT`); empty when `flags` is unmapped. */
  readonly flagNames: readonly string[];
  /** The next field: the following descriptor's index, meaningful with NEXT. */
  readonly next: number | null;
  /** The entries of the indirect table this descriptor points at. */
  readonly indirect?: readonly DescriptorView[];
}

/** A chain in flight, in detail. */
export interface ChainDetail {
  /** The chain's id: split, its head descriptor's index; packed, the buffer id. */
  readonly id: number;
  /** Where the descriptors come from: the ring in guest memory (split) or the popped chain (packed). */
  readonly source: 'descriptor table' | 'popped chain';
  /** The chain's descriptors in order; for a popped chain, one per segment with NEXT and WRITE rebuilt. */
  readonly descriptors: readonly DescriptorView[];
  /** Why the walk stopped early (a loop, an unmapped descriptor), or null. */
  readonly problem: string | null;
}

function flagNames(flags: number, packed: boolean): string[] {
  const out: string[] = [];
  if (flags & DescFlag.NEXT) out.push('NEXT');
  if (flags & DescFlag.WRITE) out.push('WRITE');
  if (flags & DescFlag.INDIRECT) out.push('INDIRECT');
  if (packed && flags & DescFlag.AVAIL) out.push('AVAIL');
  if (packed && flags & DescFlag.USED) out.push('USED');
  return out;
}

function readDesc(memory: GuestMemory, table: number, i: number, le: boolean): DescriptorView {
  const a = table + DESC_SIZE * i;
  const flags = peekU16(memory, a + 12, le);
  return {
    index: i,
    addr: peekU64Hex(memory, a, le),
    len: peekU32(memory, a + 8, le),
    flags,
    flagNames: flags === null ? [] : flagNames(flags, false),
    next: peekU16(memory, a + 14, le),
  };
}

/**
 * A split chain from its head (2.7.5): follows NEXT for at most `size` descriptors and expands
 * an indirect table (2.7.5.3) to at most MAX_INDIRECT_SHOWN entries.
 */
export function readSplitChain(memory: GuestMemory, config: QueueConfig, head: number): ChainDetail {
  const le = config.littleEndian ?? true;
  const out: DescriptorView[] = [];
  let problem: string | null = null;
  let i = head;
  for (let n = 0; ; n++) {
    if (n >= config.size) {
      problem = `more than ${config.size} descriptors: a loop`;
      break;
    }
    if (i >= config.size) {
      problem = `next ${i} is outside the table of ${config.size}`;
      break;
    }
    let d = readDesc(memory, config.descAddr, i, le);
    if (d.flags === null) {
      out.push(d);
      problem = `descriptor ${i} is unmapped`;
      break;
    }
    if (d.flags & DescFlag.INDIRECT && d.addr !== null && d.len !== null) {
      const base = Number(BigInt(d.addr));
      const entries: DescriptorView[] = [];
      const count = Math.min(Math.floor(d.len / DESC_SIZE), MAX_INDIRECT_SHOWN);
      if (Number.isSafeInteger(base)) for (let k = 0; k < count; k++) entries.push(readDesc(memory, base, k, le));
      d = { ...d, indirect: entries };
    }
    out.push(d);
    if (!(d.flags! & DescFlag.NEXT) || d.next === null) break;
    i = d.next;
  }
  return { id: head, source: 'descriptor table', descriptors: out, problem };
}

/**
 * A chain's segments as the device popped them. Packed rings need this: the device writes used
 * descriptors over the slots of buffers still in flight (2.8.21), so the ring no longer holds them.
 */
export function chainSegments(chain: DescriptorChain): ChainDetail {
  const out: DescriptorView[] = [];
  for (let i = 0; i < chain.count; i++) {
    const flags = (i >= chain.readableCount ? DescFlag.WRITE : 0) | (i + 1 < chain.count ? DescFlag.NEXT : 0);
    out.push({ index: i, addr: hex(chain.addrs[i]!), len: chain.lens[i]!, flags, flagNames: flagNames(flags, false), next: i + 1 < chain.count ? i + 1 : null });
  }
  return { id: chain.id, source: 'popped chain', descriptors: out, problem: chain.fault === null ? null : `segment fault: ${chain.fault}` };
}
