/**
 * 5.22 Media Device, driver side (the V4L2 "user-space"): sessions, ioctls with their payloads
 * in the 64-bit little-endian layouts (driver/media/2: this driver has only those), MMAP and
 * MUNMAP, and the eventq kept populated with buffers for DQBUF, EVENT and ERROR events.
 * A closed session id is refused until OPEN returns it again (driver/media/1); after an error
 * the payload is not read back (driver/media/3); an ERROR event makes the driver close the
 * session (driver/media/4); pointers in DQBUF events are not looked at (driver/media/5).
 */
import { type DeviceDriver, type DeviceDriverType, checkDriverContext } from '../../driver/device-driver.js';
import { RequestQueue } from '../../driver/request-queue.js';
import type { DriverContext } from '../../driver/types.js';
import { ErrorCode, VirtioError } from '../../errors.js';
import type { Segment } from '../../queue/types.js';
import { readConfigFields } from '../../spec/config-layout.js';
import { DeviceId } from '../../spec/device-id.js';
import {
  MEDIA_CONFIG_LAYOUT,
  MEDIA_EVENT_DQBUF_SIZE,
  MEDIA_EVENT_HEADER_SIZE,
  MEDIA_FEATURES,
  MEDIA_HEADER_SIZE,
  MEDIA_MMAP_FLAG_RW,
  MEDIA_SG_ENTRY_SIZE,
  MediaCmd,
  MediaConfig,
  MediaEvent,
  MediaQueue,
  V4l2Buffer,
  V4l2EventLayout,
  V4l2EventSubscription,
  V4l2ExtControl,
  V4l2ExtControls,
  V4l2FmtDesc,
  V4l2Format,
  V4l2Memory,
  V4l2RequestBuffers,
  Vidioc,
} from '../../spec/media.js';
import { getU64, setU64 } from './media-ioctls.js';

/** The device answered a command with a Linux error code. */
export class MediaErrnoError extends VirtioError {
  constructor(
    /** The command or ioctl that failed, e.g. `MMAP` or `S_FMT`. */
    readonly operation: string,
    /** The Linux errno the device answered (5.22.6.1 response status). */
    readonly errno: number,
  ) {
    super(ErrorCode.REQUEST_FAILED, `virtio-media ${operation}: errno ${errno}`);
  }
}

/** The fields of struct virtio_media_device_config, as numbers. */
export interface MediaDriverConfig {
  /** `device_caps` of struct virtio_media_device_config. */
  readonly deviceCaps: number;
  /** `device_type` of struct virtio_media_device_config. */
  readonly deviceType: number;
  /** `card` of struct virtio_media_device_config. */
  readonly card: string;
}

/** A buffer returned by a DQBUF event (pointer fields left out: driver/media/5). */
export interface MediaDequeued {
  /** The session the buffer belongs to (the event's session_id). */
  readonly sessionId: number;
  /** `index` of the v4l2_buffer of a VIRTIO_MEDIA_EVT_DQBUF event. */
  readonly index: number;
  /** `type` of the v4l2_buffer of a VIRTIO_MEDIA_EVT_DQBUF event. */
  readonly type: number;
  /** `bytesused` of the v4l2_buffer of a VIRTIO_MEDIA_EVT_DQBUF event. */
  readonly bytesused: number;
  /** `flags` of the v4l2_buffer of a VIRTIO_MEDIA_EVT_DQBUF event. */
  readonly flags: number;
  /** `sequence` of the v4l2_buffer of a VIRTIO_MEDIA_EVT_DQBUF event. */
  readonly sequence: number;
  /** `timestamp.tv_sec` of the v4l2_buffer of a VIRTIO_MEDIA_EVT_DQBUF event. */
  readonly timestampSec: number;
  /** `timestamp.tv_usec` of the v4l2_buffer of a VIRTIO_MEDIA_EVT_DQBUF event. */
  readonly timestampUsec: number;
}

/** One event the device sent on the eventq (5.22.6.2): an error, a V4L2 event or a dequeued buffer. */
export interface MediaEventMessage {
  /** VIRTIO_MEDIA_EVT_ERROR, VIRTIO_MEDIA_EVT_DQBUF or VIRTIO_MEDIA_EVT_EVENT. */
  readonly event: number;
  /** The session the event is about. */
  readonly sessionId: number;
  /** ERROR: the errno; EVENT: the v4l2_event type. */
  readonly code: number;
  /** DQBUF: the buffer the device returned; absent for the other events. */
  readonly dequeued?: MediaDequeued;
  /** The event as the device wrote it. */
  readonly raw: Uint8Array;
}

/** The single-plane v4l2_pix_format the device answered to G_FMT / S_FMT / TRY_FMT. */
export interface MediaFormatReply {
  /** Pixels per line. */
  readonly width: number;
  /** Lines per frame. */
  readonly height: number;
  /** V4L2 fourcc of the format (V4l2PixFmt). */
  readonly pixelformat: number;
  /** Bytes from one line to the next (stride). */
  readonly bytesperline: number;
  /** Bytes a buffer needs for one frame. */
  readonly sizeimage: number;
}

/** Options of MediaDriver. */
export interface MediaDriverOptions {
  /** eventq buffers kept posted. Default 16. */
  eventBuffers?: number;
}

/**
 * The virtio-media driver (5.22): typed requests over the device's queues. Construct it on a
 * DriverContext, or start it with startDeviceDriver and its static `type`.
 */
export class MediaDriver implements DeviceDriver {
  /**
   * The DeviceDriver contract: the device id, the feature bits this driver can use and needs,
   * and how to attach it (startDeviceDriver).
   */
  static readonly type: DeviceDriverType<MediaDriver, MediaDriverOptions> = {
    name: 'virtio-media',
    deviceId: DeviceId.MEDIA,
    wantedFeatures: MEDIA_FEATURES,
    requiredFeatures: 0n,
    attach: (ctx, opts) => new MediaDriver(ctx, opts),
  };

  /** The configuration read at attach: device capabilities, type and card name. */
  readonly config: MediaDriverConfig;
  private readonly ctx: DriverContext;
  private readonly cmdq: RequestQueue;
  private readonly eventq: RequestQueue;
  private readonly open_ = new Set<number>();
  private listeners: ((e: MediaEventMessage) => void)[] = [];
  private readonly dequeued: MediaDequeued[] = [];
  private dequeueWaiters: ((d: MediaDequeued) => void)[] = [];
  private detached = false;

  constructor(ctx: DriverContext, opts: MediaDriverOptions = {}) {
    checkDriverContext(MediaDriver.type, ctx);
    this.ctx = ctx;
    const c = readConfigFields(MEDIA_CONFIG_LAYOUT, ['deviceCaps', 'deviceType'], (o, l) => ctx.readConfig(o, l), ctx.littleEndian);
    const card = ctx.readConfig(MediaConfig.CARD, MediaConfig.CARD_SIZE);
    const end = card.indexOf(0);
    this.config = { deviceCaps: c.deviceCaps, deviceType: c.deviceType, card: new TextDecoder().decode(card.subarray(0, end < 0 ? card.length : end)) };
    this.cmdq = new RequestQueue(ctx, MediaQueue.COMMANDQ);
    this.eventq = new RequestQueue(ctx, MediaQueue.EVENTQ);
    for (let i = 0; i < (opts.eventBuffers ?? 16); i++) this.postEventBuffer();
  }

  /**
   * Adds a listener for the device's event queue messages (dequeued buffers, V4L2 events, errors);
   * returns a function that removes it.
   */
  onEvent(listener: (e: MediaEventMessage) => void): () => void {
    this.listeners.push(listener);
    return () => (this.listeners = this.listeners.filter((l) => l !== listener));
  }

  /** Sessions open now. */
  get sessions(): number[] {
    return [...this.open_];
  }

  /** One command: `out` device-readable, `inLen` bytes of device-writable room; the bytes written. */
  async exchange(out: Uint8Array, inLen: number): Promise<Uint8Array> {
    const addr = this.ctx.dma.alloc(out.length + inLen, 8);
    try {
      this.ctx.memory.write(addr, out);
      const inn: Segment[] = inLen > 0 ? [{ addr: addr + out.length, len: inLen }] : [];
      const used = await this.cmdq.submit([{ addr, len: out.length }], inn);
      const b = new Uint8Array(Math.min(used, inLen));
      if (b.length > 0) this.ctx.memory.read(addr + out.length, b);
      return b;
    } finally {
      this.ctx.dma.free(addr);
    }
  }

  /** VIRTIO_MEDIA_CMD_OPEN: opens a session (a V4L2 file handle); resolves with its id. */
  async open(): Promise<number> {
    const r = await this.exchange(words(MediaCmd.OPEN, 0), 16);
    const errno = status(r, 'OPEN');
    if (errno !== 0) throw new MediaErrnoError('OPEN', errno);
    if (r.length < 16) throw new VirtioError(ErrorCode.REQUEST_FAILED, 'virtio-media OPEN: short response');
    const id = new DataView(r.buffer).getUint32(8, true);
    this.open_.add(id);
    return id;
  }

  /** CLOSE: the id is not used again until OPEN gives it back (driver/media/1). */
  async close(sessionId: number): Promise<void> {
    this.requireSession(sessionId);
    this.open_.delete(sessionId);
    await this.exchange(words(MediaCmd.CLOSE, 0, sessionId, 0), MEDIA_HEADER_SIZE);
  }

  /**
   * VIRTIO_MEDIA_CMD_IOCTL: `payload` after the command (and `extra`, device-readable only, e.g.
   * SG entries), room for `returnSize` payload bytes. Resolves with the errno and, on success
   * only, the payload the device wrote (driver/media/3).
   */
  async ioctl(sessionId: number, code: number, payload: Uint8Array, returnSize: number, extra?: Uint8Array): Promise<{
    /** 0 on success, else the Linux errno the device answered. */
    errno: number;
    /** The payload the device wrote (`returnSize` bytes) on success; null on failure. */
    payload: Uint8Array | null;
  }> {
    this.requireSession(sessionId);
    const out = new Uint8Array(16 + payload.length + (extra?.length ?? 0));
    out.set(words(MediaCmd.IOCTL, 0, sessionId, code));
    out.set(payload, 16);
    if (extra) out.set(extra, 16 + payload.length);
    const r = await this.exchange(out, MEDIA_HEADER_SIZE + returnSize);
    const errno = status(r, 'IOCTL');
    if (errno !== 0) return { errno, payload: null };
    return { errno, payload: r.slice(MEDIA_HEADER_SIZE) };
  }

  /** `ioctl`, throwing MediaErrnoError on failure. */
  async call(sessionId: number, name: string, code: number, payload: Uint8Array, returnSize: number, extra?: Uint8Array): Promise<Uint8Array> {
    const r = await this.ioctl(sessionId, code, payload, returnSize, extra);
    if (r.errno !== 0) throw new MediaErrnoError(name, r.errno);
    return r.payload!;
  }

  /**
   * VIDIOC_ENUM_FMT for buffer `type`, until the device says there are no more: each format's
   * fourcc and description.
   */
  async enumFormats(sessionId: number, type: number): Promise<
    {
      /** V4L2 fourcc of the format. */
      pixelformat: number;
      /** The device's human-readable name of the format. */
      description: string;
    }[]
  > {
    const out: { pixelformat: number; description: string }[] = [];
    for (let i = 0; ; i++) {
      const p = new Uint8Array(V4l2FmtDesc.SIZE);
      const v = new DataView(p.buffer);
      v.setUint32(V4l2FmtDesc.INDEX, i, true);
      v.setUint32(V4l2FmtDesc.TYPE, type, true);
      const r = await this.ioctl(sessionId, Vidioc.ENUM_FMT, p, V4l2FmtDesc.SIZE);
      if (r.errno !== 0) return out;
      const d = r.payload!;
      const desc = d.subarray(V4l2FmtDesc.DESCRIPTION, V4l2FmtDesc.DESCRIPTION + V4l2FmtDesc.DESCRIPTION_SIZE);
      const end = desc.indexOf(0);
      out.push({ pixelformat: new DataView(d.buffer).getUint32(V4l2FmtDesc.PIXELFORMAT, true), description: new TextDecoder().decode(desc.subarray(0, end < 0 ? desc.length : end)) });
    }
  }

  /** G_FMT (fmt absent), S_FMT or TRY_FMT (`code`). */
  async format(sessionId: number, code: number, type: number, fmt?: { width: number; height: number; pixelformat: number }): Promise<MediaFormatReply> {
    const p = new Uint8Array(V4l2Format.SIZE);
    const v = new DataView(p.buffer);
    v.setUint32(V4l2Format.TYPE, type, true);
    if (fmt) {
      v.setUint32(V4l2Format.WIDTH, fmt.width, true);
      v.setUint32(V4l2Format.HEIGHT, fmt.height, true);
      v.setUint32(V4l2Format.PIXELFORMAT, fmt.pixelformat, true);
    }
    const r = new DataView((await this.call(sessionId, 'FMT', code, p, V4l2Format.SIZE)).buffer);
    return {
      width: r.getUint32(V4l2Format.WIDTH, true),
      height: r.getUint32(V4l2Format.HEIGHT, true),
      pixelformat: r.getUint32(V4l2Format.PIXELFORMAT, true),
      bytesperline: r.getUint32(V4l2Format.BYTESPERLINE, true),
      sizeimage: r.getUint32(V4l2Format.SIZEIMAGE, true),
    };
  }

  /** REQBUFS: the count allocated. */
  async requestBuffers(sessionId: number, type: number, memory: number, count: number): Promise<number> {
    const p = new Uint8Array(V4l2RequestBuffers.SIZE);
    const v = new DataView(p.buffer);
    v.setUint32(V4l2RequestBuffers.COUNT, count, true);
    v.setUint32(V4l2RequestBuffers.TYPE, type, true);
    v.setUint32(V4l2RequestBuffers.MEMORY, memory, true);
    return new DataView((await this.call(sessionId, 'REQBUFS', Vidioc.REQBUFS, p, V4l2RequestBuffers.SIZE)).buffer).getUint32(V4l2RequestBuffers.COUNT, true);
  }

  /** QUERYBUF: the buffer's length and, for MMAP, its mem_offset. */
  async queryBuffer(sessionId: number, type: number, index: number): Promise<{
    /** Bytes of the buffer. */
    length: number;
    /** m.offset: for an MMAP buffer, the offset to pass to `mmap`. */
    offset: number;
    /** v4l2_buffer flags (V4L2_BUF_FLAG_*: mapped, queued, done, ...). */
    flags: number;
  }> {
    const p = bufferStruct(type, index, 0, 0);
    const v = new DataView((await this.call(sessionId, 'QUERYBUF', Vidioc.QUERYBUF, p, V4l2Buffer.SIZE)).buffer);
    return { length: v.getUint32(V4l2Buffer.LENGTH, true), offset: getU64(v, V4l2Buffer.M), flags: v.getUint32(V4l2Buffer.FLAGS, true) };
  }

  /** QBUF of an MMAP buffer. */
  async queueMmap(sessionId: number, type: number, index: number, bytesused = 0, timestampSec = 0): Promise<Uint8Array> {
    const p = bufferStruct(type, index, V4l2Memory.MMAP, bytesused, timestampSec);
    return this.call(sessionId, 'QBUF', Vidioc.QBUF, p, V4l2Buffer.SIZE);
  }

  /**
   * QBUF of a SHARED_PAGES buffer over `segments` of guest memory: the v4l2_buffer with
   * m.userptr = `userptr`, then one SG entry per segment (device-readable only).
   */
  async queueShared(sessionId: number, type: number, index: number, segments: readonly Segment[], userptr: number, bytesused = 0, timestampSec = 0): Promise<Uint8Array> {
    const length = segments.reduce((n, s) => n + s.len, 0);
    const p = bufferStruct(type, index, V4l2Memory.USERPTR, bytesused, timestampSec);
    const v = new DataView(p.buffer);
    setU64(v, V4l2Buffer.M, userptr);
    v.setUint32(V4l2Buffer.LENGTH, length, true);
    const sg = new Uint8Array(segments.length * MEDIA_SG_ENTRY_SIZE);
    const sv = new DataView(sg.buffer);
    segments.forEach((s, i) => {
      setU64(sv, i * MEDIA_SG_ENTRY_SIZE, s.addr);
      sv.setUint32(i * MEDIA_SG_ENTRY_SIZE + 8, s.len, true);
    });
    return this.call(sessionId, 'QBUF', Vidioc.QBUF, p, V4l2Buffer.SIZE, sg);
  }

  /** VIDIOC_STREAMON: starts streaming buffers of `type`. */
  async streamOn(sessionId: number, type: number): Promise<void> {
    await this.call(sessionId, 'STREAMON', Vidioc.STREAMON, u32le(type), 0);
  }

  /** VIDIOC_STREAMOFF: stops streaming buffers of `type`; queued buffers come back. */
  async streamOff(sessionId: number, type: number): Promise<void> {
    await this.call(sessionId, 'STREAMOFF', Vidioc.STREAMOFF, u32le(type), 0);
  }

  /** VIDIOC_SUBSCRIBE_EVENT (or UNSUBSCRIBE with `unsubscribe`) for `eventType`. */
  async subscribe(sessionId: number, eventType: number, unsubscribe = false): Promise<void> {
    const p = new Uint8Array(V4l2EventSubscription.SIZE);
    new DataView(p.buffer).setUint32(V4l2EventSubscription.TYPE, eventType, true);
    await this.call(sessionId, 'SUBSCRIBE_EVENT', unsubscribe ? Vidioc.UNSUBSCRIBE_EVENT : Vidioc.SUBSCRIBE_EVENT, p, 0);
  }

  /** G_EXT_CTRLS of `ids`; `controlsPointer` is the (meaningless to the device) pointer value sent. */
  async getExtControls(sessionId: number, ids: readonly number[], controlsPointer = 0): Promise<{
    /** The control values, in the order of `ids`. */
    values: number[];
    /** The `controls` pointer as the device returned it (it must come back unchanged). */
    controlsPointer: number;
  }> {
    const p = new Uint8Array(V4l2ExtControls.SIZE + ids.length * V4l2ExtControl.SIZE);
    const v = new DataView(p.buffer);
    v.setUint32(V4l2ExtControls.COUNT, ids.length, true);
    setU64(v, V4l2ExtControls.CONTROLS, controlsPointer);
    ids.forEach((id, i) => v.setUint32(V4l2ExtControls.SIZE + i * V4l2ExtControl.SIZE, id, true));
    const r = new DataView((await this.call(sessionId, 'G_EXT_CTRLS', Vidioc.G_EXT_CTRLS, p, p.length)).buffer);
    return {
      values: ids.map((_, i) => r.getInt32(V4l2ExtControls.SIZE + i * V4l2ExtControl.SIZE + V4l2ExtControl.VALUE, true)),
      controlsPointer: getU64(r, V4l2ExtControls.CONTROLS),
    };
  }

  /**
   * VIRTIO_MEDIA_CMD_MMAP: maps the buffer at `offset` (from queryBuffer) into the device's shared
   * memory region; resolves with where it is and its length.
   */
  async mmap(sessionId: number, offset: number, rw = true): Promise<{
    /** driver_addr: offset of the mapping in shared memory region 0. */
    addr: number;
    /** Bytes mapped. */
    len: number;
  }> {
    this.requireSession(sessionId);
    const r = await this.exchange(words(MediaCmd.MMAP, 0, sessionId, rw ? MEDIA_MMAP_FLAG_RW : 0, offset), 24);
    const errno = status(r, 'MMAP');
    if (errno !== 0) throw new MediaErrnoError('MMAP', errno);
    const v = new DataView(r.buffer);
    return { addr: getU64(v, 8), len: getU64(v, 16) };
  }

  /** VIRTIO_MEDIA_CMD_MUNMAP: unmaps what mmap mapped at `addr`. */
  async munmap(addr: number): Promise<void> {
    const c = new Uint8Array(16);
    const v = new DataView(c.buffer);
    v.setUint32(0, MediaCmd.MUNMAP, true);
    setU64(v, 8, addr);
    const errno = status(await this.exchange(c, MEDIA_HEADER_SIZE), 'MUNMAP');
    if (errno !== 0) throw new MediaErrnoError('MUNMAP', errno);
  }

  /** The next buffer a DQBUF event returned (of any session). */
  nextDequeued(): Promise<MediaDequeued> {
    const d = this.dequeued.shift();
    if (d) return Promise.resolve(d);
    return new Promise((resolve) => this.dequeueWaiters.push(resolve));
  }

  detach(): void {
    this.detached = true;
    this.cmdq.detach();
    this.eventq.detach();
  }

  private requireSession(id: number): void {
    if (!this.open_.has(id)) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `virtio-media: session ${id} is not open (driver/media/1)`);
  }

  private postEventBuffer(): void {
    if (this.detached) return;
    const len = MEDIA_EVENT_DQBUF_SIZE;
    const addr = this.ctx.dma.alloc(len, 8);
    this.eventq.submit([], [{ addr, len }]).then(
      (used) => {
        const b = new Uint8Array(Math.min(used, len));
        if (b.length > 0) this.ctx.memory.read(addr, b);
        this.ctx.dma.free(addr);
        this.postEventBuffer();
        if (b.length >= MEDIA_EVENT_HEADER_SIZE) this.onEventBuffer(b);
      },
      () => this.ctx.dma.free(addr),
    );
  }

  private onEventBuffer(b: Uint8Array): void {
    const v = new DataView(b.buffer);
    const event = v.getUint32(0, true);
    const sessionId = v.getUint32(4, true);
    let msg: MediaEventMessage;
    if (event === MediaEvent.DQBUF && b.length >= MEDIA_EVENT_HEADER_SIZE + V4l2Buffer.SIZE) {
      const at = MEDIA_EVENT_HEADER_SIZE;
      const d: MediaDequeued = {
        sessionId,
        index: v.getUint32(at + V4l2Buffer.INDEX, true),
        type: v.getUint32(at + V4l2Buffer.TYPE, true),
        bytesused: v.getUint32(at + V4l2Buffer.BYTESUSED, true),
        flags: v.getUint32(at + V4l2Buffer.FLAGS, true),
        sequence: v.getUint32(at + V4l2Buffer.SEQUENCE, true),
        timestampSec: getU64(v, at + V4l2Buffer.TIMESTAMP_SEC),
        timestampUsec: getU64(v, at + V4l2Buffer.TIMESTAMP_USEC),
      };
      msg = { event, sessionId, code: 0, dequeued: d, raw: b };
      const w = this.dequeueWaiters.shift();
      if (w) w(d);
      else this.dequeued.push(d);
    } else if (event === MediaEvent.EVENT && b.length >= MEDIA_EVENT_HEADER_SIZE + 4) {
      msg = { event, sessionId, code: v.getUint32(MEDIA_EVENT_HEADER_SIZE + V4l2EventLayout.TYPE, true), raw: b };
    } else {
      msg = { event, sessionId, code: b.length >= 12 ? v.getUint32(MEDIA_EVENT_HEADER_SIZE, true) : 0, raw: b };
      // driver/media/4: a session the device failed is closed.
      if (event === MediaEvent.ERROR && this.open_.has(sessionId)) void this.close(sessionId).catch(() => {});
    }
    for (const l of this.listeners) l(msg);
  }
}

function words(...ws: number[]): Uint8Array {
  const b = new Uint8Array(ws.length * 4);
  const v = new DataView(b.buffer);
  ws.forEach((w, i) => v.setUint32(i * 4, w >>> 0, true));
  return b;
}

function u32le(x: number): Uint8Array {
  return words(x);
}

function status(r: Uint8Array, op: string): number {
  if (r.length < MEDIA_HEADER_SIZE) throw new VirtioError(ErrorCode.REQUEST_FAILED, `virtio-media ${op}: no response header`);
  return new DataView(r.buffer, r.byteOffset).getUint32(0, true);
}

function bufferStruct(type: number, index: number, memory: number, bytesused: number, timestampSec = 0): Uint8Array {
  const p = new Uint8Array(V4l2Buffer.SIZE);
  const v = new DataView(p.buffer);
  v.setUint32(V4l2Buffer.INDEX, index, true);
  v.setUint32(V4l2Buffer.TYPE, type, true);
  v.setUint32(V4l2Buffer.BYTESUSED, bytesused, true);
  v.setUint32(V4l2Buffer.MEMORY, memory, true);
  setU64(v, V4l2Buffer.TIMESTAMP_SEC, timestampSec);
  return p;
}
