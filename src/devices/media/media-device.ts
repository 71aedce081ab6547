/**
 * 5.22 Media Device, device side: a V4L2 memory-to-memory video device (a pass-through "codec",
 * media-session.ts) behind the virtio-media commandq and eventq. Commands: OPEN, CLOSE, IOCTL
 * (media-ioctls.ts), MMAP and MUNMAP of MMAP buffers in shared memory region 0. Events: DQBUF
 * for every buffer done, EVENT for subscribed V4L2 events (SOURCE_CHANGE), ERROR for a session
 * the host declares failed (`failSession`).
 *
 * The guest is untrusted: a command shorter than its structure, an unknown command or session,
 * a payload cut short, SG entries outside guest memory get a Linux error code (EINVAL, EFAULT,
 * EBADF, ENOTTY) in the response header; a chain with unmapped memory or no room for a header
 * is used with length 0. Sessions, buffers per queue, SG entries per buffer and controls per
 * ioctl are bounded, and so are the events waiting for eventq buffers.
 */
import { QueueServer, type QueueRequest } from '../../device/queue-server.js';
import type { DeviceContext, SharedMemoryRegion, VirtioDevice } from '../../device/types.js';
import { ErrorCode, VirtioError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { ChainCursor } from '../../queue/chain.js';
import { encodeConfig } from '../../spec/config-layout.js';
import { DeviceId } from '../../spec/device-id.js';
import { F } from '../../spec/features.js';
import {
  Errno,
  MEDIA_CONFIG_LAYOUT,
  MEDIA_EVENT_DQBUF_SIZE,
  MEDIA_EVENT_ERROR_SIZE,
  MEDIA_EVENT_EVENT_SIZE,
  MEDIA_EVENT_HEADER_SIZE,
  MEDIA_FEATURES,
  MEDIA_HEADER_SIZE,
  MEDIA_SHM_ID,
  MediaCmd,
  MediaConfig,
  MediaEvent,
  MediaQueue,
  V4L2_EVENT_SRC_CH_RESOLUTION,
  V4l2Cap,
  V4l2EventLayout,
  V4l2EventType,
  V4l2ExtControl,
  V4l2ExtControls,
  VFL_TYPE_VIDEO,
} from '../../spec/media.js';
import { IOCTLS, MEDIA_MAX_EXT_CONTROLS, MediaIoctls, describeBuffer, getU64, setU64 } from './media-ioctls.js';
import { type MediaBuffer, MediaSession, type MediaSessionSink } from './media-session.js';
import { MediaShm } from './media-shm.js';

/** Options of MediaDevice. */
export interface MediaDeviceOptions {
  /** config `card`: UTF-8, at most 32 bytes. Default "virtio-ts pass-through codec". */
  card?: string;
  /** Bytes of shared memory region 0 for MMAP buffers (a multiple of 4096). Default 8 MiB. */
  shmSize?: number;
  /** Open sessions at most. Default 16. */
  maxSessions?: number;
  /** Maximum queue size of each queue. Default 128. */
  queueSize?: number;
  /** Where the device logs; silent by default. */
  logger?: Logger;
}

/** Events kept while no eventq buffer waits (beyond: the session gets an ERROR event). */
export const MEDIA_MAX_PENDING_EVENTS = 256;

const MAX_PAYLOAD = V4l2ExtControls.SIZE + MEDIA_MAX_EXT_CONTROLS * V4l2ExtControl.SIZE;

/**
 * The virtio-media device (5.22): V4L2 sessions over the command queue, buffers in a shared memory
 * region (a pass-through codec). What it implements and its normative coverage:
 * docs/devices/media.md.
 */
export class MediaDevice implements VirtioDevice {
  readonly deviceId = DeviceId.MEDIA;
  readonly offeredFeatures = MEDIA_FEATURES | F.VERSION_1 | F.INDIRECT_DESC | F.EVENT_IDX | F.RING_PACKED | F.RING_RESET;
  readonly queueMaxSizes: readonly number[];
  readonly configSize = MediaConfig.SIZE;
  readonly sharedMemoryRegions: readonly SharedMemoryRegion[];
  /** Shared memory region 0 (5.22.6.1 MMAP): where MMAP buffers live. */
  readonly shm: MediaShm;

  private readonly card = new Uint8Array(MediaConfig.CARD_SIZE);
  private readonly maxSessions: number;
  private readonly sessions = new Map<number, MediaSession>();
  private nextSession = 1;
  private readonly server: QueueServer;
  private readonly reader = new ChainCursor(false);
  private readonly writer = new ChainCursor(true);
  private readonly eventWriter = new ChainCursor(true);
  private readonly cmd = new Uint8Array(24);
  private readonly cmdView = new DataView(this.cmd.buffer);
  private readonly payload = new Uint8Array(MAX_PAYLOAD);
  private readonly ioctls = new MediaIoctls();
  private readonly eventBuffers: QueueRequest[] = [];
  private readonly pending: Uint8Array[] = [];
  private readonly sink: MediaSessionSink;
  private readonly readExtra = (dst: Uint8Array, off: number, len: number): number => this.reader.read(dst, off, len);

  constructor(opts: MediaDeviceOptions = {}) {
    const qs = opts.queueSize ?? 128;
    if (!Number.isInteger(qs) || qs < 1 || qs > 32768) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `queueSize ${qs} not in 1..32768`);
    this.queueMaxSizes = [qs, qs];
    const card = new TextEncoder().encode(opts.card ?? 'virtio-ts pass-through codec');
    if (card.length > MediaConfig.CARD_SIZE) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'card name over 32 bytes');
    this.card.set(card);
    const shmSize = opts.shmSize ?? 8 << 20;
    if (!Number.isInteger(shmSize) || shmSize < 4096 || shmSize % 4096 !== 0) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'shmSize must be a multiple of 4096');
    this.shm = new MediaShm(shmSize);
    this.sharedMemoryRegions = [{ id: MEDIA_SHM_ID, length: shmSize, memory: this.shm.bytes }];
    this.maxSessions = opts.maxSessions ?? 16;
    this.sink = {
      dequeued: (s, b) => this.dqbufEvent(s, b),
      sourceChange: (s) => this.v4l2Event(s, V4l2EventType.SOURCE_CHANGE),
    };
    const serveCmd = (req: QueueRequest): number => this.serve(req);
    const serveEvent = (req: QueueRequest): number | void => this.takeEventBuffer(req);
    this.server = new QueueServer({
      name: 'virtio-media',
      numQueues: 2,
      logger: opts.logger,
      handler: (i) => (i === MediaQueue.COMMANDQ ? serveCmd : i === MediaQueue.EVENTQ ? serveEvent : null),
      queueStopped: (i) => {
        if (i === MediaQueue.EVENTQ) this.eventBuffers.length = 0;
      },
    });
  }

  /** Open sessions (errored ones included until closed). */
  get sessionIds(): number[] {
    return [...this.sessions.keys()];
  }

  /** Events waiting for an eventq buffer. */
  get eventsWaiting(): number {
    return this.pending.length;
  }

  /**
   * Declares session `id` failed (a host-side codec error): VIRTIO_MEDIA_EVT_ERROR with `errno`;
   * the session answers EIO to everything but CLOSE, and its id is not reused until closed
   * (device/media/9).
   */
  failSession(id: number, errno: number = Errno.EIO): boolean {
    const s = this.sessions.get(id);
    if (s === undefined || s.errored) return false;
    s.errored = true;
    s.close();
    const e = this.event(MediaEvent.ERROR, id, MEDIA_EVENT_ERROR_SIZE);
    new DataView(e.buffer).setUint32(MEDIA_EVENT_HEADER_SIZE, errno, true);
    this.send(e);
    return true;
  }

  private serve({ chain }: QueueRequest): number {
    if (chain.fault !== null || chain.writableBytes < MEDIA_HEADER_SIZE) return 0;
    const r = this.reader.reset(chain);
    this.writer.reset(chain);
    if (r.read(this.cmd, 0, MEDIA_HEADER_SIZE) !== MEDIA_HEADER_SIZE) return this.status(Errno.EINVAL);
    const v = this.cmdView;
    switch (v.getUint32(0, true)) {
      case MediaCmd.OPEN:
        return this.open();
      case MediaCmd.CLOSE: {
        if (r.read(this.cmd, 8, 8) !== 8) return this.status(Errno.EINVAL);
        const s = this.sessions.get(v.getUint32(8, true));
        if (s === undefined) return this.status(Errno.EINVAL);
        s.close();
        this.sessions.delete(s.id);
        return this.status(0);
      }
      case MediaCmd.IOCTL:
        return this.ioctl(chain.writableBytes);
      case MediaCmd.MMAP:
        return this.mmap(chain.writableBytes);
      case MediaCmd.MUNMAP: {
        if (r.read(this.cmd, 8, 8) !== 8) return this.status(Errno.EINVAL);
        return this.status(this.shm.unmap(getU64(v, 8)) ? 0 : Errno.EINVAL);
      }
      default:
        return this.status(Errno.EINVAL);
    }
  }

  private open(): number {
    if (this.sessions.size >= this.maxSessions) return this.status(Errno.EBUSY);
    // device/media/1: an id no open (or failed, not yet closed) session has.
    let id = this.nextSession;
    while (this.sessions.has(id) || id === 0) id = (id + 1) >>> 0;
    this.nextSession = (id + 1) >>> 0;
    this.sessions.set(id, new MediaSession(id, this.shm, () => this.server.context?.memory ?? null, this.sink));
    const v = this.cmdView;
    v.setUint32(0, 0, true);
    v.setUint32(4, 0, true);
    v.setUint32(8, id, true);
    v.setUint32(12, 0, true);
    return this.writer.write(this.cmd, 0, 16);
  }

  private session(id: number): MediaSession | number {
    const s = this.sessions.get(id);
    if (s === undefined) return Errno.EBADF;
    return s.errored ? Errno.EIO : s;
  }

  private ioctl(room: number): number {
    const r = this.reader;
    const v = this.cmdView;
    if (r.read(this.cmd, 8, 8) !== 8) return this.status(Errno.EINVAL);
    const s = this.session(v.getUint32(8, true));
    if (typeof s === 'number') return this.status(s);
    const code = v.getUint32(12, true);
    const spec = IOCTLS.get(code);
    // device/media/4: unknown and unsupported ioctls (QUERYCAP, DQBUF, DQEVENT, ...) answer ENOTTY.
    if (spec === undefined) return this.status(Errno.ENOTTY);
    const p = this.payload.subarray(0, spec.size);
    if (spec.write && r.read(p) !== spec.size) return this.status(Errno.EFAULT);
    if (!spec.write) p.fill(0);
    const errno = this.ioctls.run(s, code, this.payload, spec, this.readExtra, this.server.context?.memory ?? null);
    if (errno !== 0) return this.status(errno); // driver/media/3: the header only, the payload untouched
    const out = this.ioctls.outLength;
    if (room < MEDIA_HEADER_SIZE + out) return this.status(Errno.EFAULT);
    // device/media/2: on success the payload of a device-writable ioctl is always written.
    this.status(0);
    return this.writer.write(this.payload, 0, out) + MEDIA_HEADER_SIZE;
  }

  private mmap(room: number): number {
    const v = this.cmdView;
    if (this.reader.read(this.cmd, 8, 12) !== 12) return this.status(Errno.EINVAL);
    const s = this.session(v.getUint32(8, true));
    if (typeof s === 'number') return this.status(s);
    const range = this.shm.owned(v.getUint32(16, true));
    const mine = range !== undefined && [...s.output.buffers, ...s.capture.buffers].some((b) => b.range === range);
    if (!mine || room < 24) return this.status(Errno.EINVAL);
    this.shm.map(range);
    v.setUint32(0, 0, true);
    v.setUint32(4, 0, true);
    setU64(v, 8, range.offset);
    // device/media/5: len is the length of the buffer.
    setU64(v, 16, bufferLength(s, range.offset));
    return this.writer.write(this.cmd, 0, 24);
  }

  /** The response header alone with `errno` (0: success). */
  private status(errno: number): number {
    const v = this.cmdView;
    v.setUint32(0, errno, true);
    v.setUint32(4, 0, true);
    return this.writer.write(this.cmd, 0, MEDIA_HEADER_SIZE);
  }

  // ---- eventq ----

  private event(type: number, session: number, size: number): Uint8Array {
    const e = new Uint8Array(size);
    const v = new DataView(e.buffer);
    v.setUint32(0, type, true);
    v.setUint32(4, session, true);
    return e;
  }

  private dqbufEvent(s: MediaSession, b: MediaBuffer): void {
    const e = this.event(MediaEvent.DQBUF, s.id, MEDIA_EVENT_DQBUF_SIZE);
    // driver/media/5 asks the driver to ignore pointers; the device sets them to NULL (5.22.6.2).
    describeBuffer(new DataView(e.buffer, MEDIA_EVENT_HEADER_SIZE), b, true);
    this.send(e);
  }

  private v4l2Event(s: MediaSession, type: number): void {
    const e = this.event(MediaEvent.EVENT, s.id, MEDIA_EVENT_EVENT_SIZE);
    const v = new DataView(e.buffer, MEDIA_EVENT_HEADER_SIZE);
    v.setUint32(V4l2EventLayout.TYPE, type, true);
    if (type === V4l2EventType.SOURCE_CHANGE) v.setUint32(V4l2EventLayout.U, V4L2_EVENT_SRC_CH_RESOLUTION, true);
    this.send(e);
  }

  private send(e: Uint8Array): void {
    if (this.pending.length >= MEDIA_MAX_PENDING_EVENTS) return; // bounded; the driver is not reading events
    this.pending.push(e);
    this.deliver();
  }

  private takeEventBuffer(req: QueueRequest): number | void {
    if (req.chain.fault !== null || req.chain.writableBytes < MEDIA_EVENT_HEADER_SIZE) return 0;
    this.eventBuffers.push(req);
    this.deliver();
  }

  private deliver(): void {
    const w = this.eventWriter;
    while (this.eventBuffers.length > 0 && this.pending.length > 0) {
      const req = this.eventBuffers.shift()!;
      if (!this.server.isLive(req)) continue;
      const e = this.pending.shift()!;
      this.server.complete(req, w.reset(req.chain).write(e, 0, Math.min(e.length, req.chain.writableBytes)));
    }
  }

  readConfig(offset: number, dst: Uint8Array, _features: bigint, littleEndian: boolean): void {
    encodeConfig(MEDIA_CONFIG_LAYOUT, { deviceCaps: V4l2Cap.VIDEO_M2M | V4l2Cap.STREAMING | V4l2Cap.EXT_PIX_FORMAT, deviceType: VFL_TYPE_VIDEO }, 0n, offset, dst, littleEndian);
    for (let i = 0; i < dst.length; i++) {
      const at = offset + i - MediaConfig.CARD;
      if (at >= 0 && at < MediaConfig.CARD_SIZE) dst[i] = this.card[at]!;
    }
  }

  /** 5.22.4: every field is driver-read-only. */
  writeConfig(): void {}

  activate(ctx: DeviceContext): void {
    this.server.activate(ctx);
  }

  onQueueNotify(index: number): void {
    this.server.onQueueNotify(index);
  }

  suspend(): Promise<void> | void {
    return this.server.suspend();
  }

  resume(): void {
    this.server.resume();
  }

  /** Device reset: every session, buffer, mapping and pending event is gone. */
  reset(): void {
    this.server.reset();
    for (const s of this.sessions.values()) s.close();
    this.sessions.clear();
    this.nextSession = 1;
    this.shm.clear();
    this.pending.length = 0;
    this.eventBuffers.length = 0;
  }

  resetQueue(index: number): void {
    this.server.resetQueue(index);
  }
}

function bufferLength(s: MediaSession, offset: number): number {
  for (const b of [...s.output.buffers, ...s.capture.buffers]) if (b.range?.offset === offset) return b.length;
  return 0;
}

