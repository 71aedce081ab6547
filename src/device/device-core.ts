/**
 * The transport-independent device lifecycle (2.1 status, 2.2 features, 2.5 config space,
 * 2.6 virtqueues, 3.1 initialization): every transport decodes its bus accesses into calls on a
 * DeviceCore, and the core drives a VirtioDevice through `activate`, `onQueueNotify`, `reset`.
 *
 * The driver is untrusted: nothing here throws to the transport except `enableQueue` (a typed
 * VirtioError the transport turns into a refused access); a device that throws from
 * `onQueueNotify` or `activate` puts the core in DEVICE_NEEDS_RESET (2.1.2) instead.
 */
import { ErrorCode, QueueError, VirtioError, isVirtioError } from '../errors.js';
import { type Logger, silentLogger } from '../log.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import type { DeviceQueue, QueueConfig, QueueState } from '../queue/types.js';
import { F, TRANSPORT_FEATURES_SUPPORTED } from '../spec/features.js';
import { Status, statusToString } from '../spec/status.js';
import { ActivationContext } from './activation-context.js';
import { ConfigWindow } from './config-window.js';
import { SuspendProtocol } from './suspend-protocol.js';
import { AdminStop } from './admin-stop.js';
import { CoreQueues, type CoreQueuesHost } from './core-queues.js';
import { type DeviceCoreApi, type InterruptSink, type QueueArea, type QueueRefusal, type QueueRegisters, type VirtioDevice } from './types.js';
import { QueueStats } from './queue-stats.js';
import type { DeviceCoreOptions } from './device-core-options.js';
import { featureProblem, offeredFeatures } from './feature-offer.js';
import { acceptedStatusBits } from './status-write.js';
import { LentQueueCore } from './lent-queues.js';

const U32_MASK = 0xffff_ffffn;
/** Feature words a transport can select (bits 0..127, 2.2). Larger selects read 0. */
const FEATURE_WORDS = 4;

/**
 * The device lifecycle every transport shares: status state machine (2.1, 3.1), feature negotiation
 * (2.2), config space with generation (2.5), queue registers, enable and reset (2.6),
 * DEVICE_NEEDS_RESET, Device Suspend. A transport (PCI, MMIO, CCW, vhost-user, in-process) decodes
 * its bus accesses into these calls; the device (a VirtioDevice) never sees the transport.
 * Transports that build their rings themselves (vhost-user) lend them to the core through the
 * API of its base class, LentQueueCore (lent-queues.ts).
 */
export class DeviceCore extends LentQueueCore implements DeviceCoreApi, CoreQueuesHost {
  /** Number of queues the device has (its queueMaxSizes length). */
  readonly numQueues: number;

  private mem: GuestMemory;
  private readonly sink: InterruptSink;
  private readonly log: Logger;
  private readonly beforeHostAccess: (() => void) | undefined;
  private readonly transportFeatures: bigint;
  private readonly platformTranslated: boolean;
  private offered = 0n;

  private generation = 0;
  private readonly q: CoreQueues;
  /** @internal The live queues (CoreQueues.live). */
  protected override readonly queues: (DeviceQueue | null)[];
  /** Device Suspend (VIRTIO_F_SUSPEND): its state and held configuration notification. */
  private readonly suspension: SuspendProtocol;
  /** The stopped mode a group owner sets (VIRTIO_ADMIN_CMD_DEV_MODE_SET, admin-stop.ts). */
  private readonly adminStop: AdminStop;
  private lastNeedsResetReason: string | null = null;
  private lastNeedsResetError: VirtioError | null = null;
  private readonly config: ConfigWindow;
  /** Per-queue counters: kicks and calls here, requests and bytes by the queue server. */
  readonly stats: QueueStats;

  constructor(device: VirtioDevice, opts: DeviceCoreOptions) {
    super(device);
    this.mem = opts.memory;
    this.stats = opts.stats ?? new QueueStats();
    this.sink = opts.interrupts;
    this.log = opts.logger ?? silentLogger;
    this.beforeHostAccess = opts.beforeHostAccess;
    this.transportFeatures = opts.transportFeatures ?? TRANSPORT_FEATURES_SUPPORTED;
    this.legacyMode = opts.legacy ?? false;
    this.platformTranslated = opts.platformTranslated ?? false;
    this.le = this.legacyMode ? (opts.littleEndian ?? true) : true;
    const n = device.queueMaxSizes.length;
    this.numQueues = n;
    this.q = new CoreQueues(device.queueMaxSizes, opts.queueNotifyData, this);
    this.queues = this.q.live;
    this.config = new ConfigWindow(device, this.log);
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const core = this;
    this.suspension = new SuspendProtocol({
      device,
      log: this.log,
      get epoch() {
        return core.epoch;
      },
      get status() {
        return core.statusValue;
      },
      set status(v: number) {
        core.statusValue = v;
      },
      needsReset: (reason, cause) => this.setNeedsReset(reason, cause),
      configChange: () => this.sink.configChange(),
    });
    this.adminStop = new AdminStop(
      {
        device,
        get epoch() {
          return core.epoch;
        },
        get active() {
          return core.ctx !== null;
        },
        notifyQueue: (i) => this.serveKick(i),
        signalUsed: (i) => this.signalUsed(i),
        configChange: () => {
          if (this.statusValue & Status.DRIVER_OK) this.sink.configChange();
        },
      },
      n,
    );
    this.computeOffered();
  }

  // ---- stopped mode (2.12.1.5 Device parts): the member of a group, stopped by its owner -------

  /** Stopping or stopped by the group owner (admin-stop.ts): no queue access, no notifications. */
  get stoppedByOwner(): boolean {
    return this.adminStop.active;
  }
  /** Stops the device for its group owner; resolves once nothing is outstanding (AdminStop.stop). */
  stopForOwner(): Promise<void> {
    return this.adminStop.stop();
  }
  /** Resumes after `stopForOwner`, delivering held notifications (`kickAll`: every queue once). */
  resumeForOwner(kickAll = false): void {
    this.adminStop.resume(kickAll);
  }
  /** Ring positions the queues start at when the device is next activated (a restore). */
  restoreQueueStatesAtActivation(states: readonly (QueueState | null)[]): void {
    this.adminStop.restoreQueueStatesAtActivation(states);
  }

  // ---- state ---------------------------------------------------------------------------------

  /** The device status byte (2.1). */
  get status(): number {
    return this.statusValue;
  }
  /** config_generation (2.5.1): changes whenever the device changes its configuration space. */
  get configGeneration(): number {
    return this.generation;
  }
  get driverFeatures(): bigint {
    return this.driverFeat;
  }
  get negotiatedFeatures(): bigint {
    return this.negotiated;
  }
  /**
   * The guest memory the device's queues live in (replaced by a vhost-user memory table change).
   */
  get memory(): GuestMemory {
    return this.mem;
  }
  /** Whether the driver's fields are little-endian (false only for a legacy big-endian guest). */
  get littleEndian(): boolean {
    return this.le;
  }
  /** Whether the legacy interface is in use (no FEATURES_OK, legacy ring layout). */
  get legacy(): boolean {
    return this.legacyMode;
  }
  /** Whether the device was activated (DRIVER_OK accepted) and not reset since. */
  get active(): boolean {
    return this.ctx !== null;
  }
  /** Why DEVICE_NEEDS_RESET was last set (null when it is not set). */
  get needsResetReason(): string | null {
    return this.lastNeedsResetReason;
  }
  /**
   * Why DEVICE_NEEDS_RESET was last set, as a VirtioError (code DEVICE_NEEDS_RESET) whose
   * `cause` is what the device threw (or passed to `ctx.needsReset`), so a driver in the same
   * process can surface the device's own message; null when the bit is not set.
   */
  get needsResetError(): VirtioError | null {
    return this.lastNeedsResetError;
  }
  /** @internal Current activation epoch; a context from another epoch is dead. */
  get epochNow(): number {
    return this.epoch;
  }

  /**
   * Switches between the legacy and the modern interface (transitional transports, once the
   * driver chose one). Resets the device first: the two interfaces share no state.
   */
  setLegacy(legacy: boolean, littleEndian = true): void {
    this.reset();
    this.legacyMode = legacy;
    this.le = legacy ? littleEndian : true;
    this.computeOffered();
  }

  /**
   * Replaces guest memory (a transport whose memory map changed). Live queues are rebuilt over
   * the new memory at the positions they had reached; the device sees the new memory through
   * `ctx.memory` and `ctx.queue()`.
   */
  setMemory(memory: GuestMemory): void {
    const inPlace = memory === this.mem;
    this.mem = memory;
    this.q.moveTo(memory, inPlace, (i, e) => this.setNeedsReset(`queue ${i} does not fit the new memory: ${String(e)}`, e));
  }

  // ---- features (2.2) ------------------------------------------------------------------------

  private computeOffered(): void {
    this.offered = offeredFeatures(this.device, this.transportFeatures, this.legacyMode, this.platformTranslated);
  }

  deviceFeatures(): bigint {
    return this.offered;
  }

  deviceFeatureWord(select: number): number {
    if (!Number.isInteger(select) || select < 0 || select >= FEATURE_WORDS) return 0;
    return Number((this.offered >> BigInt(32 * select)) & U32_MASK);
  }

  setDriverFeatureWord(select: number, value: number): void {
    if (!Number.isInteger(select) || select < 0 || select >= FEATURE_WORDS) return;
    const shift = BigInt(32 * select);
    const next = (this.driverFeat & ~(U32_MASK << shift)) | (BigInt(value >>> 0) << shift);
    this.setDriverFeatures(next);
  }

  /** Sets all of driver_feature at once. Ignored after FEATURES_OK. */
  setDriverFeatures(features: bigint): void {
    // 3.1.1: driver_feature is frozen once FEATURES_OK (legacy: DRIVER_OK) was accepted.
    if (this.statusValue & (this.legacyMode ? Status.DRIVER_OK : Status.FEATURES_OK)) {
      this.log.debug(`driver features written after negotiation: ignored`);
      return;
    }
    this.driverFeat = BigInt.asUintN(32 * FEATURE_WORDS, features);
    // Legacy: the guest features are in force as soon as they are written.
    if (this.legacyMode) this.negotiated = this.driverFeat & this.offered;
  }

  /** @internal The reason FEATURES_OK must be refused for `accepted`, or null (2.2.1, device/content/4). */
  protected override featureProblem(accepted: bigint): string | null {
    return featureProblem(this.device, this.offered, accepted, this.legacyMode, this.platformTranslated);
  }

  // ---- status (2.1, 3.1) ---------------------------------------------------------------------

  setStatus(value: number): void {
    const v = value & 0xff;
    if (v === 0) {
      this.reset();
      return;
    }
    const cur = this.statusValue;
    if ((this.negotiated & F.SUSPEND) !== 0n && this.ctx !== null && this.suspension.write(cur, v)) return;
    let added = acceptedStatusBits(cur, v, this.log);
    if (added === 0) return;
    if (added & Status.FAILED) {
      // The driver gave up (3.1.1); nothing else in this write matters.
      this.statusValue |= Status.FAILED;
      this.log.info(`driver set FAILED (status ${statusToString(this.statusValue)})`);
      return;
    }
    if (added & Status.FEATURES_OK) {
      if (this.legacyMode) {
        // Legacy interfaces have no FEATURES_OK (2.2.3); the bit reads back as written.
      } else {
        const problem = this.checkFeatures(this.driverFeat);
        if (problem !== null) {
          // 3.1.1: refuse by leaving FEATURES_OK clear; the driver re-reads and sees it.
          this.log.info(`FEATURES_OK refused: ${problem}`);
          added &= ~Status.FEATURES_OK;
          added &= ~Status.DRIVER_OK;
        } else {
          this.negotiated = this.driverFeat;
        }
      }
    }
    if (added & Status.DRIVER_OK) {
      const featuresOk = ((cur | added) & Status.FEATURES_OK) !== 0;
      if (!this.legacyMode && !featuresOk) {
        this.log.warn('DRIVER_OK without FEATURES_OK: ignored');
        added &= ~Status.DRIVER_OK;
      }
    }
    this.statusValue = cur | added;
    if (added & Status.DRIVER_OK && this.ctx === null) this.activate();
  }

  /** Suspending or suspended (2.4.x): no queue access, no notifications, config writes ignored. */
  get suspended(): boolean {
    return this.suspension.active;
  }

  /** Device reset (2.4): status 0, features and queues forgotten, device-specific reset. */
  override reset(): void {
    this.epoch++;
    this.ctx = null;
    this.suspension.reset();
    this.adminStop.reset();
    try {
      this.device.reset();
    } catch (e) {
      this.log.error(`device reset threw: ${String(e)}`);
    }
    this.statusValue = 0;
    this.driverFeat = 0n;
    this.negotiated = 0n;
    this.lastNeedsResetReason = null;
    this.lastNeedsResetError = null;
    this.q.resetAll();
  }

  private activate(): void {
    if (this.adminStop.deferActivation(() => this.activate())) return;
    const epoch = this.epoch;
    // Queues are (re)built now: the features are final and the rings must be valid.
    if (!this.q.buildEnabled((i, e) => this.setNeedsReset(`queue ${i} cannot be used: ${String(e)}`, e))) return;
    try {
      this.adminStop.applyPendingStates(this.queues);
    } catch (e) {
      this.setNeedsReset(`restored queue position refused: ${String(e)}`, e);
      return;
    }
    const ctx = new ActivationContext(this, epoch, this.negotiated, this.le);
    this.ctx = ctx;
    try {
      this.device.activate(ctx);
    } catch (e) {
      if (this.epoch === epoch) this.setNeedsReset(`device activation failed: ${String(e)}`, e);
    }
  }

  /**
   * 2.1.2: the device hit an error it cannot recover from. Sets DEVICE_NEEDS_RESET, stops
   * serving notifications, and sends a configuration change notification when DRIVER_OK is
   * set (device/content/2). `cause` (what the device threw) is kept for `needsResetError`.
   */
  override setNeedsReset(reason: string, cause?: unknown): void {
    if (this.statusValue & Status.DEVICE_NEEDS_RESET) return;
    this.lastNeedsResetReason = reason;
    this.lastNeedsResetError = new VirtioError(ErrorCode.DEVICE_NEEDS_RESET, reason, cause === undefined ? undefined : { cause });
    this.log.warn(`DEVICE_NEEDS_RESET: ${reason}`);
    this.statusValue |= Status.DEVICE_NEEDS_RESET;
    if (this.statusValue & Status.DRIVER_OK && !this.adminStop.holdConfigChange()) this.sink.configChange();
  }

  // ---- config space (2.5) --------------------------------------------------------------------

  /** Features the device should present config fields for: negotiated, or accepted so far. */
  /** @internal (CoreQueuesHost) */
  configFeatures(): bigint {
    return this.statusValue & Status.FEATURES_OK || this.legacyMode ? this.negotiated : this.driverFeat & this.offered;
  }

  /**
   * The device changed its configuration: a new generation (2.5.1, device/transport-pci/17)
   * and a configuration change notification once the driver is running.
   */
  configChanged(): void {
    this.generation = (this.generation + 1) >>> 0;
    // device/content/15, /16: none while suspended; one when the device resumes.
    if (this.suspension.holdConfigChange() || this.adminStop.holdConfigChange()) return;
    if (this.statusValue & Status.DRIVER_OK) this.sink.configChange();
  }

  readConfig(offset: number, width: number): number {
    return this.config.read(offset, width, this.configFeatures(), this.le);
  }

  /**
   * Writes `width` bytes of config space at `offset`; writes the device does not allow are dropped.
   */
  writeConfig(offset: number, width: number, value: number): void {
    if (this.suspension.active) return; // 2.4.x: ignored while suspended
    this.config.write(offset, width, value, this.configFeatures(), this.le);
  }

  /** Reads `dst.length` bytes of config space at `offset`; bytes beyond the config read 0. */
  readConfigBytes(offset: number, dst: Uint8Array): void {
    this.config.readBytes(offset, dst, this.configFeatures(), this.le);
  }

  /** Writes config bytes (byte-stream transports such as CCW WRITE_CONF); out of range is ignored. */
  writeConfigBytes(offset: number, src: Uint8Array): void {
    if (this.suspension.active) return; // 2.4.x: ignored while suspended
    this.config.writeBytes(offset, src, this.configFeatures(), this.le);
  }

  // ---- queues (2.6): registers, refusals and live queues are CoreQueues' -----------------------

  override queueRegisters(index: number): QueueRegisters | null {
    return this.q.registers(index);
  }

  setQueueSize(index: number, size: number): QueueRefusal | null {
    return this.q.setSize(index, size);
  }

  setQueueAddress(index: number, area: QueueArea, address: number): QueueRefusal | null {
    return this.q.setAddress(index, area, address);
  }

  setQueueMsixVector(index: number, vector: number): QueueRefusal | null {
    return this.q.setMsixVector(index, vector);
  }

  /** Enables queue `index` (CoreQueues.enableRefusal): null, or why it stays disabled. */
  setQueueEnabled(index: number): QueueRefusal | null {
    return this.q.enableRefusal(index);
  }

  setQueueLegacyAddress(index: number, address: number, align: number): QueueRefusal | null {
    return this.q.setLegacyAddress(index, address, align);
  }

  queueConfig(index: number): QueueConfig | null {
    return this.q.config(index);
  }

  /**
   * `setQueueEnabled` for callers that want an exception: throws VirtioError INVALID_ARGUMENT
   * (no such queue), DEVICE_NEEDS_RESET / STATUS_INVALID (device status) or QUEUE_BAD_CONFIG.
   */
  enableQueue(index: number): void {
    this.q.enable(index);
  }

  /**
   * Legacy queue address form (4.1.5.4, 4.2.4): the ring is contiguous at `pfn * pageSize`,
   * used ring aligned to `align` (4096); pfn 0 stops the queue; a live queue is reset first.
   * Throws VirtioError QUEUE_BAD_CONFIG when refused.
   */
  setQueuePfn(index: number, pfn: number, pageSize?: number, align?: number): void {
    this.q.setPfn(index, pfn, pageSize, align);
  }

  /** @internal (CoreQueuesHost) The device's own part of a queue reset; a throw or rejection is logged. */
  deviceResetQueue(index: number): void | Promise<void> {
    try {
      const teardown = this.device.resetQueue?.(index);
      if (teardown === undefined) return;
      return teardown.catch((e: unknown) => this.log.error(`device queue reset failed: ${String(e)}`));
    } catch (e) {
      this.log.error(`device queue reset threw: ${String(e)}`);
    }
  }

  queueResetOngoing(index: number): boolean {
    return this.q.resetOngoing(index);
  }

  /** 2.6.1 queue reset: the device stops using the queue and forgets it; registers to defaults. */
  resetQueue(index: number): void {
    this.q.reset(index);
  }

  queue(index: number): DeviceQueue | null {
    return this.queues[index] ?? null;
  }

  /**
   * Available buffer notification (2.9). `data` is the NOTIFICATION_DATA value; the device
   * re-reads the ring anyway, so it is only a hint. Never throws: a ring the driver broke
   * puts the device in DEVICE_NEEDS_RESET (2.1.2).
   */
  notifyQueue(index: number, _data?: number): void {
    if (index >= 0 && index < this.numQueues) this.stats.kick(index);
    // Stopped by the group owner: accepted, delivered at resume (admin-stop.ts).
    if (!this.adminStop.holdKick(index)) this.serveKick(index);
  }

  /** A driver notification counted already: the device consumes what the queue holds. */
  private serveKick(index: number): void {
    if (this.statusValue & (Status.DEVICE_NEEDS_RESET | Status.FAILED)) return;
    // device/content/14: a suspending device consumes no more buffers, a suspended one none.
    if (this.suspension.active) return;
    if (this.ctx === null) {
      // device/content/1: nothing is consumed before DRIVER_OK. Legacy drivers may kick first
      // and set DRIVER_OK later (QEMU's start_on_kick): a legacy device starts on that kick.
      if (!this.legacyMode || !(this.statusValue & Status.DRIVER)) return;
      this.activate();
      if (this.ctx === null || this.statusValue & Status.DEVICE_NEEDS_RESET) return;
    }
    const q = this.queues[index];
    if (q === undefined || q === null) return;
    if (q.broken !== null) return;
    try {
      this.device.onQueueNotify(index);
    } catch (e) {
      this.deviceThrew(index, e);
    }
  }

  private deviceThrew(index: number, e: unknown): void {
    if (e instanceof QueueError) {
      this.setNeedsReset(`queue ${index}: ${e.message}`, e);
    } else if (isVirtioError(e)) {
      this.setNeedsReset(`queue ${index}: ${e.code}: ${e.message}`, e);
    } else {
      this.setNeedsReset(`queue ${index}: device threw ${String(e)}`, e);
    }
  }

  /** @internal Whether the transport sends used-buffer notifications at once on request (`InterruptSink.usedBufferNow`). */
  get notifiesNow(): boolean {
    return this.sink.usedBufferNow !== undefined;
  }

  /**
   * @internal Used-buffer notification when the queue's event suppression asks for one; `now`:
   * through `usedBufferNow` where the transport has it.
   */
  signalUsed(index: number, now = false): void {
    // device/content/14: no notification once suspended (those of buffers finishing while
    // suspending are sent, device/content/19).
    if (this.suspension.suspended || this.adminStop.holdUsed(index)) return;
    this.beforeHostAccess?.();
    const q = this.queues[index];
    if (q === undefined || q === null) return;
    if (q.needsNotification()) {
      this.stats.call(index);
      if (now && this.sink.usedBufferNow !== undefined) this.sink.usedBufferNow(index);
      else this.sink.usedBuffer(index);
    }
  }

  /** @internal */
  protected override newContext(epoch: number): ActivationContext {
    return new ActivationContext(this, epoch, this.negotiated, this.le);
  }
}
