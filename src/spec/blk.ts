/**
 * 5.2 Block Device: feature bits, request types, status values, configuration layout and the
 * request structures. Constants only, no logic.
 */
import { defineConfigLayout } from './config-layout.js';
import { bit } from './features.js';

/** 5.2.3 Feature bits (bit numbers). */
export const BlkFeatureBit = {
  /** Legacy (5.2.3.1): the device supports request barriers. */
  BARRIER: 0,
  /** Maximum size of any single segment is in size_max. */
  SIZE_MAX: 1,
  /** Maximum number of segments in a request is in seg_max. */
  SEG_MAX: 2,
  /** Disk-style geometry specified in geometry. */
  GEOMETRY: 4,
  /** Device is read-only. */
  RO: 5,
  /** Block size of disk is in blk_size. */
  BLK_SIZE: 6,
  /** Legacy (5.2.3.1): the device supports SCSI packet commands. */
  SCSI: 7,
  /** Cache flush command support. */
  FLUSH: 9,
  /** Device exports information on optimal I/O alignment. */
  TOPOLOGY: 10,
  /** Device can toggle its cache between writeback and writethrough modes. */
  CONFIG_WCE: 11,
  /** Device supports multiqueue (num_queues). */
  MQ: 12,
  DISCARD: 13,
  WRITE_ZEROES: 14,
  /** Device supports providing storage lifetime information. */
  LIFETIME: 15,
  SECURE_ERASE: 16,
  /** Device is a Zoned Block Device. */
  ZONED: 17,
} as const;
export type BlkFeatureBit = (typeof BlkFeatureBit)[keyof typeof BlkFeatureBit];

/** The feature bits above as bigint masks. */
export const BlkF = Object.fromEntries(Object.entries(BlkFeatureBit).map(([k, v]) => [k, bit(v)])) as {
  readonly [K in keyof typeof BlkFeatureBit]: bigint;
};

/** 5.2.2: request queues; with MQ, num_queues of them (0 .. num_queues-1). */
export const BLK_REQUESTQ = 0;

/** 5.2.6 request types (the `type` field of struct virtio_blk_req). */
export const BlkReqType = {
  IN: 0,
  OUT: 1,
  /** Legacy SCSI packet command (5.2.6.3). */
  SCSI_CMD: 2,
  SCSI_CMD_OUT: 3,
  FLUSH: 4,
  /** Legacy flush variant (5.2.6.3). */
  FLUSH_OUT: 5,
  GET_ID: 8,
  GET_LIFETIME: 10,
  DISCARD: 11,
  WRITE_ZEROES: 13,
  SECURE_ERASE: 14,
  ZONE_APPEND: 15,
  ZONE_REPORT: 16,
  ZONE_OPEN: 18,
  ZONE_CLOSE: 20,
  ZONE_FINISH: 22,
  ZONE_RESET: 24,
  ZONE_RESET_ALL: 26,
} as const;
export type BlkReqType = (typeof BlkReqType)[keyof typeof BlkReqType];

/** Legacy (5.2.6.3): the barrier flag ORed into `type` when BARRIER was negotiated. */
export const BLK_T_BARRIER = 0x8000_0000;

/** 5.2.6 status byte values. */
export const BlkStatus = {
  OK: 0,
  IOERR: 1,
  UNSUPP: 2,
  ZONE_INVALID_CMD: 3,
  ZONE_UNALIGNED_WP: 4,
  ZONE_OPEN_RESOURCE: 5,
  ZONE_ACTIVE_RESOURCE: 6,
} as const;
export type BlkStatus = (typeof BlkStatus)[keyof typeof BlkStatus];

/** 5.2.6: sectors are always 512 bytes, whatever blk_size says. */
export const BLK_SECTOR_SIZE = 512;
/** log2 of the 512-byte sector: sector = byte offset >> 9. */
export const BLK_SECTOR_SHIFT = 9;

/** 5.2.6: struct virtio_blk_req header: le32 type, le32 reserved, le64 sector. */
export const BlkReqHeader = {
  SIZE: 16,
  TYPE: 0,
  RESERVED: 4,
  SECTOR: 8,
} as const;

/** 5.2.6: GET_ID returns a 20-byte identifier (not NUL-terminated when 20 bytes long). */
export const BLK_ID_BYTES = 20;

/** 5.2.6: struct virtio_blk_discard_write_zeroes (16 bytes): le64 sector, le32 num_sectors, le32 flags. */
export const BlkDiscardSegment = {
  SIZE: 16,
  SECTOR: 0,
  NUM_SECTORS: 8,
  FLAGS: 12,
} as const;
/** Flags of a discard/write-zeroes/secure-erase segment: bit 0 unmap, the others reserved. */
export const BLK_WRITE_ZEROES_FLAG_UNMAP = 1;

/** 5.2.6: struct virtio_blk_lifetime (6 bytes): le16 pre_eol_info, le16 typ_a, le16 typ_b. */
export const BlkLifetime = {
  SIZE: 6,
  PRE_EOL_INFO: 0,
  DEVICE_LIFETIME_EST_TYP_A: 2,
  DEVICE_LIFETIME_EST_TYP_B: 4,
} as const;
/** pre_eol_info values. */
export const BlkPreEol = {
  UNDEFINED: 0,
  NORMAL: 1,
  WARNING: 2,
  URGENT: 3,
} as const;

/** 5.2.4 struct virtio_blk_config: byte offsets of each field. */
export const BlkConfig = {
  CAPACITY: 0, // le64
  SIZE_MAX: 8, // le32
  SEG_MAX: 12, // le32
  GEOMETRY_CYLINDERS: 16, // le16
  GEOMETRY_HEADS: 18, // u8
  GEOMETRY_SECTORS: 19, // u8
  BLK_SIZE: 20, // le32
  TOPOLOGY_PHYSICAL_BLOCK_EXP: 24, // u8
  TOPOLOGY_ALIGNMENT_OFFSET: 25, // u8
  TOPOLOGY_MIN_IO_SIZE: 26, // le16
  TOPOLOGY_OPT_IO_SIZE: 28, // le32
  WRITEBACK: 32, // u8
  UNUSED0: 33, // u8
  NUM_QUEUES: 34, // le16
  MAX_DISCARD_SECTORS: 36, // le32
  MAX_DISCARD_SEG: 40, // le32
  DISCARD_SECTOR_ALIGNMENT: 44, // le32
  MAX_WRITE_ZEROES_SECTORS: 48, // le32
  MAX_WRITE_ZEROES_SEG: 52, // le32
  WRITE_ZEROES_MAY_UNMAP: 56, // u8
  UNUSED1: 57, // u8[3]
  MAX_SECURE_ERASE_SECTORS: 60, // le32
  MAX_SECURE_ERASE_SEG: 64, // le32
  SECURE_ERASE_SECTOR_ALIGNMENT: 68, // le32
  ZONED_ZONE_SECTORS: 72, // le32
  ZONED_MAX_OPEN_ZONES: 76, // le32
  ZONED_MAX_ACTIVE_ZONES: 80, // le32
  ZONED_MAX_APPEND_SECTORS: 84, // le32
  ZONED_WRITE_GRANULARITY: 88, // le32
  ZONED_MODEL: 92, // u8
  UNUSED2: 93, // u8[3]
  /** Size of the whole structure. */
  SIZE: 96,
} as const;

const B = BlkF;
/**
 * 5.2.4 struct virtio_blk_config as a declarative layout: each field with the feature that makes
 * it exist (capacity always does) and its access. Only writeback is writable, with CONFIG_WCE
 * (driver/blk/21). Device and driver both encode and decode through it (spec/config-layout.ts).
 */
export const BLK_CONFIG_LAYOUT = defineConfigLayout(BlkConfig.SIZE, [
  { name: 'capacity', offset: BlkConfig.CAPACITY, width: 8, feature: null, access: 'ro' },
  { name: 'sizeMax', offset: BlkConfig.SIZE_MAX, width: 4, feature: B.SIZE_MAX, access: 'ro' },
  { name: 'segMax', offset: BlkConfig.SEG_MAX, width: 4, feature: B.SEG_MAX, access: 'ro' },
  { name: 'geometryCylinders', offset: BlkConfig.GEOMETRY_CYLINDERS, width: 2, feature: B.GEOMETRY, access: 'ro' },
  { name: 'geometryHeads', offset: BlkConfig.GEOMETRY_HEADS, width: 1, feature: B.GEOMETRY, access: 'ro' },
  { name: 'geometrySectors', offset: BlkConfig.GEOMETRY_SECTORS, width: 1, feature: B.GEOMETRY, access: 'ro' },
  { name: 'blkSize', offset: BlkConfig.BLK_SIZE, width: 4, feature: B.BLK_SIZE, access: 'ro' },
  { name: 'physicalBlockExp', offset: BlkConfig.TOPOLOGY_PHYSICAL_BLOCK_EXP, width: 1, feature: B.TOPOLOGY, access: 'ro' },
  { name: 'alignmentOffset', offset: BlkConfig.TOPOLOGY_ALIGNMENT_OFFSET, width: 1, feature: B.TOPOLOGY, access: 'ro' },
  { name: 'minIoSize', offset: BlkConfig.TOPOLOGY_MIN_IO_SIZE, width: 2, feature: B.TOPOLOGY, access: 'ro' },
  { name: 'optIoSize', offset: BlkConfig.TOPOLOGY_OPT_IO_SIZE, width: 4, feature: B.TOPOLOGY, access: 'ro' },
  { name: 'writeback', offset: BlkConfig.WRITEBACK, width: 1, feature: B.CONFIG_WCE, access: 'rw' },
  { name: 'numQueues', offset: BlkConfig.NUM_QUEUES, width: 2, feature: B.MQ, access: 'ro' },
  { name: 'maxDiscardSectors', offset: BlkConfig.MAX_DISCARD_SECTORS, width: 4, feature: B.DISCARD, access: 'ro' },
  { name: 'maxDiscardSeg', offset: BlkConfig.MAX_DISCARD_SEG, width: 4, feature: B.DISCARD, access: 'ro' },
  { name: 'discardSectorAlignment', offset: BlkConfig.DISCARD_SECTOR_ALIGNMENT, width: 4, feature: B.DISCARD, access: 'ro' },
  { name: 'maxWriteZeroesSectors', offset: BlkConfig.MAX_WRITE_ZEROES_SECTORS, width: 4, feature: B.WRITE_ZEROES, access: 'ro' },
  { name: 'maxWriteZeroesSeg', offset: BlkConfig.MAX_WRITE_ZEROES_SEG, width: 4, feature: B.WRITE_ZEROES, access: 'ro' },
  { name: 'writeZeroesMayUnmap', offset: BlkConfig.WRITE_ZEROES_MAY_UNMAP, width: 1, feature: B.WRITE_ZEROES, access: 'ro' },
  { name: 'maxSecureEraseSectors', offset: BlkConfig.MAX_SECURE_ERASE_SECTORS, width: 4, feature: B.SECURE_ERASE, access: 'ro' },
  { name: 'maxSecureEraseSeg', offset: BlkConfig.MAX_SECURE_ERASE_SEG, width: 4, feature: B.SECURE_ERASE, access: 'ro' },
  { name: 'secureEraseSectorAlignment', offset: BlkConfig.SECURE_ERASE_SECTOR_ALIGNMENT, width: 4, feature: B.SECURE_ERASE, access: 'ro' },
  { name: 'zonedZoneSectors', offset: BlkConfig.ZONED_ZONE_SECTORS, width: 4, feature: B.ZONED, access: 'ro' },
  { name: 'zonedMaxOpenZones', offset: BlkConfig.ZONED_MAX_OPEN_ZONES, width: 4, feature: B.ZONED, access: 'ro' },
  { name: 'zonedMaxActiveZones', offset: BlkConfig.ZONED_MAX_ACTIVE_ZONES, width: 4, feature: B.ZONED, access: 'ro' },
  { name: 'zonedMaxAppendSectors', offset: BlkConfig.ZONED_MAX_APPEND_SECTORS, width: 4, feature: B.ZONED, access: 'ro' },
  { name: 'zonedWriteGranularity', offset: BlkConfig.ZONED_WRITE_GRANULARITY, width: 4, feature: B.ZONED, access: 'ro' },
  { name: 'zonedModel', offset: BlkConfig.ZONED_MODEL, width: 1, feature: B.ZONED, access: 'ro' },
]);
/** Names of the blk configuration fields. */
export type BlkConfigField = (typeof BLK_CONFIG_LAYOUT.fields)[number]['name'];

/** 5.2.4: zoned.model values. */
export const BlkZonedModel = {
  NONE: 0,
  HM: 1,
  HA: 2,
} as const;
