/**
 * What an input device reports through its configuration space (5.8.4): identity, properties,
 * the event types and codes it supports and its absolute axes. `InputConfigSpace` answers the
 * driver's select/subsel queries from it, precomputing every answer once.
 */
import { ErrorCode, VirtioError } from '../../errors.js';
import { InputAbsInfo, InputConfig, InputConfigSelect, InputDevIds } from '../../spec/input.js';

/** One absolute axis as VIRTIO_INPUT_CFG_ABS_INFO reports it (struct virtio_input_absinfo, 5.8.4). */
export interface InputAbsAxis {
  /** Smallest value the axis reports. */
  readonly min: number;
  /** Largest value the axis reports. */
  readonly max: number;
  /** Noise filter: changes smaller than this may be dropped by the guest's input core. Default 0. */
  readonly fuzz?: number;
  /** Dead zone around the centre reported as the centre (joysticks). Default 0. */
  readonly flat?: number;
  /** Resolution: units per millimetre (units per radian for rotation axes). Default 0: unknown. */
  readonly res?: number;
}

/** The device's identity as VIRTIO_INPUT_CFG_ID_DEVIDS reports it (struct virtio_input_devids, 5.8.4). */
export interface InputDevIdsValue {
  /** BUS_* of linux/input.h (BUS_VIRTUAL 0x06 for the presets). */
  readonly bustype: number;
  /** Vendor id (16 bits). */
  readonly vendor: number;
  /** Product id (16 bits). */
  readonly product: number;
  /** Version (16 bits). */
  readonly version: number;
}

/** What an input device is, as its configuration space describes it (5.8.4): identity, event codes, axes. */
export interface InputDeviceProfile {
  /** VIRTIO_INPUT_CFG_ID_NAME (UTF-8, at most 128 bytes, no NUL). */
  readonly name: string;
  /** VIRTIO_INPUT_CFG_ID_SERIAL (empty: not reported). */
  readonly serial?: string;
  /** VIRTIO_INPUT_CFG_ID_DEVIDS. */
  readonly ids?: InputDevIdsValue;
  /** VIRTIO_INPUT_CFG_PROP_BITS: INPUT_PROP_* numbers. */
  readonly properties?: readonly number[];
  /** VIRTIO_INPUT_CFG_EV_BITS: per EV_* type (1..0x1f), the codes (0..1023) supported. */
  readonly events: Readonly<Record<number, readonly number[]>>;
  /** VIRTIO_INPUT_CFG_ABS_INFO: per ABS_* axis, its range. */
  readonly abs?: Readonly<Record<number, InputAbsAxis>>;
}

/** Highest code a 128-byte bitmap can describe. */
const MAX_CODE = InputConfig.U_BYTES * 8 - 1;

function bitmap(codes: readonly number[], what: string): Uint8Array {
  let top = -1;
  for (const c of codes) {
    if (!Number.isInteger(c) || c < 0 || c > MAX_CODE) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `${what}: code ${c} not in 0..${MAX_CODE}`);
    top = Math.max(top, c);
  }
  // The size is the bitmap's bytes up to its last set bit (QEMU and Linux read `size` bytes).
  const out = new Uint8Array(top < 0 ? 0 : (top >> 3) + 1);
  for (const c of codes) out[c >> 3]! |= 1 << (c & 7);
  return out;
}

function stringBytes(s: string, what: string): Uint8Array {
  const b = new TextEncoder().encode(s);
  if (b.length > InputConfig.U_BYTES) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `${what} is ${b.length} bytes, at most ${InputConfig.U_BYTES}`);
  return b;
}

function u32(v: number | undefined, what: string): number {
  const x = v ?? 0;
  // absinfo fields are le32; Linux reads them as signed (min may be negative).
  if (!Number.isInteger(x) || x < -0x8000_0000 || x > 0xffff_ffff) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `${what}: ${x} does not fit 32 bits`);
  return x >>> 0;
}

function u16(v: number, what: string): number {
  if (!Number.isInteger(v) || v < 0 || v > 0xffff) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `${what}: ${v} does not fit 16 bits`);
  return v;
}

/** A union answer: bytes, or a list of numbers with their width (stored in guest byte order on read). */
interface Answer {
  readonly bytes?: Uint8Array;
  readonly words?: readonly number[];
  readonly width?: 2 | 4;
}

/**
 * The config space of one input device: select and subsel (the only writable fields,
 * driver/input/2), and size plus the union computed from the profile. Unsupported combinations
 * read size 0 and a zero union (device/input/1).
 */
export class InputConfigSpace {
  private readonly answers = new Map<number, Answer>();
  private select = 0;
  private subsel = 0;

  constructor(
    /** The description every config answer is computed from (once, here). */
    readonly profile: InputDeviceProfile,
  ) {
    const S = InputConfigSelect;
    const put = (sel: number, sub: number, a: Answer): void => void this.answers.set((sel << 8) | sub, a);
    put(S.ID_NAME, 0, { bytes: stringBytes(profile.name, 'name') });
    if (profile.serial) put(S.ID_SERIAL, 0, { bytes: stringBytes(profile.serial, 'serial') });
    if (profile.ids) {
      const i = profile.ids;
      put(S.ID_DEVIDS, 0, { words: [u16(i.bustype, 'bustype'), u16(i.vendor, 'vendor'), u16(i.product, 'product'), u16(i.version, 'version')], width: 2 });
    }
    const props = bitmap(profile.properties ?? [], 'properties');
    if (props.length > 0) put(S.PROP_BITS, 0, { bytes: props });
    for (const [k, codes] of Object.entries(profile.events)) {
      const type = Number(k);
      if (!Number.isInteger(type) || type < 1 || type > 0x1f) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `event type ${k} not in 1..0x1f`);
      const b = bitmap(codes, `event type ${type}`);
      if (b.length > 0) put(S.EV_BITS, type, { bytes: b });
    }
    for (const [k, axis] of Object.entries(profile.abs ?? {})) {
      const code = Number(k);
      if (!Number.isInteger(code) || code < 0 || code > 0xff) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `abs axis ${k} not in 0..255`);
      const w = [u32(axis.min, 'abs min'), u32(axis.max, 'abs max'), u32(axis.fuzz, 'abs fuzz'), u32(axis.flat, 'abs flat'), u32(axis.res, 'abs res')];
      put(S.ABS_INFO, code, { words: w, width: 4 });
    }
  }

  /** Device reset: the selector goes back to UNSET. */
  reset(): void {
    this.select = 0;
    this.subsel = 0;
  }

  /** The config bytes [offset, offset + dst.length), in the guest's byte order for the union's numbers. */
  read(offset: number, dst: Uint8Array, littleEndian: boolean): void {
    dst.fill(0);
    const image = new Uint8Array(InputConfig.BYTES);
    image[InputConfig.SELECT] = this.select;
    image[InputConfig.SUBSEL] = this.subsel;
    const a = this.answers.get((this.select << 8) | this.subsel);
    if (a !== undefined) {
      if (a.bytes) {
        image[InputConfig.SIZE] = a.bytes.length;
        image.set(a.bytes, InputConfig.U);
      } else if (a.words && a.width) {
        const v = new DataView(image.buffer);
        a.words.forEach((w, i) => {
          const at = InputConfig.U + i * a.width!;
          if (a.width === 2) v.setUint16(at, w, littleEndian);
          else v.setUint32(at, w, littleEndian);
        });
        image[InputConfig.SIZE] = a.width === 2 ? InputDevIds.BYTES : InputAbsInfo.BYTES;
      }
    }
    const end = Math.min(InputConfig.BYTES, offset + dst.length);
    if (offset < end) dst.set(image.subarray(offset, end), 0);
  }

  /** A driver write: only select and subsel take it (driver/input/2); other bytes are ignored. */
  write(offset: number, src: Uint8Array): void {
    for (let i = 0; i < src.length; i++) {
      const at = offset + i;
      if (at === InputConfig.SELECT) this.select = src[i]!;
      else if (at === InputConfig.SUBSEL) this.subsel = src[i]!;
    }
  }
}
