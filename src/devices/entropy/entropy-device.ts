/**
 * 5.4 Entropy Device, device side: fills each device-writable buffer of the request queue with
 * random bytes from `source` (default crypto.randomFillSync).
 */
import { randomFillSync } from 'node:crypto';
import type { DeviceContext, VirtioDevice } from '../../device/types.js';
import { QueueError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { ChainCursor, DescriptorChain } from '../../queue/chain.js';
import type { DeviceQueue } from '../../queue/types.js';
import { DeviceId } from '../../spec/device-id.js';
import { ENTROPY_CONFIG_SIZE, ENTROPY_FEATURES, ENTROPY_REQUESTQ } from '../../spec/entropy.js';
import { F } from '../../spec/features.js';

export interface EntropyDeviceOptions {
  /** Fills `dst` with random bytes. Default: crypto.randomFillSync. */
  source?: (dst: Uint8Array) => void;
  /** Maximum queue size. Default 256. */
  queueSize?: number;
  /** Bytes given per buffer at most (device/entropy/1 lets the device use less). Default 64 KiB. */
  maxBytesPerBuffer?: number;
  logger?: Logger;
}

export class EntropyDevice implements VirtioDevice {
  readonly deviceId = DeviceId.ENTROPY;
  /** Requests complete in order, synchronously: IN_ORDER holds. */
  readonly offeredFeatures =
    ENTROPY_FEATURES | F.VERSION_1 | F.INDIRECT_DESC | F.EVENT_IDX | F.RING_PACKED | F.IN_ORDER | F.RING_RESET;
  readonly queueMaxSizes: readonly number[];
  readonly configSize = ENTROPY_CONFIG_SIZE;

  private readonly source: ((dst: Uint8Array) => void) | null;
  private readonly maxBytes: number;
  private readonly log: Logger | undefined;
  private ctx: DeviceContext | null = null;
  private chain: DescriptorChain | null = null;
  private readonly writer = new ChainCursor(true);
  private busy = false;
  private again = false;
  private readonly fill = (b: Uint8Array, o: number, n: number): void => {
    if (this.source) this.source(b.subarray(o, o + n));
    else randomFillSync(b, o, n);
  };

  constructor(opts: EntropyDeviceOptions = {}) {
    const qs = opts.queueSize ?? 256;
    if (!Number.isInteger(qs) || qs < 1 || qs > 32768) throw new RangeError(`queueSize ${qs} not in 1..32768`);
    this.queueMaxSizes = [qs];
    this.source = opts.source ?? null;
    this.maxBytes = opts.maxBytesPerBuffer ?? 64 * 1024;
    if (!Number.isInteger(this.maxBytes) || this.maxBytes < 1) throw new RangeError('bad maxBytesPerBuffer');
    this.log = opts.logger;
  }

  readConfig(_offset: number, dst: Uint8Array): void {
    dst.fill(0); // 5.4.4: no configuration space
  }

  writeConfig(): void {}

  activate(ctx: DeviceContext): void {
    this.ctx = ctx;
    // A chain may be as long as the queue (2.7.5.3.1), so size the chain for that.
    this.chain = new DescriptorChain(ctx.memory, Math.max(ctx.queue(ENTROPY_REQUESTQ)?.size ?? 0, this.queueMaxSizes[0]!));
    this.onQueueNotify(ENTROPY_REQUESTQ);
  }

  reset(): void {
    this.ctx = null;
    this.chain = null;
  }

  resetQueue(): void {}

  onQueueNotify(index: number): void {
    const ctx = this.ctx;
    const chain = this.chain;
    if (index !== ENTROPY_REQUESTQ || !ctx || !chain) return;
    const vq = ctx.queue(index);
    if (!vq) return;
    if (this.busy) {
      this.again = true;
      return;
    }
    this.busy = true;
    try {
      this.drain(vq, chain);
    } catch (e) {
      const reason = e instanceof QueueError ? e.message : `unexpected: ${(e as Error)?.message ?? String(e)}`;
      this.log?.error(`virtio-rng: ${reason}`);
      ctx.needsReset(reason);
      return;
    } finally {
      this.busy = false;
    }
    ctx.notifyUsed(index);
  }

  private drain(vq: DeviceQueue, chain: DescriptorChain): void {
    for (;;) {
      this.again = false;
      vq.disableNotification();
      // Bounded: a pass ends when the ring is empty; each buffer is consumed once.
      while (vq.pop(chain)) {
        let written = 0;
        // driver/entropy/1: readable buffers are a driver error; they are ignored (never read).
        if (chain.fault === null && chain.writableBytes > 0) {
          written = this.writer.reset(chain).spans(Math.min(chain.writableBytes, this.maxBytes), this.fill);
        }
        vq.push(chain, written);
      }
      if (!vq.enableNotification() && !this.again) return;
    }
  }
}
