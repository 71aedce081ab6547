/**
 * Declarative device configuration layouts (2.5): each field with its offset, width, the feature
 * that makes it exist and whether the driver may write it. One table per device type (spec/blk.ts,
 * spec/entropy.ts, ...) serves both sides: the device encodes any byte window of its config from
 * field values, the driver decodes fields by name, in either byte order.
 *
 * Byte order: a modern interface is little-endian (2.5); a legacy interface uses the guest's
 * native order (2.5.3 legacy), so a big-endian guest sees every multi-byte field, 64-bit fields
 * included, most significant byte first.
 *
 * Values are JavaScript numbers: 64-bit fields hold up to 2^53 - 1 (capacities in sectors and the
 * like); the encoder refuses larger values rather than silently rounding them.
 */
import { ErrorCode, VirtioError } from '../errors.js';

/** Width of a config field in bytes (2.5: accesses are 1, 2, 4 or 8 bytes wide). */
export type ConfigFieldWidth = 1 | 2 | 4 | 8;
/** 'ro': the driver must not write it; 'rw': a driver write changes it (e.g. blk writeback). */
export type ConfigAccess = 'ro' | 'rw';

/**
 * One field of a device configuration structure: where it is, how wide, when it exists, and whether
 * the driver may write it.
 */
export interface ConfigField<N extends string = string> {
  /** The field's name (camelCase of the spec's field name). */
  readonly name: N;
  /** Byte offset in the configuration space. */
  readonly offset: number;
  /** Width in bytes. */
  readonly width: ConfigFieldWidth;
  /** Feature bit mask whose negotiation (or offer, device side) makes the field exist; null: always. */
  readonly feature: bigint | null;
  /** Whether the driver may write it. */
  readonly access: ConfigAccess;
}

/**
 * A device configuration structure (5.x.4 struct virtio_*_config) as data: its size and fields, for
 * encodeConfig, decodeConfigWrite and the drivers' reads.
 */
export interface ConfigLayout<N extends string = string> {
  /** Size of the whole structure in bytes (padding included). */
  readonly size: number;
  /** The fields, in offset order. */
  readonly fields: readonly ConfigField<N>[];
  /** The field named `name` (throws INVALID_ARGUMENT for a name not in the layout). */
  field(name: N): ConfigField<N>;
}

/** Field values by name; a missing value encodes as 0. */
export type ConfigValues<N extends string> = Readonly<Partial<Record<N, number>>>;

const U32 = 0x1_0000_0000;

/**
 * Builds a layout and checks it once: fields inside `size`, naturally aligned (4.1.3.1, 4.2.2:
 * drivers access each field with its own width), not overlapping, names unique.
 */
export function defineConfigLayout<const N extends string>(size: number, fields: readonly ConfigField<N>[]): ConfigLayout<N> {
  if (!Number.isInteger(size) || size < 0) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `config layout size ${size}`);
  const byName = new Map<string, ConfigField<N>>();
  const owner = new Array<string | undefined>(size);
  for (const f of fields) {
    if (byName.has(f.name)) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `config field ${f.name} defined twice`);
    if (![1, 2, 4, 8].includes(f.width) || !Number.isInteger(f.offset) || f.offset < 0 || f.offset + f.width > size) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `config field ${f.name}: offset ${f.offset} width ${f.width} outside ${size} bytes`);
    }
    // 64-bit fields are read as two aligned 32-bit halves (4.1.3.1), so 4-byte alignment suffices.
    if (f.offset % Math.min(f.width, 4) !== 0) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `config field ${f.name} is not aligned`);
    for (let i = f.offset; i < f.offset + f.width; i++) {
      if (owner[i] !== undefined) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `config fields ${owner[i]} and ${f.name} overlap`);
      owner[i] = f.name;
    }
    byName.set(f.name, f);
  }
  const frozen = Object.freeze([...fields]);
  return {
    size,
    fields: frozen,
    field(name: N): ConfigField<N> {
      const f = byName.get(name);
      if (!f) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `no config field ${String(name)}`);
      return f;
    },
  };
}

/** Whether `field` exists given the feature bits (offered on the device side, negotiated on the driver side). */
export function configFieldPresent(field: ConfigField, features: bigint): boolean {
  return field.feature === null || (features & field.feature) !== 0n;
}

/**
 * Bytes of configuration space a driver needs to hold the fields `names` that exist under
 * `features` (the end of the last one): what it checks the device's space against
 * (driver/content/13: large enough, not an exact size).
 */
export function configBytesNeeded<N extends string>(layout: ConfigLayout<N>, names: readonly N[], features: bigint): number {
  let end = 0;
  for (const n of names) {
    const f = layout.field(n);
    if (configFieldPresent(f, features)) end = Math.max(end, f.offset + f.width);
  }
  return end;
}

/** Byte `k` (0 = lowest address) of `value` stored in `width` bytes in the given order. */
function fieldByte(lo: number, hi: number, width: number, k: number, littleEndian: boolean): number {
  const b = littleEndian ? k : width - 1 - k; // significance of the byte at address k
  const word = b < 4 ? lo : hi;
  return (word >>> ((b & 3) * 8)) & 0xff;
}

function checkValue(f: ConfigField, v: number): void {
  const max = f.width === 8 ? Number.MAX_SAFE_INTEGER : 2 ** (8 * f.width) - 1;
  if (!Number.isInteger(v) || v < 0 || v > max) {
    throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `config field ${f.name}: value ${v} does not fit ${f.width} bytes`);
  }
}

/**
 * Device side: fills `dst` with the config bytes at [offset, offset + dst.length). Fields that do
 * not exist under `features` and bytes outside every field (padding, past `size`) read as 0
 * (device/blk/3 and the like: reserved space is zero).
 */
export function encodeConfig<N extends string>(
  layout: ConfigLayout<N>,
  values: ConfigValues<N>,
  features: bigint,
  offset: number,
  dst: Uint8Array,
  littleEndian: boolean,
): void {
  dst.fill(0);
  const end = offset + dst.length;
  for (const f of layout.fields) {
    if (f.offset >= end || f.offset + f.width <= offset || !configFieldPresent(f, features)) continue;
    const v = values[f.name] ?? 0;
    checkValue(f, v);
    const lo = v % U32;
    const hi = Math.floor(v / U32);
    for (let k = 0; k < f.width; k++) {
      const at = f.offset + k - offset;
      if (at >= 0 && at < dst.length) dst[at] = fieldByte(lo, hi, f.width, k, littleEndian);
    }
  }
}

/** Decodes one field from its `width` bytes as read from the config space. */
export function decodeConfigField(field: ConfigField, bytes: Uint8Array, littleEndian: boolean): number {
  if (bytes.length < field.width) throw new VirtioError(ErrorCode.CONFIG_OUT_OF_RANGE, `config field ${field.name}: ${bytes.length} bytes, needs ${field.width}`);
  let lo = 0;
  let hi = 0;
  for (let k = 0; k < field.width; k++) {
    const b = littleEndian ? k : field.width - 1 - k;
    if (b < 4) lo += bytes[k]! * 2 ** (8 * b);
    else hi += bytes[k]! * 2 ** (8 * (b - 4));
  }
  return hi * U32 + lo;
}

/** Encodes one field's value into `width` bytes (driver side, for a write of that field). */
export function encodeConfigField(field: ConfigField, value: number, littleEndian: boolean): Uint8Array {
  checkValue(field, value);
  const out = new Uint8Array(field.width);
  const lo = value % U32;
  const hi = Math.floor(value / U32);
  for (let k = 0; k < field.width; k++) out[k] = fieldByte(lo, hi, field.width, k, littleEndian);
  return out;
}

/**
 * Reads config bytes at an offset with a length, the way a driver does: each call one field,
 * with its own width (driver/transport-pci/5, driver/transport-mmio/3), consistent over the
 * configuration generation (2.5.1).
 */
export type ConfigReader = (offset: number, length: number) => Uint8Array;

/** Driver side: reads and decodes the field `name`. */
export function readConfigField<N extends string>(layout: ConfigLayout<N>, name: N, read: ConfigReader, littleEndian: boolean): number {
  const f = layout.field(name);
  return decodeConfigField(f, read(f.offset, f.width), littleEndian);
}

/** Driver side: reads the fields `names` (each with its own access) into a record. */
export function readConfigFields<N extends string, K extends N>(
  layout: ConfigLayout<N>,
  names: readonly K[],
  read: ConfigReader,
  littleEndian: boolean,
): Record<K, number> {
  const out = {} as Record<K, number>;
  for (const n of names) out[n] = readConfigField(layout, n, read, littleEndian);
  return out;
}

/** Writes `length` config bytes at an offset, the way a driver does (one field per call). */
export type ConfigWriter = (offset: number, bytes: Uint8Array) => void;

/** Driver side: encodes and writes the field `name`; refuses a read-only field (INVALID_ARGUMENT). */
export function writeConfigField<N extends string>(layout: ConfigLayout<N>, name: N, value: number, write: ConfigWriter, littleEndian: boolean): void {
  const f = layout.field(name);
  if (f.access !== 'rw') throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `config field ${f.name} is read-only`);
  write(f.offset, encodeConfigField(f, value, littleEndian));
}

/**
 * Device side: the writable fields a driver write of `src` at `offset` sets, each passed to
 * `apply` with its decoded value. Only fields that are 'rw', exist under the negotiated
 * `features`, and are written whole count; anything else in the write is ignored (a driver
 * must not write read-only fields, and the device does not act on them).
 */
export function decodeConfigWrite<N extends string>(
  layout: ConfigLayout<N>,
  offset: number,
  src: Uint8Array,
  features: bigint,
  littleEndian: boolean,
  apply: (name: N, value: number) => void,
): void {
  const end = offset + src.length;
  for (const f of layout.fields) {
    if (f.access !== 'rw' || f.offset < offset || f.offset + f.width > end || !configFieldPresent(f, features)) continue;
    const at = f.offset - offset;
    apply(f.name, decodeConfigField(f, src.subarray(at, at + f.width), littleEndian));
  }
}

/**
 * Whether a driver write of `size` bytes at `offset` lands only on whole driver-writable ('rw')
 * fields that exist under `features`. The vhost-user back-end refuses a SET_CONFIG for which
 * this is false ("the back-end MUST NOT accept SET_CONFIG for read-only fields").
 */
export function configWriteAllowed(layout: ConfigLayout, offset: number, size: number, features: bigint): boolean {
  if (!Number.isInteger(offset) || !Number.isInteger(size) || offset < 0 || size <= 0 || offset + size > layout.size) return false;
  let covered = 0;
  for (const f of layout.fields) {
    if (f.offset + f.width <= offset || f.offset >= offset + size) continue;
    // A field only partly inside the write, read-only, or absent: refused.
    if (f.access !== 'rw' || f.offset < offset || f.offset + f.width > offset + size || !configFieldPresent(f, features)) return false;
    covered += f.width;
  }
  // Padding between fields is not writable either.
  return covered === size;
}
