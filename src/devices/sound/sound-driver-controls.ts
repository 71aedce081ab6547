/**
 * 5.14.6.10 Control Elements, driver side (SoundDriver.controlElements): CTL_INFO within the
 * `controls` count, CTL_ENUM_ITEMS, CTL_READ / CTL_WRITE and the three TLV requests. Each request
 * is sent only when the element's information (queried first when not yet known) grants the
 * access right: READ (driver/sound/16), WRITE (driver/sound/17), TLV_READ (driver/sound/18),
 * TLV_WRITE (driver/sound/19), TLV_COMMAND (driver/sound/20); a TLV `value` above 65536 bytes is
 * never submitted (driver/sound/21). A refusal here is a VirtioError INVALID_ARGUMENT and nothing
 * reaches the device; a status other than OK is a SoundRequestError.
 */
import { ErrorCode, VirtioError } from '../../errors.js';
import {
  SOUND_CTL_TLV_MAX_VALUE,
  SoundCode,
  SoundCtlAccess,
  SoundCtlEnumItem,
  SoundCtlHdr,
  SoundCtlInfo,
  SoundCtlTlv,
  SoundCtlType,
  SoundCtlValue,
  SoundHdr,
} from '../../spec/sound.js';
import type { SoundControlInfoResult } from './sound-driver.js';
import type { SoundControlTlv, SoundControlValue } from './sound-elements.js';

/** How the driver side sends one control request: the payload after an OK header, else a SoundRequestError. */
export type SoundOkRequest = (request: Uint8Array, responseBytes: number) => Promise<Uint8Array>;

/** Metadata read by default: room for 4096 bytes of `value`. */
const DEFAULT_TLV_READ_BYTES = 4096;

function refuse(why: string): never {
  throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `virtio-snd control: ${why}`);
}

function asciiz(b: Uint8Array): string {
  const end = b.indexOf(0);
  return String.fromCharCode(...b.subarray(0, end === -1 ? b.length : end));
}

/** The driver's view of the device's control elements. */
export class SoundControlElementsDriver {
  private readonly infos = new Map<number, SoundControlInfoResult>();

  constructor(
    private readonly ok: SoundOkRequest,
    private readonly le: boolean,
    /** `controls` of the configuration (0 without VIRTIO_SND_F_CTLS). */
    readonly count: number,
  ) {}

  private header(code: number, id: number, extra = 0): { bytes: Uint8Array; view: DataView } {
    const bytes = new Uint8Array(SoundCtlHdr.SIZE + extra);
    const view = new DataView(bytes.buffer);
    view.setUint32(SoundCtlHdr.CODE, code, this.le);
    view.setUint32(SoundCtlHdr.CONTROL_ID, id, this.le);
    return { bytes, view };
  }

  /** VIRTIO_SND_R_CTL_INFO: the elements' information, `count` from `start` (all by default), within `controls` (driver/sound/4, driver/sound/5). */
  async info(start = 0, count = this.count - start): Promise<SoundControlInfoResult[]> {
    if (this.count === 0) refuse('VIRTIO_SND_F_CTLS not negotiated or no elements');
    if (!Number.isInteger(start) || !Number.isInteger(count) || start < 0 || count < 0 || start + count > this.count) refuse(`elements ${start}..${start + count} of ${this.count} (driver/sound/4)`);
    if (count === 0) return [];
    const q = new Uint8Array(16);
    const qv = new DataView(q.buffer);
    [SoundCode.R_CTL_INFO, start, count, SoundCtlInfo.SIZE].forEach((w, i) => qv.setUint32(i * 4, w, this.le));
    const payload = await this.ok(q, SoundHdr.SIZE + count * SoundCtlInfo.SIZE);
    if (payload.length < count * SoundCtlInfo.SIZE) throw new VirtioError(ErrorCode.REQUEST_FAILED, `virtio-snd: ${payload.length} bytes of information for ${count} elements`);
    const out: SoundControlInfoResult[] = [];
    for (let i = 0; i < count; i++) {
      const b = payload.subarray(i * SoundCtlInfo.SIZE, (i + 1) * SoundCtlInfo.SIZE);
      const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
      const type = v.getUint32(SoundCtlInfo.TYPE, this.le);
      const extra: Partial<SoundControlInfoResult> =
        type === SoundCtlType.INTEGER
          ? { min: v.getInt32(SoundCtlInfo.INTEGER_MIN, this.le), max: v.getInt32(SoundCtlInfo.INTEGER_MAX, this.le), step: v.getInt32(SoundCtlInfo.INTEGER_STEP, this.le) }
          : type === SoundCtlType.INTEGER64
            ? { min: v.getBigInt64(SoundCtlInfo.INTEGER64_MIN, this.le), max: v.getBigInt64(SoundCtlInfo.INTEGER64_MAX, this.le), step: v.getBigInt64(SoundCtlInfo.INTEGER64_STEP, this.le) }
            : type === SoundCtlType.ENUMERATED
              ? { items: v.getUint32(SoundCtlInfo.ENUMERATED_ITEMS, this.le) }
              : {};
      const info: SoundControlInfoResult = {
        hdaFnNid: v.getUint32(SoundCtlInfo.HDA_FN_NID, this.le),
        role: v.getUint32(SoundCtlInfo.ROLE, this.le),
        type,
        access: v.getUint32(SoundCtlInfo.ACCESS, this.le),
        count: v.getUint32(SoundCtlInfo.COUNT, this.le),
        index: v.getUint32(SoundCtlInfo.INDEX, this.le),
        name: asciiz(b.subarray(SoundCtlInfo.NAME, SoundCtlInfo.NAME + SoundCtlInfo.NAME_SIZE)),
        padding: b.slice(SoundCtlInfo.PADDING, SoundCtlInfo.VALUE),
        ...extra,
      };
      this.infos.set(start + i, info);
      out.push(info);
    }
    return out;
  }

  /** Element `id`'s information: as last queried, or queried now. */
  async infoOf(id: number): Promise<SoundControlInfoResult> {
    return this.infos.get(id) ?? (await this.info(id, 1))[0]!;
  }

  private async allowed(id: number, access: number, rule: string): Promise<SoundControlInfoResult> {
    const info = await this.infoOf(id);
    if ((info.access & access) !== access) refuse(`element ${id} (${info.name}) lacks the access right 0x${access.toString(16)} (${rule})`);
    return info;
  }

  /** VIRTIO_SND_R_CTL_ENUM_ITEMS: the item names of an ENUMERATED element. */
  async enumItems(id: number): Promise<string[]> {
    const info = await this.infoOf(id);
    if (info.type !== SoundCtlType.ENUMERATED || info.items === undefined) refuse(`element ${id} is not ENUMERATED`);
    const n = info.items;
    const payload = await this.ok(this.header(SoundCode.R_CTL_ENUM_ITEMS, id).bytes, SoundHdr.SIZE + n * SoundCtlEnumItem.SIZE);
    return Array.from({ length: Math.min(n, Math.floor(payload.length / SoundCtlEnumItem.SIZE)) }, (_, i) => asciiz(payload.subarray(i * SoundCtlEnumItem.SIZE, (i + 1) * SoundCtlEnumItem.SIZE)));
  }

  /** VIRTIO_SND_R_CTL_READ (driver/sound/16: only with ACCESS_READ): `count` members of the element's type. */
  async read(id: number): Promise<SoundControlValue> {
    const info = await this.allowed(id, SoundCtlAccess.READ, 'driver/sound/16');
    const payload = await this.ok(this.header(SoundCode.R_CTL_READ, id).bytes, SoundHdr.SIZE + SoundCtlValue.SIZE);
    if (payload.length < SoundCtlValue.SIZE) throw new VirtioError(ErrorCode.REQUEST_FAILED, `virtio-snd: value of ${payload.length} bytes`);
    const v = new DataView(payload.buffer, payload.byteOffset, SoundCtlValue.SIZE);
    switch (info.type) {
      case SoundCtlType.INTEGER64:
        return Array.from({ length: Math.min(info.count, 64) }, (_, i) => v.getBigInt64(i * 8, this.le));
      case SoundCtlType.BYTES:
        return payload.slice(0, Math.min(info.count, SoundCtlValue.SIZE));
      case SoundCtlType.IEC958:
        return payload.slice(0, 176);
      default:
        return Array.from({ length: Math.min(info.count, 128) }, (_, i) => v.getInt32(i * 4, this.le));
    }
  }

  /** VIRTIO_SND_R_CTL_WRITE (driver/sound/17: only with ACCESS_WRITE): `value` has the element's `count` members. */
  async write(id: number, value: SoundControlValue): Promise<void> {
    const info = await this.allowed(id, SoundCtlAccess.WRITE, 'driver/sound/17');
    const expected = info.type === SoundCtlType.IEC958 ? 176 : info.count;
    if (value.length !== expected) refuse(`element ${id}: ${value.length} members, not ${expected}`);
    const { bytes, view } = this.header(SoundCode.R_CTL_WRITE, id, SoundCtlValue.SIZE);
    const at = SoundCtlHdr.SIZE;
    for (let i = 0; i < value.length; i++) {
      const x = value[i]!;
      if (info.type === SoundCtlType.INTEGER64) {
        if (typeof x !== 'bigint') refuse('INTEGER64 members are bigints');
        view.setBigInt64(at + i * 8, x, this.le);
      } else if (typeof x !== 'number' || !Number.isInteger(x)) refuse(`member ${String(x)} is not an integer`);
      else if (info.type === SoundCtlType.BYTES || info.type === SoundCtlType.IEC958) bytes[at + i] = x;
      else view.setInt32(at + i * 4, x, this.le);
    }
    await this.ok(bytes, SoundHdr.SIZE);
  }

  /**
   * VIRTIO_SND_R_CTL_TLV_READ (driver/sound/18: only with ACCESS_TLV_READ), with room for
   * `maxValueBytes` of value (the device writes what fits: device/sound/17).
   */
  async tlvRead(id: number, maxValueBytes = DEFAULT_TLV_READ_BYTES): Promise<SoundControlTlv> {
    await this.allowed(id, SoundCtlAccess.TLV_READ, 'driver/sound/18');
    if (!Number.isInteger(maxValueBytes) || maxValueBytes < 0 || maxValueBytes > SOUND_CTL_TLV_MAX_VALUE) refuse(`TLV room ${maxValueBytes}`);
    const payload = await this.ok(this.header(SoundCode.R_CTL_TLV_READ, id).bytes, SoundHdr.SIZE + SoundCtlTlv.HDR_SIZE + (maxValueBytes & ~3));
    if (payload.length < SoundCtlTlv.HDR_SIZE) throw new VirtioError(ErrorCode.REQUEST_FAILED, `virtio-snd: TLV of ${payload.length} bytes`);
    const v = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
    const length = v.getUint32(SoundCtlTlv.LENGTH, this.le);
    const words = Math.min(Math.floor(length / 4), Math.floor((payload.length - SoundCtlTlv.HDR_SIZE) / 4));
    return { type: v.getUint32(SoundCtlTlv.TYPE, this.le), value: Array.from({ length: words }, (_, i) => v.getUint32(SoundCtlTlv.VALUE + i * 4, this.le)) };
  }

  /** VIRTIO_SND_R_CTL_TLV_WRITE (driver/sound/19: only with ACCESS_TLV_WRITE; driver/sound/21: value at most 65536 bytes). */
  async tlvWrite(id: number, tlv: SoundControlTlv): Promise<void> {
    await this.allowed(id, SoundCtlAccess.TLV_WRITE, 'driver/sound/19');
    await this.ok(this.tlvRequest(SoundCode.R_CTL_TLV_WRITE, id, tlv), SoundHdr.SIZE);
  }

  /** VIRTIO_SND_R_CTL_TLV_COMMAND (driver/sound/20: only with ACCESS_TLV_COMMAND; driver/sound/21). */
  async tlvCommand(id: number, tlv: SoundControlTlv): Promise<void> {
    await this.allowed(id, SoundCtlAccess.TLV_COMMAND, 'driver/sound/20');
    await this.ok(this.tlvRequest(SoundCode.R_CTL_TLV_COMMAND, id, tlv), SoundHdr.SIZE);
  }

  private tlvRequest(code: number, id: number, tlv: SoundControlTlv): Uint8Array {
    const length = tlv.value.length * 4;
    if (length > SOUND_CTL_TLV_MAX_VALUE) refuse(`TLV value of ${length} bytes above ${SOUND_CTL_TLV_MAX_VALUE} (driver/sound/21)`);
    const { bytes, view } = this.header(code, id, SoundCtlTlv.HDR_SIZE + length);
    view.setUint32(SoundCtlHdr.SIZE + SoundCtlTlv.TYPE, tlv.type >>> 0, this.le);
    view.setUint32(SoundCtlHdr.SIZE + SoundCtlTlv.LENGTH, length, this.le);
    tlv.value.forEach((w, i) => view.setUint32(SoundCtlHdr.SIZE + SoundCtlTlv.VALUE + i * 4, w >>> 0, this.le));
    return bytes;
  }
}
