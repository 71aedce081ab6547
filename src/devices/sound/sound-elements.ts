/**
 * 5.14.6.10 Control Elements, the host-side model: one SoundControlElement per element, its
 * information (checked at construction so the device never sets an undefined role, type or
 * access, a zero or too large count, or an empty / unterminated name or item: device/sound/13,
 * device/sound/14, device/sound/15), its value and its TLV metadata. The device's control queue
 * (sound-ctl-requests.ts) reads and writes them; the embedding application adds its own through
 * SoundDevice.addControl.
 */
import { ErrorCode, VirtioError } from '../../errors.js';
import {
  SOUND_CTL_ACCESS_DEFINED,
  SOUND_CTL_MAX_COUNT,
  SOUND_CTL_ROLE_MAX,
  SoundCtlAccess,
  SoundCtlEnumItem,
  SoundCtlIec958,
  SoundCtlInfo,
  SoundCtlRole,
  SoundCtlType,
  SoundDirection,
} from '../../spec/sound.js';

/** A control element's value: numbers for BOOLEAN / INTEGER / ENUMERATED, bigints for INTEGER64, bytes for BYTES / IEC958. */
export type SoundControlValue = readonly number[] | readonly bigint[] | Uint8Array;

/** TLV metadata (5.14.6.10.3): a type and 4-byte words (`length` is 4 x the words). */
export interface SoundControlTlv {
  /** The metadata type (ALSA's SNDRV_CTL_TLVT_*, or the device's own). */
  readonly type: number;
  /** The value words (u32). */
  readonly value: readonly number[];
}

/** A control element as the embedding application describes it (SoundDevice.addControl). */
export interface SoundControlConfig {
  /** Name: 1 to 43 printable ASCII characters (it goes 0-terminated into 44 bytes). */
  readonly name: string;
  /** Index among elements of the same name; (name, index) is unique on a device. Default 0. */
  readonly index?: number;
  /** VIRTIO_SND_CTL_ROLE_*. Default UNDEFINED. */
  readonly role?: number;
  /** Direction of data flow for a role other than UNDEFINED (VIRTIO_SND_D_*). Default OUTPUT. */
  readonly direction?: SoundDirection;
  /** VIRTIO_SND_CTL_TYPE_*. */
  readonly type: SoundCtlType;
  /** VIRTIO_SND_CTL_ACCESS_* mask. Default READ | WRITE (plus TLV_READ when `tlv` is given). */
  readonly access?: number;
  /** Members of the value (1 .. the type's maximum; IEC958: 1). Default 1. */
  readonly count?: number;
  /** INTEGER (number) / INTEGER64 (bigint): minimum. Default 0. */
  readonly min?: number | bigint;
  /** INTEGER / INTEGER64: maximum. Default 1. */
  readonly max?: number | bigint;
  /** INTEGER / INTEGER64: step (0 = variable). Default 0. */
  readonly step?: number | bigint;
  /** ENUMERATED: the item names (1 to 63 printable ASCII characters each). */
  readonly items?: readonly string[];
  /** The initial value (default: min for integers, item 0, zero bytes). */
  readonly value?: SoundControlValue;
  /** TLV metadata (needed with TLV_READ access). */
  readonly tlv?: SoundControlTlv;
  /** `hdr.hda_fn_nid` of its information. Default 0. */
  readonly hdaFnNid?: number;
  /** The driver wrote a (checked) value, already stored; return false to answer IO_ERR (the old value is kept). */
  readonly onWrite?: (value: SoundControlValue) => boolean | void;
  /** The driver wrote metadata (TLV_WRITE); return false to refuse it (IO_ERR). Without it the metadata is stored. */
  readonly onTlvWrite?: (tlv: SoundControlTlv) => boolean | void;
  /** The driver sent a TLV command (needed with TLV_COMMAND access); return false to answer IO_ERR. */
  readonly onTlvCommand?: (tlv: SoundControlTlv) => boolean | void;
}

/** Enumerated items allowed per element (the chapter sets no limit; this bounds the host's memory). */
export const MAX_ENUM_ITEMS = 1024;

function bad(why: string): never {
  throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `sound control: ${why}`);
}

/** device/sound/15: a non-empty printable ASCII string short enough for its 0 terminator. */
function checkAscii(s: string, room: number, what: string): void {
  if (s.length === 0 || s.length >= room || !/^[\x20-\x7e]+$/.test(s)) bad(`${what} ${JSON.stringify(s)} is not 1..${room - 1} printable ASCII characters`);
}

const I32_MIN = -0x80000000;
const I32_MAX = 0x7fffffff;
const I64_MIN = -(1n << 63n);
const I64_MAX = (1n << 63n) - 1n;

/** One control element: its checked information, its current value and metadata. */
export class SoundControlElement {
  /** VIRTIO_SND_CTL_TYPE_*. */
  readonly type: SoundCtlType;
  /** `role` as written: (ROLE << 1) | direction, or 0. */
  readonly role: number;
  /** Members of the value. */
  readonly count: number;
  /** Name and index (unique per device). */
  readonly name: string;
  /** Index among elements of the same name. */
  readonly index: number;
  /** `hdr.hda_fn_nid`. */
  readonly hdaFnNid: number;
  /** Access rights now (INACTIVE may change: SoundDevice.setControlActive). */
  access: number;
  /** INTEGER minimum. */
  readonly min: number;
  /** INTEGER maximum. */
  readonly max: number;
  /** INTEGER step (0 = variable). */
  readonly step: number;
  /** INTEGER64 minimum. */
  readonly min64: bigint;
  /** INTEGER64 maximum. */
  readonly max64: bigint;
  /** INTEGER64 step (0 = variable). */
  readonly step64: bigint;
  /** ENUMERATED item names. */
  readonly items: readonly string[];
  /** BOOLEAN / INTEGER / ENUMERATED value. */
  readonly ints: Int32Array;
  /** INTEGER64 value. */
  readonly ints64: BigInt64Array;
  /** BYTES / IEC958 value. */
  readonly bytes: Uint8Array;
  /** Metadata, or null. */
  tlv: SoundControlTlv | null;
  /** The application's hooks. */
  readonly config: SoundControlConfig;

  constructor(c: SoundControlConfig) {
    this.config = c;
    const type = c.type;
    const maxCount = SOUND_CTL_MAX_COUNT[type];
    if (!Number.isInteger(type) || maxCount === undefined) bad(`undefined type ${type}`);
    this.type = type;
    checkAscii(c.name, SoundCtlInfo.NAME_SIZE, 'name');
    this.name = c.name;
    this.index = c.index ?? 0;
    if (!Number.isInteger(this.index) || this.index < 0 || this.index > 0xffffffff) bad(`index ${this.index}`);
    this.hdaFnNid = c.hdaFnNid ?? 0;
    if (!Number.isInteger(this.hdaFnNid) || this.hdaFnNid < 0 || this.hdaFnNid > 0xffffffff) bad(`hdaFnNid ${this.hdaFnNid}`);
    // device/sound/13: defined role and direction only.
    const role = c.role ?? SoundCtlRole.UNDEFINED;
    const dir = c.direction ?? SoundDirection.OUTPUT;
    if (!Number.isInteger(role) || role < 0 || role > SOUND_CTL_ROLE_MAX) bad(`undefined role ${role}`);
    if (dir !== SoundDirection.OUTPUT && dir !== SoundDirection.INPUT) bad(`undefined direction ${String(dir)}`);
    this.role = role === SoundCtlRole.UNDEFINED ? 0 : (role << 1) | dir;
    const access = c.access ?? SoundCtlAccess.READ | SoundCtlAccess.WRITE | (c.tlv ? SoundCtlAccess.TLV_READ : 0);
    if (!Number.isInteger(access) || (access & ~SOUND_CTL_ACCESS_DEFINED) !== 0 || access < 0) bad(`undefined access bits 0x${access.toString(16)}`);
    this.access = access;
    // device/sound/14, device/sound/15: 1 .. the type's maximum.
    const count = c.count ?? 1;
    if (!Number.isInteger(count) || count < 1 || count > maxCount!) bad(`count ${count} not in 1..${maxCount}`);
    this.count = count;
    this.items = c.items ?? [];
    if (type === SoundCtlType.ENUMERATED) {
      if (this.items.length === 0 || this.items.length > MAX_ENUM_ITEMS) bad(`ENUMERATED needs 1..${MAX_ENUM_ITEMS} items`);
      for (const it of this.items) checkAscii(it, SoundCtlEnumItem.SIZE, 'item');
    } else if (this.items.length > 0) bad('items only for ENUMERATED');
    let min = 0, max = 0, step = 0, min64 = 0n, max64 = 0n, step64 = 0n;
    if (type === SoundCtlType.INTEGER) {
      [min, max, step] = [c.min ?? 0, c.max ?? 1, c.step ?? 0].map(Number) as [number, number, number];
      for (const v of [min, max, step]) if (!Number.isInteger(v) || v < I32_MIN || v > I32_MAX) bad(`integer bound ${v} not a 32-bit integer`);
      if (min > max || step < 0) bad(`integer range ${min}..${max} step ${step}`);
    } else if (type === SoundCtlType.INTEGER64) {
      const b = [c.min ?? 0n, c.max ?? 1n, c.step ?? 0n];
      if (!b.every((v) => typeof v === 'bigint')) bad('INTEGER64 bounds are bigints');
      [min64, max64, step64] = b as [bigint, bigint, bigint];
      for (const v of [min64, max64, step64]) if (v < I64_MIN || v > I64_MAX) bad(`integer64 bound ${v} out of range`);
      if (min64 > max64 || step64 < 0n) bad(`integer64 range ${min64}..${max64} step ${step64}`);
    } else if (c.min !== undefined || c.max !== undefined || c.step !== undefined) bad('min/max/step only for INTEGER and INTEGER64');
    this.min = min;
    this.max = max;
    this.step = step;
    this.min64 = min64;
    this.max64 = max64;
    this.step64 = step64;
    const ints = type === SoundCtlType.BOOLEAN || type === SoundCtlType.INTEGER || type === SoundCtlType.ENUMERATED;
    this.ints = new Int32Array(ints ? count : 0);
    this.ints64 = new BigInt64Array(type === SoundCtlType.INTEGER64 ? count : 0);
    this.bytes = new Uint8Array(type === SoundCtlType.BYTES ? count : type === SoundCtlType.IEC958 ? SoundCtlIec958.SIZE : 0);
    this.ints.fill(type === SoundCtlType.INTEGER ? min : 0);
    this.ints64.fill(min64);
    this.tlv = null;
    if (c.tlv) this.setTlv(c.tlv);
    if ((access & SoundCtlAccess.TLV_READ) !== 0 && this.tlv === null) bad('TLV_READ access needs tlv');
    if ((access & SoundCtlAccess.TLV_COMMAND) !== 0 && c.onTlvCommand === undefined) bad('TLV_COMMAND access needs onTlvCommand');
    if (c.value !== undefined) this.setValue(c.value);
  }

  /** Metadata words checked (u32) and copied. */
  setTlv(tlv: SoundControlTlv): void {
    if (!Number.isInteger(tlv.type) || tlv.type < 0 || tlv.type > 0xffffffff) bad(`TLV type ${tlv.type}`);
    if (tlv.value.length * 4 > 65536) bad('TLV value above 65536 bytes');
    for (const w of tlv.value) if (!Number.isInteger(w) || w < I32_MIN || w > 0xffffffff) bad(`TLV word ${w}`);
    this.tlv = { type: tlv.type, value: tlv.value.map((w) => w >>> 0) };
  }

  /** The value as the host sees it (a copy). */
  value(): SoundControlValue {
    if (this.ints.length > 0) return Array.from(this.ints);
    if (this.ints64.length > 0) return Array.from(this.ints64);
    return this.bytes.slice();
  }

  /** Sets the value from the host (checked like a driver's write; throws on an invalid one). */
  setValue(v: SoundControlValue): void {
    const n = this.ints.length || this.ints64.length || this.bytes.length;
    if (v.length !== n) bad(`${this.name}: value of ${v.length} members, not ${n}`);
    if (this.ints64.length > 0) {
      for (let i = 0; i < n; i++) {
        const x = v[i];
        if (typeof x !== 'bigint' || !this.valid64(x)) bad(`${this.name}: invalid INTEGER64 member ${String(x)}`);
      }
      for (let i = 0; i < n; i++) this.ints64[i] = v[i] as bigint;
      return;
    }
    for (let i = 0; i < n; i++) {
      const x = v[i];
      if (typeof x !== 'number' || !Number.isInteger(x)) bad(`${this.name}: invalid member ${String(x)}`);
      if (this.ints.length > 0 ? !this.valid(x) : x < 0 || x > 255) bad(`${this.name}: member ${x} out of range`);
    }
    const dst = this.ints.length > 0 ? this.ints : this.bytes;
    for (let i = 0; i < n; i++) dst[i] = v[i] as number;
  }

  /** Whether a BOOLEAN / INTEGER / ENUMERATED member is acceptable. */
  valid(x: number): boolean {
    if (this.type === SoundCtlType.BOOLEAN) return x === 0 || x === 1;
    if (this.type === SoundCtlType.ENUMERATED) return x >= 0 && x < this.items.length;
    return x >= this.min && x <= this.max && (this.step === 0 || (x - this.min) % this.step === 0);
  }

  /** Whether an INTEGER64 member is acceptable. */
  valid64(x: bigint): boolean {
    return x >= this.min64 && x <= this.max64 && (this.step64 === 0n || (x - this.min64) % this.step64 === 0n);
  }

  /** Whether the element has all of `access` now. */
  has(access: number): boolean {
    return (this.access & access) === access;
  }
}

/** ASCII `s` into `dst` at `at`, the rest up to `room` zero (device/sound/15: 0-terminated). */
export function putAscii(dst: Uint8Array, at: number, s: string, room: number): void {
  dst.fill(0, at, at + room);
  for (let i = 0; i < s.length && i < room - 1; i++) dst[at + i] = s.charCodeAt(i);
}
