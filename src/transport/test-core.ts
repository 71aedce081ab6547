/**
 * A minimal DeviceCoreApi for the transports' register-level unit tests: it records what the
 * transport asked of it and lets a test fire notifications, without a real device. The real
 * lifecycle lives in src/device/device-core.ts; the transport matrix tests use that one.
 */
import type { DeviceCoreApi, InterruptSink, QueueRegisters, VirtioDevice } from '../device/types.js';
import { ErrorCode, VirtioError } from '../errors.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import type { DeviceQueue, QueueConfig } from '../queue/types.js';
import { F } from '../spec/features.js';
import { Status } from '../spec/status.js';
import type { CoreFactory, CoreMode } from './bus.js';

const NO_VECTOR = 0xffff;

export function stubDevice(opts: { deviceId?: number; features?: bigint; queues?: number[]; configSize?: number } = {}): VirtioDevice & { config: Uint8Array } {
  const config = new Uint8Array(opts.configSize ?? 16);
  for (let i = 0; i < config.length; i++) config[i] = i + 1;
  return {
    deviceId: opts.deviceId ?? 4,
    offeredFeatures: opts.features ?? F.VERSION_1 | F.RING_RESET | F.NOTIFICATION_DATA,
    queueMaxSizes: opts.queues ?? [256, 128],
    configSize: config.length,
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
  private regs: QueueRegisters[];
  /** Refuse FEATURES_OK (to test transports that must report refusal). */
  refuseFeatures = false;

  constructor(
    readonly device: VirtioDevice & { config: Uint8Array },
    readonly memory: GuestMemory,
    readonly sink: InterruptSink,
    readonly mode: CoreMode,
  ) {
    this.numQueues = device.queueMaxSizes.length;
    this.regs = this.freshRegs();
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

  private freshRegs(): QueueRegisters[] {
    return this.device.queueMaxSizes.map((max, i) => ({
      size: max,
      descAddr: 0,
      driverAddr: 0,
      deviceAddr: 0,
      enabled: false,
      msixVector: NO_VECTOR,
      notifyData: i,
    }));
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
      this.regs = this.freshRegs();
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
    return this.regs[index] ?? null;
  }
  enableQueue(index: number): void {
    const r = this.regs[index];
    if (!r) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'no queue');
    if (!this.negotiatedFeatures && !this.mode.legacy && (r.size & (r.size - 1)) !== 0) {
      throw new VirtioError(ErrorCode.QUEUE_BAD_CONFIG, 'size');
    }
    r.enabled = true;
    this.enabled.push(index);
  }
  resetQueue(index: number): void {
    const r = this.regs[index];
    if (!r) return;
    r.enabled = false;
    this.resets.push(index);
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
