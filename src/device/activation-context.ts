import type { GuestMemory } from '../memory/guest-memory.js';
import type { DeviceQueue } from '../queue/types.js';
import type { DeviceCore } from './device-core.js';
import type { DeviceContext } from './types.js';
import type { QueueStats } from './queue-stats.js';

/**
 * The DeviceContext handed to the device at one activation. It goes dead when the core is
 * reset: a device that completes a request late then touches nothing (device/content/8).
 */
export class ActivationContext implements DeviceContext {
  constructor(
    private readonly core: DeviceCore,
    readonly epoch: number,
    readonly features: bigint,
    readonly littleEndian: boolean,
  ) {
    this.notifyUsedNow = core.notifiesNow
      ? (index: number): void => {
          if (this.core.epochNow === this.epoch) this.core.signalUsed(index, true);
        }
      : undefined;
  }

  readonly notifyUsedNow: ((index: number) => void) | undefined;

  get stats(): QueueStats {
    return this.core.stats;
  }

  get memory(): GuestMemory {
    return this.core.memory;
  }

  get live(): boolean {
    return this.core.epochNow === this.epoch;
  }

  queue(index: number): DeviceQueue | null {
    return this.core.epochNow === this.epoch ? this.core.queue(index) : null;
  }

  notifyUsed(index: number): void {
    if (this.core.epochNow === this.epoch) this.core.signalUsed(index);
  }

  notifyConfigChange(): void {
    if (this.core.epochNow === this.epoch) this.core.configChanged();
  }

  needsReset(reason: string, cause?: unknown): void {
    if (this.core.epochNow === this.epoch) this.core.setNeedsReset(reason, cause);
  }
}
