/**
 * The DriverContext a VirtioDriver hands to the device-type driver attached to it (BlkDriver,
 * EntropyDriver, ...): a view of the driver's memory, negotiated features, queues, notifications
 * and configuration access, with the Device Suspend rule on config writes (driver/content/29).
 * Split from virtio-driver.ts, which creates one per VirtioDriver.
 */
import { ErrorCode, VirtioError } from '../errors.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import type { DriverQueue } from '../queue/types.js';
import type { DmaAllocator } from './dma-allocator.js';
import type { DriverContext, DriverStopEvent } from './types.js';
import type { VirtioDriver } from './virtio-driver.js';

/** The DriverContext of one VirtioDriver (its `context`). */
export class DriverContextImpl implements DriverContext {
  constructor(private readonly d: VirtioDriver) {}
  get deviceId(): number {
    return this.d.transport.deviceId;
  }
  get memory(): GuestMemory {
    return this.d.transport.memory;
  }
  get features(): bigint {
    return this.d.features;
  }
  get littleEndian(): boolean {
    return this.d.transport.littleEndian;
  }
  get dma(): DmaAllocator {
    return this.d.dma;
  }
  get numQueues(): number {
    return this.d.numQueues;
  }
  queue(index: number): DriverQueue<number> {
    return this.d.queue(index);
  }
  kick(index: number): void {
    this.d.kick(index);
  }
  onUsed(index: number, cb: () => void): void {
    this.d.onUsed(index, cb);
  }
  onConfigChange(cb: () => void): void {
    this.d.onConfigChange(cb);
  }
  readConfig(offset: number, len: number): Uint8Array {
    return this.d.readConfig(offset, len);
  }
  get configSize(): number | null {
    return this.d.transport.configSize?.() ?? null;
  }
  writeConfig(offset: number, src: Uint8Array): void {
    // driver/content/29: no configuration change while the device is suspended.
    if (this.d.suspended) throw new VirtioError(ErrorCode.DEVICE_SUSPENDED, 'no configuration write while the device is suspended');
    this.d.transport.writeConfig(offset, src);
  }
  get suspended(): boolean {
    return this.d.suspended;
  }
  onStop(listener: (event: DriverStopEvent) => void): () => void {
    return this.d.onStop(listener);
  }
}
