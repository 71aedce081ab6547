/**
 * The queue registers of one device and the rules for writing them, shared by every transport
 * (PCI common configuration, MMIO registers, CCW SET_VQ, in-process set-up) through the device
 * core: the rules live here once, so the same write gets the same answer on every bus.
 *
 * Rules (2.6 Virtqueues): the size is 1..QueueSizeMax, a power of two for a split ring (2.7,
 * driver/transport-pci/16) and any value for a packed ring (2.8); the fields of an enabled queue
 * are frozen until the queue or the device is reset (4.1.4.3.2, driver/transport-mmio/10);
 * reset puts every field back to its default (size = maximum, 4.1.4.3; enable 0,
 * device/transport-pci/19; no MSI-X vector, 4.1.5.1.2.1). Writes are never on a hot path.
 */
import { ErrorCode, VirtioError } from '../errors.js';
import { legacySplitRingLayout } from '../queue/split-layout.js';
import { MAX_QUEUE_SIZE } from '../spec/ring.js';
import { Status } from '../spec/status.js';
import { type DeviceCoreApi, type QueueArea, type QueueRefusal, QueueRefusalReason, type QueueRegisters } from './types.js';

const NO_VECTOR = 0xffff;

interface MutableQueueRegisters {
  size: number;
  descAddr: number;
  driverAddr: number;
  deviceAddr: number;
  enabled: boolean;
  msixVector: number;
  notifyData: number;
}

/** A refusal (allocated only on the refused path). */
export function queueRefusal(reason: QueueRefusalReason, message: string): QueueRefusal {
  return { reason, message };
}

/**
 * The VirtioError for a refusal, for callers that throw: INVALID_ARGUMENT (no such queue),
 * DEVICE_NEEDS_RESET or STATUS_INVALID (device status), else QUEUE_BAD_CONFIG.
 */
export function refusalError(refusal: QueueRefusal, needsReset: boolean): VirtioError {
  let code: ErrorCode = ErrorCode.QUEUE_BAD_CONFIG;
  if (refusal.reason === QueueRefusalReason.NO_QUEUE) code = ErrorCode.INVALID_ARGUMENT;
  else if (refusal.reason === QueueRefusalReason.STATE) code = needsReset ? ErrorCode.DEVICE_NEEDS_RESET : ErrorCode.STATUS_INVALID;
  return new VirtioError(code, refusal.message);
}

/**
 * Programs queue `index` (size, the three ring addresses) and enables it through the core's
 * setters, as an in-process transport does in one step; throws the refusal (`refusalError`).
 */
export function setUpQueue(core: DeviceCoreApi, index: number, ring: { readonly size: number; readonly descAddr: number; readonly driverAddr: number; readonly deviceAddr: number }): void {
  const refusal =
    core.setQueueSize(index, ring.size) ??
    core.setQueueAddress(index, 'descAddr', ring.descAddr) ??
    core.setQueueAddress(index, 'driverAddr', ring.driverAddr) ??
    core.setQueueAddress(index, 'deviceAddr', ring.deviceAddr) ??
    core.setQueueEnabled(index);
  if (refusal !== null) throw refusalError(refusal, (core.status & (Status.FAILED | Status.DEVICE_NEEDS_RESET)) !== 0);
}

/** 2.6: a queue size the device may take: 1..max, a power of two unless the ring is packed. */
export function queueSizeProblem(size: number, max: number, packed: boolean): string | null {
  if (max === 0) return 'the queue is not available';
  if (!Number.isInteger(size) || size < 1 || size > max) return `size ${size} not in 1..${max}`;
  // 2.7: "Queue Size value is always a power of 2" (split ring); 2.8: not so for packed.
  if (!packed && (size & (size - 1)) !== 0) return `size ${size} is not a power of two (split ring, 2.7)`;
  return null;
}

/**
 * The queue registers of a device (2.6: size, the three ring addresses, enable, MSI-X vector,
 * notification data) with the rules every transport shares: each setter returns null when the write
 * took effect, or a QueueRefusal.
 */
export class QueueRegisterFile {
  /** Number of queues. */
  readonly length: number;
  private readonly regs: MutableQueueRegisters[] = [];
  private readonly max: number[] = [];

  /**
   * `notifyDataOf`: each queue's queue_notif_config_data (VIRTIO_F_NOTIF_CONFIG_DATA, PCI),
   * 16 bits; default the queue index, the spec's "trivial case" (transport-pci.tex).
   */
  constructor(
    maxSizes: readonly number[],
    private readonly notifyDataOf: (index: number) => number = (i) => i,
  ) {
    this.length = maxSizes.length;
    for (let i = 0; i < maxSizes.length; i++) {
      const m = maxSizes[i]!;
      // 2.7 / 2.8: no queue holds more than 32768 entries; a bad maximum means no queue.
      this.max.push(Number.isInteger(m) && m > 0 ? Math.min(m, MAX_QUEUE_SIZE) : 0);
      this.regs.push({ size: 0, descAddr: 0, driverAddr: 0, deviceAddr: 0, enabled: false, msixVector: NO_VECTOR, notifyData: i });
      this.reset(i);
    }
  }

  /** The queue's maximum size (0: not available, or no such queue). */
  maxSize(index: number): number {
    return this.max[index] ?? 0;
  }

  /** The registers of queue `index`, or null when there is no such queue. */
  get(index: number): QueueRegisters | null {
    return Number.isInteger(index) && index >= 0 && index < this.length ? this.regs[index]! : null;
  }

  /** The registers of `index` if they may be written now, else why not. */
  private writable(index: number, what: string): MutableQueueRegisters | QueueRefusal {
    const r = Number.isInteger(index) && index >= 0 && index < this.length ? this.regs[index]! : null;
    if (!r) return queueRefusal(QueueRefusalReason.NO_QUEUE, `no queue ${index}`);
    if (r.enabled) return queueRefusal(QueueRefusalReason.QUEUE_ENABLED, `queue ${index} ${what} written while the queue is enabled`);
    return r;
  }

  /** Sets queue_size: 1 to the maximum, a power of two for a split ring; refused while enabled. */
  setSize(index: number, size: number, packed: boolean): QueueRefusal | null {
    const r = this.writable(index, 'size');
    if ('reason' in r) return r;
    const problem = queueSizeProblem(size, this.maxSize(index), packed);
    if (problem !== null) return queueRefusal(QueueRefusalReason.VALUE, `queue ${index} ${problem}`);
    r.size = size;
    return null;
  }

  /** Sets one ring address (a non-negative safe integer); refused while enabled. */
  setAddress(index: number, area: QueueArea, address: number): QueueRefusal | null {
    const r = this.writable(index, area);
    if ('reason' in r) return r;
    // No guest memory lies beyond 2^53 (the bus halves joined to -1 say so): refused here.
    if (!Number.isSafeInteger(address) || address < 0) return queueRefusal(QueueRefusalReason.VALUE, `queue ${index} ${area} ${address} is not a guest address`);
    r[area] = address;
    return null;
  }

  /** Sets the queue's MSI-X vector (0 to 0xffff; NO_VECTOR is 0xffff). */
  setMsixVector(index: number, vector: number): QueueRefusal | null {
    const r = this.get(index) as MutableQueueRegisters | null;
    if (!r) return queueRefusal(QueueRefusalReason.NO_QUEUE, `no queue ${index}`);
    if (!Number.isInteger(vector) || vector < 0 || vector > NO_VECTOR) return queueRefusal(QueueRefusalReason.VALUE, `queue ${index} vector ${vector}`);
    r.msixVector = vector;
    return null;
  }

  /** Sets the three ring addresses at once, or none of them (legacy contiguous ring, CCW SET_VQ). */
  setRing(index: number, descAddr: number, driverAddr: number, deviceAddr: number): QueueRefusal | null {
    const r = this.writable(index, 'ring address');
    if ('reason' in r) return r;
    for (const a of [descAddr, driverAddr, deviceAddr]) {
      if (!Number.isSafeInteger(a) || a < 0) return queueRefusal(QueueRefusalReason.VALUE, `queue ${index} ring address ${a} is not a guest address`);
    }
    r.descAddr = descAddr;
    r.driverAddr = driverAddr;
    r.deviceAddr = deviceAddr;
    return null;
  }

  /**
   * Legacy contiguous ring (4.1.5.4, 4.2.4, 4.3.2.5.1) of the current size at `address`, the
   * used ring aligned to `align`: the three addresses set, or none.
   */
  setLegacyRing(index: number, address: number, align: number): QueueRefusal | null {
    const r = this.writable(index, 'address');
    if ('reason' in r) return r;
    if (!Number.isInteger(align) || align < 1 || (align & (align - 1)) !== 0) return queueRefusal(QueueRefusalReason.VALUE, `queue ${index} align ${align} is not a power of two`);
    try {
      const l = legacySplitRingLayout(r.size, address, align);
      return this.setRing(index, l.descAddr, l.driverAddr, l.deviceAddr);
    } catch (e) {
      return queueRefusal(QueueRefusalReason.RING, `queue ${index}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  /** The core enabled the queue (after checking the ring). */
  markEnabled(index: number): void {
    const r = this.get(index) as MutableQueueRegisters | null;
    if (r) r.enabled = true;
  }

  /** Back to the defaults of a device or queue reset. */
  reset(index: number): void {
    const r = this.regs[index];
    if (!r) return;
    r.size = this.max[index]!;
    r.descAddr = 0;
    r.driverAddr = 0;
    r.deviceAddr = 0;
    r.enabled = false;
    r.msixVector = NO_VECTOR;
    r.notifyData = this.notifyDataOf(index) & 0xffff;
  }

  /** Resets every queue's registers (a device reset). */
  resetAll(): void {
    for (let i = 0; i < this.length; i++) this.reset(i);
  }
}
