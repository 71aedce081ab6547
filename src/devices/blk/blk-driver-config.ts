/**
 * The virtio-blk configuration structure as BlkDriver sees it (5.2.4): the fields it reads,
 * decoded to numbers (BlkDriverConfig), and the list of those fields, each read with its own
 * access width through the layout of spec/blk.ts. Split from blk-driver.ts, which re-exports
 * BlkDriverConfig.
 */

/** 5.2.4 configuration fields as numbers (fields of features not negotiated read as the device set them). */
export interface BlkDriverConfig {
  /** Size of the disk in 512-byte sectors. */
  capacity: number;
  /** Largest data segment in bytes (SIZE_MAX). */
  sizeMax: number;
  /** Most data segments in one request (SEG_MAX). */
  segMax: number;
  /** Block size in bytes (BLK_SIZE): the optimal I/O unit, not the sector size. */
  blkSize: number;
  /** Logical blocks per physical block, as a power of two (TOPOLOGY). */
  physicalBlockExp: number;
  /** Offset of the first aligned logical block (TOPOLOGY). */
  alignmentOffset: number;
  /** Suggested minimum I/O size in blocks (TOPOLOGY). */
  minIoSize: number;
  /** Optimal sustained I/O size in blocks (TOPOLOGY). */
  optIoSize: number;
  /** Cache mode with CONFIG_WCE: 1 writeback, 0 writethrough. */
  writeback: number;
  /** Number of request queues (MQ). */
  numQueues: number;
  /** Largest discard in sectors per segment (DISCARD). */
  maxDiscardSectors: number;
  /** Most segments in one discard request. */
  maxDiscardSeg: number;
  /** Alignment of discard ranges, in sectors. */
  discardSectorAlignment: number;
  /** Largest write-zeroes in sectors per segment (WRITE_ZEROES). */
  maxWriteZeroesSectors: number;
  /** Most segments in one write-zeroes request. */
  maxWriteZeroesSeg: number;
  /** 1 when a write-zeroes with unmap can deallocate sectors. */
  writeZeroesMayUnmap: number;
  /** Largest secure erase in sectors per segment (SECURE_ERASE). */
  maxSecureEraseSectors: number;
  /** Most segments in one secure erase request. */
  maxSecureEraseSeg: number;
  /** Alignment of secure erase ranges, in sectors. */
  secureEraseSectorAlignment: number;
}

/** The configuration fields the driver reads (BlkDriverConfig), each with its own access (5.2.4). */
export const BLK_DRIVER_CONFIG_FIELDS = [
  'capacity',
  'sizeMax',
  'segMax',
  'blkSize',
  'physicalBlockExp',
  'alignmentOffset',
  'minIoSize',
  'optIoSize',
  'writeback',
  'numQueues',
  'maxDiscardSectors',
  'maxDiscardSeg',
  'discardSectorAlignment',
  'maxWriteZeroesSectors',
  'maxWriteZeroesSeg',
  'writeZeroesMayUnmap',
  'maxSecureEraseSectors',
  'maxSecureEraseSeg',
  'secureEraseSectorAlignment',
] as const satisfies readonly (keyof BlkDriverConfig)[];
