/**
 * 5.4 Entropy Device, driver side: device-writable buffers only (driver/entropy/1), and the
 * used length says how many bytes are random (driver/entropy/2). Requests go through the
 * driver's RequestQueue.
 */
import { type DeviceDriver, type DeviceDriverType, checkDriverContext } from '../../driver/device-driver.js';
import { RequestQueue } from '../../driver/request-queue.js';
import type { DriverContext } from '../../driver/types.js';
import { ErrorCode, VirtioError } from '../../errors.js';
import type { Segment } from '../../queue/types.js';
import { DeviceId } from '../../spec/device-id.js';
import { ENTROPY_FEATURES, ENTROPY_REQUESTQ } from '../../spec/entropy.js';

/** Options of EntropyDriver. */
export interface EntropyDriverOptions {
  /** Bytes asked per buffer. Default 4096. */
  chunk?: number;
}

const NO_SEGMENTS: readonly Segment[] = [];
/** Buffers posted at once by one read(). */
const MAX_PARALLEL = 8;

/**
 * The virtio-rng driver (5.4): `read(n)` posts device-writable buffers and returns exactly `n`
 * random bytes.
 */
export class EntropyDriver implements DeviceDriver {
  /** The DeviceDriver contract: entropy devices, no feature bits (5.4.3). */
  static readonly type: DeviceDriverType<EntropyDriver, EntropyDriverOptions> = {
    name: 'virtio-rng',
    deviceId: DeviceId.ENTROPY,
    wantedFeatures: ENTROPY_FEATURES,
    requiredFeatures: 0n,
    attach: (ctx, opts) => new EntropyDriver(ctx, opts),
  };

  private readonly ctx: DriverContext;
  private readonly chunk: number;
  private readonly queue: RequestQueue;

  constructor(ctx: DriverContext, opts: EntropyDriverOptions = {}) {
    checkDriverContext(EntropyDriver.type, ctx);
    this.ctx = ctx;
    this.chunk = opts.chunk ?? 4096;
    if (!Number.isInteger(this.chunk) || this.chunk < 1) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `bad chunk ${this.chunk}`);
    this.queue = new RequestQueue(ctx, ENTROPY_REQUESTQ);
  }

  /** Resolves with exactly `n` random bytes (as many buffers as it takes). */
  async read(n: number): Promise<Uint8Array> {
    if (!Number.isSafeInteger(n) || n < 0) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `bad length ${n}`);
    const out = new Uint8Array(n);
    let got = 0;
    // Bounded: a device places at least one byte per buffer (device/entropy/1); one that
    // returns nothing twice in a row for every buffer is reported.
    let empty = 0;
    while (got < n) {
      const want = Math.min(this.chunk, n - got);
      const parts = await Promise.all(Array.from({ length: Math.min(MAX_PARALLEL, Math.ceil((n - got) / this.chunk)) }, () => this.request(want)));
      let progress = false;
      for (const p of parts) {
        const take = Math.min(p.length, n - got);
        out.set(p.subarray(0, take), got);
        got += take;
        if (take > 0) progress = true;
      }
      empty = progress ? 0 : empty + 1;
      if (empty >= 2) throw new VirtioError(ErrorCode.REQUEST_FAILED, 'entropy device returned no bytes (device/entropy/1)');
    }
    return out;
  }

  /** Stops using the device: pending reads fail with RequestAbortedError('detached'). */
  detach(): void {
    this.queue.detach();
  }

  /** One buffer of `len` device-writable bytes; resolves with the bytes the device wrote. */
  private async request(len: number): Promise<Uint8Array> {
    const addr = this.ctx.dma.alloc(len, 16);
    try {
      const used = await this.queue.submit(NO_SEGMENTS, [{ addr, len }]);
      // driver/entropy/2: only the bytes the device says it wrote are random.
      const b = new Uint8Array(Math.min(used, len));
      if (b.length > 0) this.ctx.memory.read(addr, b);
      return b;
    } finally {
      this.ctx.dma.free(addr);
    }
  }
}
