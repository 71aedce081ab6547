/**
 * A minimal DeviceCoreApi for the transports' register-level unit tests: it records what the
 * transport asked of it and lets a test fire notifications, without a real device. The real
 * lifecycle lives in src/device/device-core.ts; the transport matrix tests use that one.
 */
import { QueueRegisterFile, queueRefusal, queueSizeProblem, refusalError } from '../device/queue-register-file.js';
import { type DeviceCoreApi, type InterruptSink, type QueueArea, type QueueRefusal, QueueRefusalReason, type QueueRegisters, type SharedMemoryRegion, type VirtioDevice } from '../device/types.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import type { DeviceQueue, QueueConfig } from '../queue/types.js';
import { F } from '../spec/features.js';
import { Status } from '../spec/status.js';
import type { CoreFactory, CoreMode } from './bus.js';

export function stubDevice(
  opts: { deviceId?: number; features?: bigint; queues?: number[]; configSize?: number; sharedMemoryRegions?: readonly SharedMemoryRegion[] } = {},
): VirtioDevice & { config: Uint8Array } {
  const config = new Uint8Array(opts.configSize ?? 16);
  for (let i = 0; i < config.length; i++) config[i] = i + 1;
  return {
    deviceId: opts.deviceId ?? 4,
    offeredFeatures: opts.features ?? F.VERSION_1 | F.RING_RESET | F.NOTIFICATION_DATA,
    queueMaxSizes: opts.queues ?? [256, 128],
    configSize: config.length,
    ...(opts.sharedMemoryRegions ? { sharedMemoryRegions: opts.sharedMemoryRegions } : {}),
    config,
    readConfig(offset, dst) {
      dst.set(config.subarray(offset, offset + dst.length));
    },
    writeConfig(offset, src) {
      config.set(src, offset);
    },
    activate() {},
    onQueueNotify() {},
    reset() {},
  };
}

export class TestCore implements DeviceCoreApi {
  status = 0;
  configGeneration = 0;
  driverFeatures = 0n;
  negotiatedFeatures = 0n;
  readonly numQueues: number;
  readonly notifications: { index: number; data: number | undefined }[] = [];
  readonly enabled: number[] = [];
  readonly resets: number[] = [];
  deviceResets = 0;
  readonly configWrites: { offset: number; width: number; value: number }[] = [];
  /** The queue registers and their rules are the real core's (one rule set for every transport). */
  private readonly regs: QueueRegisterFile;
  /** Refuse FEATURES_OK (to test transports that must report refusal). */
  refuseFeatures = false;

  constructor(
    readonly device: VirtioDevice & { config: Uint8Array },
    readonly memory: GuestMemory,
    readonly sink: InterruptSink,
    readonly mode: CoreMode,
  ) {
    this.numQueues = device.queueMaxSizes.length;
    this.regs = new QueueRegisterFile(device.queueMaxSizes);
  }

  static factory(device: VirtioDevice & { config: Uint8Array }, memory: GuestMemory, made: TestCore[] = []): CoreFactory {
    return (sink, mode) => {
      const c = new TestCore(device, memory, sink, mode);
      made.push(c);
      return c;
    };
  }

  get littleEndian(): boolean {
    return this.mode.littleEndian;
  }

  deviceFeatures(): bigint {
    return this.mode.legacy ? this.device.offeredFeatures & 0xffff_ffffn : this.device.offeredFeatures;
  }
  deviceFeatureWord(select: number): number {
    return Number((this.deviceFeatures() >> BigInt(select * 32)) & 0xffff_ffffn);
  }
  setDriverFeatureWord(select: number, value: number): void {
    if (this.status & Status.FEATURES_OK) return;
    const shift = BigInt(select * 32);
    this.driverFeatures = (this.driverFeatures & ~(0xffff_ffffn << shift)) | (BigInt(value >>> 0) << shift);
    if (this.mode.legacy) this.negotiatedFeatures = this.driverFeatures;
  }
  setDriverFeatures(features: bigint): void {
    this.driverFeatures = features;
  }
  setStatus(value: number): void {
    if (value === 0) {
      this.status = 0;
      this.driverFeatures = 0n;
      this.negotiatedFeatures = 0n;
      this.regs.resetAll();
      this.deviceResets++;
      return;
    }
    if (value & Status.FEATURES_OK && !(this.status & Status.FEATURES_OK)) {
      if (this.refuseFeatures) value &= ~Status.FEATURES_OK;
      else this.negotiatedFeatures = this.driverFeatures;
    }
    this.status = value;
  }
  readConfig(offset: number, width: number): number {
    const b = new Uint8Array(width);
    this.readConfigBytes(offset, b);
    let v = 0;
    for (let i = width - 1; i >= 0; i--) v = v * 256 + b[i]!;
    return v;
  }
  writeConfig(offset: number, width: number, value: number): void {
    this.configWrites.push({ offset, width, value });
    if (offset + width > this.device.configSize) return;
    for (let i = 0; i < width; i++) this.device.config[offset + i] = Math.floor(value / 256 ** i) & 0xff;
  }
  readConfigBytes(offset: number, dst: Uint8Array): void {
    for (let i = 0; i < dst.length; i++) dst[i] = this.device.config[offset + i] ?? 0;
  }
  queueRegisters(index: number): QueueRegisters | null {
    return this.regs.get(index);
  }
  private packed(): boolean {
    const f = this.status & Status.FEATURES_OK || this.mode.legacy ? this.negotiatedFeatures : this.driverFeatures;
    return (f & F.RING_PACKED) !== 0n;
  }
  setQueueSize(index: number, size: number): QueueRefusal | null {
    return this.regs.setSize(index, size, this.packed());
  }
  setQueueAddress(index: number, area: QueueArea, address: number): QueueRefusal | null {
    return this.regs.setAddress(index, area, address);
  }
  setQueueMsixVector(index: number, vector: number): QueueRefusal | null {
    return this.regs.setMsixVector(index, vector);
  }
  /** Like the real core, without the ring check (no device queue is built here). */
  setQueueEnabled(index: number): QueueRefusal | null {
    const r = this.regs.get(index);
    if (!r) return queueRefusal(QueueRefusalReason.NO_QUEUE, `no queue ${index}`);
    if (r.enabled) return null;
    const problem = queueSizeProblem(r.size, this.regs.maxSize(index), this.packed());
    if (problem !== null) return queueRefusal(QueueRefusalReason.VALUE, `queue ${index} ${problem}`);
    this.regs.markEnabled(index);
    this.enabled.push(index);
    return null;
  }
  setQueueLegacyAddress(index: number, address: number, align: number): QueueRefusal | null {
    if (address === 0 && this.regs.get(index)) {
      this.resetQueue(index);
      return null;
    }
    return this.regs.setLegacyRing(index, address, align) ?? this.setQueueEnabled(index);
  }
  enableQueue(index: number): void {
    const refusal = this.setQueueEnabled(index);
    if (refusal) throw refusalError(refusal, false);
  }
  resetQueue(index: number): void {
    if (!this.regs.get(index)) return;
    this.regs.reset(index);
    this.resets.push(index);
  }
  queueResetOngoing(): boolean {
    return false;
  }
  notifyQueue(index: number, data?: number): void {
    this.notifications.push({ index, data });
  }
  queue(_index: number): DeviceQueue | null {
    return null;
  }
  queueConfig(_index: number): QueueConfig | null {
    return null;
  }
}
