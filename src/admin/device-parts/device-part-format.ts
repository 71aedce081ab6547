/**
 * Wire formats of device parts (device-parts.tex, 2.13 "Device parts") and of the device parts
 * administration commands (2.12.1.5): numbers, `struct virtio_dev_part_hdr`, the values of the
 * common parts, and an untrusted decoder for lists of parts and of headers. Every decoder answers
 * a reason string instead of throwing, so a handler turns it into VIRTIO_ADMIN_STATUS_EINVAL.
 */

/** Opcodes of the device parts commands (admin.tex opcode table). */
export const DevicePartsOpcode = {
  METADATA_GET: 0x0e,
  GET: 0x0f,
  SET: 0x10,
  MODE_SET: 0x11,
} as const;

/** Resource object type of a device parts object (VIRTIO_RESOURCE_OBJ_DEV_PARTS). */
export const RESOURCE_OBJ_DEV_PARTS = 0x000;

/** `struct virtio_resource_obj_dev_parts.type`: what a device parts object is for. */
export const DevicePartsObjectType = {
  GET: 0,
  SET: 1,
} as const;
export type DevicePartsObjectType = (typeof DevicePartsObjectType)[keyof typeof DevicePartsObjectType];

/** `virtio_admin_cmd_dev_parts_metadata_data.type`. */
export const DevicePartsMetadataType = {
  SIZE: 0,
  COUNT: 1,
  LIST: 2,
} as const;

/** `virtio_admin_cmd_dev_parts_get_data.type`. */
export const DevicePartsGetType = {
  SELECTED: 0,
  ALL: 1,
} as const;

/** `virtio_admin_cmd_dev_mode_set_data.flags`: VIRTIO_ADMIN_CMD_DEV_MODE_F_STOPPED (bit 0). */
export const DEV_MODE_F_STOPPED = 1 << 0;

/** `part_type` of the common device parts (device-parts.tex table "Common device parts"). */
export const DevicePartType = {
  DEV_FEATURES: 0x100,
  DRV_FEATURES: 0x101,
  PCI_COMMON_CFG: 0x102,
  DEVICE_STATUS: 0x103,
  VQ_CFG: 0x104,
  VQ_NOTIFY_CFG: 0x105,
  /**
   * Not in virtio 1.4: this implementation's ring position of a queue (next available and used
   * entry, packed wrap counters), sent with VIRTIO_DEV_PART_F_OPTIONAL for a split ring (the
   * device deduces it from the used ring, which a stop writes back in full) and without it for a
   * packed ring (whose position the ring memory does not tell). 1.4 defines no device type
   * specific part (0x200-0x5ff); the last number of that range is taken so no common number is.
   */
  VQ_POSITION: 0x5ff,
} as const;

/** `flags` bit 0: the part is optional (the device may ignore it when set). */
export const DEV_PART_F_OPTIONAL = 1 << 0;

/** Size of `struct virtio_dev_part_hdr`. */
export const DEV_PART_HDR_SIZE = 16;
/** Size of `struct virtio_admin_cmd_resource_obj_cmd_hdr`. */
export const RESOURCE_OBJ_CMD_HDR_SIZE = 8;
/** Offset of num_queues in `struct virtio_pci_common_cfg` (the only common field kept as a part). */
export const PCI_COMMON_CFG_NUM_QUEUES = 18;

/** Value lengths of the fixed-size parts. */
export const DevicePartLength = {
  /** Two le64 words: the 128 feature bits DeviceCore has. */
  FEATURES: 16,
  NUM_QUEUES: 2,
  DEVICE_STATUS: 1,
  VQ_CFG: 32,
  VQ_NOTIFY_CFG: 8,
  VQ_POSITION: 8,
} as const;

/**
 * Rank of each part in the table "Device parts order" (device/admin-cmds-device-parts/3,
 * driver/admin-cmds-device-parts/2); the implementation's own part comes last. -1: unknown.
 */
export function partOrderRank(type: number): number {
  switch (type) {
    case DevicePartType.DEV_FEATURES:
      return 0;
    case DevicePartType.DRV_FEATURES:
      return 1;
    case DevicePartType.PCI_COMMON_CFG:
      return 2;
    case DevicePartType.DEVICE_STATUS:
      return 3;
    case DevicePartType.VQ_CFG:
      return 4;
    case DevicePartType.VQ_NOTIFY_CFG:
      return 5;
    case DevicePartType.VQ_POSITION:
      return 6;
    default:
      return -1;
  }
}

/** Whether `type`'s selector is a virtqueue index. */
export function isQueuePart(type: number): boolean {
  return type === DevicePartType.VQ_CFG || type === DevicePartType.VQ_NOTIFY_CFG || type === DevicePartType.VQ_POSITION;
}

/**
 * `struct virtio_dev_part_hdr`. `selector` is the PCI common configuration offset
 * (PCI_COMMON_CFG) or the virtqueue index (VQ_CFG, VQ_NOTIFY_CFG, VQ_POSITION), else 0.
 */
export interface DevicePartHeader {
  /** part_type (DevicePartType). */
  readonly type: number;
  /** flags (DEV_PART_F_OPTIONAL). */
  readonly flags: number;
  /** selector.pci_common_cfg.offset or selector.vq_index.index; 0 for other parts. */
  readonly selector: number;
  /** Length of the value in bytes. */
  readonly length: number;
}

/** A device part: its header and its value (`length` bytes). */
export interface DevicePart {
  /** struct virtio_dev_part_hdr. */
  readonly header: DevicePartHeader;
  /** value: `header.length` bytes in the part type's format. */
  readonly value: Uint8Array;
}

/** Writes `h` at `off` of `dst` (16 bytes; reserved bytes zero). */
export function encodePartHeader(h: DevicePartHeader, dst: Uint8Array, off: number): void {
  const v = new DataView(dst.buffer, dst.byteOffset + off, DEV_PART_HDR_SIZE);
  v.setUint16(0, h.type, true);
  v.setUint8(2, h.flags);
  v.setUint8(3, 0);
  for (let i = 4; i < 12; i++) v.setUint8(i, 0);
  if (h.type === DevicePartType.PCI_COMMON_CFG) v.setUint32(4, h.selector, true);
  else if (isQueuePart(h.type)) v.setUint16(4, h.selector, true);
  v.setUint32(12, h.length, true);
}

/**
 * Reads the header at `off` (the caller checked 16 bytes are there). Answers a reason when a
 * reserved byte is not zero (device-parts.tex: reserved, set to zero).
 */
export function decodePartHeader(src: Uint8Array, off: number): DevicePartHeader | string {
  const v = new DataView(src.buffer, src.byteOffset + off, DEV_PART_HDR_SIZE);
  const type = v.getUint16(0, true);
  const flags = v.getUint8(2);
  if (v.getUint8(3) !== 0) return `part 0x${type.toString(16)}: reserved byte not zero`;
  if ((flags & ~DEV_PART_F_OPTIONAL) !== 0) return `part 0x${type.toString(16)}: unknown flags 0x${flags.toString(16)}`;
  let selector = 0;
  let used = 0; // selector bytes that carry a field; the rest are reserved
  if (type === DevicePartType.PCI_COMMON_CFG) {
    selector = v.getUint32(4, true);
    used = 4;
  } else if (isQueuePart(type)) {
    selector = v.getUint16(4, true);
    used = 2;
  }
  // A device type specific part (0x200-0x5ff) other than ours has a selector of its own format.
  const raw = type >= 0x200 && type <= 0x5ff && type !== DevicePartType.VQ_POSITION;
  if (!raw) {
    for (let i = 4 + used; i < 12; i++) if (v.getUint8(i) !== 0) return `part 0x${type.toString(16)}: reserved selector byte not zero`;
  }
  return { type, flags, selector, length: v.getUint32(12, true) };
}

/**
 * Splits `src` into parts (`struct virtio_dev_part` one after another). Untrusted: a header cut
 * short or a length past the end is a reason, never a throw; values are views into `src`.
 * Trailing zero padding of up to 7 bytes (the command rounded to 64 bits) ends the list.
 */
export function decodePartList(src: Uint8Array): DevicePart[] | string {
  const parts: DevicePart[] = [];
  let off = 0;
  while (off < src.length) {
    if (src.length - off < DEV_PART_HDR_SIZE) {
      // 2.12.1: the device-readable part is a multiple of 64 bits, so up to 7 zero bytes pad it.
      if (src.length - off < 8 && src.subarray(off).every((b) => b === 0)) break;
      return `part header at ${off} cut short (${src.length - off} bytes)`;
    }
    const h = decodePartHeader(src, off);
    if (typeof h === 'string') return h;
    off += DEV_PART_HDR_SIZE;
    if (h.length > src.length - off) return `part 0x${h.type.toString(16)}: length ${h.length} past the end of the data`;
    parts.push({ header: h, value: src.subarray(off, off + h.length) });
    off += h.length;
  }
  return parts;
}

/** Splits `src` into headers (a hdr_list): its length must be a multiple of 16. */
export function decodeHeaderList(src: Uint8Array): DevicePartHeader[] | string {
  if (src.length % DEV_PART_HDR_SIZE !== 0) return `header list of ${src.length} bytes is not a multiple of ${DEV_PART_HDR_SIZE}`;
  const out: DevicePartHeader[] = [];
  for (let off = 0; off < src.length; off += DEV_PART_HDR_SIZE) {
    const h = decodePartHeader(src, off);
    if (typeof h === 'string') return h;
    out.push(h);
  }
  return out;
}

/** Bytes `parts` take encoded (headers and values). */
export function encodedPartsSize(parts: readonly DevicePart[]): number {
  let n = 0;
  for (const p of parts) n += DEV_PART_HDR_SIZE + p.value.length;
  return n;
}

/** Encodes `parts` one after another into `dst` at `off`; returns the bytes written. */
export function encodePartList(parts: readonly DevicePart[], dst: Uint8Array, off = 0): number {
  let o = off;
  for (const p of parts) {
    encodePartHeader({ ...p.header, length: p.value.length }, dst, o);
    o += DEV_PART_HDR_SIZE;
    dst.set(p.value, o);
    o += p.value.length;
  }
  return o - off;
}

/** `struct virtio_dev_part_features`: 128 feature bits as two le64 words. */
export function encodeFeatures(features: bigint): Uint8Array {
  const out = new Uint8Array(DevicePartLength.FEATURES);
  const v = new DataView(out.buffer);
  v.setBigUint64(0, BigInt.asUintN(64, features), true);
  v.setBigUint64(8, BigInt.asUintN(64, features >> 64n), true);
  return out;
}

/** Reads `struct virtio_dev_part_features` (the caller checked its length). */
export function decodeFeatures(value: Uint8Array): bigint {
  const v = new DataView(value.buffer, value.byteOffset, value.length);
  let f = 0n;
  for (let i = value.length - 8; i >= 0; i -= 8) f = (f << 64n) | v.getBigUint64(i, true);
  return f;
}

/** `struct virtio_dev_part_vq_cfg`. */
export interface VqCfgPart {
  /** queue_size. */
  readonly size: number;
  /** vector: the queue's MSI-X vector (0xffff: none). */
  readonly vector: number;
  /** enabled (queue_enable). */
  readonly enabled: boolean;
  /** queue_desc: guest address of the descriptor area. */
  readonly descAddr: number;
  /** queue_driver: guest address of the driver area. */
  readonly driverAddr: number;
  /** queue_device: guest address of the device area. */
  readonly deviceAddr: number;
}

/** Encodes `struct virtio_dev_part_vq_cfg` (32 bytes). */
export function encodeVqCfg(c: VqCfgPart): Uint8Array {
  const out = new Uint8Array(DevicePartLength.VQ_CFG);
  const v = new DataView(out.buffer);
  v.setUint16(0, c.size, true);
  v.setUint16(2, c.vector, true);
  v.setUint16(4, c.enabled ? 1 : 0, true);
  v.setBigUint64(8, BigInt(c.descAddr), true);
  v.setBigUint64(16, BigInt(c.driverAddr), true);
  v.setBigUint64(24, BigInt(c.deviceAddr), true);
  return out;
}

/** Decodes `struct virtio_dev_part_vq_cfg` (32 bytes checked by the caller), or why it is invalid. */
export function decodeVqCfg(value: Uint8Array): VqCfgPart | string {
  const v = new DataView(value.buffer, value.byteOffset, value.length);
  const enabled = v.getUint16(4, true);
  if (enabled > 1) return `enabled ${enabled} is neither 0 nor 1`;
  if (v.getUint16(6, true) !== 0) return 'reserved not zero';
  const addr = (o: number): number | null => {
    const a = v.getBigUint64(o, true);
    return a <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(a) : null;
  };
  const descAddr = addr(8);
  const driverAddr = addr(16);
  const deviceAddr = addr(24);
  if (descAddr === null || driverAddr === null || deviceAddr === null) return 'a ring address beyond 2^53';
  return { size: v.getUint16(0, true), vector: v.getUint16(2, true), enabled: enabled === 1, descAddr, driverAddr, deviceAddr };
}

/** `struct virtio_dev_part_vq_notify_data`. */
export interface VqNotifyPart {
  /** queue_notify_off. */
  readonly notifyOff: number;
  /** queue_notif_config_data. */
  readonly notifyConfigData: number;
}

/** Encodes `struct virtio_dev_part_vq_notify_data` (8 bytes). */
export function encodeVqNotify(n: VqNotifyPart): Uint8Array {
  const out = new Uint8Array(DevicePartLength.VQ_NOTIFY_CFG);
  const v = new DataView(out.buffer);
  v.setUint16(0, n.notifyOff, true);
  v.setUint16(2, n.notifyConfigData, true);
  return out;
}

/** Decodes `struct virtio_dev_part_vq_notify_data` (8 bytes checked by the caller), or why not. */
export function decodeVqNotify(value: Uint8Array): VqNotifyPart | string {
  const v = new DataView(value.buffer, value.byteOffset, value.length);
  if (v.getUint32(4, true) !== 0) return 'reserved not zero';
  return { notifyOff: v.getUint16(0, true), notifyConfigData: v.getUint16(2, true) };
}

/** The implementation's VQ_POSITION value: a queue's ring position. */
export interface VqPositionPart {
  /** The next available entry the device reads (split: free-running index; packed: ring slot). */
  readonly nextAvail: number;
  /** The next used entry the device writes. */
  readonly nextUsed: number;
  /** Packed: the driver ring wrap counter at nextAvail. */
  readonly availWrap: boolean;
  /** Packed: the used wrap counter at nextUsed. */
  readonly usedWrap: boolean;
}

/** Encodes VQ_POSITION: le16 next_avail, le16 next_used, u8 wraps (bit 0 avail, bit 1 used), 3 reserved. */
export function encodeVqPosition(p: VqPositionPart): Uint8Array {
  const out = new Uint8Array(DevicePartLength.VQ_POSITION);
  const v = new DataView(out.buffer);
  v.setUint16(0, p.nextAvail, true);
  v.setUint16(2, p.nextUsed, true);
  v.setUint8(4, (p.availWrap ? 1 : 0) | (p.usedWrap ? 2 : 0));
  return out;
}

/** Decodes VQ_POSITION (8 bytes checked by the caller), or why it is invalid. */
export function decodeVqPosition(value: Uint8Array): VqPositionPart | string {
  const v = new DataView(value.buffer, value.byteOffset, value.length);
  const wraps = v.getUint8(4);
  if (wraps > 3 || v.getUint8(5) !== 0 || v.getUint16(6, true) !== 0) return 'reserved bits not zero';
  return { nextAvail: v.getUint16(0, true), nextUsed: v.getUint16(2, true), availWrap: (wraps & 1) !== 0, usedWrap: (wraps & 2) !== 0 };
}

/** `struct virtio_admin_cmd_resource_obj_cmd_hdr`: the resource object a command uses. */
export interface DevicePartsObjectRef {
  /** Resource object type (RESOURCE_OBJ_DEV_PARTS). */
  readonly type: number;
  /** Resource object id. */
  readonly id: number;
}

/** Encodes the 8-byte resource object command header. */
export function encodeResourceObjectRef(r: DevicePartsObjectRef, dst: Uint8Array, off = 0): void {
  const v = new DataView(dst.buffer, dst.byteOffset + off, RESOURCE_OBJ_CMD_HDR_SIZE);
  v.setUint16(0, r.type, true);
  v.setUint16(2, 0, true);
  v.setUint32(4, r.id >>> 0, true);
}

/** Decodes the 8-byte resource object command header (caller checked the length), or why not. */
export function decodeResourceObjectRef(src: Uint8Array): DevicePartsObjectRef | string {
  const v = new DataView(src.buffer, src.byteOffset, RESOURCE_OBJ_CMD_HDR_SIZE);
  if (v.getUint16(2, true) !== 0) return 'resource object header: reserved not zero';
  return { type: v.getUint16(0, true), id: v.getUint32(4, true) };
}
