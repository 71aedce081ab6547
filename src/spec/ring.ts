/**
 * Ring layouts: split (2.7), packed (2.8) and the legacy split layout (2.7.2 Legacy Interfaces).
 * Offsets are in bytes; both the device and the driver side compute addresses from these.
 */

/** Largest queue size the spec allows (2.6: Queue Size ... maximum 32768). */
export const MAX_QUEUE_SIZE = 32768;

/** 2.7.5 / 2.8.13: struct virtq_desc and struct pvirtq_desc are both 16 bytes. */
export const DESC_SIZE = 16;

/** Descriptor flags (VIRTQ_DESC_F_* of 2.7.5, with the packed ring's AVAIL and USED of 2.8.1). */
export const DescFlag = {
  /** Buffer continues via the next field (split only). */
  NEXT: 1,
  /** Buffer is device write-only. */
  WRITE: 2,
  /** Buffer contains a list of buffer descriptors. */
  INDIRECT: 4,
  /** 2.8.1 packed: the descriptor's avail flag bit. */
  AVAIL: 1 << 7,
  /** 2.8.1 packed: the descriptor's used flag bit. */
  USED: 1 << 15,
} as const;

/** 2.7.6 avail ring flag: the driver asks not to be interrupted. */
export const VIRTQ_AVAIL_F_NO_INTERRUPT = 1;
/** 2.7.8 used ring flag: the device asks not to be notified. */
export const VIRTQ_USED_F_NO_NOTIFY = 1;

/** 2.7 split virtqueue part alignments and sizes. */
export const SplitLayout = {
  DESC_ALIGN: 16,
  AVAIL_ALIGN: 2,
  USED_ALIGN: 4,
  descTableSize: (q: number): number => 16 * q,
  /** flags, idx, ring[q], used_event (present whatever the features). */
  availSize: (q: number): number => 6 + 2 * q,
  /** flags, idx, ring[q] of {id u32, len u32}, avail_event. */
  usedSize: (q: number): number => 6 + 8 * q,
  AVAIL_FLAGS: 0,
  AVAIL_IDX: 2,
  AVAIL_RING: 4,
  availEventOffset: (q: number): number => 4 + 8 * q, // within used ring
  usedEventOffset: (q: number): number => 4 + 2 * q, // within avail ring
  USED_FLAGS: 0,
  USED_IDX: 2,
  USED_RING: 4,
  USED_ELEM_SIZE: 8,
} as const;

/** Legacy (pre-1.0) interfaces lay the split ring out contiguously with this page alignment. */
export const LEGACY_QUEUE_ALIGN = 4096;

function alignUp(x: number, a: number): number {
  return Math.ceil(x / a) * a;
}

/** 2.7.2 Legacy Interfaces: the contiguous layout with `align` (4096 for PCI legacy). */
export function legacySplitLayout(
  q: number,
  align = LEGACY_QUEUE_ALIGN,
): { desc: number; avail: number; used: number; total: number } {
  const desc = 0;
  const avail = 16 * q;
  const used = alignUp(avail + 6 + 2 * q, align);
  const total = used + alignUp(6 + 8 * q, align);
  return { desc, avail, used, total };
}

/** 2.8.10 packed ring event suppression structure (struct pvirtq_event_suppress). */
export const PackedEvent = {
  SIZE: 4,
  /** le16 desc: bits 0-14 offset, bit 15 wrap counter. */
  DESC: 0,
  /** le16 flags: bits 0-1 RING_EVENT_FLAGS_*. */
  FLAGS: 2,
  ENABLE: 0x0,
  DISABLE: 0x1,
  /** Only valid with EVENT_IDX negotiated. */
  DESC_SPECIFIC: 0x2,
} as const;

/** 2.8 packed: descriptor ring alignment 16, event suppression areas 4. */
export const PackedLayout = {
  DESC_ALIGN: 16,
  EVENT_ALIGN: 4,
  descRingSize: (q: number): number => 16 * q,
  ADDR: 0,
  LEN: 8,
  ID: 12,
  FLAGS: 14,
} as const;

/**
 * 2.7.10 / 2.8.10: whether an event index in [old, new) was crossed:
 * vring_need_event(event_idx, new_idx, old_idx). All arithmetic is modulo 2^16.
 */
export function needEvent(eventIdx: number, newIdx: number, oldIdx: number): boolean {
  return ((newIdx - eventIdx - 1) & 0xffff) < ((newIdx - oldIdx) & 0xffff);
}
