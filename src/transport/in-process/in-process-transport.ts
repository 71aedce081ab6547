/**
 * A DriverTransport straight over a DeviceCore in the same process: no registers, each driver
 * operation is the matching core call. Used by the loopback test helper, the demo and device
 * tests.
 *
 * Interrupts (used-buffer and configuration change notifications) are delivered as a microtask
 * by default, as an interrupt arrives after the device's write returns: the device is never
 * re-entered from inside its own `onQueueNotify`. Notifications raised while one is pending
 * are coalesced (one callback per queue per delivery round), like a level-triggered line.
 * `interrupts: 'sync'` delivers them inside the device's call instead (for tests that want
 * to observe re-entrance).
 */
import { DeviceCore } from '../../device/device-core.js';
import { setUpQueue } from '../../device/queue-register-file.js';
import type { InterruptSink, VirtioDevice } from '../../device/types.js';
import { DmaAllocator } from '../../driver/dma-allocator.js';
import type { DriverInterruptHandler, DriverQueueAddresses, DriverTransport } from '../../driver/types.js';
import { ErrorCode, VirtioError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { GuestMemory } from '../../memory/guest-memory.js';

/**
 * How an in-process device's notifications reach the driver: in a microtask (as an interrupt
 * arrives after the access that caused it) or synchronously.
 */
export type InterruptDelivery = 'microtask' | 'sync';

/** The interrupt side of an in-process transport: the core's InterruptSink. */
class InProcessInterrupts implements InterruptSink {
  handler: DriverInterruptHandler | null = null;
  /** Counts, for tests. */
  usedCount = 0;
  configCount = 0;
  private pendingUsed: Uint8Array;
  private pendingList: Uint16Array;
  private pendingN = 0;
  private pendingConfig = false;
  private scheduled = false;
  private readonly flushFn = (): void => this.flush();

  constructor(
    numQueues: number,
    private readonly mode: InterruptDelivery,
  ) {
    this.pendingUsed = new Uint8Array(Math.max(1, numQueues));
    this.pendingList = new Uint16Array(Math.max(1, numQueues));
  }

  usedBuffer(queueIndex: number): void {
    this.usedCount++;
    if (this.mode === 'sync') {
      this.handler?.used(queueIndex);
      return;
    }
    if (queueIndex < 0 || queueIndex >= this.pendingUsed.length) return;
    if (this.pendingUsed[queueIndex] === 0) {
      this.pendingUsed[queueIndex] = 1;
      this.pendingList[this.pendingN++] = queueIndex;
    }
    this.schedule();
  }

  configChange(): void {
    this.configCount++;
    if (this.mode === 'sync') {
      this.handler?.configChange();
      return;
    }
    this.pendingConfig = true;
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(this.flushFn);
  }

  private flush(): void {
    this.scheduled = false;
    const h = this.handler;
    if (this.pendingConfig) {
      this.pendingConfig = false;
      h?.configChange();
    }
    // Handlers may raise more; those land in a fresh round (a new microtask).
    const n = this.pendingN;
    this.pendingN = 0;
    for (let i = 0; i < n; i++) {
      const q = this.pendingList[i]!;
      this.pendingUsed[q] = 0;
    }
    for (let i = 0; i < n; i++) h?.used(this.pendingList[i]!);
  }
}

/**
 * A DriverTransport wired straight to a DeviceCore in the same thread: no registers, each driver
 * operation is the core's call.
 */
export class InProcessTransport implements DriverTransport {
  readonly legacy: boolean;
  readonly littleEndian: boolean;
  private readonly irq: InProcessInterrupts;

  /** Use `connectInProcess`: the core must send its interrupts to this transport's sink. */
  constructor(
    /** The device's core. */
    readonly core: DeviceCore,
    irq: InterruptSink,
  ) {
    if (!(irq instanceof InProcessInterrupts)) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'use connectInProcess');
    this.irq = irq;
    this.legacy = core.legacy;
    this.littleEndian = core.littleEndian;
  }

  get memory(): GuestMemory {
    return this.core.memory;
  }
  get deviceId(): number {
    return this.core.device.deviceId;
  }
  /** Interrupts sent by the device so far (used, config). */
  get interruptCounts(): {
    /** Used buffer notifications, all queues together (before any coalescing into callbacks). */
    used: number;
    /** Configuration change notifications. */
    config: number;
  } {
    return { used: this.irq.usedCount, config: this.irq.configCount };
  }

  getStatus(): number {
    return this.core.status;
  }
  setStatus(value: number): void {
    this.core.setStatus(value);
  }
  getDeviceFeatures(): bigint {
    return this.core.deviceFeatures();
  }
  setDriverFeatures(features: bigint): void {
    this.core.setDriverFeatures(features);
  }
  configGeneration(): number {
    return this.core.configGeneration;
  }
  readConfig(offset: number, dst: Uint8Array): void {
    this.core.readConfigBytes(offset, dst);
  }
  writeConfig(offset: number, src: Uint8Array): void {
    this.core.writeConfigBytes(offset, src);
  }
  numQueues(): number {
    return this.core.numQueues;
  }
  queueMaxSize(index: number): number {
    return this.core.device.queueMaxSizes[index] ?? 0;
  }
  setupQueue(index: number, addrs: DriverQueueAddresses): void {
    setUpQueue(this.core, index, addrs);
  }
  resetQueue(index: number): void {
    this.core.resetQueue(index);
  }
  notify(index: number, data?: number): void {
    this.core.notifyQueue(index, data);
  }
  setInterruptHandler(h: DriverInterruptHandler): void {
    this.irq.handler = h;
  }
  /** The device's error behind DEVICE_NEEDS_RESET (the core keeps what the device threw). */
  deviceError(): VirtioError | null {
    return this.core.needsResetError;
  }
}

/** How connectInProcess builds the device's core and guest memory. */
export interface ConnectInProcessOptions {
  /** Guest memory size in bytes (default 16 MiB); ignored when `memory` is given. */
  memorySize?: number;
  /** An existing guest memory to use instead of a new one. */
  memory?: GuestMemory;
  /** Transport bits the core offers (default TRANSPORT_FEATURES_SUPPORTED). */
  features?: bigint;
  /** Serve the legacy interface (split rings, legacy layout, no FEATURES_OK). */
  legacy?: boolean;
  /** Legacy only: false for a big-endian guest. */
  littleEndian?: boolean;
  /** Notification delivery (default 'microtask'). */
  interrupts?: InterruptDelivery;
  /** Where the device core logs. */
  logger?: Logger;
  /** Start of the driver's DMA area (default 0x1000: page 0 stays unused). */
  dmaBase?: number;
}

/** A device core and an InProcessTransport to drive it, over one guest memory. */
export interface InProcessConnection {
  /** The device's core. */
  readonly core: DeviceCore;
  /** The transport for VirtioDriver. */
  readonly transport: InProcessTransport;
  /** The guest memory. */
  readonly memory: GuestMemory;
  /** An allocator of that memory for the driver. */
  readonly dma: DmaAllocator;
}

/** Builds a DeviceCore for `device` and a DriverTransport wired straight to it. */
export function connectInProcess(device: VirtioDevice, opts: ConnectInProcessOptions = {}): InProcessConnection {
  const memory = opts.memory ?? GuestMemory.allocate(opts.memorySize ?? 16 << 20);
  const irq = new InProcessInterrupts(device.queueMaxSizes.length, opts.interrupts ?? 'microtask');
  const coreOpts: ConstructorParameters<typeof DeviceCore>[1] = { memory, interrupts: irq, legacy: opts.legacy ?? false, littleEndian: opts.littleEndian ?? true };
  if (opts.features !== undefined) coreOpts.transportFeatures = opts.features;
  if (opts.logger) coreOpts.logger = opts.logger;
  const core = new DeviceCore(device, coreOpts);
  const transport = new InProcessTransport(core, irq);
  return { core, transport, memory, dma: dmaFor(memory, opts.dmaBase ?? 0x1000) };
}

/** A DMA allocator over the largest region of `memory`, from `minBase` on. */
export function dmaFor(memory: GuestMemory, minBase = 0x1000): DmaAllocator {
  let best: { start: number; end: number } | null = null;
  for (const r of memory.regionSpecs()) {
    const start = Math.max(r.guestBase, minBase);
    const end = r.guestBase + r.bytes.length;
    if (end > start && (best === null || end - start > best.end - best.start)) best = { start, end };
  }
  if (!best) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'guest memory has no room for DMA');
  return new DmaAllocator(best.start, best.end - best.start);
}
