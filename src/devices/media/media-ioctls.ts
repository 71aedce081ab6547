/**
 * 5.22.6.1 VIRTIO_MEDIA_CMD_IOCTL: the V4L2 ioctls the pass-through codec implements, on the
 * 64-bit little-endian layouts. The payload buffer is in and out at once, as a kernel's copy of
 * the user's structure: the device reads the driver's payload into it, changes it, and writes
 * it back on success (device/media/2). Ioctls not listed answer ENOTTY (device/media/4),
 * among them those 5.22 replaces (QUERYCAP, DQBUF, DQEVENT, G/S_JPEGCOMP, LOG_STATUS) and
 * EXPBUF (no virtio objects).
 */
import type { GuestMemory } from '../../memory/guest-memory.js';
import {
  Errno,
  MEDIA_SG_ENTRY_SIZE,
  V4L2_FIELD_NONE,
  V4l2BufCap,
  V4l2BufFlag,
  V4l2Buffer,
  V4l2BufType,
  V4l2Cid,
  V4l2EventSubscription,
  V4l2EventType,
  V4l2ExtControl,
  V4l2ExtControls,
  V4l2FmtDesc,
  V4l2Format,
  V4l2Memory,
  V4l2RequestBuffers,
  Vidioc,
} from '../../spec/media.js';
import { MEDIA_FORMATS, MEDIA_MAX_SG, type MediaBuffer, type MediaSession, adjustFormat } from './media-session.js';

/** Whether the payload follows the command (W), the response (R), or both. */
export interface IoctlSpec {
  readonly size: number;
  readonly write: boolean;
  readonly read: boolean;
}

/** Extended controls per G_EXT_CTRLS at most. */
export const MEDIA_MAX_EXT_CONTROLS = 64;

export const IOCTLS: ReadonlyMap<number, IoctlSpec> = new Map([
  [Vidioc.ENUM_FMT, { size: V4l2FmtDesc.SIZE, write: true, read: true }],
  [Vidioc.G_FMT, { size: V4l2Format.SIZE, write: true, read: true }],
  [Vidioc.S_FMT, { size: V4l2Format.SIZE, write: true, read: true }],
  [Vidioc.TRY_FMT, { size: V4l2Format.SIZE, write: true, read: true }],
  [Vidioc.REQBUFS, { size: V4l2RequestBuffers.SIZE, write: true, read: true }],
  [Vidioc.QUERYBUF, { size: V4l2Buffer.SIZE, write: true, read: true }],
  [Vidioc.QBUF, { size: V4l2Buffer.SIZE, write: true, read: true }],
  [Vidioc.STREAMON, { size: 4, write: true, read: false }],
  [Vidioc.STREAMOFF, { size: 4, write: true, read: false }],
  [Vidioc.G_EXT_CTRLS, { size: V4l2ExtControls.SIZE, write: true, read: true }],
  [Vidioc.SUBSCRIBE_EVENT, { size: V4l2EventSubscription.SIZE, write: true, read: false }],
  [Vidioc.UNSUBSCRIBE_EVENT, { size: V4l2EventSubscription.SIZE, write: true, read: false }],
]);

/** Reads further device-readable bytes of the command (SG entries, controls); returns the count read. */
export type ExtraReader = (dst: Uint8Array, offset: number, length: number) => number;

/** A 64-bit field as a number (values past 2^53 lose precision; they fail the checks that follow). */
export function getU64(v: DataView, at: number): number {
  return v.getUint32(at + 4, true) * 0x1_0000_0000 + v.getUint32(at, true);
}

/** Writes a non-negative safe integer as a 64-bit field. */
export function setU64(v: DataView, at: number, value: number): void {
  v.setUint32(at, value >>> 0, true);
  v.setUint32(at + 4, Math.floor(value / 0x1_0000_0000) >>> 0, true);
}

/** Fills a v4l2_buffer from the device's state (pointer fields as device/media/7 wants). */
export function describeBuffer(v: DataView, b: MediaBuffer, nullPointers: boolean): void {
  v.setUint32(V4l2Buffer.INDEX, b.index, true);
  v.setUint32(V4l2Buffer.TYPE, b.type, true);
  v.setUint32(V4l2Buffer.BYTESUSED, b.bytesused, true);
  v.setUint32(V4l2Buffer.FLAGS, b.flags | (b.range ? V4l2BufFlag.MAPPED : 0), true);
  v.setUint32(V4l2Buffer.FIELD, V4L2_FIELD_NONE, true);
  setU64(v, V4l2Buffer.TIMESTAMP_SEC, b.timestampSec);
  setU64(v, V4l2Buffer.TIMESTAMP_USEC, b.timestampUsec);
  v.setUint32(V4l2Buffer.SEQUENCE, b.sequence, true);
  v.setUint32(V4l2Buffer.MEMORY, b.memory, true);
  setU64(v, V4l2Buffer.M, b.range ? b.range.offset : nullPointers ? 0 : b.userptr);
  v.setUint32(V4l2Buffer.LENGTH, b.length, true);
}

export class MediaIoctls {
  /** Payload bytes to write back after a success. */
  outLength = 0;

  /** Runs `code` on `s`; `payload` holds the driver's payload and takes the answer. Returns an errno (0: success). */
  run(s: MediaSession, code: number, payload: Uint8Array, spec: IoctlSpec, extra: ExtraReader, memory: GuestMemory | null): number {
    const v = new DataView(payload.buffer, payload.byteOffset, payload.length);
    this.outLength = spec.read ? spec.size : 0;
    switch (code) {
      case Vidioc.ENUM_FMT:
        return this.enumFmt(v, payload);
      case Vidioc.G_FMT:
      case Vidioc.S_FMT:
      case Vidioc.TRY_FMT:
        return this.format(s, code, v, payload);
      case Vidioc.REQBUFS:
        return this.reqbufs(s, v);
      case Vidioc.QUERYBUF:
      case Vidioc.QBUF:
        return this.buffer(s, code, v, extra, memory);
      case Vidioc.STREAMON:
      case Vidioc.STREAMOFF: {
        const q = s.queue(v.getUint32(0, true));
        if (q === null) return Errno.EINVAL;
        if (code === Vidioc.STREAMON) return s.streamOn(q);
        s.streamOff(q);
        return 0;
      }
      case Vidioc.G_EXT_CTRLS:
        return this.extCtrls(v, payload, extra);
      default:
        return this.subscription(s, code, v);
    }
  }

  private enumFmt(v: DataView, payload: Uint8Array): number {
    const type = v.getUint32(V4l2FmtDesc.TYPE, true);
    const f = MEDIA_FORMATS[v.getUint32(V4l2FmtDesc.INDEX, true)];
    if (f === undefined || (type !== V4l2BufType.VIDEO_CAPTURE && type !== V4l2BufType.VIDEO_OUTPUT)) return Errno.EINVAL;
    v.setUint32(V4l2FmtDesc.FLAGS, 0, true);
    payload.fill(0, V4l2FmtDesc.DESCRIPTION, V4l2FmtDesc.DESCRIPTION + V4l2FmtDesc.DESCRIPTION_SIZE);
    payload.set(new TextEncoder().encode(f.description), V4l2FmtDesc.DESCRIPTION);
    v.setUint32(V4l2FmtDesc.PIXELFORMAT, f.pixelformat, true);
    payload.fill(0, V4l2FmtDesc.PIXELFORMAT + 4);
    return 0;
  }

  private format(s: MediaSession, code: number, v: DataView, payload: Uint8Array): number {
    if (s.queue(v.getUint32(V4l2Format.TYPE, true)) === null) return Errno.EINVAL;
    const f = {
      width: v.getUint32(V4l2Format.WIDTH, true),
      height: v.getUint32(V4l2Format.HEIGHT, true),
      pixelformat: v.getUint32(V4l2Format.PIXELFORMAT, true),
      bytesperline: 0,
      sizeimage: 0,
    };
    if (code === Vidioc.G_FMT) Object.assign(f, s.format);
    else if (code === Vidioc.TRY_FMT) adjustFormat(f);
    else {
      const e = s.setFormat(f);
      if (e !== 0) return e;
    }
    payload.fill(0, V4l2Format.WIDTH);
    v.setUint32(V4l2Format.WIDTH, f.width, true);
    v.setUint32(V4l2Format.HEIGHT, f.height, true);
    v.setUint32(V4l2Format.PIXELFORMAT, f.pixelformat, true);
    v.setUint32(V4l2Format.FIELD, V4L2_FIELD_NONE, true);
    v.setUint32(V4l2Format.BYTESPERLINE, f.bytesperline, true);
    v.setUint32(V4l2Format.SIZEIMAGE, f.sizeimage, true);
    return 0;
  }

  private reqbufs(s: MediaSession, v: DataView): number {
    const q = s.queue(v.getUint32(V4l2RequestBuffers.TYPE, true));
    if (q === null) return Errno.EINVAL;
    const count = { value: v.getUint32(V4l2RequestBuffers.COUNT, true) };
    const e = s.requestBuffers(q, v.getUint32(V4l2RequestBuffers.MEMORY, true), count);
    if (e !== 0) return e;
    v.setUint32(V4l2RequestBuffers.COUNT, count.value, true);
    v.setUint32(V4l2RequestBuffers.CAPABILITIES, V4l2BufCap.SUPPORTS_MMAP | V4l2BufCap.SUPPORTS_USERPTR, true);
    return 0;
  }

  private buffer(s: MediaSession, code: number, v: DataView, extra: ExtraReader, memory: GuestMemory | null): number {
    const q = s.queue(v.getUint32(V4l2Buffer.TYPE, true));
    if (q === null) return Errno.EINVAL;
    const b = q.buffers[v.getUint32(V4l2Buffer.INDEX, true)];
    if (b === undefined) return Errno.EINVAL;
    if (code === Vidioc.QUERYBUF) {
      describeBuffer(v, b, false);
      return 0;
    }
    if (v.getUint32(V4l2Buffer.MEMORY, true) !== b.memory || b.queued) return Errno.EINVAL;
    if (b.memory === V4l2Memory.USERPTR) {
      // 5.22.6.1 SHARED_PAGES: the v4l2_buffer is followed by SG entries covering `length`.
      const length = v.getUint32(V4l2Buffer.LENGTH, true);
      if (length === 0) return Errno.EINVAL;
      const e = this.readSg(b, length, extra, memory);
      if (e !== 0) return e;
      b.length = length;
      b.userptr = getU64(v, V4l2Buffer.M);
    }
    b.bytesused = b.type === V4l2BufType.VIDEO_OUTPUT ? Math.min(v.getUint32(V4l2Buffer.BYTESUSED, true), b.length) : 0;
    b.timestampSec = getU64(v, V4l2Buffer.TIMESTAMP_SEC);
    b.timestampUsec = getU64(v, V4l2Buffer.TIMESTAMP_USEC);
    const ptrLow = v.getUint32(V4l2Buffer.M, true);
    const ptrHigh = v.getUint32(V4l2Buffer.M + 4, true);
    describeBuffer(v, b, false);
    // device/media/7: m.userptr goes back exactly as the driver gave it (all 64 bits).
    if (b.memory === V4l2Memory.USERPTR) {
      v.setUint32(V4l2Buffer.M, ptrLow, true);
      v.setUint32(V4l2Buffer.M + 4, ptrHigh, true);
    }
    // Describe before queueing: processing may complete the buffer at once (its DQBUF event says so).
    v.setUint32(V4l2Buffer.FLAGS, (b.flags & ~(V4l2BufFlag.DONE | V4l2BufFlag.ERROR)) | V4l2BufFlag.QUEUED, true);
    s.queueBuffer(b);
    return 0;
  }

  private readonly sgEntry = new Uint8Array(MEDIA_SG_ENTRY_SIZE);
  private readonly sgView = new DataView(this.sgEntry.buffer);

  private readSg(b: MediaBuffer, length: number, extra: ExtraReader, memory: GuestMemory | null): number {
    let covered = 0;
    let n = 0;
    while (covered < length) {
      if (n >= MEDIA_MAX_SG || extra(this.sgEntry, 0, MEDIA_SG_ENTRY_SIZE) !== MEDIA_SG_ENTRY_SIZE) return Errno.EINVAL;
      const start = getU64(this.sgView, 0);
      const len = this.sgView.getUint32(8, true);
      if (len === 0 || memory === null || !Number.isSafeInteger(start) || !memory.isMapped(start, len)) return Errno.EFAULT;
      b.sgAddr[n] = start;
      b.sgLen[n] = len;
      n++;
      covered += len;
    }
    b.sgCount = n;
    return 0;
  }

  /** G_EXT_CTRLS with the two read-only buffer-count controls; the controls pointer is left as given (device/media/3). */
  private extCtrls(v: DataView, payload: Uint8Array, extra: ExtraReader): number {
    const count = v.getUint32(V4l2ExtControls.COUNT, true);
    if (count > MEDIA_MAX_EXT_CONTROLS) return Errno.EINVAL;
    const ctrls = payload.subarray(V4l2ExtControls.SIZE, V4l2ExtControls.SIZE + count * V4l2ExtControl.SIZE);
    if (extra(ctrls, 0, ctrls.length) !== ctrls.length) return Errno.EFAULT;
    const cv = new DataView(ctrls.buffer, ctrls.byteOffset, ctrls.length);
    for (let i = 0; i < count; i++) {
      const id = cv.getUint32(i * V4l2ExtControl.SIZE + V4l2ExtControl.ID, true);
      if (id !== V4l2Cid.MIN_BUFFERS_FOR_CAPTURE && id !== V4l2Cid.MIN_BUFFERS_FOR_OUTPUT) {
        v.setUint32(V4l2ExtControls.ERROR_IDX, i, true);
        return Errno.EINVAL;
      }
      cv.setInt32(i * V4l2ExtControl.SIZE + V4l2ExtControl.VALUE, 1, true);
      cv.setInt32(i * V4l2ExtControl.SIZE + V4l2ExtControl.VALUE + 4, 0, true);
    }
    v.setUint32(V4l2ExtControls.ERROR_IDX, count, true);
    this.outLength = V4l2ExtControls.SIZE + ctrls.length;
    return 0;
  }

  private subscription(s: MediaSession, code: number, v: DataView): number {
    const type = v.getUint32(V4l2EventSubscription.TYPE, true);
    if (code === Vidioc.UNSUBSCRIBE_EVENT) {
      if (type === V4l2EventType.ALL) s.subscribed.clear();
      else s.subscribed.delete(type);
      return 0;
    }
    if (type !== V4l2EventType.SOURCE_CHANGE && type !== V4l2EventType.EOS) return Errno.EINVAL;
    s.subscribed.add(type);
    return 0;
  }
}
