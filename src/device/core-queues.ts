/**
 * The virtqueues of a DeviceCore (2.6): the queue registers the driver programs, the checks that
 * refuse a queue before it is enabled, and the live DeviceQueue of each enabled queue. The core
 * owns the lifecycle (status, features, activation) and reaches its queues through this; the
 * core's public queue methods delegate here.
 */
import type { GuestMemory } from '../memory/guest-memory.js';
import { createDeviceQueue } from '../queue/create-queue.js';
import type { DeviceQueue, QueueConfig } from '../queue/types.js';
import { F } from '../spec/features.js';
import { LEGACY_QUEUE_ALIGN } from '../spec/ring.js';
import { Status, statusToString } from '../spec/status.js';
import { QueueRegisterFile, queueRefusal, queueSizeProblem, refusalError } from './queue-register-file.js';
import { type QueueArea, type QueueRefusal, QueueRefusalReason, type QueueRegisters } from './types.js';

/** What the queues read of their core. */
export interface CoreQueuesHost {
  /** The guest memory queues are built over. */
  readonly memory: GuestMemory;
  /** The device status byte (2.1). */
  readonly status: number;
  /** Whether the legacy interface is in use (legacy ring layout, guest-endian fields). */
  readonly legacy: boolean;
  /** Whether ring fields are little-endian (false only for a legacy big-endian guest). */
  readonly littleEndian: boolean;
  /** The features accepted with FEATURES_OK (2.2). */
  readonly negotiatedFeatures: bigint;
  /** Features in force for config and ring format: negotiated, or accepted so far. */
  configFeatures(): bigint;
  /** Whether the device is active (a live DeviceContext): an enabled queue goes live at once. */
  readonly active: boolean;
  /** The device's own queue reset (2.6.1), after the core forgot the queue; a promise while it is ongoing. */
  deviceResetQueue(index: number): void | Promise<void>;
}

export class CoreQueues {
  readonly regs: QueueRegisterFile;
  /** The live queue of each index (null: disabled, or not active yet). */
  readonly live: (DeviceQueue | null)[];
  /** Queue resets the device has not finished (2.6.1): index to the reset's own token. */
  private readonly resetsOngoing = new Map<number, object>();

  constructor(
    maxSizes: readonly number[],
    notifyDataOf: ((index: number) => number) | undefined,
    private readonly host: CoreQueuesHost,
  ) {
    this.regs = new QueueRegisterFile(maxSizes, notifyDataOf);
    this.live = new Array<DeviceQueue | null>(maxSizes.length).fill(null);
  }

  registers(index: number): QueueRegisters | null {
    return this.regs.get(index);
  }

  /** Whether the ring format in force (or accepted so far, before FEATURES_OK) is packed. */
  private packedRing(): boolean {
    return (this.host.configFeatures() & F.RING_PACKED) !== 0n;
  }

  setSize(index: number, size: number): QueueRefusal | null {
    return this.regs.setSize(index, size, this.packedRing());
  }

  setAddress(index: number, area: QueueArea, address: number): QueueRefusal | null {
    return this.regs.setAddress(index, area, address);
  }

  setMsixVector(index: number, vector: number): QueueRefusal | null {
    return this.regs.setMsixVector(index, vector);
  }

  setLegacyAddress(index: number, address: number, align: number): QueueRefusal | null {
    if (address === 0 && this.regs.get(index)) {
      this.reset(index);
      return null;
    }
    return this.regs.setLegacyRing(index, address, align) ?? this.enableRefusal(index);
  }

  /** The ring configuration of queue `index` from its registers and the negotiated features. */
  configFor(index: number): QueueConfig {
    const r = this.regs.get(index)!;
    return {
      size: r.size,
      descAddr: r.descAddr,
      driverAddr: r.driverAddr,
      deviceAddr: r.deviceAddr,
      features: this.host.negotiatedFeatures,
      littleEndian: this.host.littleEndian,
      index,
    };
  }

  config(index: number): QueueConfig | null {
    return this.registers(index) ? this.configFor(index) : null;
  }

  /**
   * Enables queue `index` with its registers. The ring is checked now (size, alignment, inside
   * guest memory) so the transport can refuse the access; the device sees it at DRIVER_OK, or at
   * once when the device is already running (re-enable after a queue reset, 2.6.1.2). Enabling
   * an enabled queue is harmless. Returns null, or why the queue stays disabled.
   */
  enableRefusal(index: number): QueueRefusal | null {
    const r = this.regs.get(index);
    if (!r) return queueRefusal(QueueRefusalReason.NO_QUEUE, `no queue ${index}`);
    if (r.enabled) return null;
    // driver/transport-pci/20, driver/transport-mmio/14: not before the queue reset completed.
    if (this.resetsOngoing.has(index)) return queueRefusal(QueueRefusalReason.STATE, `queue ${index} enabled while its reset is ongoing`);
    const status = this.host.status;
    if (status & (Status.FAILED | Status.DEVICE_NEEDS_RESET)) {
      return queueRefusal(QueueRefusalReason.STATE, `queue ${index} enabled while ${statusToString(status)}`);
    }
    if (!this.host.legacy && !(status & Status.FEATURES_OK)) {
      // 3.1.1 step 7 comes after FEATURES_OK: the ring format is not known before.
      return queueRefusal(QueueRefusalReason.STATE, `queue ${index} enabled before FEATURES_OK`);
    }
    // The size was checked when written; the features may have changed since (2.7 / 2.8).
    const problem = queueSizeProblem(r.size, this.regs.maxSize(index), this.packedRing());
    if (problem !== null) return queueRefusal(QueueRefusalReason.VALUE, `queue ${index} ${problem}`);
    let q: DeviceQueue;
    try {
      // Validates alignment and placement in guest memory.
      q = createDeviceQueue(this.host.memory, this.configFor(index));
    } catch (e) {
      return queueRefusal(QueueRefusalReason.RING, `queue ${index}: ${e instanceof Error ? e.message : String(e)}`);
    }
    this.regs.markEnabled(index);
    if (this.host.active) this.live[index] = q;
    return null;
  }

  /** `enableRefusal` as an exception (see DeviceCore.enableQueue). */
  enable(index: number): void {
    const refusal = this.enableRefusal(index);
    if (refusal !== null) throw refusalError(refusal, (this.host.status & (Status.FAILED | Status.DEVICE_NEEDS_RESET)) !== 0);
  }

  /** Legacy queue address form (see DeviceCore.setQueuePfn). */
  setPfn(index: number, pfn: number, pageSize = LEGACY_QUEUE_ALIGN, align = LEGACY_QUEUE_ALIGN): void {
    if (pfn !== 0 && this.regs.get(index)?.enabled) this.reset(index);
    const refusal = this.setLegacyAddress(index, pfn * pageSize, align);
    if (refusal !== null) throw refusalError(refusal, false);
  }

  /** Device reset: every queue's registers to their defaults, no queue live. */
  resetAll(): void {
    this.resetsOngoing.clear();
    for (let i = 0; i < this.live.length; i++) {
      this.regs.reset(i);
      this.live[i] = null;
    }
  }

  /**
   * Activation: every enabled queue is built now (the features are final and the rings must be
   * valid). Stops at the first that cannot be, reporting it, and returns false.
   */
  buildEnabled(failed: (index: number, e: unknown) => void): boolean {
    for (let i = 0; i < this.live.length; i++) {
      this.live[i] = null;
      if (!this.regs.get(i)!.enabled) continue;
      try {
        this.live[i] = createDeviceQueue(this.host.memory, this.configFor(i));
      } catch (e) {
        failed(i, e);
        return false;
      }
    }
    return true;
  }

  /**
   * Guest memory replaced (already in the host): live queues go on over it at the positions
   * they had reached; a queue that does not fit goes dead and is reported.
   *
   * Each queue keeps its object (`rebind`): the chains a device still holds (popped, not yet
   * completed: an asynchronous backend) were popped from it, and complete onto it, so their used
   * entries go to the ring in the new memory, once, and the queue's in-flight accounting (split
   * indices, packed descriptor counts per buffer) still knows them. A new object built from
   * `state()` would not: the queue server stops the old one when it sees the new one (those
   * completions are dropped, the driver waits for them forever) or, before it does, they are
   * written through the old object at a used position the new one writes again. Memory moving
   * under the device is no error of the device (DEVICE_NEEDS_RESET, 2.1, is for errors it
   * cannot recover from): the buffers are returned in the used ring as always (2.7.8, 2.8.6).
   * A chain's own data accesses go through the GuestMemory it was popped from (`chain.memory`),
   * as on a vhost-user back-end, which keeps that memory mapped until the chain is used.
   */
  moveTo(memory: GuestMemory, inPlace: boolean, failed: (index: number, e: unknown) => void): void {
    for (let i = 0; i < this.live.length; i++) {
      const old = this.live[i];
      if (!old) continue;
      try {
        if (old.rebind) {
          // In place (v86's RAM buffer grew): fresh views of the same GuestMemory; otherwise
          // the views of the new one.
          if (inPlace) old.rebind();
          else old.rebind(memory);
          continue;
        }
        // A queue that cannot follow the memory itself: a new object at the same position.
        const q = createDeviceQueue(memory, this.configFor(i));
        q.setState(old.state());
        this.live[i] = q;
      } catch (e) {
        this.live[i] = null;
        failed(i, e);
      }
    }
  }

  /**
   * 2.6.1 queue reset: the device stops using the queue, forgets its state
   * (device/content/10, device/content/11), and its registers return to their defaults.
   */
  reset(index: number): void {
    if (!this.registers(index)) return;
    const wasLive = this.live[index] !== null;
    this.live[index] = null;
    this.regs.reset(index);
    if (!wasLive && !this.host.active) return;
    const teardown = this.host.deviceResetQueue(index);
    if (teardown === undefined) return;
    // The device finishes later: the reset stays ongoing until then (2.6.1). A device reset
    // in between (resetAll) ends it at once; the token keeps a stale settlement from ending a
    // later reset of the same queue.
    const token = {};
    this.resetsOngoing.set(index, token);
    const done = (): void => {
      if (this.resetsOngoing.get(index) === token) this.resetsOngoing.delete(index);
    };
    teardown.then(done, done);
  }

  /** Whether the device's reset of queue `index` has not finished yet. */
  resetOngoing(index: number): boolean {
    return this.resetsOngoing.has(index);
  }
}
