/**
 * 2.12.1.2 Device and driver capabilities: a capability is a structure of fields, each "a limit
 * number, a bitmap, or an array of entries". The device reports its capability, the driver sets
 * its own "smaller than or equal" limits, a subset of the device's bits and of its array entries.
 * A layout describes where each field is, so one rule checks a driver capability against the
 * device's on both sides (the device answering DRIVER_CAP_SET, the driver before sending it).
 */
import { VirtioError, ErrorCode } from '../../errors.js';
import { fitAdminData } from '../admin-data-fit.js';

/** 2.12.1.2 capability id ranges: 0x0000-0x07ff generic, 0x0800-0x0fff device type specific. */
export const CAPABILITY_ID_LIMIT = 0x1000;

/** 2.12.1.2 common capability id: the device parts capability (VIRTIO_DEV_PARTS_CAP). */
export const VIRTIO_DEV_PARTS_CAP = 0x0000;

/** A limit number: the driver sets a value smaller than or equal to the device's. */
export interface CapabilityLimitField {
  /** Discriminant: a limit number. */
  readonly kind: 'limit';
  /** Field name (for messages and `capabilityLimit`). */
  readonly name: string;
  /** Byte offset in cap_specific_data. */
  readonly offset: number;
  /** Width in bytes, little-endian (le64 limits are read exactly up to 2^53). */
  readonly width: 1 | 2 | 4 | 8;
}

/** A bitmap: the driver sets only bits the device presented. */
export interface CapabilityBitmapField {
  /** Discriminant: a bitmap. */
  readonly kind: 'bitmap';
  /** Field name. */
  readonly name: string;
  /** Byte offset in cap_specific_data. */
  readonly offset: number;
  /** Width in bytes. */
  readonly width: number;
}

/**
 * An array: a little-endian count at `offset` in the fixed part, and `count` entries of
 * `entrySize` bytes after the fixed part. The driver sets only entries the device presented (byte
 * for byte), each at most once. At most one array, and it is the capability's last field.
 */
export interface CapabilityArrayField {
  /** Discriminant: an array of entries. */
  readonly kind: 'array';
  /** Field name. */
  readonly name: string;
  /** Byte offset of the entry count in the fixed part. */
  readonly offset: number;
  /** Width of the little-endian entry count. */
  readonly countWidth: 1 | 2 | 4;
  /** Bytes of one entry. */
  readonly entrySize: number;
  /** Entries a capability may carry (bounds what an untrusted driver can make the device parse). */
  readonly maxEntries: number;
}

/** One field of a capability. */
export type CapabilityField = CapabilityLimitField | CapabilityBitmapField | CapabilityArrayField;

/** The structure of one capability (cap_specific_data). */
export interface CapabilityLayout {
  /** The capability id (2.12.1.2 table of capability ids). */
  readonly id: number;
  /** Name for messages (the spec's name, e.g. VIRTIO_NET_FF_RESOURCE_CAP). */
  readonly name: string;
  /** Bytes of the fixed part (everything but an array's entries). */
  readonly size: number;
  /** The fields; an array, if any, last. */
  readonly fields: readonly CapabilityField[];
}

function fail(message: string): never {
  throw new VirtioError(ErrorCode.INVALID_ARGUMENT, message);
}

/** Checks a layout once (fields inside the fixed part, an array last, an id in range). */
export function defineCapabilityLayout(layout: CapabilityLayout): CapabilityLayout {
  if (!Number.isInteger(layout.id) || layout.id < 0 || layout.id >= CAPABILITY_ID_LIMIT) {
    fail(`capability ${layout.name}: id ${layout.id} outside 0x0000-0x0fff (2.12.1.2)`);
  }
  const names = new Set<string>();
  layout.fields.forEach((f, i) => {
    if (names.has(f.name)) fail(`capability ${layout.name}: field ${f.name} twice`);
    names.add(f.name);
    const width = f.kind === 'array' ? f.countWidth : f.width;
    if (f.offset < 0 || f.offset + width > layout.size) fail(`capability ${layout.name}: field ${f.name} outside ${layout.size} bytes`);
    if (f.kind === 'array' && (i !== layout.fields.length - 1 || f.entrySize < 1)) {
      fail(`capability ${layout.name}: array ${f.name} must be the last field`);
    }
  });
  return layout;
}

/** Reads a little-endian unsigned value of `width` bytes (exact up to 2^53). */
export function readCapabilityUint(bytes: Uint8Array, offset: number, width: number): number {
  let v = 0;
  for (let i = width - 1; i >= 0; i--) v = v * 256 + (bytes[offset + i] ?? 0);
  return v;
}

/** Writes a little-endian unsigned value of `width` bytes. */
export function writeCapabilityUint(bytes: Uint8Array, offset: number, width: number, value: number): void {
  let v = value;
  for (let i = 0; i < width; i++) {
    bytes[offset + i] = v % 256;
    v = Math.floor(v / 256);
  }
}

/** The field named `name` (INVALID_ARGUMENT when the layout has none). */
export function capabilityField(layout: CapabilityLayout, name: string): CapabilityField {
  const f = layout.fields.find((x) => x.name === name);
  if (!f) fail(`capability ${layout.name} has no field ${name}`);
  return f;
}

/** The value of limit field `name` in `bytes` (0 when the bytes are too short to hold it). */
export function capabilityLimit(layout: CapabilityLayout, bytes: Uint8Array, name: string): number {
  const f = capabilityField(layout, name);
  if (f.kind !== 'limit') fail(`capability ${layout.name}: ${name} is not a limit`);
  if (bytes.length < f.offset + f.width) return 0;
  return readCapabilityUint(bytes, f.offset, f.width);
}

/** The length a capability's bytes must have: the fixed part plus the array's entries. */
function expectedLength(layout: CapabilityLayout, bytes: Uint8Array): number | string {
  if (bytes.length < layout.size) return `${bytes.length} bytes, the capability has ${layout.size}`;
  const last = layout.fields[layout.fields.length - 1];
  if (last?.kind !== 'array') return layout.size;
  const count = readCapabilityUint(bytes, last.offset, last.countWidth);
  if (count > last.maxEntries) return `${count} entries in ${last.name}, at most ${last.maxEntries}`;
  return layout.size + count * last.entrySize;
}

/**
 * The capability in `bytes` at exactly the length its structure has: missing bytes read as zero,
 * bytes past the structure (a driver's padding to 8 bytes, a longer result buffer) are ignored
 * (device/admin/15, /16). Null when an array count exceeds the layout's maxEntries.
 */
export function normalizeCapability(layout: CapabilityLayout, bytes: Uint8Array): Uint8Array | null {
  const fixed = fitAdminData(bytes, layout.size);
  const last = layout.fields[layout.fields.length - 1];
  if (last?.kind !== 'array') return fixed;
  const count = readCapabilityUint(fixed, last.offset, last.countWidth);
  if (count > last.maxEntries) return null;
  return fitAdminData(bytes, layout.size + count * last.entrySize);
}

/**
 * Whether the device's own capability bytes are well formed (checked when a device is built: a
 * configuration error, not the driver's).
 */
export function checkDeviceCapability(layout: CapabilityLayout, device: Uint8Array): void {
  const len = expectedLength(layout, device);
  if (typeof len === 'string' || len !== device.length) fail(`device capability ${layout.name}: ${typeof len === 'string' ? len : `${device.length} bytes, expected ${len}`}`);
}

/**
 * 2.12.1.2 (device/admin-cmds-capabilities/2, /3, driver/admin-cmds-capabilities/2): null when the
 * driver capability `driver` sets limits at most the device's, only bits the device presented and
 * only array entries the device presented, once each; otherwise the reason. The lengths must
 * match the structure exactly (a too short or too long capability is malformed).
 */
export function driverCapabilityViolation(layout: CapabilityLayout, device: Uint8Array, driver: Uint8Array): string | null {
  const len = expectedLength(layout, driver);
  if (typeof len === 'string') return len;
  if (len !== driver.length) return `${driver.length} bytes, expected ${len}`;
  for (const f of layout.fields) {
    if (f.kind === 'limit') {
      const want = readCapabilityUint(driver, f.offset, f.width);
      const have = readCapabilityUint(device, f.offset, f.width);
      if (want > have) return `${f.name} ${want} above the device's ${have}`;
    } else if (f.kind === 'bitmap') {
      for (let i = 0; i < f.width; i++) {
        const extra = (driver[f.offset + i] ?? 0) & ~(device[f.offset + i] ?? 0);
        if (extra !== 0) return `${f.name} bit ${i * 8 + Math.clz32(1) - Math.clz32(extra & -extra)} not presented by the device`;
      }
    } else {
      const count = readCapabilityUint(driver, f.offset, f.countWidth);
      const devCount = readCapabilityUint(device, f.offset, f.countWidth);
      const start = layout.size;
      const used = new Uint8Array(devCount);
      for (let e = 0; e < count; e++) {
        const entry = driver.subarray(start + e * f.entrySize, start + (e + 1) * f.entrySize);
        let match = -1;
        for (let d = 0; d < devCount && match < 0; d++) {
          if (used[d] === 0 && sameBytes(entry, device.subarray(start + d * f.entrySize, start + (d + 1) * f.entrySize))) match = d;
        }
        if (match < 0) return `${f.name} entry ${e} not presented by the device (or set twice)`;
        used[match] = 1;
      }
    }
  }
  return null;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Whether two capability values are byte for byte the same. */
export function sameCapability(a: Uint8Array, b: Uint8Array): boolean {
  return sameBytes(a, b);
}
