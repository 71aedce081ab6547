/**
 * One virtio-media session (an open /dev/videoX): a memory-to-memory "codec" that passes frames
 * through unchanged. The OUTPUT queue takes the driver's input frames, the CAPTURE queue gives
 * them back: input and output formats are the same (setting one sets both), and each input
 * frame is copied into the next capture buffer, its timestamp with it. Buffers are MMAP (in the
 * device's shared memory region) or SHARED_PAGES (guest memory described by SG entries).
 */
import type { GuestMemory } from '../../memory/guest-memory.js';
import { Errno, V4L2_FIELD_NONE, V4l2BufFlag, V4l2BufType, V4l2Memory, V4l2PixFmt } from '../../spec/media.js';
import type { MediaShm, ShmRange } from './media-shm.js';

/** Buffers per queue at most. */
export const MEDIA_MAX_BUFFERS = 16;
/** SG entries per SHARED_PAGES buffer at most. */
export const MEDIA_MAX_SG = 256;

/** A format the pass-through codec offers (VIDIOC_ENUM_FMT). */
export interface MediaFormatInfo {
  /** V4L2 fourcc (V4l2PixFmt). */
  readonly pixelformat: number;
  /** Human-readable name, as VIDIOC_ENUM_FMT reports it. */
  readonly description: string;
}

/** The formats of the pass-through codec, both queues alike. */
export const MEDIA_FORMATS: readonly MediaFormatInfo[] = [
  { pixelformat: V4l2PixFmt.NV12, description: 'Y/UV 4:2:0' },
  { pixelformat: V4l2PixFmt.GREY, description: '8-bit Greyscale' },
];

export interface MediaFormat {
  width: number;
  height: number;
  pixelformat: number;
  bytesperline: number;
  sizeimage: number;
}

/** Adjusts `f` to what the codec supports (TRY_FMT semantics). */
export function adjustFormat(f: MediaFormat): void {
  if (!MEDIA_FORMATS.some((m) => m.pixelformat === f.pixelformat)) f.pixelformat = MEDIA_FORMATS[0]!.pixelformat;
  f.width = Math.min(1920, Math.max(16, f.width & ~1));
  f.height = Math.min(1088, Math.max(16, f.height & ~1));
  f.bytesperline = f.width;
  f.sizeimage = f.pixelformat === V4l2PixFmt.NV12 ? (f.width * f.height * 3) / 2 : f.width * f.height;
}

export class MediaBuffer {
  queued = false;
  bytesused = 0;
  flags = 0;
  sequence = 0;
  timestampSec = 0;
  timestampUsec = 0;
  /** SHARED_PAGES: the userptr value the driver gave (returned unchanged: device/media/7). */
  userptr = 0;
  sgCount = 0;
  readonly sgAddr: Float64Array;
  readonly sgLen: Uint32Array;
  constructor(
    readonly index: number,
    readonly type: number,
    readonly memory: number,
    /** The buffer's length in bytes (MMAP: sizeimage; SHARED_PAGES: as the driver queues it). */
    public length: number,
    readonly range: ShmRange | null,
  ) {
    const n = memory === V4l2Memory.USERPTR ? MEDIA_MAX_SG : 0;
    this.sgAddr = new Float64Array(n);
    this.sgLen = new Uint32Array(n);
  }
}

export class MediaQueueState {
  memory = 0;
  buffers: MediaBuffer[] = [];
  streaming = false;
  /** Indices of queued buffers, in queue order. */
  readonly order: number[] = [];
  constructor(readonly type: number) {}
}

/** What the device does with the session's results (events on the eventq). */
export interface MediaSessionSink {
  dequeued(session: MediaSession, buffer: MediaBuffer): void;
  sourceChange(session: MediaSession): void;
}

export class MediaSession {
  readonly format: MediaFormat = { width: 320, height: 240, pixelformat: V4l2PixFmt.NV12, bytesperline: 0, sizeimage: 0 };
  readonly output = new MediaQueueState(V4l2BufType.VIDEO_OUTPUT);
  readonly capture = new MediaQueueState(V4l2BufType.VIDEO_CAPTURE);
  /** V4L2 event types subscribed. */
  readonly subscribed = new Set<number>();
  /** Set by VIRTIO_MEDIA_EVT_ERROR: every command but CLOSE fails until the driver closes it. */
  errored = false;
  private sequence = 0;
  /** One frame, gathered from the input buffer before it is scattered into the capture buffer. */
  private frame = new Uint8Array(0);

  constructor(
    readonly id: number,
    private readonly shm: MediaShm,
    private readonly memory: () => GuestMemory | null,
    private readonly sink: MediaSessionSink,
  ) {
    adjustFormat(this.format);
  }

  queue(type: number): MediaQueueState | null {
    return type === V4l2BufType.VIDEO_OUTPUT ? this.output : type === V4l2BufType.VIDEO_CAPTURE ? this.capture : null;
  }

  /** S_FMT: both queues take the format (input = output); refused while buffers exist. */
  setFormat(f: MediaFormat): number {
    if (this.output.buffers.length > 0 || this.capture.buffers.length > 0) return Errno.EBUSY;
    adjustFormat(f);
    const changed = f.width !== this.format.width || f.height !== this.format.height;
    Object.assign(this.format, f);
    if (changed && this.subscribed.has(5)) this.sink.sourceChange(this);
    return 0;
  }

  /** REQBUFS: returns the errno, and the count allocated in `count.value`. */
  requestBuffers(q: MediaQueueState, memory: number, count: { value: number }): number {
    if (memory !== V4l2Memory.MMAP && memory !== V4l2Memory.USERPTR) return Errno.EINVAL;
    if (q.streaming) return Errno.EBUSY;
    this.freeBuffers(q);
    const n = Math.min(count.value, MEDIA_MAX_BUFFERS);
    for (let i = 0; i < n; i++) {
      let range: ShmRange | null = null;
      if (memory === V4l2Memory.MMAP) {
        range = this.shm.allocate(this.format.sizeimage);
        if (range === null) break;
      }
      q.buffers.push(new MediaBuffer(i, q.type, memory, this.format.sizeimage, range));
    }
    if (n > 0 && q.buffers.length === 0) return Errno.ENOMEM;
    q.memory = n > 0 ? memory : 0;
    count.value = q.buffers.length;
    return 0;
  }

  /** QBUF: the buffer is queued; frames are processed when both queues can. */
  queueBuffer(b: MediaBuffer): void {
    b.queued = true;
    b.flags = (b.flags & ~(V4l2BufFlag.DONE | V4l2BufFlag.ERROR)) | V4l2BufFlag.QUEUED;
    (b.type === V4l2BufType.VIDEO_OUTPUT ? this.output : this.capture).order.push(b.index);
    this.process();
  }

  streamOn(q: MediaQueueState): number {
    if (q.buffers.length === 0) return Errno.EINVAL;
    q.streaming = true;
    this.process();
    return 0;
  }

  /** STREAMOFF: queued buffers go back to the driver without DQBUF (as in V4L2). */
  streamOff(q: MediaQueueState): void {
    q.streaming = false;
    for (const i of q.order) {
      const b = q.buffers[i]!;
      b.queued = false;
      b.flags &= ~V4l2BufFlag.QUEUED;
    }
    q.order.length = 0;
  }

  /** CLOSE: every buffer released (mapped MMAP ranges stay until MUNMAP: device/media/6). */
  close(): void {
    this.freeBuffers(this.output);
    this.freeBuffers(this.capture);
  }

  private freeBuffers(q: MediaQueueState): void {
    this.streamOff(q);
    for (const b of q.buffers) if (b.range) this.shm.release(b.range);
    q.buffers = [];
    q.memory = 0;
  }

  /** The pass-through: one input frame into one capture buffer while both queues can. */
  private process(): void {
    const mem = this.memory();
    while (this.output.streaming && this.capture.streaming && this.output.order.length > 0 && this.capture.order.length > 0) {
      const src = this.output.buffers[this.output.order.shift()!]!;
      const dst = this.capture.buffers[this.capture.order.shift()!]!;
      const n = Math.min(src.bytesused, src.length);
      if (this.frame.length < n) this.frame = new Uint8Array(Math.max(n, this.format.sizeimage));
      const got = this.transfer(src, this.frame, n, false, mem);
      src.queued = false;
      src.flags = (src.flags & ~V4l2BufFlag.QUEUED) | V4l2BufFlag.DONE;
      dst.queued = false;
      dst.flags = (dst.flags & ~V4l2BufFlag.QUEUED) | V4l2BufFlag.DONE | V4l2BufFlag.TIMESTAMP_COPY;
      if (got !== n || n > dst.length || this.transfer(dst, this.frame, n, true, mem) !== n) {
        dst.flags |= V4l2BufFlag.ERROR;
        dst.bytesused = 0;
      } else dst.bytesused = n;
      dst.timestampSec = src.timestampSec;
      dst.timestampUsec = src.timestampUsec;
      src.sequence = dst.sequence = this.sequence++;
      this.sink.dequeued(this, src);
      this.sink.dequeued(this, dst);
    }
  }

  /** Copies `n` bytes between `frame` and the buffer's memory; returns the bytes moved. */
  private transfer(b: MediaBuffer, frame: Uint8Array, n: number, toBuffer: boolean, mem: GuestMemory | null): number {
    if (b.range !== null) {
      const at = b.range.offset;
      if (toBuffer) this.shm.bytes.set(frame.subarray(0, n), at);
      else frame.set(this.shm.bytes.subarray(at, at + n));
      return n;
    }
    if (mem === null) return 0;
    let done = 0;
    for (let i = 0; i < b.sgCount && done < n; i++) {
      const len = Math.min(b.sgLen[i]!, n - done);
      const addr = b.sgAddr[i]!;
      // Checked at QBUF; memory may have changed since (a hot-unplugged region): checked again.
      if (!mem.isMapped(addr, len)) return done;
      if (toBuffer) mem.write(addr, frame, done, len);
      else mem.read(addr, frame, done, len);
      done += len;
    }
    return done;
  }
}

export const MEDIA_FIELD = V4L2_FIELD_NONE;
