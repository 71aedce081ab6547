/**
 * The vhost-user back-end: turns the front-end's requests into guest memory, rings and calls on
 * a VirtioDevice. The device has no protocol code: it sees a DeviceContext (memory, features,
 * queues, notifications) exactly as on any other transport.
 *
 * Ring states (vhost-user.rst "Starting and stopping rings"): a ring is stopped until
 * SET_VRING_KICK starts it and stopped again by GET_VRING_BASE; it is enabled by
 * SET_VRING_ENABLE(1), or from the start when VHOST_USER_F_PROTOCOL_FEATURES was not
 * negotiated. Only a started and enabled ring reaches the device.
 *
 * Every request is answered as the protocol says: explicit replies always (an unanswered GET_*
 * freezes QEMU), and with REPLY_ACK a u64 0 / 1 when the front-end set NEED_REPLY. A message
 * that cannot be accepted is refused with a VhostUserError; nothing the front-end sends makes
 * the back-end throw, leak an fd or keep a mapping past close().
 */
import { QueueError, VirtioError, isVirtioError } from '../errors.js';
import { GuestMemory } from '../memory/guest-memory.js';
import { silentLogger, type Logger } from '../log.js';
import type { Mapping, Platform, FdWatcher } from '../platform/types.js';
import type { DeviceContext, VirtioDevice } from '../device/types.js';
import type { DeviceQueue, QueueConfig, QueueState } from '../queue/types.js';
import { SplitQueue } from '../queue/split-queue.js';
import { PackedQueue } from '../queue/packed-queue.js';
import { F, isDeviceTypeBit, bit } from '../spec/features.js';
import { Status } from '../spec/status.js';
import { MAX_QUEUE_SIZE, SplitLayout } from '../spec/ring.js';
import {
  REPLY_FLAGS,
  VhostUserError,
  VhostUserFault,
  checkRequestSize,
  decodeConfig,
  decodeInflight,
  decodeLog,
  decodeMemRegMsg,
  decodeMemoryTable,
  decodeU64,
  decodeU64Big,
  decodeVringAddr,
  decodeVringState,
  encodeConfig,
  encodeInflight,
  encodeU64,
  encodeVringState,
} from './codec.js';
import {
  BackendReq,
  ConfigFlag,
  F_LOG_ALL,
  F_PROTOCOL_FEATURES,
  FrontendReq,
  HeaderFlag,
  MAX_QUEUE_INDEX,
  PF,
  VHOST_VRING_F_LOG,
  VRING_IDX_MASK,
  VRING_NOFD_MASK,
  frontendReqName,
  type VhostUserMessage,
  type VringAddr,
} from './messages.js';
import { VhostMemoryMap, DEFAULT_MAP_CHUNK } from './memory-map.js';
import { PackedInflight, SplitInflight, inflightQueueRegionSize } from './inflight.js';
import { DirtyLog, VhostQueue } from './vhost-queue.js';

/** Protocol features this back-end implements (and therefore advertises). */
export const SUPPORTED_PROTOCOL_FEATURES =
  PF.MQ |
  PF.LOG_SHMFD |
  PF.REPLY_ACK |
  PF.BACKEND_REQ |
  PF.CROSS_ENDIAN |
  PF.CONFIG |
  PF.INFLIGHT_SHMFD |
  PF.RESET_DEVICE |
  PF.CONFIGURE_MEM_SLOTS |
  PF.STATUS;

/** Transport bits a vhost-user back-end can honour (no IOTLB, no notification data, no queue reset). */
export const VHOST_USER_TRANSPORT_FEATURES =
  F.NOTIFY_ON_EMPTY | F.ANY_LAYOUT | F.INDIRECT_DESC | F.EVENT_IDX | F.VERSION_1 | F.RING_PACKED | F.IN_ORDER | F.ORDER_PLATFORM;

export type QueueFactory = (memory: GuestMemory, config: QueueConfig) => DeviceQueue;

export const defaultQueueFactory: QueueFactory = (memory, config) => {
  const packed = (config.features & F.RING_PACKED) !== 0n;
  return packed ? new PackedQueue(memory, config) : new SplitQueue(memory, config);
};

export interface VhostUserBackendOptions {
  readonly device: VirtioDevice;
  readonly platform: Platform;
  readonly logger?: Logger;
  /** GET_MAX_MEM_SLOTS answer (default 32). */
  readonly maxMemSlots?: number;
  /** Mapping chunk for large regions (default 1 GiB, multiple of 4096). */
  readonly mapChunkSize?: number;
  readonly queueFactory?: QueueFactory;
  /** Polling period of rings without a kick fd (SET_VRING_KICK bit 8), in ms (default 1). */
  readonly pollIntervalMs?: number;
  /** Restricts the advertised protocol features (default: all supported). */
  readonly protocolFeatures?: bigint;
  /**
   * Busy-poll window after a processing pass, in microseconds (default 0: off). The back-end
   * keeps driver notifications suppressed and watches the avail ring for this long after the
   * last buffer it found before re-enabling them and sleeping, which saves the driver's kick
   * and the back-end's wake-up when requests follow each other closely. At most
   * MAX_POLL_US; one polling episode, passes included, never keeps the event loop for more than
   * POLL_BUDGET_US (+ one pass).
   */
  readonly pollUs?: number;
}

/** Largest accepted pollUs. */
export const MAX_POLL_US = 1000;
/** Longest a polling episode holds the event loop (vhost-user messages, other rings) before yielding. */
export const POLL_BUDGET_US = 2000;
/** Back-to-back passes between two looks at the clock in a busy polling episode. */
const POLL_CLOCK_PASSES = 8;
/** Looks at the avail index between two clock reads while idle-polling. */
const POLL_CHECKS_PER_CLOCK = 32;
/**
 * Polling adapts: after POLL_WASTED_LIMIT episodes in a row whose idle windows found no buffer
 * (the driver is slower than the window, or shares our CPU and cannot run while we spin), the
 * ring is served without polling for POLL_SUSPEND_MIN episodes, doubling up to POLL_SUSPEND_MAX
 * while the probes after a suspension stay fruitless.
 */
const POLL_WASTED_LIMIT = 2;
const POLL_SUSPEND_MIN = 16;
const POLL_SUSPEND_MAX = 4096;

/** Where replies and back-end requests go (the connection's framer). */
export type MessageSink = (request: number, flags: number, payload?: Uint8Array, fds?: readonly number[]) => void;

interface Reply {
  payload: Uint8Array;
  fds?: number[];
  /** Close these fds after sending (fds handed to the front-end). */
  closeAfter?: boolean;
}

export type RingPhase = 'stopped' | 'started';

/** One vring's protocol state. */
interface Ring {
  readonly index: number;
  readonly maxSize: number;
  num: number;
  addr: VringAddr | null;
  base: number;
  kickFd: number;
  callFd: number;
  errFd: number;
  polling: boolean;
  started: boolean;
  enabled: boolean;
  littleEndian: boolean;
  queue: VhostQueue | null;
  watcher: FdWatcher | null;
  pollTimer: ReturnType<typeof setInterval> | null;
  broken: QueueError | null;
  /** A used-buffer notification was asked for during the current processing pass. */
  callPending: boolean;
  /** Busy-poll adaptation: consecutive episodes whose polling found nothing. */
  pollWasted: number;
  /** Episodes left to run without polling, and the length of the next suspension. */
  pollSuspended: number;
  pollSuspendLen: number;
  /** Guest addresses of the ring parts while started. */
  descGuest: number;
  usedGuest: number;
}

/** Snapshot of a ring for logs and tests. */
export interface RingInfo {
  readonly index: number;
  readonly num: number;
  readonly started: boolean;
  readonly enabled: boolean;
  readonly kickFd: number;
  readonly callFd: number;
  readonly errFd: number;
  readonly polling: boolean;
  readonly broken: QueueError | null;
}

interface InflightArea {
  mapping: Mapping;
  view: DataView;
  numQueues: number;
  queueSize: number;
  stride: number;
}

const EMPTY_MEMORY = new GuestMemory([]);

/** Requests whose reply is part of the protocol (sent whatever REPLY_ACK says). */
const EXPLICIT_REPLY = new Set<number>([
  FrontendReq.GET_FEATURES,
  FrontendReq.GET_PROTOCOL_FEATURES,
  FrontendReq.GET_VRING_BASE,
  FrontendReq.GET_QUEUE_NUM,
  FrontendReq.GET_CONFIG,
  FrontendReq.GET_INFLIGHT_FD,
  FrontendReq.GET_MAX_MEM_SLOTS,
  FrontendReq.GET_STATUS,
  FrontendReq.IOTLB_MSG,
  FrontendReq.POSTCOPY_ADVISE,
  FrontendReq.POSTCOPY_END,
  FrontendReq.GET_SHARED_OBJECT,
  FrontendReq.SET_DEVICE_STATE_FD,
  FrontendReq.CHECK_DEVICE_STATE,
]);

export class VhostUserBackend {
  readonly device: VirtioDevice;
  private readonly platform: Platform;
  private readonly logger: Logger;
  private readonly maxMemSlots: number;
  private readonly queueFactory: QueueFactory;
  private readonly pollMs: number;
  /** Busy-poll window in ms (0: no polling). */
  private readonly pollWindowMs: number;
  private readonly offeredProtocol: bigint;
  private readonly mem: VhostMemoryMap;
  private readonly rings: Ring[];
  private sink: MessageSink = () => {
    throw new VirtioError('INVALID_ARGUMENT', 'VhostUserBackend: no message sink attached');
  };

  private ackedFeatures = 0n;
  private featuresSet = false;
  private ackedProtocol = 0n;
  private owner = false;
  private statusValue = 0;
  private needsResetFlag = false;
  private active = false;
  private closed = false;
  private ctx: DeviceContext;
  private log: DirtyLog | null = null;
  private logMapping: Mapping | null = null;
  private logFd = -1;
  private backendFd = -1;
  private inflight: InflightArea | null = null;
  private readonly immediates = new Set<ReturnType<typeof setImmediate>>();
  /** Nesting of processing passes (notifyUsed defers its call eventfd write while > 0). */
  private passDepth = 0;

  /** Requests refused so far, and the last refusal (for logs and tests). */
  errorCount = 0;
  /** Call eventfd writes made (used-buffer notifications actually sent). */
  callsSent = 0;
  lastError: VirtioError | null = null;
  /** Called for every refused request or device error (after logging). */
  onError: ((e: VirtioError) => void) | null = null;

  constructor(opts: VhostUserBackendOptions) {
    this.device = opts.device;
    this.platform = opts.platform;
    this.logger = opts.logger ?? silentLogger;
    this.maxMemSlots = opts.maxMemSlots ?? 32;
    this.queueFactory = opts.queueFactory ?? defaultQueueFactory;
    this.pollMs = opts.pollIntervalMs ?? 1;
    const pollUs = opts.pollUs ?? 0;
    if (!(pollUs >= 0 && pollUs <= MAX_POLL_US)) throw new VirtioError('INVALID_ARGUMENT', `pollUs ${pollUs} not in 0..${MAX_POLL_US}`);
    this.pollWindowMs = pollUs / 1000;
    this.offeredProtocol = SUPPORTED_PROTOCOL_FEATURES & (opts.protocolFeatures ?? SUPPORTED_PROTOCOL_FEATURES);
    this.mem = new VhostMemoryMap(this.platform, opts.mapChunkSize ?? DEFAULT_MAP_CHUNK);
    const n = Math.min(this.device.queueMaxSizes.length, MAX_QUEUE_INDEX + 1);
    this.rings = [];
    for (let i = 0; i < n; i++) {
      this.rings.push({
        index: i,
        maxSize: Math.min(this.device.queueMaxSizes[i]!, MAX_QUEUE_SIZE),
        num: 0,
        addr: null,
        base: 0,
        kickFd: -1,
        callFd: -1,
        errFd: -1,
        polling: false,
        started: false,
        enabled: false,
        littleEndian: true,
        queue: null,
        watcher: null,
        pollTimer: null,
        broken: null,
        callPending: false,
        pollWasted: 0,
        pollSuspended: 0,
        pollSuspendLen: POLL_SUSPEND_MIN,
        descGuest: -1,
        usedGuest: -1,
      });
    }
    this.ctx = this.makeContext();
  }

  /** Sets where replies and back-end requests are written. */
  attach(sink: MessageSink): void {
    this.sink = sink;
  }

  /** Features offered in GET_FEATURES: the device's, the transport bits we honour, bits 26 and 30. */
  get offeredFeatures(): bigint {
    let devBits = 0n;
    const off = this.device.offeredFeatures;
    for (let b = 0; b < 64; b++) if (isDeviceTypeBit(b) && (off & bit(b)) !== 0n) devBits |= bit(b);
    return devBits | (off & VHOST_USER_TRANSPORT_FEATURES) | F_PROTOCOL_FEATURES | F_LOG_ALL;
  }
  get offeredProtocolFeatures(): bigint {
    return this.offeredProtocol;
  }
  get features(): bigint {
    return this.ackedFeatures;
  }
  get protocolFeatures(): bigint {
    return this.ackedProtocol;
  }
  get status(): number {
    return this.statusValue | (this.needsResetFlag ? Status.DEVICE_NEEDS_RESET : 0);
  }
  get memory(): GuestMemory | null {
    return this.mem.memory;
  }
  get numQueues(): number {
    return this.rings.length;
  }
  get deviceActive(): boolean {
    return this.active;
  }
  ringInfo(i: number): RingInfo | null {
    const r = this.rings[i];
    if (!r) return null;
    return {
      index: r.index,
      num: r.num,
      started: r.started,
      enabled: r.enabled,
      kickFd: r.kickFd,
      callFd: r.callFd,
      errFd: r.errFd,
      polling: r.polling,
      broken: r.broken,
    };
  }
  /** The live queue of a started ring (tests). */
  ringQueue(i: number): VhostQueue | null {
    return this.rings[i]?.queue ?? null;
  }

  private hasProto(mask: bigint): boolean {
    return (this.ackedProtocol & mask) !== 0n;
  }
  private get protocolNegotiated(): boolean {
    return (this.ackedFeatures & F_PROTOCOL_FEATURES) !== 0n;
  }
  private get deviceFeatures(): bigint {
    return this.ackedFeatures & ~(F_PROTOCOL_FEATURES | F_LOG_ALL);
  }
  private get littleEndian(): boolean {
    return this.rings[0]?.littleEndian ?? true;
  }

  // --- message dispatch ----------------------------------------------------------------------

  /**
   * Handles one framed request: replies through the sink, closes every fd of the message it did
   * not keep. Never throws for anything the front-end sent; only a failing sink (socket gone)
   * throws.
   */
  handleMessage(msg: VhostUserMessage): void {
    if (this.closed) {
      this.closeFds(msg.fds);
      return;
    }
    let reply: Reply | null = null;
    let err: VirtioError | null = null;
    try {
      checkRequestSize(msg.request, msg.payload.length);
      reply = this.dispatch(msg);
    } catch (e) {
      err = isVirtioError(e) ? e : new VhostUserError(VhostUserFault.BAD_STATE, String(e), msg.request, { cause: e });
    } finally {
      this.closeFds(msg.fds);
    }
    const needReply = (msg.flags & HeaderFlag.NEED_REPLY) !== 0 && this.hasProto(PF.REPLY_ACK);
    if (err) {
      this.reportError(err, msg.request);
      const r = this.errorReply(msg);
      if (r) this.sink(msg.request, REPLY_FLAGS, r.payload);
      else if (needReply) this.sink(msg.request, REPLY_FLAGS, encodeU64(1));
      return;
    }
    if (reply) {
      try {
        this.sink(msg.request, REPLY_FLAGS, reply.payload, reply.fds);
      } finally {
        if (reply.closeAfter && reply.fds) this.closeFds(reply.fds);
      }
    } else if (needReply) this.sink(msg.request, REPLY_FLAGS, encodeU64(0));
  }

  private reportError(e: VirtioError, request: number): void {
    this.errorCount++;
    this.lastError = e;
    this.logger.warn(`vhost-user ${frontendReqName(request)} refused: ${e.message}`);
    this.onError?.(e);
  }

  /** The reply a request with an explicit reply gets when it fails. */
  private errorReply(msg: VhostUserMessage): Reply | null {
    if (!EXPLICIT_REPLY.has(msg.request)) {
      // SET_LOG_BASE has a reply only with LOG_SHMFD.
      if (msg.request === FrontendReq.SET_LOG_BASE && this.hasProto(PF.LOG_SHMFD)) return { payload: encodeU64(1) };
      return null;
    }
    switch (msg.request) {
      case FrontendReq.GET_CONFIG:
        // "uses zero length of payload to indicate an error"
        return { payload: new Uint8Array(0) };
      case FrontendReq.GET_VRING_BASE: {
        const index = msg.payload.length >= 4 ? new DataView(msg.payload.buffer, msg.payload.byteOffset).getUint32(0, true) : 0;
        return { payload: encodeVringState({ index, num: 0 }) };
      }
      case FrontendReq.GET_INFLIGHT_FD:
        return { payload: encodeInflight({ mmapSize: 0, mmapOffset: 0, numQueues: 0, queueSize: 0 }) };
      case FrontendReq.SET_DEVICE_STATE_FD:
        return { payload: encodeU64(1 | VRING_NOFD_MASK) };
      case FrontendReq.GET_FEATURES:
      case FrontendReq.GET_PROTOCOL_FEATURES:
      case FrontendReq.GET_QUEUE_NUM:
      case FrontendReq.GET_MAX_MEM_SLOTS:
      case FrontendReq.GET_STATUS:
        return { payload: encodeU64(0) };
      default:
        return { payload: encodeU64(1) };
    }
  }

  private dispatch(msg: VhostUserMessage): Reply | null {
    const req = msg.request;
    const p = msg.payload;
    switch (req) {
      case FrontendReq.GET_FEATURES:
        this.noFds(msg);
        return { payload: encodeU64(this.offeredFeatures) };
      case FrontendReq.SET_FEATURES:
        this.noFds(msg);
        this.setFeatures(decodeU64Big(req, p));
        return null;
      case FrontendReq.GET_PROTOCOL_FEATURES:
        this.noFds(msg);
        return { payload: encodeU64(this.offeredProtocol) };
      case FrontendReq.SET_PROTOCOL_FEATURES: {
        this.noFds(msg);
        const v = decodeU64Big(req, p);
        if ((v & ~this.offeredProtocol) !== 0n) {
          throw new VhostUserError(VhostUserFault.BAD_VALUE, `protocol features 0x${(v & ~this.offeredProtocol).toString(16)} not offered`, req);
        }
        this.ackedProtocol = v;
        return null;
      }
      case FrontendReq.SET_OWNER:
        this.noFds(msg);
        this.owner = true;
        return null;
      case FrontendReq.RESET_OWNER:
        // Deprecated: "use it to disable all rings".
        this.noFds(msg);
        for (const r of this.rings) {
          this.stopRing(r);
          r.enabled = false;
        }
        this.deactivateIfIdle();
        return null;
      case FrontendReq.RESET_DEVICE:
        this.noFds(msg);
        this.requireProto(req, PF.RESET_DEVICE);
        this.resetDevice();
        return null;
      case FrontendReq.SET_MEM_TABLE: {
        const regions = decodeMemoryTable(req, p);
        const fds = this.takeFds(msg, regions.length, regions.length);
        this.mem.setTable(req, regions, fds);
        this.afterMemoryChange();
        return null;
      }
      case FrontendReq.GET_MAX_MEM_SLOTS:
        this.noFds(msg);
        this.requireProto(req, PF.CONFIGURE_MEM_SLOTS);
        return { payload: encodeU64(this.maxMemSlots) };
      case FrontendReq.ADD_MEM_REG: {
        this.requireProto(req, PF.CONFIGURE_MEM_SLOTS);
        const region = decodeMemRegMsg(req, p);
        const [fd] = this.takeFds(msg, 1, 1);
        this.mem.add(req, region, fd!, this.maxMemSlots);
        this.afterMemoryChange();
        return null;
      }
      case FrontendReq.REM_MEM_REG: {
        this.requireProto(req, PF.CONFIGURE_MEM_SLOTS);
        const region = decodeMemRegMsg(req, p);
        // QEMU may pass the region's fd along; it is not needed (closed by the dispatcher).
        if (msg.fds.length > 1) throw new VhostUserError(VhostUserFault.UNEXPECTED_FD, `${msg.fds.length} fds`, req);
        this.mem.remove(req, region);
        this.afterMemoryChange();
        return null;
      }
      case FrontendReq.SET_LOG_BASE:
        return this.setLogBase(msg);
      case FrontendReq.SET_LOG_FD: {
        const [fd] = this.takeFds(msg, 1, 1);
        if (this.logFd >= 0) this.platform.close(this.logFd);
        this.logFd = fd!;
        return null;
      }
      case FrontendReq.SET_VRING_NUM: {
        this.noFds(msg);
        const s = decodeVringState(req, p);
        const r = this.ring(req, s.index);
        if (r.started) throw new VhostUserError(VhostUserFault.BAD_STATE, `ring ${s.index} is started`, req);
        // The front-end, not the back-end, chooses the ring size (QEMU's vhost-user-rng asks for
        // 1024 over virtio-mmio whatever the device would advertise): any size a ring can have.
        if (s.num === 0 || s.num > MAX_QUEUE_SIZE) throw new VhostUserError(VhostUserFault.BAD_VALUE, `ring size ${s.num} (1 to ${MAX_QUEUE_SIZE})`, req);
        if (s.num > r.maxSize) this.logger.debug(`ring ${s.index}: size ${s.num} above the device's ${r.maxSize}`);
        r.num = s.num;
        return null;
      }
      case FrontendReq.SET_VRING_ADDR: {
        this.noFds(msg);
        const a = decodeVringAddr(req, p);
        const r = this.ring(req, a.index);
        if (this.mem.memory && r.num > 0) this.translate(req, r, a);
        r.addr = a;
        if (r.started) this.restartRing(r);
        return null;
      }
      case FrontendReq.SET_VRING_BASE: {
        this.noFds(msg);
        const s = decodeVringState(req, p);
        const r = this.ring(req, s.index);
        if (r.started) throw new VhostUserError(VhostUserFault.BAD_STATE, `ring ${s.index} is started`, req);
        // Split: the 16-bit avail index. Packed (QEMU's format): bits 0-14 avail position, 15 its
        // wrap counter, 16-30 used position, 31 its wrap counter.
        const packed = (this.ackedFeatures & F.RING_PACKED) !== 0n;
        if (!packed && s.num > 0xffff) throw new VhostUserError(VhostUserFault.BAD_VALUE, `split ring base ${s.num}`, req);
        r.base = s.num;
        return null;
      }
      case FrontendReq.GET_VRING_BASE: {
        this.noFds(msg);
        const s = decodeVringState(req, p);
        const r = this.ring(req, s.index);
        this.stopRing(r);
        this.deactivateIfIdle();
        return { payload: encodeVringState({ index: s.index, num: r.base }) };
      }
      case FrontendReq.SET_VRING_KICK: {
        const { r, fd } = this.vringFd(msg);
        this.stopWatching(r);
        if (r.kickFd >= 0) this.platform.close(r.kickFd);
        r.kickFd = fd;
        r.polling = fd < 0;
        if (r.started) this.watch(r);
        else this.startRing(req, r);
        return null;
      }
      case FrontendReq.SET_VRING_CALL: {
        const { r, fd } = this.vringFd(msg);
        if (r.callFd >= 0) this.platform.close(r.callFd);
        r.callFd = fd;
        return null;
      }
      case FrontendReq.SET_VRING_ERR: {
        const { r, fd } = this.vringFd(msg);
        if (r.errFd >= 0) this.platform.close(r.errFd);
        r.errFd = fd;
        return null;
      }
      case FrontendReq.GET_QUEUE_NUM:
        this.noFds(msg);
        this.requireProto(req, PF.MQ);
        return { payload: encodeU64(this.rings.length) };
      case FrontendReq.SET_VRING_ENABLE: {
        this.noFds(msg);
        const s = decodeVringState(req, p);
        const r = this.ring(req, s.index);
        if (s.num > 1) throw new VhostUserError(VhostUserFault.BAD_VALUE, `enable ${s.num}`, req);
        const was = r.enabled;
        r.enabled = s.num === 1;
        if (!was && r.enabled && r.started) this.scheduleCheck(r);
        return null;
      }
      case FrontendReq.SET_VRING_ENDIAN: {
        this.noFds(msg);
        this.requireProto(req, PF.CROSS_ENDIAN);
        const s = decodeVringState(req, p);
        const r = this.ring(req, s.index);
        if (s.num > 1) throw new VhostUserError(VhostUserFault.BAD_VALUE, `endianness ${s.num}`, req);
        if (r.started) throw new VhostUserError(VhostUserFault.BAD_STATE, `ring ${s.index} is started`, req);
        r.littleEndian = s.num === 0;
        return null;
      }
      case FrontendReq.GET_CONFIG: {
        this.noFds(msg);
        this.requireProto(req, PF.CONFIG);
        const c = decodeConfig(req, p);
        const data = new Uint8Array(c.size);
        const cs = this.device.configSize;
        if (c.offset < cs) {
          const n = Math.min(c.size, cs - c.offset);
          this.device.readConfig(c.offset, data.subarray(0, n), this.deviceFeatures, this.littleEndian);
        }
        return { payload: encodeConfig({ offset: c.offset, size: c.size, flags: c.flags, data }) };
      }
      case FrontendReq.SET_CONFIG: {
        this.noFds(msg);
        this.requireProto(req, PF.CONFIG);
        const c = decodeConfig(req, p);
        if (c.flags !== ConfigFlag.WRITABLE && c.flags !== ConfigFlag.MIGRATION) {
          throw new VhostUserError(VhostUserFault.BAD_VALUE, `config flags ${c.flags}`, req);
        }
        if (c.offset + c.size > this.device.configSize) {
          throw new VhostUserError(VhostUserFault.BAD_VALUE, `config write ${c.offset}+${c.size} beyond ${this.device.configSize}`, req);
        }
        // The device ignores writes to read-only fields (its writeConfig contract).
        this.device.writeConfig(c.offset, c.data.slice(), this.deviceFeatures, this.littleEndian);
        return null;
      }
      case FrontendReq.SET_BACKEND_REQ_FD: {
        this.requireProto(req, PF.BACKEND_REQ);
        const [fd] = this.takeFds(msg, 1, 1);
        if (this.backendFd >= 0) this.platform.close(this.backendFd);
        this.backendFd = fd!;
        return null;
      }
      case FrontendReq.GET_INFLIGHT_FD:
        this.noFds(msg);
        this.requireProto(req, PF.INFLIGHT_SHMFD);
        return this.getInflightFd(msg);
      case FrontendReq.SET_INFLIGHT_FD:
        this.requireProto(req, PF.INFLIGHT_SHMFD);
        this.setInflightFd(msg);
        return null;
      case FrontendReq.SET_STATUS: {
        this.noFds(msg);
        this.requireProto(req, PF.STATUS);
        const v = decodeU64(req, p);
        if (v > 0xff) throw new VhostUserError(VhostUserFault.BAD_VALUE, `status 0x${v.toString(16)}`, req);
        this.setStatus(v);
        return null;
      }
      case FrontendReq.GET_STATUS:
        this.noFds(msg);
        this.requireProto(req, PF.STATUS);
        return { payload: encodeU64(this.status) };
      default:
        // Defined by the protocol but not implemented (and never advertised): RARP, MTU,
        // IOTLB, crypto, postcopy, GPU, in-band kicks, shared objects, device state.
        throw new VhostUserError(VhostUserFault.UNSUPPORTED, 'not implemented by this back-end', req);
    }
  }

  // --- helpers for fds and indices -----------------------------------------------------------

  private closeFds(fds: number[]): void {
    for (let i = 0; i < fds.length; i++) {
      const fd = fds[i]!;
      if (fd >= 0) {
        try {
          this.platform.close(fd);
        } catch (e) {
          this.logger.warn(`close(${fd}) failed: ${(e as Error).message}`);
        }
        fds[i] = -1;
      }
    }
  }

  private noFds(msg: VhostUserMessage): void {
    if (msg.fds.length > 0) throw new VhostUserError(VhostUserFault.UNEXPECTED_FD, `${msg.fds.length} unexpected fds`, msg.request);
  }

  /** Takes ownership of between min and max fds of the message (removed from msg.fds). */
  private takeFds(msg: VhostUserMessage, min: number, max: number): number[] {
    const n = msg.fds.length;
    if (n < min) throw new VhostUserError(VhostUserFault.MISSING_FD, `${n} fds, expected ${min}`, msg.request);
    if (n > max) throw new VhostUserError(VhostUserFault.UNEXPECTED_FD, `${n} fds, expected ${max}`, msg.request);
    const out = msg.fds.slice();
    msg.fds.fill(-1);
    return out;
  }

  private ring(req: number, index: number): Ring {
    const r = this.rings[index];
    if (!r) throw new VhostUserError(VhostUserFault.BAD_INDEX, `ring ${index} (device has ${this.rings.length})`, req);
    return r;
  }

  private requireProto(req: number, mask: bigint): void {
    if (!this.hasProto(mask)) throw new VhostUserError(VhostUserFault.NOT_NEGOTIATED, 'protocol feature not negotiated', req);
  }

  /** SET_VRING_KICK / CALL / ERR: ring index bits 0-7, bit 8 no fd (polling). */
  private vringFd(msg: VhostUserMessage): { r: Ring; fd: number } {
    const v = decodeU64(msg.request, msg.payload);
    if ((v & ~(VRING_IDX_MASK | VRING_NOFD_MASK)) !== 0) {
      throw new VhostUserError(VhostUserFault.BAD_VALUE, `reserved bits set in 0x${v.toString(16)}`, msg.request);
    }
    const r = this.ring(msg.request, v & VRING_IDX_MASK);
    if ((v & VRING_NOFD_MASK) !== 0) {
      if (msg.fds.length > 0) throw new VhostUserError(VhostUserFault.UNEXPECTED_FD, 'fd with the invalid-fd flag', msg.request);
      return { r, fd: -1 };
    }
    const [fd] = this.takeFds(msg, 1, 1);
    return { r, fd: fd! };
  }

  // --- features, status, reset ---------------------------------------------------------------

  private setFeatures(v: bigint): void {
    const req = FrontendReq.SET_FEATURES;
    const extra = v & ~this.offeredFeatures;
    if (extra !== 0n) throw new VhostUserError(VhostUserFault.BAD_VALUE, `features 0x${extra.toString(16)} not offered`, req);
    const devBits = v & ~(F_PROTOCOL_FEATURES | F_LOG_ALL);
    const why = this.device.validateFeatures?.(devBits) ?? null;
    if (why !== null) throw new VhostUserError(VhostUserFault.BAD_VALUE, `device refuses features: ${why}`, req);
    this.ackedFeatures = v;
    this.featuresSet = true;
    // Rings start enabled when VHOST_USER_F_PROTOCOL_FEATURES is not negotiated.
    if (!this.protocolNegotiated) for (const r of this.rings) r.enabled = true;
    this.applyLogging();
  }

  private setStatus(v: number): void {
    if (v === 0) {
      this.needsResetFlag = false;
      this.statusValue = 0;
      return;
    }
    let s = v & ~Status.DEVICE_NEEDS_RESET;
    if ((s & Status.FEATURES_OK) !== 0 && !this.featuresSet) s &= ~Status.FEATURES_OK;
    this.statusValue = s;
  }

  private resetDevice(): void {
    for (const r of this.rings) {
      this.stopRing(r);
      r.enabled = false;
      r.num = 0;
      r.addr = null;
      r.base = 0;
      r.broken = null;
      r.littleEndian = true;
    }
    this.deactivate();
    this.ackedFeatures = 0n;
    this.featuresSet = false;
    this.statusValue = 0;
    this.needsResetFlag = false;
    this.applyLogging();
  }

  // --- memory, log, inflight -----------------------------------------------------------------

  private afterMemoryChange(): void {
    for (const r of this.rings) if (r.started) this.restartRing(r);
  }

  private setLogBase(msg: VhostUserMessage): Reply {
    const req = msg.request;
    this.requireProto(req, PF.LOG_SHMFD);
    const l = decodeLog(req, msg.payload);
    const [fd] = this.takeFds(msg, 1, 1);
    let m: Mapping;
    try {
      if (l.size === 0) throw new VhostUserError(VhostUserFault.BAD_VALUE, 'log of size 0', req);
      if (!Number.isSafeInteger(l.offset + l.size)) throw new VhostUserError(VhostUserFault.BAD_VALUE, 'log end overflows', req);
      try {
        m = this.platform.mmap(fd!, 0, l.offset + l.size);
      } catch (e) {
        throw new VhostUserError(VhostUserFault.MAP_FAILED, `log mmap: ${(e as Error).message}`, req, { cause: e });
      }
    } finally {
      this.platform.close(fd!);
    }
    this.logMapping?.unmap();
    this.logMapping = m;
    this.log = new DirtyLog(m.bytes.subarray(l.offset, l.offset + l.size));
    this.applyLogging();
    return { payload: encodeU64(0) };
  }

  private applyLogging(): void {
    const on = (this.ackedFeatures & F_LOG_ALL) !== 0n && this.log !== null;
    for (const r of this.rings) {
      const q = r.queue;
      if (!q) continue;
      q.log = on ? this.log : null;
      q.logUsedAddr = -1;
      q.logEventAddr = -1;
      if (!on) continue;
      if (q.packed) {
        // Packed: used elements are written over the descriptor ring; event suppression in the device area.
        q.logUsedAddr = r.descGuest;
        q.logUsedLen = 16 * r.num;
        q.logEventAddr = r.usedGuest;
        q.logEventLen = 4;
      } else if (r.addr && (r.addr.flags & VHOST_VRING_F_LOG) !== 0 && r.addr.logGuest >= 0) {
        // "Migration": used ring writes are logged at log_guest_addr of SET_VRING_ADDR (VHOST_VRING_F_LOG).
        q.logUsedAddr = r.addr.logGuest;
        q.logUsedLen = SplitLayout.usedSize(r.num);
        q.logEventAddr = r.addr.logGuest;
        q.logEventLen = SplitLayout.usedSize(r.num);
      }
    }
  }

  private getInflightFd(msg: VhostUserMessage): Reply {
    const req = msg.request;
    const d = decodeInflight(req, msg.payload);
    if (d.numQueues === 0 || d.numQueues > this.rings.length) {
      throw new VhostUserError(VhostUserFault.BAD_VALUE, `${d.numQueues} queues (1 to ${this.rings.length})`, req);
    }
    if (d.queueSize === 0 || d.queueSize > MAX_QUEUE_SIZE) throw new VhostUserError(VhostUserFault.BAD_VALUE, `queue size ${d.queueSize}`, req);
    const stride = inflightQueueRegionSize(d.queueSize);
    const size = stride * d.numQueues;
    const fd = this.platform.memfd('virtio-ts-inflight', size);
    let m: Mapping;
    try {
      m = this.platform.mmap(fd, 0, size);
    } catch (e) {
      this.platform.close(fd);
      throw new VhostUserError(VhostUserFault.MAP_FAILED, `inflight mmap: ${(e as Error).message}`, req, { cause: e });
    }
    this.setInflightArea(m, 0, d.numQueues, d.queueSize, stride);
    return {
      payload: encodeInflight({ mmapSize: size, mmapOffset: 0, numQueues: d.numQueues, queueSize: d.queueSize }),
      fds: [fd],
      closeAfter: true,
    };
  }

  private setInflightFd(msg: VhostUserMessage): void {
    const req = msg.request;
    const d = decodeInflight(req, msg.payload);
    const [fd] = this.takeFds(msg, 1, 1);
    let m: Mapping;
    try {
      if (d.numQueues === 0 || d.queueSize === 0 || d.queueSize > MAX_QUEUE_SIZE) {
        throw new VhostUserError(VhostUserFault.BAD_VALUE, `${d.numQueues} queues of ${d.queueSize}`, req);
      }
      const stride = inflightQueueRegionSize(d.queueSize);
      if (d.mmapSize < stride * d.numQueues || !Number.isSafeInteger(d.mmapOffset + d.mmapSize)) {
        throw new VhostUserError(VhostUserFault.BAD_VALUE, `inflight area of ${d.mmapSize} bytes is too small`, req);
      }
      try {
        m = this.platform.mmap(fd!, 0, d.mmapOffset + d.mmapSize);
      } catch (e) {
        throw new VhostUserError(VhostUserFault.MAP_FAILED, `inflight mmap: ${(e as Error).message}`, req, { cause: e });
      }
      this.setInflightArea(m, d.mmapOffset, d.numQueues, d.queueSize, stride);
    } finally {
      this.platform.close(fd!);
    }
  }

  private setInflightArea(m: Mapping, offset: number, numQueues: number, queueSize: number, stride: number): void {
    this.inflight?.mapping.unmap();
    const bytes = m.bytes;
    this.inflight = {
      mapping: m,
      view: new DataView(bytes.buffer, bytes.byteOffset + offset, bytes.length - offset),
      numQueues,
      queueSize,
      stride,
    };
  }

  // --- rings ---------------------------------------------------------------------------------

  private translate(req: number, r: Ring, a: VringAddr): { desc: number; avail: number; used: number } {
    const packed = (this.ackedFeatures & F.RING_PACKED) !== 0n;
    const n = r.num;
    const descLen = 16 * n;
    const availLen = packed ? 4 : SplitLayout.availSize(n);
    const usedLen = packed ? 4 : SplitLayout.usedSize(n);
    const desc = this.mem.userToGuest(a.descUser, descLen);
    const avail = this.mem.userToGuest(a.availUser, availLen);
    const used = this.mem.userToGuest(a.usedUser, usedLen);
    if (desc < 0 || avail < 0 || used < 0) {
      throw new VhostUserError(VhostUserFault.UNMAPPED, `ring ${r.index} addresses are outside the memory table`, req);
    }
    return { desc, avail, used };
  }

  /** Starts a ring (SET_VRING_KICK): builds its queue from num, base and addresses. */
  private startRing(req: number, r: Ring, state?: QueueState): void {
    const memory = this.mem.memory;
    if (!memory) throw new VhostUserError(VhostUserFault.BAD_STATE, 'no memory table', req);
    if (!r.addr || r.num === 0) throw new VhostUserError(VhostUserFault.BAD_STATE, `ring ${r.index} has no size or addresses`, req);
    const t = this.translate(req, r, r.addr);
    const features = this.deviceFeatures;
    const packed = (features & F.RING_PACKED) !== 0n;
    if (!packed && (r.num & (r.num - 1)) !== 0) throw new VhostUserError(VhostUserFault.BAD_VALUE, `split ring size ${r.num} is not a power of 2`, req);
    const le = r.littleEndian;
    let inner: DeviceQueue;
    try {
      inner = this.queueFactory(memory, {
        size: r.num,
        descAddr: t.desc,
        driverAddr: t.avail,
        deviceAddr: t.used,
        features,
        littleEndian: le,
        index: r.index,
      });
      if (state) inner.setState(state);
      else if (packed) {
        const avail = r.base & 0xffff;
        // A front-end that sends only the avail half (DPDK's format) stopped the ring with
        // nothing in flight: the used position is the avail position.
        const used = r.base >>> 16 || avail;
        inner.setState({
          nextAvail: avail & 0x7fff,
          availWrap: (avail & 0x8000) !== 0,
          nextUsed: used & 0x7fff,
          usedWrap: (used & 0x8000) !== 0,
        });
      } else {
        inner.setState({ nextAvail: r.base & 0xffff, nextUsed: memory.readU16(t.used + SplitLayout.USED_IDX, le), availWrap: true, usedWrap: true });
      }
    } catch (e) {
      if (e instanceof VhostUserError) throw e;
      throw new VhostUserError(VhostUserFault.BAD_VALUE, `ring ${r.index}: ${(e as Error).message}`, req, { cause: e });
    }
    const q = new VhostQueue(inner, {
      index: r.index,
      memory,
      packed,
      indirect: (features & F.INDIRECT_DESC) !== 0n,
      littleEndian: le,
      descGuest: t.desc,
      onError: (i, err) => this.ringError(i, err),
    });
    const inf = this.inflight;
    if (state && r.queue) q.adoptTracking(r.queue);
    else if (inf && r.index < inf.numQueues && r.num <= inf.queueSize) {
      const base = r.index * inf.stride;
      try {
        if (packed) q.attachPackedInflight(new PackedInflight(inf.view, base, r.num));
        else q.attachSplitInflight(new SplitInflight(inf.view, base, r.num), memory.readU16(t.used + SplitLayout.USED_IDX, le));
      } catch (e) {
        throw new VhostUserError(VhostUserFault.BAD_STATE, `inflight recovery of ring ${r.index}: ${(e as Error).message}`, req, { cause: e });
      }
      if (q.resubmitPending > 0) this.logger.info(`ring ${r.index}: resubmitting ${q.resubmitPending} inflight buffers`);
    }
    r.queue = q;
    r.descGuest = t.desc;
    r.usedGuest = t.used;
    r.broken = null;
    r.started = true;
    // "If VHOST_USER_F_PROTOCOL_FEATURES has not been negotiated, the ring is initialized in an enabled state."
    if (!this.protocolNegotiated) r.enabled = true;
    this.applyLogging();
    this.watch(r);
    if (r.enabled) this.scheduleCheck(r);
  }

  /** Rebuilds a started ring's queue (memory table or addresses changed), keeping its state. */
  private restartRing(r: Ring): void {
    const old = r.queue;
    if (!old) return;
    const state = old.state();
    old.detach();
    this.stopWatching(r);
    r.started = false;
    try {
      this.startRing(FrontendReq.SET_MEM_TABLE, r, state);
    } catch (e) {
      r.queue = null;
      r.base = this.encodeBase(state, old.packed);
      this.deactivateIfIdle();
      throw e;
    }
  }

  /** GET_VRING_BASE's value (see SET_VRING_BASE for the packed format). */
  private encodeBase(s: QueueState, packed: boolean): number {
    if (!packed) return s.nextAvail & 0xffff;
    const avail = (s.nextAvail & 0x7fff) | (s.availWrap ? 0x8000 : 0);
    const used = (s.nextUsed & 0x7fff) | (s.usedWrap ? 0x8000 : 0);
    return (avail | (used << 16)) >>> 0;
  }

  /** Stops a ring (GET_VRING_BASE, reset, close): its state becomes the base to report. */
  private stopRing(r: Ring): void {
    this.stopWatching(r);
    const q = r.queue;
    if (q) {
      try {
        r.base = this.encodeBase(q.state(), q.packed);
      } catch {
        // a broken queue still reports its indices; keep the last base otherwise
      }
      q.detach();
      // Per-ring totals: how a user (or a test) sees which queues carried requests.
      if (q.served > 0) this.logger.info(`ring ${r.index} stopped: ${q.served} buffers served`);
    }
    r.queue = null;
    r.started = false;
  }

  private watch(r: Ring): void {
    this.stopWatching(r);
    if (r.kickFd >= 0) {
      const fd = r.kickFd;
      r.watcher = this.platform.watchReadable(fd, () => this.onKick(r, fd));
    } else if (r.polling) {
      r.pollTimer = setInterval(() => {
        try {
          if (r.queue && r.enabled && r.queue.hasAvailable()) this.dispatchRing(r);
        } catch (e) {
          this.ringFailure(r, e);
        }
      }, this.pollMs);
    }
  }

  private stopWatching(r: Ring): void {
    r.watcher?.stop();
    r.watcher = null;
    if (r.pollTimer) clearInterval(r.pollTimer);
    r.pollTimer = null;
  }

  private onKick(r: Ring, fd: number): void {
    if (r.kickFd !== fd) return;
    try {
      this.platform.eventfdRead(fd);
    } catch (e) {
      this.logger.warn(`ring ${r.index}: kick read failed: ${(e as Error).message}`);
    }
    this.dispatchRing(r);
  }

  /** Runs the device on a ring with work, outside the message handler (after the reply). */
  private scheduleCheck(r: Ring): void {
    const h = setImmediate(() => {
      this.immediates.delete(h);
      if (this.closed || !r.queue || !r.enabled) return;
      try {
        if (r.queue.hasAvailable()) this.dispatchRing(r);
      } catch (e) {
        this.ringFailure(r, e);
      }
    });
    this.immediates.add(h);
  }

  /**
   * One processing pass over ring `r`: the device runs, and the used-buffer notifications it asks
   * for are batched into at most one call eventfd write at the end of the pass, sent only when
   * the queue's event suppression (flags or EVENT_IDX) says so.
   */
  private dispatchRing(r: Ring): void {
    if (this.closed || !r.started || !r.enabled || !r.queue || r.broken) return;
    if (!this.active) {
      try {
        this.active = true;
        this.device.activate(this.ctx);
      } catch (e) {
        this.ringFailure(r, e);
        return;
      }
    }
    if (this.pollWindowMs > 0 && this.passDepth === 0) {
      if (r.pollSuspended === 0) {
        this.pollRing(r, r.queue);
        return;
      }
      r.pollSuspended--;
    }
    this.pass(r);
  }

  /** One device pass over `r`; the calls asked for are sent when the outermost pass ends. */
  private pass(r: Ring): void {
    this.passDepth++;
    try {
      this.device.onQueueNotify(r.index);
    } catch (e) {
      this.ringFailure(r, e);
    } finally {
      this.passDepth--;
      if (this.passDepth === 0) this.flushCalls();
    }
  }

  /**
   * Passes over `r` with driver notifications held off (VhostQueue.hold), then busy-polls the
   * avail ring for the poll window after the last buffer found. Bounded: the episode ends after
   * POLL_BUDGET_US, when a pass makes no progress (a device out of request slots waits for its
   * completions, which need the event loop), or when the ring stops, resets or breaks (message
   * handlers cannot run meanwhile, but a pass can break the ring or the device can fail).
   * Before returning, notifications are re-enabled, fenced and the ring re-checked (2.7.10), so
   * no buffer is left without either a kick to come or a scheduled pass.
   */
  private pollRing(r: Ring, q: VhostQueue): void {
    const budgetEnd = performance.now() + POLL_BUDGET_US / 1000;
    const window = this.pollWindowMs;
    let stalled = false;
    let busyPasses = 0;
    let hits = 0;
    q.hold = true;
    try {
      // Device-independent: a device that never suppresses notifications itself gets them held too.
      q.disableNotification();
      for (;;) {
        const before = q.served;
        this.pass(r);
        if (!this.live(r, q)) return;
        if (q.served === before) {
          stalled = true; // the device waits for its completions, which need the event loop
          break;
        }
        // Buffers already waiting: straight to the next pass, reading the clock (tens of ns)
        // only every POLL_CLOCK_PASSES passes to keep the budget.
        if (q.hasAvailable() && ++busyPasses < POLL_CLOCK_PASSES) continue;
        busyPasses = 0;
        const t0 = performance.now();
        if (t0 >= budgetEnd) {
          hits++; // busy to the end of the budget: polling was not wasted
          break;
        }
        // The window starts after the pass: wait for the driver's next buffer this long.
        const idleEnd = t0 + window;
        let found = false;
        for (;;) {
          // Several looks at avail idx per clock read: performance.now() allocates (a boxed
          // number, GC pressure in a tight loop) and costs more than a look.
          for (let i = 0; i < POLL_CHECKS_PER_CLOCK && !found; i++) found = q.hasAvailable();
          if (found) {
            hits++;
            break;
          }
          const t = performance.now();
          if (t >= idleEnd || t >= budgetEnd) break;
        }
        if (!found) break;
      }
    } finally {
      q.hold = false;
    }
    if (hits > 0) {
      r.pollWasted = 0;
      r.pollSuspendLen = POLL_SUSPEND_MIN;
    } else if (!stalled && ++r.pollWasted >= POLL_WASTED_LIMIT) {
      r.pollSuspended = r.pollSuspendLen;
      r.pollSuspendLen = Math.min(r.pollSuspendLen * 2, POLL_SUSPEND_MAX);
      r.pollWasted = POLL_WASTED_LIMIT - 1; // one fruitless probe suspends again
    }
    // Re-enable before sleeping (fenced, re-checked). A buffer that slipped in meanwhile is
    // served now by an ordinary pass, or past the budget on the next turn of the event loop; a
    // stalled device resumes from its completions, as without polling.
    if (q.enableNotificationNow() && !stalled) {
      if (performance.now() < budgetEnd) this.pass(r);
      else this.scheduleCheck(r);
    }
  }

  private live(r: Ring, q: VhostQueue): boolean {
    return !this.closed && r.started && r.enabled && r.queue === q && !r.broken && !q.isDetached;
  }

  /** Sends the notifications deferred during a pass (any ring: a device may complete on another). */
  private flushCalls(): void {
    const rings = this.rings;
    for (let i = 0; i < rings.length; i++) {
      const r = rings[i]!;
      if (!r.callPending) continue;
      r.callPending = false;
      this.signalUsed(r);
    }
  }

  /** Writes the call eventfd of `r` if its queue's event suppression asks for a notification. */
  private signalUsed(r: Ring): void {
    const q = r.queue;
    if (!q || r.callFd < 0 || !q.needsNotification()) return;
    this.callsSent++;
    try {
      this.platform.eventfdWrite(r.callFd, 1);
    } catch (e) {
      this.logger.warn(`ring ${r.index}: call write failed: ${(e as Error).message}`);
    }
  }

  private ringError(index: number, e: QueueError): void {
    const r = this.rings[index];
    if (!r || r.broken) return;
    r.broken = e;
    if (r.errFd >= 0) {
      try {
        this.platform.eventfdWrite(r.errFd, 1);
      } catch {
        // the front-end closed its end; the error is logged below anyway
      }
    }
    this.markNeedsReset(`ring ${index}: ${e.message}`);
  }

  /** A device or queue failure while serving ring `r`: the back-end keeps running. */
  private ringFailure(r: Ring, e: unknown): void {
    if (e instanceof QueueError) {
      this.ringError(r.index, e);
      return;
    }
    const err = isVirtioError(e) ? e : new VhostUserError(VhostUserFault.IO, `device failed: ${String(e)}`, -1, { cause: e });
    this.errorCount++;
    this.lastError = err;
    this.logger.error(`ring ${r.index}: ${err.message}`);
    this.onError?.(err);
    this.markNeedsReset(err.message);
  }

  private markNeedsReset(reason: string): void {
    if (this.needsResetFlag) return;
    this.needsResetFlag = true;
    this.logger.error(`device needs reset: ${reason}`);
    this.sendConfigChange();
  }

  /** Stops the device once no ring is started, so the next start activates it afresh. */
  private deactivateIfIdle(): void {
    if (this.rings.every((r) => !r.started)) this.deactivate();
  }

  private deactivate(): void {
    if (!this.active) return;
    this.active = false;
    try {
      this.device.reset();
    } catch (e) {
      this.logger.error(`device reset failed: ${(e as Error).message}`);
    }
  }

  // --- device context ------------------------------------------------------------------------

  private makeContext(): DeviceContext {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const self = this;
    return {
      get memory(): GuestMemory {
        return self.mem.memory ?? EMPTY_MEMORY;
      },
      get features(): bigint {
        return self.deviceFeatures;
      },
      get littleEndian(): boolean {
        return self.littleEndian;
      },
      queue(index: number): DeviceQueue | null {
        const r = self.rings[index];
        return r && r.started && r.enabled ? r.queue : null;
      },
      notifyUsed(index: number): void {
        const r = self.rings[index];
        if (!r) return;
        // Inside a processing pass: batched, sent once when the pass ends.
        if (self.passDepth > 0) r.callPending = true;
        else self.signalUsed(r);
      },
      notifyConfigChange(): void {
        self.sendConfigChange();
      },
      needsReset(reason: string): void {
        self.markNeedsReset(reason);
      },
    };
  }

  /** BACKEND_REQ: VHOST_USER_BACKEND_CONFIG_CHANGE_MSG on the back-end channel. */
  private sendConfigChange(): void {
    if (this.backendFd < 0 || !this.hasProto(PF.BACKEND_REQ) || !this.hasProto(PF.CONFIG)) return;
    const hdr = new Uint8Array(12);
    const dv = new DataView(hdr.buffer);
    dv.setUint32(0, BackendReq.CONFIG_CHANGE_MSG, true);
    dv.setUint32(4, HeaderFlag.VERSION, true);
    dv.setUint32(8, 0, true);
    try {
      const n = this.platform.sendmsg(this.backendFd, hdr, 0, 12);
      if (n !== 12) this.logger.warn(`config change message: sent ${n} of 12 bytes`);
    } catch (e) {
      this.logger.warn(`config change message failed: ${(e as Error).message}`);
    }
  }

  /** Whether SET_OWNER was received (a session is established). */
  get hasOwner(): boolean {
    return this.owner;
  }

  /**
   * Ends the session: stops every ring, resets the device, unmaps all memory and closes every
   * fd received. Idempotent; the back-end handles nothing afterwards.
   */
  close(): void {
    if (this.closed) return;
    for (const h of this.immediates) clearImmediate(h);
    this.immediates.clear();
    for (const r of this.rings) {
      this.stopRing(r);
      for (const fd of [r.kickFd, r.callFd, r.errFd]) if (fd >= 0) this.platform.close(fd);
      r.kickFd = r.callFd = r.errFd = -1;
    }
    this.deactivate();
    this.closed = true;
    this.mem.clear();
    this.logMapping?.unmap();
    this.logMapping = null;
    this.log = null;
    this.inflight?.mapping.unmap();
    this.inflight = null;
    if (this.logFd >= 0) this.platform.close(this.logFd);
    if (this.backendFd >= 0) this.platform.close(this.backendFd);
    this.logFd = this.backendFd = -1;
  }
}
