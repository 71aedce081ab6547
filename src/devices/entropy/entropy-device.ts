/**
 * 5.4 Entropy Device, device side: fills each device-writable buffer of the request queue with
 * random bytes from `source` (default crypto.randomFillSync). The queue server runs the loop.
 */
import { ErrorCode, VirtioError } from '../../errors.js';
import { randomFillSync } from 'node:crypto';
import { QueueServer, type QueueRequest } from '../../device/queue-server.js';
import type { DeviceContext, VirtioDevice } from '../../device/types.js';
import type { Logger } from '../../log.js';
import { ChainCursor } from '../../queue/chain.js';
import { DeviceId } from '../../spec/device-id.js';
import { ENTROPY_CONFIG_SIZE, ENTROPY_FEATURES, ENTROPY_REQUESTQ } from '../../spec/entropy.js';
import { F } from '../../spec/features.js';

/** Options of EntropyDevice. */
export interface EntropyDeviceOptions {
  /** Fills `dst` with random bytes. Default: crypto.randomFillSync. */
  source?: (dst: Uint8Array) => void;
  /** Maximum queue size. Default 256. */
  queueSize?: number;
  /** Bytes given per buffer at most (device/entropy/1 lets the device use less). Default 64 KiB. */
  maxBytesPerBuffer?: number;
  /** Where the device logs. */
  logger?: Logger;
}

/**
 * The entropy device (5.4): fills each device-writable buffer of its request queue with random
 * bytes (crypto.randomFillSync, or your `source`), synchronously and in order (IN_ORDER offered).
 */
export class EntropyDevice implements VirtioDevice {
  readonly deviceId = DeviceId.ENTROPY;
  /** Requests complete in order, synchronously: IN_ORDER holds. */
  readonly offeredFeatures =
    ENTROPY_FEATURES | F.VERSION_1 | F.INDIRECT_DESC | F.EVENT_IDX | F.RING_PACKED | F.IN_ORDER | F.RING_RESET;
  readonly queueMaxSizes: readonly number[];
  readonly configSize = ENTROPY_CONFIG_SIZE;

  private readonly maxBytes: number;
  private readonly writer = new ChainCursor(true);
  private readonly fill: (b: Uint8Array, o: number, n: number) => void;
  private readonly server: QueueServer;

  constructor(opts: EntropyDeviceOptions = {}) {
    const qs = opts.queueSize ?? 256;
    if (!Number.isInteger(qs) || qs < 1 || qs > 32768) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `queueSize ${qs} not in 1..32768`);
    this.queueMaxSizes = [qs];
    this.maxBytes = opts.maxBytesPerBuffer ?? 64 * 1024;
    if (!Number.isInteger(this.maxBytes) || this.maxBytes < 1) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'bad maxBytesPerBuffer');
    const source = opts.source;
    this.fill = source ? (b, o, n) => source(b.subarray(o, o + n)) : (b, o, n) => void randomFillSync(b, o, n);
    const serve = (req: QueueRequest): number => this.serve(req);
    this.server = new QueueServer({ name: 'virtio-rng', numQueues: 1, logger: opts.logger, handler: (i) => (i === ENTROPY_REQUESTQ ? serve : null) });
  }

  /** One buffer: as many random bytes as it can take (up to maxBytesPerBuffer). */
  private serve({ chain }: QueueRequest): number {
    // driver/entropy/1: readable buffers are a driver error; they are ignored (never read).
    if (chain.fault !== null || chain.writableBytes === 0) return 0;
    return this.writer.reset(chain).spans(Math.min(chain.writableBytes, this.maxBytes), this.fill);
  }

  readConfig(_offset: number, dst: Uint8Array): void {
    dst.fill(0); // 5.4.4: no configuration space
  }

  writeConfig(): void {}

  activate(ctx: DeviceContext): void {
    this.server.activate(ctx);
  }

  onQueueNotify(index: number): void {
    this.server.onQueueNotify(index);
  }

  /** Device Suspend (the core runs the protocol): the queue server stops and drains. */
  suspend(): Promise<void> | void {
    return this.server.suspend();
  }

  resume(): void {
    this.server.resume();
  }

  reset(): void {
    this.server.reset();
  }

  resetQueue(index: number): void {
    this.server.resetQueue(index);
  }
}
