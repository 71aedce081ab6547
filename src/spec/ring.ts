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
  /** 2.7 Table: the descriptor table must start on a 16-byte boundary. */
  DESC_ALIGN: 16,
  /** 2.7 Table: the available ring must start on a 2-byte boundary. */
  AVAIL_ALIGN: 2,
  /** 2.7 Table: the used ring must start on a 4-byte boundary. */
  USED_ALIGN: 4,
  /** 2.7.5: bytes of a descriptor table of `q` entries (16 bytes per struct virtq_desc). */
  descTableSize: (q: number): number => 16 * q,
  /** flags, idx, ring[q], used_event (present whatever the features). */
  availSize: (q: number): number => 6 + 2 * q,
  /** flags, idx, ring[q] of {id u32, len u32}, avail_event. */
  usedSize: (q: number): number => 6 + 8 * q,
  /** 2.7.6: byte offset of the le16 `flags` field in the available ring. */
  AVAIL_FLAGS: 0,
  /** 2.7.6: byte offset of the le16 `idx` field (next slot the driver will fill) in the available ring. */
  AVAIL_IDX: 2,
  /** 2.7.6: byte offset of `ring[0]` (le16 descriptor heads) in the available ring. */
  AVAIL_RING: 4,
  /**
   * 2.7.8: byte offset of the le16 `avail_event` field within the used ring of `q` entries
   * (after flags, idx and ring[q]); only meaningful with VIRTIO_F_EVENT_IDX.
   */
  availEventOffset: (q: number): number => 4 + 8 * q, // within used ring
  /**
   * 2.7.6: byte offset of the le16 `used_event` field within the available ring of `q` entries
   * (after flags, idx and ring[q]); only meaningful with VIRTIO_F_EVENT_IDX.
   */
  usedEventOffset: (q: number): number => 4 + 2 * q, // within avail ring
  /** 2.7.8: byte offset of the le16 `flags` field in the used ring. */
  USED_FLAGS: 0,
  /** 2.7.8: byte offset of the le16 `idx` field (next slot the device will fill) in the used ring. */
  USED_IDX: 2,
  /** 2.7.8: byte offset of `ring[0]` in the used ring. */
  USED_RING: 4,
  /** 2.7.8: bytes per used ring element (struct virtq_used_elem: le32 id, le32 len). */
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
): {
  /** Byte offset of the descriptor table from the start of the ring area (always 0). */
  desc: number;
  /** Byte offset of the available ring: directly after the `q` descriptors. */
  avail: number;
  /** Byte offset of the used ring: after the available ring, rounded up to `align`. */
  used: number;
  /** Total bytes of the ring area, the used ring padded to `align` as well. */
  total: number;
} {
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
  /** 2.8: the descriptor ring must start on a 16-byte boundary. */
  DESC_ALIGN: 16,
  /** 2.8: the driver and device event suppression areas must start on a 4-byte boundary. */
  EVENT_ALIGN: 4,
  /** 2.8.13: bytes of a descriptor ring of `q` entries (16 bytes per struct pvirtq_desc). */
  descRingSize: (q: number): number => 16 * q,
  /** 2.8.13: byte offset of the le64 buffer `addr` in a packed descriptor. */
  ADDR: 0,
  /** 2.8.13: byte offset of the le32 buffer `len` in a packed descriptor. */
  LEN: 8,
  /** 2.8.13: byte offset of the le16 buffer `id` in a packed descriptor. */
  ID: 12,
  /** 2.8.13: byte offset of the le16 `flags` (AVAIL/USED/WRITE/...) in a packed descriptor. */
  FLAGS: 14,
} as const;

/**
 * 2.7.10 / 2.8.10: whether an event index in [old, new) was crossed:
 * vring_need_event(event_idx, new_idx, old_idx). All arithmetic is modulo 2^16.
 */
export function needEvent(eventIdx: number, newIdx: number, oldIdx: number): boolean {
  return ((newIdx - eventIdx - 1) & 0xffff) < ((newIdx - oldIdx) & 0xffff);
}
