/**
 * 5.12 RPMB Device: one request queue, no feature bits, a three-byte configuration, the 512-byte
 * RPMB frame (eMMC 6.6.22) with its request/response types and result codes. Constants only.
 */
import { defineConfigLayout } from './config-layout.js';

/** 5.12.2: the single queue. */
export const RPMB_REQUESTQ = 0;
/** 5.12.3: no device-specific feature bits. */
export const RPMB_FEATURES = 0n;

/** 5.12.4 struct virtio_rpmb_config (byte offsets). */
export const RpmbConfig = {
  SIZE: 3,
  CAPACITY: 0,
  MAX_WR_CNT: 1,
  MAX_RD_CNT: 2,
} as const;

/** 5.12.4: every field always exists and is read-only for the driver. */
export const RPMB_CONFIG_LAYOUT = defineConfigLayout(RpmbConfig.SIZE, [
  { name: 'capacity', offset: RpmbConfig.CAPACITY, width: 1, feature: null, access: 'ro' },
  { name: 'maxWrCnt', offset: RpmbConfig.MAX_WR_CNT, width: 1, feature: null, access: 'ro' },
  { name: 'maxRdCnt', offset: RpmbConfig.MAX_RD_CNT, width: 1, feature: null, access: 'ro' },
]);

/** 5.12.4: capacity is counted in 128 KiB units, 0x00..0x80 (16 MiB at most: device/rpmb/1). */
export const RPMB_CAPACITY_UNIT = 128 * 1024;
/** 5.12.4: the largest capacity (0x80 units, 16 MiB). */
export const RPMB_MAX_CAPACITY_UNITS = 0x80;
/** 5.12.6.1: one RPMB block (half sector) of data: 256 bytes. */
export const RPMB_BLOCK_SIZE = 256;
/** 5.12.6.1: RPMB blocks in one capacity unit. */
export const RPMB_BLOCKS_PER_UNIT = RPMB_CAPACITY_UNIT / RPMB_BLOCK_SIZE;

/** 5.12.6 Request types. */
export const RpmbRequest = {
  PROGRAM_KEY: 0x0001,
  GET_WRITE_COUNTER: 0x0002,
  DATA_WRITE: 0x0003,
  DATA_READ: 0x0004,
  RESULT_READ: 0x0005,
} as const;

/** 5.12.6 Response types. */
export const RpmbResponse = {
  PROGRAM_KEY: 0x0100,
  GET_COUNTER: 0x0200,
  DATA_WRITE: 0x0300,
  DATA_READ: 0x0400,
} as const;

/** 5.12.6.1 RPMB operation results. */
export const RpmbResult = {
  OK: 0x0000,
  GENERAL_FAILURE: 0x0001,
  AUTH_FAILURE: 0x0002,
  COUNT_FAILURE: 0x0003,
  ADDR_FAILURE: 0x0004,
  WRITE_FAILURE: 0x0005,
  READ_FAILURE: 0x0006,
  NO_AUTH_KEY: 0x0007,
  /** eMMC 6.6.22: a flag the device ORs into every result once the write counter is at its maximum. */
  WRITE_COUNTER_EXPIRED: 0x0080,
} as const;

/** 5.12.6.1 struct virtio_rpmb_frame: byte offsets; every multi-byte field is big-endian. */
export const RpmbFrame = {
  SIZE: 512,
  STUFF: 0,
  KEY_MAC: 196,
  KEY_MAC_SIZE: 32,
  DATA: 228,
  DATA_SIZE: 256,
  NONCE: 484,
  NONCE_SIZE: 16,
  WRITE_COUNTER: 500,
  ADDRESS: 504,
  BLOCK_COUNT: 506,
  RESULT: 508,
  REQ_RESP: 510,
  /** The MAC covers every field after key_mac: data .. req_resp (284 bytes per frame). */
  MAC_START: 228,
} as const;

/** 5.12.7 (device/rpmb/33): the write counter stops at its maximum. */
export const RPMB_WRITE_COUNTER_MAX = 0xffff_ffff;
