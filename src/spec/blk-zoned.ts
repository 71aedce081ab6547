/**
 * 5.2.6 zoned block devices (VIRTIO_BLK_F_ZONED): zone types and states, the zone report and
 * its descriptors, the ZONE_APPEND request's extra field. The zoned configuration fields are in
 * BLK_CONFIG_LAYOUT (spec/blk.ts), the request types and status values in BlkReqType/BlkStatus.
 */

/** 5.2.6 virtio_blk_zone_descriptor.z_type. */
export const BlkZoneType = {
  /** Conventional: read and written like a regular device. */
  CONV: 1,
  /** Sequential Write Required: written only at the write pointer. */
  SWR: 2,
  /** Sequential Write Preferred (host-aware): random writes accepted. */
  SWP: 3,
} as const;
export type BlkZoneType = (typeof BlkZoneType)[keyof typeof BlkZoneType];

/** 5.2.6 virtio_blk_zone_descriptor.z_state. */
export const BlkZoneState = {
  NOT_WP: 0,
  EMPTY: 1,
  IOPEN: 2,
  EOPEN: 3,
  CLOSED: 4,
  RDONLY: 13,
  FULL: 14,
  OFFLINE: 15,
} as const;
export type BlkZoneState = (typeof BlkZoneState)[keyof typeof BlkZoneState];

/** 5.2.6 struct virtio_blk_zone_report header: le64 nr_zones, u8 reserved[56]. */
export const BlkZoneReport = {
  HEADER_SIZE: 64,
  NR_ZONES: 0,
} as const;

/** 5.2.6 struct virtio_blk_zone_descriptor (64 bytes). */
export const BlkZoneDescriptor = {
  SIZE: 64,
  Z_CAP: 0,
  Z_START: 8,
  Z_WP: 16,
  Z_TYPE: 24,
  Z_STATE: 25,
} as const;

/** 5.2.6 struct virtio_blk_req_za: le64 append_sector before the status byte. */
export const BLK_APPEND_SECTOR_BYTES = 8;
