/**
 * The generic virtio driver: the initialization sequence of 3.1.1 (or the legacy one, 3.1.2)
 * over any DriverTransport, queue set-up with rings from a DmaAllocator, interrupt dispatch,
 * consistent config reads (2.5.1), device and queue reset. Device-type drivers (blk, entropy)
 * build on the DriverContext it produces.
 *
 * Everything is synchronous, like the register accesses underneath; `init` is async only so
 * that callers need not change if a transport one day has to wait.
 */
import { ErrorCode, VirtioError, isVirtioError } from '../errors.js';
import { createDriverQueue } from './create-queue.js';
import { packedRingLayout } from '../queue/packed-layout.js';
import { legacySplitRingLayout, splitRingLayout } from '../queue/split-layout.js';
import type { DriverQueue, QueueConfig } from '../queue/types.js';
import { DEVICE_TYPE_FEATURES, F, bit } from '../spec/features.js';
import { LEGACY_QUEUE_ALIGN, MAX_QUEUE_SIZE } from '../spec/ring.js';
import { Status, statusToString } from '../spec/status.js';
import { checkDeviceDriverMatch } from './device-driver.js';
import type { DmaAllocator } from './dma-allocator.js';
import { SplitDriverQueue } from './split-driver-queue.js';
import { DriverContextImpl } from './driver-context-impl.js';
import type { VirtioDriverOptions } from './virtio-driver-options.js';
import { type DriverContext, type DriverQueueAddresses, type DriverStopEvent, DriverStopReason, type DriverTransport, type QueueResetWaitOptions } from './types.js';

export type { VirtioDriverOptions } from './virtio-driver-options.js';

/** Transport and ring bits this driver implements (anything else is never accepted). */
const DRIVER_TRANSPORT_BITS =
  F.INDIRECT_DESC |
  F.EVENT_IDX |
  F.VERSION_1 |
  F.ACCESS_PLATFORM |
  F.RING_PACKED |
  F.IN_ORDER |
  F.ORDER_PLATFORM |
  F.NOTIFICATION_DATA |
  F.RING_RESET |
  F.SUSPEND;

/** 6: the device-type feature bits (one definition for the core, the back-end and the driver). */
const DEVICE_TYPE_MASK = DEVICE_TYPE_FEATURES;
/** 2.2.3 / 6.3: a legacy interface carries feature bits 0 to 31 only. */
const LEGACY_FEATURE_MASK = bit(32) - 1n;
const DEFAULT_QUEUE_SIZE = 256;
const DEFAULT_INDIRECT_SEGMENTS = 16;

/** One queue's driver-side state: its ring allocation and callbacks. */
interface QueueSlot {
  queue: DriverQueue<number>;
  addrs: DriverQueueAddresses;
  /** DMA allocations to free on reset (ring, indirect area). */
  allocs: number[];
  onUsed: (() => void) | null;
}

function floorPow2(n: number): number {
  let p = 1;
  while (p * 2 <= n) p *= 2;
  return p;
}

/**
 * The generic driver side of a device: runs the initialization sequence of 3.1.1 over any
 * DriverTransport (status bits, feature negotiation, queue set-up, DRIVER_OK), then owns the
 * queues, notifications, configuration reads with generation checks, queue reset, Device Suspend,
 * and DEVICE_NEEDS_RESET. A device-type driver (BlkDriver, ...) attaches to its `context`.
 */
export class VirtioDriver {
  /** What a device-type driver attaches to: memory, negotiated features, queues, config access. */
  readonly context: DriverContext;
  private slots: (QueueSlot | null)[] = [];
  private negotiated = 0n;
  private configCb: (() => void) | null = null;
  private needsResetCb: ((error: VirtioError) => void) | null = null;
  private readonly stopListeners = new Set<(event: DriverStopEvent) => void>();
  private alive = false;
  /** Between suspend() and the end of resume(): no buffers, notifications or config writes. */
  private suspendedNow = false;
  private notificationData = false;
  private readonly retries: number;
  /** The device's own queues (slots past them are administration queues). */
  private deviceQueues = 0;
  /** Indices of the administration queues set up. */
  private adminIndices: number[] = [];

  private constructor(
    /** The transport the device is driven through. */
    readonly transport: DriverTransport,
    private readonly opts: VirtioDriverOptions,
  ) {
    this.context = new DriverContextImpl(this);
    this.retries = opts.configRetries ?? 1000;
  }

  /** Runs the initialization sequence; resolves once the device is DRIVER_OK. */
  static async init(transport: DriverTransport, opts: VirtioDriverOptions): Promise<VirtioDriver> {
    return VirtioDriver.initSync(transport, opts);
  }

  /**
   * The same, synchronously. Throws VirtioError FEATURES_REJECTED when the device refuses
   * FEATURES_OK (or lacks VERSION_1 on a modern interface), QUEUE_BAD_CONFIG / others when a
   * queue cannot be set up; the device is then left with FAILED set (driver/content/20).
   */
  static initSync(transport: DriverTransport, opts: VirtioDriverOptions): VirtioDriver {
    const d = new VirtioDriver(transport, opts);
    d.start();
    return d;
  }

  /** The allocator of guest memory given in the options. */
  get dma(): DmaAllocator {
    return this.opts.dma;
  }
  /** Negotiated features. */
  get features(): bigint {
    return this.negotiated;
  }
  /** Number of the device's own queues set up (administration queues not counted). */
  get numQueues(): number {
    return this.deviceQueues;
  }
  /** Indices of the administration queues set up (2.13), ascending; empty without ADMIN_VQ. */
  get adminQueueIndices(): readonly number[] {
    return this.adminIndices;
  }
  /** Whether the device is initialized (not reset nor failed by this driver). */
  get running(): boolean {
    return this.alive;
  }
  /** Whether the driver suspended the device (suspend() called, resume() not finished). */
  get suspended(): boolean {
    return this.suspendedNow;
  }

  /**
   * Device Suspend (VIRTIO_F_SUSPEND negotiated, the device running; driver/content/25): sets
   * SUSPEND and resolves once the device reads back SUSPEND 1 and DRIVER_OK 0
   * (driver/content/26). From the call on, the driver makes no buffer available, sends no
   * notification and writes no configuration (driver/content/27, /28, /29): those throw
   * DEVICE_SUSPENDED. TIMEOUT when the device does not suspend within `timeoutMs`.
   */
  async suspend(timeoutMs = 5000): Promise<void> {
    if ((this.negotiated & F.SUSPEND) === 0n) throw new VirtioError(ErrorCode.FEATURES_REJECTED, 'VIRTIO_F_SUSPEND was not negotiated');
    const t = this.transport;
    const status = t.getStatus();
    if (!this.alive || !(status & Status.DRIVER_OK) || this.suspendedNow) {
      throw new VirtioError(ErrorCode.STATUS_INVALID, `cannot suspend a device that is not running (status ${statusToString(status)})`);
    }
    this.suspendedNow = true;
    t.setStatus(status | Status.SUSPEND);
    await this.waitStatus((st) => (st & Status.SUSPEND) !== 0 && (st & Status.DRIVER_OK) === 0, 'suspend', timeoutMs);
  }

  /**
   * Resumes a suspended device: sets DRIVER_OK and resolves once the device reads back
   * SUSPEND 0 and DRIVER_OK 1; only then may normal operation go on (driver/content/30).
   */
  async resume(timeoutMs = 5000): Promise<void> {
    if (!this.suspendedNow) throw new VirtioError(ErrorCode.STATUS_INVALID, 'the device is not suspended');
    const t = this.transport;
    await this.waitStatus((st) => (st & Status.SUSPEND) !== 0 && (st & Status.DRIVER_OK) === 0, 'suspend', timeoutMs);
    t.setStatus(t.getStatus() | Status.DRIVER_OK);
    await this.waitStatus((st) => (st & Status.SUSPEND) === 0 && (st & Status.DRIVER_OK) !== 0, 'resume', timeoutMs);
    this.suspendedNow = false;
  }

  /** Re-reads the status until `ok`, yielding between reads; NEEDS_RESET or the time limit ends it. */
  private async waitStatus(ok: (status: number) => boolean, what: string, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const st = this.transport.getStatus();
      if (ok(st)) return;
      if (st & Status.DEVICE_NEEDS_RESET) throw this.deviceFailure(`device failed to ${what} (status ${statusToString(st)})`);
      if (Date.now() >= deadline) throw new VirtioError(ErrorCode.TIMEOUT, `device did not ${what} within ${timeoutMs} ms (status ${statusToString(st)})`);
      await new Promise<void>((r) => setTimeout(r, 1));
    }
  }

  /** Whether the device reports DEVICE_NEEDS_RESET (2.1.2; driver/content/4). */
  get needsReset(): boolean {
    return (this.transport.getStatus() & Status.DEVICE_NEEDS_RESET) !== 0;
  }

  /**
   * DEVICE_NEEDS_RESET as an error to surface (code DEVICE_NEEDS_RESET), or null when the bit is
   * clear. Its `cause` is the device's own error when the transport can see it (in process).
   */
  get needsResetError(): VirtioError | null {
    const status = this.transport.getStatus();
    return status & Status.DEVICE_NEEDS_RESET ? this.deviceFailure(`device needs reset (status ${statusToString(status)})`) : null;
  }

  /** Called, with `needsResetError`, when a configuration change notification shows DEVICE_NEEDS_RESET. */
  onNeedsReset(cb: (error: VirtioError) => void): void {
    this.needsResetCb = cb;
  }

  /** A DEVICE_NEEDS_RESET error saying `what`, carrying the device's own error when known. */
  private deviceFailure(what: string): VirtioError {
    const seen = this.transport.deviceError?.() ?? null;
    if (seen === null) return new VirtioError(ErrorCode.DEVICE_NEEDS_RESET, what);
    return new VirtioError(ErrorCode.DEVICE_NEEDS_RESET, `${what}: ${seen.message}`, { cause: seen.cause ?? seen });
  }

  /**
   * Adds a listener told when buffers in flight will never complete: reset(), a configuration
   * change showing DEVICE_NEEDS_RESET, or resetQueue(). Returns a function removing it.
   */
  onStop(listener: (event: DriverStopEvent) => void): () => void {
    this.stopListeners.add(listener);
    return () => {
      this.stopListeners.delete(listener);
    };
  }

  private emitStop(reason: DriverStopReason, queueIndex: number): void {
    const event: DriverStopEvent = { reason, queueIndex };
    for (const l of [...this.stopListeners]) l(event);
  }

  private start(): void {
    const t = this.transport;
    if (this.opts.driverType) checkDeviceDriverMatch(this.opts.driverType, t.deviceId);
    t.setInterruptHandler({ used: (i) => this.dispatchUsed(i), configChange: () => this.dispatchConfig() });
    // 3.1.1 step 1: reset, complete when status reads 0 (driver/content/10).
    t.setStatus(0);
    if (t.getStatus() !== 0) throw new VirtioError(ErrorCode.STATUS_INVALID, `device did not reset (status ${statusToString(t.getStatus())})`);
    let status = Status.ACKNOWLEDGE;
    t.setStatus(status);
    status |= Status.DRIVER;
    t.setStatus(status);
    try {
      this.negotiate(status);
      if (!t.legacy) status |= Status.FEATURES_OK;
      this.notificationData = (this.negotiated & F.NOTIFICATION_DATA) !== 0n;
      this.setupQueues();
      status |= Status.DRIVER_OK;
      t.setStatus(status);
      const now = t.getStatus();
      if (now & Status.DEVICE_NEEDS_RESET || !(now & Status.DRIVER_OK)) {
        throw this.deviceFailure(`device did not accept DRIVER_OK (status ${statusToString(now)})`);
      }
      this.alive = true;
    } catch (e) {
      // driver/content/20, /21: give up, FAILED, stop.
      this.releaseQueues();
      try {
        t.setStatus(t.getStatus() | Status.FAILED);
      } catch {
        // The transport is gone; FAILED cannot be reported.
      }
      throw isVirtioError(e) ? e : new VirtioError(ErrorCode.INVALID_ARGUMENT, `driver initialization failed: ${String(e)}`, { cause: e });
    }
  }

  /** 3.1.1 steps 4 to 6 (legacy: just write the guest features). */
  private negotiate(status: number): void {
    const t = this.transport;
    const offered = t.getDeviceFeatures();
    // driver/content/6, /8: validate the offer; without a feature it needs the driver gives up.
    const type = this.opts.driverType;
    const required = (this.opts.requiredFeatures ?? 0n) | (type?.requiredFeatures ?? 0n);
    const missing = required & ~offered;
    if (missing !== 0n) throw new VirtioError(ErrorCode.FEATURES_REJECTED, `device does not offer required features 0x${missing.toString(16)}`);
    // With a device-type driver, only the device-type bits it knows (driver/content/7).
    const deviceTypeBits = type ? DEVICE_TYPE_MASK & (type.wantedFeatures | type.requiredFeatures) : DEVICE_TYPE_MASK;
    // content.tex: a driver SHOULD accept NOTIF_CONFIG_DATA if offered; the transport that has
    // queue_notif_config_data (PCI) lists it, and then uses it in its notifications.
    let accepted = (this.opts.wantedFeatures | required) & offered & (deviceTypeBits | DRIVER_TRANSPORT_BITS | (t.transportFeatures ?? 0n));
    if (this.opts.indirect === false) accepted &= ~F.INDIRECT_DESC;
    // 2.13: ADMIN_VQ only when the caller will use administration queues the transport can place.
    if ((this.opts.adminQueues ?? 0) > 0 && t.adminQueueRange !== undefined) accepted |= offered & F.ADMIN_VQ;
    else accepted &= ~F.ADMIN_VQ;
    if (t.legacy) {
      // 2.2.3 / 6.3: a legacy interface has 32 feature bits and no VERSION_1.
      accepted &= LEGACY_FEATURE_MASK & ~F.VERSION_1;
      t.setDriverFeatures(accepted);
      this.negotiated = accepted;
      return;
    }
    if ((offered & F.VERSION_1) === 0n) {
      // driver/content/32: this driver speaks only the 1.x interface on a modern transport.
      throw new VirtioError(ErrorCode.FEATURES_REJECTED, 'device does not offer VERSION_1');
    }
    accepted |= F.VERSION_1; // driver/content/31
    t.setDriverFeatures(accepted);
    if (type?.refineFeatures) {
      // The device-type driver looks at the configuration before committing (only dropping bits).
      const refined = type.refineFeatures(accepted, (offset, dst) => t.readConfig(offset, dst), true) & accepted;
      if (refined !== accepted) {
        accepted = refined;
        t.setDriverFeatures(accepted);
      }
    }
    t.setStatus(status | Status.FEATURES_OK);
    // 3.1.1 step 6: re-read; a device that cannot support the subset left the bit clear.
    if (!(t.getStatus() & Status.FEATURES_OK)) {
      throw new VirtioError(ErrorCode.FEATURES_REJECTED, `device refused features 0x${accepted.toString(16)}`);
    }
    this.negotiated = accepted;
  }

  private queueSizeFor(index: number, max: number): number {
    const sizes = this.opts.queueSizes;
    const want = sizes && sizes.length > 0 ? (sizes[Math.min(index, sizes.length - 1)] ?? DEFAULT_QUEUE_SIZE) : DEFAULT_QUEUE_SIZE;
    let size = Math.max(1, Math.min(want, max, MAX_QUEUE_SIZE));
    if ((this.negotiated & F.RING_PACKED) === 0n) size = floorPow2(size); // 2.7: split sizes are powers of two
    return size;
  }

  /** 3.1.1 step 7: discover and set up each queue. */
  private setupQueues(): void {
    const t = this.transport;
    const n = Math.min(t.numQueues(), this.opts.numQueues ?? Number.MAX_SAFE_INTEGER);
    this.slots = new Array<QueueSlot | null>(Math.max(0, n)).fill(null);
    this.deviceQueues = Math.max(0, n);
    this.adminIndices = [];
    for (let i = 0; i < n; i++) {
      const max = t.queueMaxSize(i);
      if (max <= 0) continue;
      this.slots[i] = this.buildQueue(i, max);
    }
    const range = (this.negotiated & F.ADMIN_VQ) !== 0n ? (t.adminQueueRange?.() ?? null) : null;
    if (range === null) return;
    // driver/transport-pci/23: only indices admin_queue_index .. + admin_queue_num - 1;
    // driver/transport-pci/24: as many as asked for, possibly fewer than the device has.
    const count = Math.min(this.opts.adminQueues ?? 0, range.count, 0x10000 - range.first);
    for (let i = range.first; i < range.first + count; i++) {
      const max = t.queueMaxSize(i);
      if (max <= 0) continue;
      while (this.slots.length <= i) this.slots.push(null);
      this.slots[i] = this.buildQueue(i, max);
      this.adminIndices.push(i);
    }
  }

  private buildQueue(index: number, max: number): QueueSlot {
    const t = this.transport;
    const dma = this.opts.dma;
    const packed = (this.negotiated & F.RING_PACKED) !== 0n;
    // Legacy: the queue size is the device's, read-only (4.1.4.8, 4.2.4).
    const size = t.legacy ? max : this.queueSizeFor(index, max);
    const allocs: number[] = [];
    try {
      let addrs: DriverQueueAddresses;
      if (t.legacy) {
        const total = legacySplitRingLayout(size, 0).total;
        const base = dma.alloc(total, LEGACY_QUEUE_ALIGN);
        allocs.push(base);
        addrs = legacySplitRingLayout(size, base);
      } else if (packed) {
        const total = packedRingLayout(size, 0).total;
        const base = dma.alloc(total, 64);
        allocs.push(base);
        addrs = packedRingLayout(size, base);
      } else {
        const total = splitRingLayout(size, 0).total;
        const base = dma.alloc(total, 64);
        allocs.push(base);
        addrs = splitRingLayout(size, base);
      }
      const config: QueueConfig = {
        size,
        descAddr: addrs.descAddr,
        driverAddr: addrs.driverAddr,
        deviceAddr: addrs.deviceAddr,
        features: this.negotiated,
        littleEndian: t.littleEndian,
        index,
      };
      const qopts: { indirectTableAddr?: number; indirectMaxSegments?: number } = {};
      if ((this.negotiated & F.INDIRECT_DESC) !== 0n && this.opts.indirect !== false) {
        const segs = Math.min(this.opts.indirectMaxSegments ?? DEFAULT_INDIRECT_SEGMENTS, size);
        const area = dma.alloc(SplitDriverQueue.indirectAreaSize(size, segs), 16);
        allocs.push(area);
        qopts.indirectTableAddr = area;
        qopts.indirectMaxSegments = segs;
      }
      // Rings start zeroed: the driver queue clears its own areas, the descriptors are scrubbed here.
      t.memory.fill(addrs.descAddr, addrs.deviceAddr - addrs.descAddr);
      const queue = createDriverQueue<number>(t.memory, config, qopts);
      t.setupQueue(index, { size, descAddr: addrs.descAddr, driverAddr: addrs.driverAddr, deviceAddr: addrs.deviceAddr });
      return { queue, addrs, allocs, onUsed: null };
    } catch (e) {
      for (const a of allocs) dma.free(a);
      throw e;
    }
  }

  private releaseQueues(): void {
    for (const s of this.slots) if (s) for (const a of s.allocs) this.opts.dma.free(a);
    this.slots = [];
  }

  /** The driver queue `index`; throws INVALID_ARGUMENT when it was not set up. */
  queue(index: number): DriverQueue<number> {
    const s = this.slots[index];
    if (!s) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `queue ${index} is not set up`);
    return s.queue;
  }

  /**
   * Publishes added buffers and notifies the device when its event suppression asks for it
   * (2.7.13, 2.8.21), with the NOTIFICATION_DATA value when negotiated (2.9).
   */
  kick(index: number): void {
    if (this.suspendedNow) throw new VirtioError(ErrorCode.DEVICE_SUSPENDED, `queue ${index}: no notification while the device is suspended`);
    const s = this.slots[index];
    if (!s || !this.alive) return;
    if (s.queue.kick()) {
      if (this.notificationData) this.transport.notify(index, s.queue.notificationData());
      else this.transport.notify(index);
    }
  }

  /**
   * Sets the callback run when the device used buffers of queue `index` (one callback per queue).
   */
  onUsed(index: number, cb: () => void): void {
    const s = this.slots[index];
    if (!s) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `queue ${index} is not set up`);
    s.onUsed = cb;
  }

  /** Sets the callback run on a configuration change notification. */
  onConfigChange(cb: () => void): void {
    this.configCb = cb;
  }

  private dispatchUsed(index: number): void {
    if (!this.alive) return;
    const cb = this.slots[index]?.onUsed;
    if (cb) cb();
  }

  private dispatchConfig(): void {
    if (!this.alive) return;
    const error = this.needsResetError;
    if (error !== null) {
      // 2.1.2: the device cannot go on; requests in flight will not be answered.
      this.emitStop(DriverStopReason.NEEDS_RESET, -1);
      this.needsResetCb?.(error);
    }
    this.configCb?.();
  }

  /**
   * Reads `len` config bytes consistently: retried until the generation is the same before
   * and after (2.5.1, driver/content/11). Bounded; throws TIMEOUT when it never settles.
   */
  readConfig(offset: number, len: number): Uint8Array {
    const t = this.transport;
    const out = new Uint8Array(len);
    for (let i = 0; i < this.retries; i++) {
      const before = t.configGeneration();
      t.readConfig(offset, out);
      const after = t.configGeneration();
      if (before === after) return out;
    }
    throw new VirtioError(ErrorCode.TIMEOUT, `config generation did not settle after ${this.retries} reads`);
  }

  /**
   * 2.6.1 queue reset (RING_RESET negotiated): resets queue `index` on the device, then sets it
   * up again with fresh rings (driver/content/16) and returns the new driver queue. Buffers in
   * flight on the old queue are dropped; the used callback is kept.
   */
  resetQueue(index: number): DriverQueue<number> {
    const s = this.resettableSlot(index);
    this.transport.resetQueue(index);
    return this.reenableQueue(index, s);
  }

  /**
   * `resetQueue` for a device that may finish the reset later (its teardown waits for an I/O it
   * holds): waits without blocking the event loop until the device reports it done
   * (driver/content/14; PCI and MMIO, others reset synchronously), then frees the old rings
   * (driver/content/15) and sets the queue up again. Rejects with VirtioError TIMEOUT after
   * `opts.timeoutMs` (default 5000), the queue left as it was.
   */
  async resetQueueAsync(index: number, opts: QueueResetWaitOptions = {}): Promise<DriverQueue<number>> {
    const s = this.resettableSlot(index);
    const t = this.transport;
    if (t.resetQueueAsync) await t.resetQueueAsync(index, opts);
    else t.resetQueue(index);
    // The driver reset the device or this queue again meanwhile: nothing of this reset is left to do.
    if (this.slots[index] !== s) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `queue ${index} was reset or torn down while its reset was ongoing`);
    return this.reenableQueue(index, s);
  }

  private resettableSlot(index: number): QueueSlot {
    if ((this.negotiated & F.RING_RESET) === 0n) throw new VirtioError(ErrorCode.FEATURES_REJECTED, 'RING_RESET was not negotiated');
    const s = this.slots[index];
    if (!s) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `queue ${index} is not set up`);
    return s;
  }

  /** The reset of queue `index` completed: its old rings go back, fresh ones are set up. */
  private reenableQueue(index: number, s: QueueSlot): DriverQueue<number> {
    for (const a of s.allocs) this.opts.dma.free(a);
    this.slots[index] = null;
    const max = this.transport.queueMaxSize(index);
    const fresh = this.buildQueue(index, max);
    fresh.onUsed = s.onUsed;
    this.slots[index] = fresh;
    this.emitStop(DriverStopReason.QUEUE_RESET, index);
    return fresh.queue;
  }

  /**
   * Resets the device (status 0) and frees the rings. The context is dead afterwards: a new
   * `VirtioDriver.init` starts over. Buffers in flight are dropped (driver/content/24).
   */
  reset(): void {
    const wasAlive = this.alive;
    this.alive = false;
    try {
      this.transport.setStatus(0);
    } finally {
      this.releaseQueues();
      if (wasAlive) this.emitStop(DriverStopReason.DEVICE_RESET, -1);
    }
  }
}
