/**
 * 2.12 Device groups and 2.13 Administration virtqueues: the numbers both sides use. Group types,
 * status and status qualifiers live beside the handler contract (`admin/admin-command-handler.ts`);
 * this file has the opcodes and the layout of `struct virtio_admin_cmd`.
 */

/** 2.12.1 opcodes of the group administration commands. */
export const AdminOpcode = {
  /** Lists the commands supported for a group type (struct virtio_admin_cmd_list result). */
  LIST_QUERY: 0x0000,
  /** Tells the device which commands the driver uses for a group type. */
  LIST_USE: 0x0001,
  /** 2.12.1.1 Legacy interface: write the legacy common configuration. */
  LEGACY_COMMON_CFG_WRITE: 0x0002,
  /** Read the legacy common configuration. */
  LEGACY_COMMON_CFG_READ: 0x0003,
  /** Write the legacy device configuration. */
  LEGACY_DEV_CFG_WRITE: 0x0004,
  /** Read the legacy device configuration. */
  LEGACY_DEV_CFG_READ: 0x0005,
  /** Query the notification region information. */
  LEGACY_NOTIFY_INFO: 0x0006,
  /** 2.12.1.2 capabilities: query the supported capability ids. */
  CAP_ID_LIST_QUERY: 0x0007,
  /** Get the device capabilities. */
  DEVICE_CAP_GET: 0x0008,
  /** Set the driver capabilities. */
  DRIVER_CAP_SET: 0x0009,
  /** 2.12.1.3 resource objects: create. */
  RESOURCE_OBJ_CREATE: 0x000a,
  /** Query a resource object. */
  RESOURCE_OBJ_QUERY: 0x000b,
  /** Modify a resource object. */
  RESOURCE_OBJ_MODIFY: 0x000c,
  /** Destroy a resource object. */
  RESOURCE_OBJ_DESTROY: 0x000d,
  /** 2.12.1.4 device parts: get the metadata. */
  DEV_PARTS_METADATA_GET: 0x000e,
  /** Get the device parts. */
  DEV_PARTS_GET: 0x000f,
  /** Set the device parts. */
  DEV_PARTS_SET: 0x0010,
  /** Stop or resume the device. */
  DEV_MODE_SET: 0x0011,
} as const;
export type AdminOpcode = (typeof AdminOpcode)[keyof typeof AdminOpcode];

/**
 * 2.12.1: opcodes 0x8000 and up are reserved for commands that may not use struct
 * virtio_admin_cmd; a device never supports them here.
 */
export const ADMIN_OPCODE_LIMIT = 0x8000;

/** 2.12.1 struct virtio_admin_cmd, device-readable part: byte offsets (little-endian fields). */
export const AdminCmdHeader = {
  /** le16 opcode. */
  OPCODE: 0,
  /** le16 group_type. */
  GROUP_TYPE: 2,
  /** u8 reserved1[12]. */
  RESERVED1: 4,
  /** le64 group_member_id. */
  GROUP_MEMBER_ID: 16,
  /** Start of command_specific_data; also the size of the readable header. */
  DATA: 24,
  /** Bytes of the device-readable header. */
  SIZE: 24,
} as const;

/** 2.12.1 struct virtio_admin_cmd, device-writable part: byte offsets. */
export const AdminCmdStatus = {
  /** le16 status. */
  STATUS: 0,
  /** le16 status_qualifier. */
  STATUS_QUALIFIER: 2,
  /** u8 reserved2[4]. */
  RESERVED2: 4,
  /** Start of command_specific_result; also the size of the writable header. */
  RESULT: 8,
  /** Bytes of the device-writable header. */
  SIZE: 8,
} as const;

/**
 * 2.12.1 struct virtio_admin_cmd_list: le64 device_admin_cmd_opcodes[], bit n of entry k is opcode
 * 64k + n. Length for opcodes up to `maxOpcode`: DIV_ROUND_UP(maxOpcode + 1, 64) * 8 bytes.
 */
export function adminCmdListBytes(maxOpcode: number): number {
  return Math.ceil((maxOpcode + 1) / 64) * 8;
}

/** Encodes a set of opcodes as struct virtio_admin_cmd_list (bytes, little-endian words). */
export function encodeAdminCmdList(opcodes: Iterable<number>): Uint8Array {
  let max = 0;
  const list = [...opcodes];
  for (const o of list) if (o > max) max = o;
  const out = new Uint8Array(adminCmdListBytes(max));
  for (const o of list) out[o >> 3]! |= 1 << (o & 7);
  return out;
}

/**
 * Decodes struct virtio_admin_cmd_list: every opcode whose bit is set (bits past the data are
 * zero, 2.13: missing fields read as zero).
 */
export function decodeAdminCmdList(bytes: Uint8Array): number[] {
  const out: number[] = [];
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (b === 0) continue;
    for (let k = 0; k < 8; k++) if (b & (1 << k)) out.push(i * 8 + k);
  }
  return out;
}
