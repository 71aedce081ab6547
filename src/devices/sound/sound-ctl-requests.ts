/**
 * 5.14.6.10 the control element requests of the control queue, with VIRTIO_SND_F_CTLS
 * negotiated: CTL_INFO, CTL_ENUM_ITEMS, CTL_READ, CTL_WRITE, CTL_TLV_READ, CTL_TLV_WRITE,
 * CTL_TLV_COMMAND. The guest is untrusted; every request gets a status and nothing throws:
 * - BAD_MSG: a request shorter than its structures, an id out of range, a query past the count,
 *   a response buffer too small (a TLV read excepted: device/sound/17), ENUM_ITEMS on an element
 *   that is not ENUMERATED, a value member out of the element's range, a TLV length not a
 *   multiple of 4 or above 65536 bytes (driver/sound/21), or longer than the request.
 * - NOT_SUPP: the element lacks the access right (driver/sound/16 to driver/sound/20 broken).
 * - IO_ERR: the application's hook refused the write or command (or threw).
 * Buffers are allocated once (the 64 KiB TLV buffer at the first TLV write or command).
 */
import { ChainCursor, type DescriptorChain } from '../../queue/chain.js';
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
  SoundQueryInfo,
  SoundStatus,
} from '../../spec/sound.js';
import { type SoundControlElement, type SoundControlTlv, putAscii } from './sound-elements.js';

/** The largest item size a CTL_INFO query may ask for (as for the other queries). */
const MAX_ITEM_SIZE = 4096;

/** What the device does when the driver changed an element's value. */
export type ControlWritten = (id: number) => void;

export class SoundCtlRequests {
  private le = true;
  private readonly reader = new ChainCursor(false);
  private readonly writer = new ChainCursor(true);
  /** ctl_hdr + virtio_snd_ctl_value: the longest fixed request (CTL_WRITE). */
  private readonly req = new Uint8Array(SoundCtlHdr.SIZE + SoundCtlValue.SIZE);
  private readonly reqView = new DataView(this.req.buffer);
  /** One response structure: a ctl_info, an enum item, a value, or a TLV header. */
  private readonly out = new Uint8Array(SoundCtlValue.SIZE);
  private readonly outView = new DataView(this.out.buffer);
  private tlvBuf: Uint8Array | null = null;
  private readonly status = new Uint8Array(SoundHdr.SIZE);
  private readonly statusView = new DataView(this.status.buffer);

  constructor(
    private readonly elements: readonly SoundControlElement[],
    private readonly written: ControlWritten,
  ) {}

  configure(littleEndian: boolean): void {
    this.le = littleEndian;
  }

  /** Serves one CTL request (`code` already read); returns the bytes written. */
  handle(code: number, c: DescriptorChain): number {
    const got = this.reader.reset(c).read(this.req, 0, Math.min(this.req.length, c.readableBytes));
    this.writer.reset(c);
    if (code === SoundCode.R_CTL_INFO) return this.info(got, c.writableBytes);
    if (got < SoundCtlHdr.SIZE) return this.answer(SoundStatus.BAD_MSG);
    const id = this.u32(SoundCtlHdr.CONTROL_ID);
    const e = this.elements[id];
    if (e === undefined) return this.answer(SoundStatus.BAD_MSG);
    switch (code) {
      case SoundCode.R_CTL_ENUM_ITEMS:
        return this.enumItems(e, c.writableBytes);
      case SoundCode.R_CTL_READ:
        return this.read(e, c.writableBytes);
      case SoundCode.R_CTL_WRITE:
        return this.answer(this.write(e, id, got));
      case SoundCode.R_CTL_TLV_READ:
        return this.tlvRead(e, c.writableBytes);
      default:
        return this.answer(this.tlvWriteOrCommand(code, e, c));
    }
  }

  private u32(at: number): number {
    return this.reqView.getUint32(at, this.le);
  }

  private answer(status: number): number {
    this.statusView.setUint32(0, status, this.le);
    return this.writer.write(this.status);
  }

  /** VIRTIO_SND_R_CTL_INFO: the item information request of 5.14.6.1 with struct virtio_snd_ctl_info items. */
  private info(got: number, writable: number): number {
    if (got < SoundQueryInfo.SIZE) return this.answer(SoundStatus.BAD_MSG);
    const start = this.u32(SoundQueryInfo.START_ID);
    const count = this.u32(SoundQueryInfo.COUNT);
    const size = this.u32(SoundQueryInfo.ITEM_SIZE);
    if (start + count > this.elements.length || size < SoundCtlInfo.SIZE || size > MAX_ITEM_SIZE || SoundHdr.SIZE + count * size > writable) return this.answer(SoundStatus.BAD_MSG);
    let n = this.answer(SoundStatus.OK);
    for (let i = start; i < start + count; i++) {
      this.encodeInfo(this.elements[i]!);
      n += this.writer.write(this.out, 0, SoundCtlInfo.SIZE);
      n += this.writer.fill(size - SoundCtlInfo.SIZE);
    }
    return n;
  }

  /** device/sound/13 to device/sound/15: every field from the element checked at construction; padding 0. */
  private encodeInfo(e: SoundControlElement): void {
    const b = this.out;
    const v = this.outView;
    b.fill(0, 0, SoundCtlInfo.SIZE);
    v.setUint32(SoundCtlInfo.HDA_FN_NID, e.hdaFnNid, this.le);
    v.setUint32(SoundCtlInfo.ROLE, e.role, this.le);
    v.setUint32(SoundCtlInfo.TYPE, e.type, this.le);
    v.setUint32(SoundCtlInfo.ACCESS, e.access, this.le);
    v.setUint32(SoundCtlInfo.COUNT, e.count, this.le);
    v.setUint32(SoundCtlInfo.INDEX, e.index, this.le);
    putAscii(b, SoundCtlInfo.NAME, e.name, SoundCtlInfo.NAME_SIZE);
    if (e.type === SoundCtlType.INTEGER) {
      v.setInt32(SoundCtlInfo.INTEGER_MIN, e.min, this.le);
      v.setInt32(SoundCtlInfo.INTEGER_MAX, e.max, this.le);
      v.setInt32(SoundCtlInfo.INTEGER_STEP, e.step, this.le);
    } else if (e.type === SoundCtlType.INTEGER64) {
      v.setBigInt64(SoundCtlInfo.INTEGER64_MIN, e.min64, this.le);
      v.setBigInt64(SoundCtlInfo.INTEGER64_MAX, e.max64, this.le);
      v.setBigInt64(SoundCtlInfo.INTEGER64_STEP, e.step64, this.le);
    } else if (e.type === SoundCtlType.ENUMERATED) {
      v.setUint32(SoundCtlInfo.ENUMERATED_ITEMS, e.items.length, this.le);
    }
  }

  /** VIRTIO_SND_R_CTL_ENUM_ITEMS: hdr then `items` 64-byte 0-terminated names (device/sound/15). */
  private enumItems(e: SoundControlElement, writable: number): number {
    if (e.type !== SoundCtlType.ENUMERATED || SoundHdr.SIZE + e.items.length * SoundCtlEnumItem.SIZE > writable) return this.answer(SoundStatus.BAD_MSG);
    let n = this.answer(SoundStatus.OK);
    for (const item of e.items) {
      putAscii(this.out, 0, item, SoundCtlEnumItem.SIZE);
      n += this.writer.write(this.out, 0, SoundCtlEnumItem.SIZE);
    }
    return n;
  }

  /** VIRTIO_SND_R_CTL_READ: hdr then a whole struct virtio_snd_ctl_value (`count` members, the rest 0). */
  private read(e: SoundControlElement, writable: number): number {
    if (!e.has(SoundCtlAccess.READ)) return this.answer(SoundStatus.NOT_SUPP);
    if (writable < SoundHdr.SIZE + SoundCtlValue.SIZE) return this.answer(SoundStatus.BAD_MSG);
    const b = this.out;
    const v = this.outView;
    b.fill(0);
    for (let i = 0; i < e.ints.length; i++) v.setInt32(i * 4, e.ints[i]!, this.le);
    for (let i = 0; i < e.ints64.length; i++) v.setBigInt64(i * 8, e.ints64[i]!, this.le);
    b.set(e.bytes, 0);
    return this.answer(SoundStatus.OK) + this.writer.write(b);
  }

  /** VIRTIO_SND_R_CTL_WRITE: every member checked before any is stored. */
  private write(e: SoundControlElement, id: number, got: number): number {
    if (!e.has(SoundCtlAccess.WRITE)) return SoundStatus.NOT_SUPP;
    if (got < SoundCtlHdr.SIZE + SoundCtlValue.SIZE) return SoundStatus.BAD_MSG;
    const at = SoundCtlHdr.SIZE;
    const v = this.reqView;
    for (let i = 0; i < e.ints.length; i++) if (!e.valid(v.getInt32(at + i * 4, this.le))) return SoundStatus.BAD_MSG;
    for (let i = 0; i < e.ints64.length; i++) if (!e.valid64(v.getBigInt64(at + i * 8, this.le))) return SoundStatus.BAD_MSG;
    const before = e.value();
    for (let i = 0; i < e.ints.length; i++) e.ints[i] = v.getInt32(at + i * 4, this.le);
    for (let i = 0; i < e.ints64.length; i++) e.ints64[i] = v.getBigInt64(at + i * 8, this.le);
    e.bytes.set(this.req.subarray(at, at + e.bytes.length));
    const hook = e.config.onWrite;
    if (hook !== undefined && !this.callHook(() => hook(e.value()))) {
      e.setValue(before);
      return SoundStatus.IO_ERR;
    }
    this.written(id);
    return SoundStatus.OK;
  }

  /** A hook of the application: false or an exception is a refusal (IO_ERR); the guest never sees the exception. */
  private callHook(fn: () => boolean | void): boolean {
    try {
      return fn() !== false;
    } catch {
      return false;
    }
  }

  /**
   * VIRTIO_SND_R_CTL_TLV_READ: hdr then struct virtio_snd_ctl_tlv. device/sound/17: when the
   * `value` does not fit, as many whole words as fit are written, `length` says how many bytes
   * were, and the request completes with OK. Less room than hdr + the TLV header: BAD_MSG.
   */
  private tlvRead(e: SoundControlElement, writable: number): number {
    if (!e.has(SoundCtlAccess.TLV_READ) || e.tlv === null) return this.answer(SoundStatus.NOT_SUPP);
    if (writable < SoundHdr.SIZE + SoundCtlTlv.HDR_SIZE) return this.answer(SoundStatus.BAD_MSG);
    const words = Math.min(e.tlv.value.length, Math.floor((writable - SoundHdr.SIZE - SoundCtlTlv.HDR_SIZE) / 4));
    let n = this.answer(SoundStatus.OK);
    this.outView.setUint32(SoundCtlTlv.TYPE, e.tlv.type, this.le);
    this.outView.setUint32(SoundCtlTlv.LENGTH, words * 4, this.le);
    n += this.writer.write(this.out, 0, SoundCtlTlv.HDR_SIZE);
    for (let i = 0; i < words; i += 64) {
      const k = Math.min(64, words - i);
      for (let j = 0; j < k; j++) this.outView.setUint32(j * 4, e.tlv.value[i + j]!, this.le);
      n += this.writer.write(this.out, 0, k * 4);
    }
    return n;
  }

  /** VIRTIO_SND_R_CTL_TLV_WRITE / TLV_COMMAND: ctl_hdr, then the TLV (type, length, `length` bytes). */
  private tlvWriteOrCommand(code: number, e: SoundControlElement, c: DescriptorChain): number {
    const write = code === SoundCode.R_CTL_TLV_WRITE;
    if (!e.has(write ? SoundCtlAccess.TLV_WRITE : SoundCtlAccess.TLV_COMMAND)) return SoundStatus.NOT_SUPP;
    const hdrEnd = SoundCtlHdr.SIZE + SoundCtlTlv.HDR_SIZE;
    if (c.readableBytes < hdrEnd) return SoundStatus.BAD_MSG;
    const type = this.u32(SoundCtlHdr.SIZE + SoundCtlTlv.TYPE);
    const length = this.u32(SoundCtlHdr.SIZE + SoundCtlTlv.LENGTH);
    // driver/sound/21 broken, or a length that is not whole words or runs past the request.
    if (length % 4 !== 0 || length > SOUND_CTL_TLV_MAX_VALUE || hdrEnd + length > c.readableBytes) return SoundStatus.BAD_MSG;
    const buf = (this.tlvBuf ??= new Uint8Array(SOUND_CTL_TLV_MAX_VALUE));
    this.reader.reset(c).skip(hdrEnd);
    if (this.reader.read(buf, 0, length) !== length) return SoundStatus.BAD_MSG;
    const view = new DataView(buf.buffer, 0, length);
    const value = Array.from({ length: length / 4 }, (_, i) => view.getUint32(i * 4, this.le));
    const tlv: SoundControlTlv = { type, value };
    const hook = write ? e.config.onTlvWrite : e.config.onTlvCommand;
    if (hook === undefined) {
      if (!write) return SoundStatus.NOT_SUPP;
      e.tlv = tlv;
      return SoundStatus.OK;
    }
    if (!this.callHook(() => hook(tlv))) return SoundStatus.IO_ERR;
    if (write) e.tlv = tlv;
    return SoundStatus.OK;
  }
}
