/**
 * 5.15 Memory Device (virtio-mem): feature bits, the queue, the configuration layout, request
 * and response formats. Constants only, no logic.
 */
import { defineConfigLayout } from './config-layout.js';
import { bit } from './features.js';

/** 5.15.3 Feature bits (bit numbers). */
export const MemFeatureBit = {
  /** node_id is valid and corresponds to an ACPI PXM. */
  ACPI_PXM: 0,
  /** The driver is not allowed to access unplugged memory. */
  UNPLUGGED_INACCESSIBLE: 1,
  /** The driver can allow the guest to enter suspended state (suspend-to-RAM). */
  PERSISTENT_SUSPEND: 2,
} as const;
export type MemFeatureBit = (typeof MemFeatureBit)[keyof typeof MemFeatureBit];

/** The feature bits above as bigint masks. */
export const MemF = Object.fromEntries(Object.entries(MemFeatureBit).map(([k, v]) => [k, bit(v)])) as {
  readonly [K in keyof typeof MemFeatureBit]: bigint;
};

/** Every device-type bit defined by 5.15.3. */
export const MEM_FEATURES = MemF.ACPI_PXM | MemF.UNPLUGGED_INACCESSIBLE | MemF.PERSISTENT_SUSPEND;

/** 5.15.2: the single queue. */
export const MEM_GUESTQ = 0;

/** 5.15.4 struct virtio_mem_config: byte offsets. */
export const MemConfig = {
  BLOCK_SIZE: 0,
  NODE_ID: 8,
  /** le8 padding[6] at 10..15. */
  ADDR: 16,
  REGION_SIZE: 24,
  USABLE_REGION_SIZE: 32,
  PLUGGED_SIZE: 40,
  REQUESTED_SIZE: 48,
  SIZE: 56,
} as const;

/** 5.15.4 as a declarative layout: every field read-only for the driver (driver/mem/1). */
export const MEM_CONFIG_LAYOUT = defineConfigLayout(MemConfig.SIZE, [
  { name: 'block_size', offset: MemConfig.BLOCK_SIZE, width: 8, feature: null, access: 'ro' },
  // node_id has no meaning without ACPI_PXM: absent fields read as 0.
  { name: 'node_id', offset: MemConfig.NODE_ID, width: 2, feature: MemF.ACPI_PXM, access: 'ro' },
  { name: 'addr', offset: MemConfig.ADDR, width: 8, feature: null, access: 'ro' },
  { name: 'region_size', offset: MemConfig.REGION_SIZE, width: 8, feature: null, access: 'ro' },
  { name: 'usable_region_size', offset: MemConfig.USABLE_REGION_SIZE, width: 8, feature: null, access: 'ro' },
  { name: 'plugged_size', offset: MemConfig.PLUGGED_SIZE, width: 8, feature: null, access: 'ro' },
  { name: 'requested_size', offset: MemConfig.REQUESTED_SIZE, width: 8, feature: null, access: 'ro' },
]);
/** The field names of MEM_CONFIG_LAYOUT: the keys of the values encodeConfig takes for it. */
export type MemConfigField = (typeof MEM_CONFIG_LAYOUT.fields)[number]['name'];

/** 5.15.6 request types (virtio_mem_req.type). */
export const MemRequestType = {
  PLUG: 0,
  UNPLUG: 1,
  UNPLUG_ALL: 2,
  STATE: 3,
} as const;
export type MemRequestType = (typeof MemRequestType)[keyof typeof MemRequestType];

/** 5.15.6 response types (virtio_mem_resp.type). */
export const MemResponseType = {
  ACK: 0,
  NACK: 1,
  BUSY: 2,
  ERROR: 3,
} as const;
export type MemResponseType = (typeof MemResponseType)[keyof typeof MemResponseType];

/** 5.15.6.4 state types (virtio_mem_resp_state.type). */
export const MemBlockState = {
  PLUGGED: 0,
  UNPLUGGED: 1,
  MIXED: 2,
} as const;
export type MemBlockState = (typeof MemBlockState)[keyof typeof MemBlockState];

/**
 * 5.15.6 struct virtio_mem_req (24 bytes): le16 type, le16 padding[3], then the union of
 * plug/unplug/state (le64 addr, le16 nb_blocks, le16 padding[3]).
 */
export const MemRequest = {
  TYPE: 0,
  ADDR: 8,
  NB_BLOCKS: 16,
  SIZE: 24,
} as const;

/** 5.15.6 struct virtio_mem_resp (10 bytes): le16 type, le16 padding[3], le16 state.type. */
export const MemResponse = {
  TYPE: 0,
  STATE: 8,
  SIZE: 10,
} as const;

/** nb_blocks is le16: one request covers at most this many blocks. */
export const MEM_MAX_BLOCKS_PER_REQUEST = 0xffff;
