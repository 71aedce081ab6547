/**
 * The vhost-user back-end: vhost-user as one more transport over the DeviceCore. The front-end's
 * requests become guest memory, rings and core calls; the device sees the same lifecycle as on
 * PCI, MMIO or CCW: SET_FEATURES is the core's feature negotiation (the device's
 * validateFeatures included), SET_STATUS / GET_STATUS the core's status, GET_CONFIG /
 * SET_CONFIG the core's config space, and the DeviceContext is the core's. What is the
 * protocol's own lives beside it, one concern per file:
 *
 *   dispatcher.ts         request handlers, REPLY_ACK and fd rules
 *   vrings.ts, vring.ts   the ring state machine (ring messages, start / stop / restart)
 *   ring-scheduler.ts     kicks, polling rings, busy-poll episodes, call batching
 *   session-memory.ts     memory table and memory slots
 *   session-dirty-log.ts  dirty page logging (LOG_SHMFD, LOG_ALL)
 *   session-inflight.ts   inflight I/O tracking (INFLIGHT_SHMFD)
 *   backend-channel.ts    the back-end request channel (BACKEND_REQ)
 *   device-hooks.ts       what a device may add: protocol features, requests, back-end requests
 *
 * Rings are built here (from user addresses, a base or an inflight area) and lent to the core
 * while started and enabled (vhost-user.rst "Ring states"). The device is activated when the
 * first ring runs, or at DRIVER_OK from a front-end with the STATUS protocol feature, and
 * stopped (reset, negotiation kept) when the last ring stops.
 */
import { QueueError, VirtioError, isVirtioError } from '../errors.js';
import { DeviceCore } from '../device/device-core.js';
import type { VirtioDevice } from '../device/types.js';
import { GuestMemory } from '../memory/guest-memory.js';
import { silentLogger, type Logger } from '../log.js';
import type { Platform } from '../platform/types.js';
import { DEVICE_TYPE_FEATURES, F } from '../spec/features.js';
import { Status } from '../spec/status.js';
import { BackendChannel, type BackendRequestOptions } from './backend-channel.js';
import { VhostUserError, VhostUserFault, decodeU64Big, encodeU64 } from './codec.js';
import { registerConfigHandlers } from './backend-config-messages.js';
import { registerStatusHandlers } from './backend-status-messages.js';
import { vhostUserHooks, type VhostUserDeviceHooks, type VhostUserSession } from './device-hooks.js';
import { MessageDispatcher, type MessageSink, noFds, takeFds } from './dispatcher.js';
import { DEFAULT_MAP_CHUNK } from './memory-map.js';
import { BackendReq, F_LOG_ALL, F_PROTOCOL_FEATURES, FrontendReq, MAX_QUEUE_INDEX, PF, frontendReqName, type VhostUserMessage } from './messages.js';
import { RingScheduler } from './ring-scheduler.js';
import { SessionDirtyLog } from './session-dirty-log.js';
import { SessionInflight } from './session-inflight.js';
import { SessionMemory } from './session-memory.js';
import type { VhostQueue } from './vhost-queue.js';
import { type RingInfo, type Vring, ringInfo } from './vring.js';
import { VringSet } from './vrings.js';
import type { VhostUserMessageRouter } from './worker-router.js';

export { MAX_POLL_US, POLL_BUDGET_US } from './ring-scheduler.js';
export type { MessageSink } from './dispatcher.js';
export type { RingInfo, RingPhase } from './vring.js';
export type { QueueFactory } from './vrings.js';
export { SUPPORTED_PROTOCOL_FEATURES, VHOST_USER_TRANSPORT_FEATURES, defaultQueueFactory, type VhostUserBackendOptions } from './backend-options.js';
import { SUPPORTED_PROTOCOL_FEATURES, VHOST_USER_TRANSPORT_FEATURES, defaultQueueFactory, type VhostUserBackendOptions } from './backend-options.js';

/** SET_FEATURES bits that are the back-end's, not the device's. */
const VHOST_ONLY_BITS = F_PROTOCOL_FEATURES | F_LOG_ALL;
/** 6.3: legacy-only bits a front-end may pass through for a modern guest; they mean nothing there. */
const LEGACY_ONLY_BITS = F.NOTIFY_ON_EMPTY | F.ANY_LAYOUT;

const EMPTY_MEMORY = new GuestMemory([]);

/**
 * The back-end side of one vhost-user session (vhost-user.rst): decodes the front-end's messages
 * into the device core (features, memory table, rings, config, status, inflight tracking, dirty
 * log), runs the rings on eventfds, and answers. One per connection; serveVhostUser and
 * VhostUserServer create them.
 */
export class VhostUserBackend {
  /** The device served. */
  readonly device: VirtioDevice;
  /** The device lifecycle, shared with every other transport. */
  readonly core: DeviceCore;
  private readonly platform: Platform;
  private readonly logger: Logger;
  private readonly offeredProtocol: bigint;
  private readonly hooks: VhostUserDeviceHooks | null;
  private readonly dispatcher: MessageDispatcher;
  private readonly mem: SessionMemory;
  private readonly dirtyLog: SessionDirtyLog;
  private readonly inflight: SessionInflight;
  private readonly vrings: VringSet;
  private readonly scheduler: RingScheduler;
  private readonly channel: BackendChannel;
  private readonly session: VhostUserSession;
  private readonly rings: readonly Vring[];
  private readonly router: VhostUserMessageRouter | null;
  private readonly configChangeHook: (() => void) | null;
  private sink: MessageSink = () => {
    throw new VirtioError('INVALID_ARGUMENT', 'VhostUserBackend: no message sink attached');
  };

  private ackedFeatures = 0n;
  private ackedProtocol = 0n;
  private owner = false;
  private isClosed = false;

  /** Requests refused so far, and the last refusal (for logs and tests). */
  errorCount = 0;
  /** The last error a request raised (refused, or the device failed), for tests and logs. */
  lastError: VirtioError | null = null;
  /** Called for every refused request or device error (after logging). */
  onError: ((e: VirtioError) => void) | null = null;

  constructor(opts: VhostUserBackendOptions) {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const self = this;
    this.device = opts.device;
    this.platform = opts.platform;
    this.logger = opts.logger ?? silentLogger;
    this.hooks = vhostUserHooks(this.device);
    this.offeredProtocol = (SUPPORTED_PROTOCOL_FEATURES | (this.hooks?.protocolFeatures ?? 0n)) & (opts.protocolFeatures ?? ~0n);
    this.core = new DeviceCore(this.device, {
      memory: EMPTY_MEMORY,
      interrupts: {
        usedBuffer: (i) => this.scheduler.usedBuffer(i),
        usedBufferNow: (i) => this.scheduler.usedBufferNow(i),
        configChange: () => this.sendConfigChange(),
      },
      transportFeatures: VHOST_USER_TRANSPORT_FEATURES,
      logger: this.logger,
      ...(opts.stats ? { stats: opts.stats } : {}),
    });
    const requireProto = (req: number, mask: bigint): void => this.requireProto(req, mask);
    this.dispatcher = new MessageDispatcher(
      this.platform,
      this.logger,
      {
        get replyAck() {
          return self.hasProto(PF.REPLY_ACK);
        },
        get logShmfd() {
          return self.hasProto(PF.LOG_SHMFD);
        },
      },
      (e, req) => this.reportError(e, req),
    );
    this.mem = new SessionMemory(this.platform, opts.mapChunkSize ?? DEFAULT_MAP_CHUNK, opts.maxMemSlots ?? 32, {
      requireProto,
      memoryChanged: () => this.memoryChanged(),
      checkRingsCovered: (req, regions) => this.vrings.checkCovered(req, regions),
    });
    this.dirtyLog = new SessionDirtyLog(this.platform, this.logger, { requireProto, logChanged: () => this.applyLogging() });
    const numRings = Math.min(this.device.queueMaxSizes.length, MAX_QUEUE_INDEX + 1);
    this.inflight = new SessionInflight(this.platform, this.logger, { requireProto, numQueues: numRings });
    this.vrings = new VringSet(
      this.device.queueMaxSizes.slice(0, numRings),
      this.platform,
      this.logger,
      this.mem,
      this.inflight,
      () => this.scheduler,
      opts.queueFactory ?? defaultQueueFactory,
      {
        get features() {
          return self.ackedFeatures;
        },
        requireProto,
        ringChanged: (r) => this.lendRing(r),
        queueBuilt: () => this.applyLogging(),
        ringStopped: () => {
          if (this.vrings.idle) this.core.deactivate();
        },
        endianChanged: (r) => this.endianChanged(r),
        ringError: (i, e) => this.ringError(i, e),
      },
    );
    this.rings = this.vrings.rings;
    this.scheduler = new RingScheduler(
      this.rings,
      this.device,
      this.platform,
      this.logger,
      {
        get closed() {
          return self.isClosed;
        },
        ready: () => this.core.activateWithLentQueues(),
        failure: (r, e) => this.ringFailure(r, e),
      },
      { pollIntervalMs: opts.pollIntervalMs ?? 1, pollUs: opts.pollUs ?? 0, stats: this.core.stats },
    );
    this.channel = new BackendChannel(this.platform, this.logger);
    this.session = {
      get protocolFeatures() {
        return self.ackedProtocol;
      },
      hasProtocolFeatures: (mask) => (this.ackedProtocol & mask) === mask,
      sendBackendRequest: (request, payload, fds, o) => this.sendBackendRequest(request, payload, fds, o),
    };
    this.registerHandlers();
    this.configChangeHook = opts.onConfigChange ?? null;
    this.router = opts.messageRouter?.(this, (msg, sink) => this.dispatcher.handle(msg, sink)) ?? null;
    this.hooks?.sessionStarted?.(this.session);
  }

  /** Sets where replies and back-end requests are written. */
  attach(sink: MessageSink): void {
    this.sink = sink;
  }

  /** Features offered in GET_FEATURES: the device's, the transport bits we honour, bits 26 and 30. */
  /** True once the session ended (close(), or a request that ended it). */
  get closed(): boolean {
    return this.isClosed;
  }
  /**
   * Features offered in GET_FEATURES: the device's, the transport bits a vhost-user back-end
   * honours, VHOST_USER_F_PROTOCOL_FEATURES and LOG_ALL.
   */
  get offeredFeatures(): bigint {
    const off = this.device.offeredFeatures;
    return BigInt.asUintN(64, off & (DEVICE_TYPE_FEATURES | VHOST_USER_TRANSPORT_FEATURES)) | F_PROTOCOL_FEATURES | F_LOG_ALL;
  }
  /** Protocol features offered in GET_PROTOCOL_FEATURES. */
  get offeredProtocolFeatures(): bigint {
    return this.offeredProtocol;
  }
  /** Features the front-end set with SET_FEATURES. */
  get features(): bigint {
    return this.ackedFeatures;
  }
  /** Protocol features the front-end set with SET_PROTOCOL_FEATURES. */
  get protocolFeatures(): bigint {
    return this.ackedProtocol;
  }
  /** The device status (the core's, DEVICE_NEEDS_RESET included). */
  get status(): number {
    return this.core.status;
  }
  /** The guest memory from the last memory table, or null before one. */
  get memory(): GuestMemory | null {
    return this.mem.memory;
  }
  /** Number of rings (the device's queues). */
  get numQueues(): number {
    return this.rings.length;
  }
  /**
   * Earlier memory tables (or the last one, after close) still mapped because buffers in
   * flight or device work pin them (docs/vhost-user-memory-changes.md), and the mappings alive.
   */
  get retiredMemoryTables(): number {
    return this.mem.retiredTables;
  }
  /** Guest memory mappings alive now, the current table's and the retired ones'. */
  get memoryMappings(): number {
    return this.mem.mappingCount;
  }
  /** Whether the device is active (a ring started with the device's features negotiated). */
  get deviceActive(): boolean {
    return this.core.active;
  }
  /** Call eventfd writes made (used-buffer notifications actually sent). */
  get callsSent(): number {
    return this.scheduler.callsSent;
  }
  /** Whether SET_OWNER was received (a session is established). */
  get hasOwner(): boolean {
    return this.owner;
  }
  /** A snapshot of ring `i` (fds, size, state), or null when there is no such ring. */
  ringInfo(i: number): RingInfo | null {
    const r = this.rings[i];
    return r ? ringInfo(r) : null;
  }
  /** The live queue of a started ring (tests). */
  ringQueue(i: number): VhostQueue | null {
    return this.rings[i]?.queue ?? null;
  }

  private hasProto(mask: bigint): boolean {
    return (this.ackedProtocol & mask) !== 0n;
  }
  private requireProto(req: number, mask: bigint): void {
    if (!this.hasProto(mask)) throw new VhostUserError(VhostUserFault.NOT_NEGOTIATED, 'protocol feature not negotiated', req);
  }
  private get deviceFeatures(): bigint {
    return this.ackedFeatures & ~VHOST_ONLY_BITS;
  }

  // --- messages ------------------------------------------------------------------------------

  /**
   * Handles one framed request: replies through the sink, closes every fd of the message it did
   * not keep. Throws only when the session must end: a failing sink (socket gone) or a refused
   * request whose reply has no error form (SessionEndingError, e.g. GET_VRING_BASE of a ring
   * that does not exist); the back-end is closed then.
   */
  handleMessage(msg: VhostUserMessage): void {
    if (this.isClosed) {
      this.dispatcher.closeFds(msg.fds);
      return;
    }
    try {
      if (this.router) this.router.handle(msg, this.sink);
      else this.dispatcher.handle(msg, this.sink);
    } catch (e) {
      // A refusal with no honest reply (SessionEndingError), or the socket gone: the session
      // cannot go on. Everything is released here; the caller ends the connection.
      this.close();
      throw e;
    }
  }

  private reportError(e: VirtioError, request: number): void {
    this.errorCount++;
    this.lastError = e;
    this.logger.warn(`vhost-user ${frontendReqName(request)} refused: ${e.message}`);
    this.onError?.(e);
  }

  private registerHandlers(): void {
    const d = this.dispatcher;
    const requireProto = (req: number, mask: bigint): void => this.requireProto(req, mask);
    d.on(FrontendReq.GET_FEATURES, (msg) => {
      noFds(msg);
      return { payload: encodeU64(this.offeredFeatures) };
    });
    d.on(FrontendReq.SET_FEATURES, (msg) => {
      noFds(msg);
      this.setFeatures(decodeU64Big(msg.request, msg.payload));
      return null;
    });
    d.on(FrontendReq.GET_PROTOCOL_FEATURES, (msg) => {
      noFds(msg);
      return { payload: encodeU64(this.offeredProtocol) };
    });
    d.on(FrontendReq.SET_PROTOCOL_FEATURES, (msg) => {
      noFds(msg);
      const v = decodeU64Big(msg.request, msg.payload);
      if ((v & ~this.offeredProtocol) !== 0n) {
        throw new VhostUserError(VhostUserFault.BAD_VALUE, `protocol features 0x${(v & ~this.offeredProtocol).toString(16)} not offered`, msg.request);
      }
      this.ackedProtocol = v;
      return null;
    });
    d.on(FrontendReq.SET_OWNER, (msg) => {
      noFds(msg);
      this.owner = true;
      return null;
    });
    d.on(FrontendReq.RESET_OWNER, (msg) => {
      // Deprecated: "use it to disable all rings".
      noFds(msg);
      this.vrings.stopAll(true, false);
      return null;
    });
    d.on(FrontendReq.RESET_DEVICE, (msg) => {
      noFds(msg);
      this.requireProto(msg.request, PF.RESET_DEVICE);
      // 2.4: the device resets (once), then every ring stops and forgets its set-up.
      this.core.reset();
      this.vrings.stopAll(true, true);
      this.ackedFeatures = 0n;
      this.applyLogging();
      return null;
    });
    registerConfigHandlers(d, { device: this.device, core: this.core, requireProto, deviceFeatures: () => this.deviceFeatures });
    d.on(FrontendReq.SET_BACKEND_REQ_FD, (msg) => {
      this.requireProto(msg.request, PF.BACKEND_REQ);
      const [fd] = takeFds(msg, 1, 1);
      this.channel.setFd(fd!);
      return null;
    });
    registerStatusHandlers(d, {
      core: this.core,
      requireProto,
      stopRings: () => this.vrings.stopAll(false, false),
      ringsActivated: () => {
        for (const r of this.rings) if (r.started && r.enabled) this.scheduler.scheduleCheck(r);
      },
    });
    this.mem.register(d);
    this.dirtyLog.register(d);
    this.inflight.register(d);
    this.vrings.register(d);
    // Anything else: the device's own requests, or refused (defined by the protocol but not
    // implemented, and never advertised: RARP, MTU, IOTLB, crypto, postcopy, GPU, in-band kicks,
    // shared objects, device state).
    d.fallback = (msg) => {
      const reply = this.hooks?.handleRequest?.(msg, this.session);
      if (reply === undefined) throw new VhostUserError(VhostUserFault.UNSUPPORTED, 'not implemented by this back-end', msg.request);
      return reply === null ? null : { payload: reply };
    };
  }

  // --- features and status: the core's negotiation -------------------------------------------

  private setFeatures(v: bigint): void {
    const req = FrontendReq.SET_FEATURES;
    const extra = v & ~this.offeredFeatures;
    if (extra !== 0n) throw new VhostUserError(VhostUserFault.BAD_VALUE, `features 0x${extra.toString(16)} not offered`, req);
    const devBits = v & ~VHOST_ONLY_BITS;
    if (this.core.active) {
      // QEMU sends SET_FEATURES again while running (each queue pair, LOG_ALL for migration):
      // the back-end's bits may change, the device's are fixed until it stops (3.1.1).
      if (devBits !== this.deviceFeatures) {
        throw new VhostUserError(VhostUserFault.BAD_STATE, `device features 0x${devBits.toString(16)} while the device runs with 0x${this.deviceFeatures.toString(16)}`, req);
      }
    } else {
      const why = this.negotiate(devBits);
      if (why !== null) throw new VhostUserError(VhostUserFault.BAD_VALUE, `device refuses features: ${why}`, req);
    }
    this.ackedFeatures = v;
    // Rings start enabled when VHOST_USER_F_PROTOCOL_FEATURES is not negotiated.
    if ((v & F_PROTOCOL_FEATURES) === 0n) {
      for (const r of this.rings) {
        r.enabled = true;
        this.lendRing(r);
      }
    }
    this.applyLogging();
  }

  /**
   * The core's negotiation for the device bits of SET_FEATURES: the interface (legacy without
   * VERSION_1, in ring 0's endianness), then ACKNOWLEDGE | DRIVER, the features and FEATURES_OK
   * as a driver would write them (3.1.1). Returns why the device refuses them, or null.
   */
  private negotiate(devBits: bigint): string | null {
    const core = this.core;
    const legacy = (devBits & F.VERSION_1) === 0n;
    const le = this.rings[0]?.littleEndian ?? true;
    const bits = legacy ? devBits : devBits & ~LEGACY_ONLY_BITS;
    const featuresOk = (core.status & Status.FEATURES_OK) !== 0;
    if (core.legacy !== legacy || (legacy && core.littleEndian !== le)) core.setLegacy(legacy, le);
    else if (featuresOk && core.negotiatedFeatures === bits) return null; // the same again
    else if (core.status !== 0) core.reset();
    // A reset took back the lent queues: lend the running ones again (the device sees them once
    // it is activated).
    for (const r of this.rings) this.lendRing(r);
    const why = core.checkFeatures(bits);
    if (why !== null) return why;
    core.setStatus(Status.ACKNOWLEDGE | Status.DRIVER);
    core.setDriverFeatures(bits);
    if (!legacy) core.setStatus(Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK);
    return null;
  }

  /** Ring 0's endianness decides a legacy guest's config and context: negotiate again in it. */
  private endianChanged(r: Vring): void {
    if (r.index !== 0 || this.core.active || !this.core.legacy || this.ackedFeatures === 0n) return;
    const why = this.negotiate(this.deviceFeatures);
    if (why !== null) this.logger.warn(`features refused in the new endianness: ${why}`);
  }

  // --- rings and the core --------------------------------------------------------------------

  /** Lends a started and enabled ring's queue to the core; takes any other back. */
  private lendRing(r: Vring): void {
    if (r.started && r.enabled && r.queue) this.core.attachQueue(r.index, r.queue);
    else this.core.detachQueue(r.index);
  }

  /**
   * The memory map changed: every started ring is rebuilt over it, keeping its position and its
   * queue object, so the device's requests in flight are still used on it; their memory stays
   * mapped while they are (docs/vhost-user-memory-changes.md).
   */
  private memoryChanged(): void {
    // The core must not rebuild lent queues itself (they are VhostQueues): take them back first.
    for (const r of this.rings) this.core.detachQueue(r.index);
    this.core.setMemory(this.mem.memory ?? EMPTY_MEMORY);
    let first: unknown = null;
    for (const r of this.rings) {
      if (!r.started) continue;
      try {
        this.vrings.restart(r);
      } catch (e) {
        first ??= e;
      }
    }
    for (const r of this.rings) this.lendRing(r);
    if (first !== null) throw first;
  }

  private applyLogging(): void {
    this.dirtyLog.apply(this.rings, (this.ackedFeatures & F_LOG_ALL) !== 0n);
  }

  private ringError(index: number, e: QueueError): void {
    const r = this.rings[index];
    if (!r || r.broken) return;
    r.broken = e;
    if (r.errFd >= 0) {
      try {
        this.platform.eventfdWrite(r.errFd, 1);
      } catch {
        // the front-end closed its end; the error is logged by the core anyway
      }
    }
    this.core.setNeedsReset(`ring ${index}: ${e.message}`);
  }

  /** A device or queue failure while serving ring `r`: the back-end keeps running. */
  private ringFailure(r: Vring, e: unknown): void {
    if (e instanceof QueueError) {
      this.ringError(r.index, e);
      return;
    }
    const err = isVirtioError(e) ? e : new VhostUserError(VhostUserFault.IO, `device failed: ${String(e)}`, -1, { cause: e });
    this.errorCount++;
    this.lastError = err;
    this.logger.error(`ring ${r.index}: ${err.message}`);
    this.onError?.(err);
    this.core.setNeedsReset(err.message);
  }

  // --- the back-end channel ------------------------------------------------------------------

  /**
   * Sends a back-end request (BACKEND_REQ) on the channel of SET_BACKEND_REQ_FD; with REPLY_ACK
   * the promise resolves with the front-end's answer (0: success). See VhostUserSession.
   */
  sendBackendRequest(request: BackendReq, payload?: Uint8Array, fds?: readonly number[], o?: BackendRequestOptions): Promise<bigint> {
    if (!this.hasProto(PF.BACKEND_REQ)) {
      return Promise.reject(new VhostUserError(VhostUserFault.NOT_NEGOTIATED, `back-end request ${request}: BACKEND_REQ not negotiated`));
    }
    return this.channel.send(request, this.hasProto(PF.REPLY_ACK), payload, fds, o);
  }

  /** The core's configuration change notification: CONFIG_CHANGE_MSG (needs BACKEND_REQ and CONFIG). */
  private sendConfigChange(): void {
    this.configChangeHook?.();
    if (!this.channel.open || !this.hasProto(PF.BACKEND_REQ) || !this.hasProto(PF.CONFIG)) return;
    // Not acknowledged: the core may signal from inside a ring pass, nothing waits on it.
    this.channel.send(BackendReq.CONFIG_CHANGE_MSG, false).catch((e: unknown) => {
      this.logger.warn(`config change message failed: ${(e as Error).message}`);
    });
  }

  /**
   * Ends the session: stops every ring, resets the device, unmaps all memory and closes every
   * fd received. Idempotent; the back-end handles nothing afterwards.
   */
  close(): void {
    if (this.isClosed) return;
    // Rings on worker threads stop first (their GET_VRING_BASE answers are not needed now).
    this.router?.close();
    this.scheduler.cancelChecks();
    this.vrings.close();
    this.core.deactivate();
    this.isClosed = true;
    this.mem.clear();
    this.dirtyLog.close();
    this.inflight.close();
    this.channel.close();
    try {
      this.hooks?.sessionEnded?.();
    } catch (e) {
      this.logger.error(`device sessionEnded threw: ${String(e)}`);
    }
  }
}
