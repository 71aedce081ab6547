/**
 * EchoDevice: a small test device. Every buffer's readable bytes are copied into its writable
 * part (as far as they fit) and the buffer is returned with that length. Its config space has
 * fields a test can change from the device side, so generation handling can be observed.
 *
 * Config layout (little-endian unless the guest is legacy big-endian):
 *   0  u32 counter      read-only, changed by `bumpConfig()` (with a new generation)
 *   4  u32 scratch      writable by the driver
 *   8  u64 wide         read-only, both halves changed by `bumpConfig()` (torn-read checks)
 */
import type { DeviceContext, VirtioDevice } from '../device/types.js';
import { ChainCursor, DescriptorChain } from '../queue/chain.js';
import { F } from '../spec/features.js';

/** Options of EchoDevice. */
export interface EchoDeviceOptions {
  /** Device id (default 0x3f, unused by the spec's device types). */
  deviceId?: number;
  /** Queue maximum sizes (default [256, 256]). */
  queues?: number[];
  /** Device-type feature bits offered besides the transport bits (default bits 0 and 1). */
  deviceFeatures?: bigint;
  /** Transport bits offered (default every one the library implements). */
  transportFeatures?: bigint;
  /** Feature bits whose acceptance validateFeatures refuses (to test FEATURES_OK refusal). */
  refuse?: bigint;
  /** Buffers served per notification before yielding (default 4096). */
  batchLimit?: number;
}

/** Size of EchoDevice's config space: counter u32, scratch u32, wide u64. */
export const ECHO_CONFIG_SIZE = 16;
const DEFAULT_TRANSPORT =
  F.VERSION_1 | F.INDIRECT_DESC | F.EVENT_IDX | F.RING_PACKED | F.IN_ORDER | F.NOTIFICATION_DATA | F.RING_RESET | F.ACCESS_PLATFORM;

/**
 * A small test device (device id 0x3f by default): copies each buffer's readable bytes into its
 * writable part; its config has a counter the device can change (with a new generation), a writable
 * scratch word and a 64-bit field for torn-read checks. The transport matrix and many tests use it.
 */
export class EchoDevice implements VirtioDevice {
  readonly deviceId: number;
  readonly offeredFeatures: bigint;
  readonly queueMaxSizes: readonly number[];
  readonly configSize = ECHO_CONFIG_SIZE;

  /** Observations for tests. */
  activations = 0;
  /** Device resets seen. */
  resets = 0;
  /** Queue resets seen, by index, in order. */
  readonly queueResets: number[] = [];
  /** Queue notifications seen, by index, in order. */
  readonly notifies: number[] = [];
  /** Buffers served so far. */
  served = 0;
  /** Throw this from the next onQueueNotify (to test the core's handling). */
  throwOnNotify: unknown = null;

  private ctx: DeviceContext | null = null;
  private counter = 0;
  private scratchField = 0;
  private wide = 0n;
  private readonly refuse: bigint;
  private readonly batchLimit: number;
  private chainObj: DescriptorChain | null = null;
  private readonly reader = new ChainCursor(false);
  private readonly writer = new ChainCursor(true);
  private readonly buf = new Uint8Array(64 * 1024);

  constructor(opts: EchoDeviceOptions = {}) {
    this.deviceId = opts.deviceId ?? 0x3f;
    this.queueMaxSizes = opts.queues ?? [256, 256];
    this.offeredFeatures = (opts.deviceFeatures ?? 0b11n) | (opts.transportFeatures ?? DEFAULT_TRANSPORT);
    this.refuse = opts.refuse ?? 0n;
    this.batchLimit = opts.batchLimit ?? 4096;
  }

  /** The context of the current activation, or null when not active. */
  get context(): DeviceContext | null {
    return this.ctx;
  }

  /** The device changes its config: counter + 1, both halves of `wide` change. */
  bumpConfig(): void {
    this.counter = (this.counter + 1) >>> 0;
    this.wide = (BigInt(this.counter) << 32n) | BigInt(this.counter);
    this.ctx?.notifyConfigChange();
  }

  /** Changes the config without telling anyone (for torn-read tests driven by the test). */
  setConfigSilently(counter: number): void {
    this.counter = counter >>> 0;
    this.wide = (BigInt(this.counter) << 32n) | BigInt(this.counter);
  }

  readConfig(offset: number, dst: Uint8Array, _features: bigint, littleEndian: boolean): void {
    const all = new Uint8Array(ECHO_CONFIG_SIZE);
    const dv = new DataView(all.buffer);
    dv.setUint32(0, this.counter, littleEndian);
    dv.setUint32(4, this.scratchField, littleEndian);
    dv.setBigUint64(8, this.wide, littleEndian);
    dst.set(all.subarray(offset, offset + dst.length));
  }

  writeConfig(offset: number, src: Uint8Array, _features: bigint, littleEndian: boolean): void {
    // Only the scratch field [4, 8) is writable; partial writes update the bytes they cover.
    const all = new Uint8Array(4);
    new DataView(all.buffer).setUint32(0, this.scratchField, littleEndian);
    for (let i = 0; i < src.length; i++) {
      const at = offset + i - 4;
      if (at >= 0 && at < 4) all[at] = src[i]!;
    }
    this.scratchField = new DataView(all.buffer).getUint32(0, littleEndian);
  }

  validateFeatures(accepted: bigint): string | null {
    return (accepted & this.refuse) !== 0n ? `refusing 0x${(accepted & this.refuse).toString(16)}` : null;
  }

  activate(ctx: DeviceContext): void {
    this.activations++;
    this.ctx = ctx;
    this.chainObj = new DescriptorChain(ctx.memory, 1024);
    // Buffers made available before DRIVER_OK are served now.
    for (let i = 0; i < this.queueMaxSizes.length; i++) if (ctx.queue(i)) this.serve(i);
  }

  onQueueNotify(index: number): void {
    this.notifies.push(index);
    if (this.throwOnNotify !== null) {
      const e = this.throwOnNotify;
      this.throwOnNotify = null;
      throw e;
    }
    this.serve(index);
  }

  private serve(index: number): void {
    const ctx = this.ctx;
    const chain = this.chainObj;
    if (!ctx || !chain) return;
    const q = ctx.queue(index);
    if (!q) return;
    chain.memory = ctx.memory;
    let n = 0;
    for (;;) {
      q.disableNotification();
      while (n < this.batchLimit && q.pop(chain)) {
        this.reader.reset(chain);
        this.writer.reset(chain);
        let written = 0;
        for (;;) {
          const want = Math.min(this.buf.length, this.writer.remaining);
          if (want === 0) break;
          const got = this.reader.read(this.buf, 0, want);
          if (got === 0) break;
          written += this.writer.write(this.buf, 0, got);
        }
        q.push(chain, written);
        n++;
        this.served++;
      }
      ctx.notifyUsed(index);
      if (n >= this.batchLimit) {
        q.enableNotification();
        // Yield, then carry on: a driver that keeps the ring full cannot hold the thread.
        queueMicrotask(() => this.serve(index));
        return;
      }
      if (!q.enableNotification()) return;
    }
  }

  reset(): void {
    this.resets++;
    this.ctx = null;
    this.scratchField = 0;
  }

  resetQueue(index: number): void {
    this.queueResets.push(index);
  }
}
