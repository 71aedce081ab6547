/**
 * 5.5 Traditional Memory Balloon, driver side. Pages given to the balloon are 4 KiB pages of the
 * driver's DMA memory (the "guest memory" a virtio-ts driver owns). `adjust()` follows the
 * device's target: inflate (driver/balloon/4) or deflate through the deflateq
 * (driver/balloon/9), a page reused only after the device acknowledged (driver/balloon/10),
 * then `actual` written whole in one access (driver/balloon/14, device/balloon/6). With
 * STATS_VQ one stats buffer is kept available (driver/balloon/16-19, 23); with PAGE_REPORTING
 * free ranges can be reported; with FREE_PAGE_HINT the device's hinting rounds are answered
 * (free-page-hinter.ts). With PAGE_POISON every deflated page and every reported range is
 * filled with poison_val before use or report (driver/balloon/34, 38); poison_val itself is
 * written before DRIVER_OK by `withBalloonPoison` (balloon-poison.ts, driver/balloon/35).
 * Below the target the balloon shrinks only with DEFLATE_ON_OOM (`deflateOnOom`,
 * driver/balloon/7, 8).
 */
import { type DeviceDriver, type DeviceDriverType, checkDriverContext } from '../../driver/device-driver.js';
import { RequestQueue } from '../../driver/request-queue.js';
import type { DriverContext } from '../../driver/types.js';
import { ErrorCode, VirtioError } from '../../errors.js';
import type { Segment } from '../../queue/types.js';
import { BALLOON_CONFIG_LAYOUT, BALLOON_PAGE_SIZE, BALLOON_PFN_SHIFT, BalloonF, BalloonQueue, BalloonStat, balloonQueueIndex } from '../../spec/balloon.js';
import { readConfigField, writeConfigField } from '../../spec/config-layout.js';
import { DeviceId } from '../../spec/device-id.js';
import type { BalloonStats } from './balloon-device.js';
import { FreePageHinter, type FreePageHinterOptions } from './free-page-hinter.js';

/** Options of BalloonDriver. */
export interface BalloonDriverOptions {
  /** Memory statistics to report (tag -> value); the tags of the first call are the subset sent every time. */
  stats?: () => BalloonStats;
  /** Follow the target on every configuration change notification. Default false. */
  autoAdjust?: boolean;
  /** Free page hinting limits (FREE_PAGE_HINT). */
  hinting?: FreePageHinterOptions;
}

/** PFNs per inflate/deflate buffer (as Linux's VIRTIO_BALLOON_ARRAY_PFNS_MAX). */
const PFNS_PER_BUFFER = 256;
const NO_SEGMENTS: readonly Segment[] = [];

/**
 * The traditional memory balloon driver (5.5): typed requests over the device's queues. Construct
 * it on a DriverContext, or start it with startDeviceDriver and its static `type`.
 */
export class BalloonDriver implements DeviceDriver {
  /**
   * The DeviceDriver contract: the device id, the feature bits this driver can use and needs,
   * and how to attach it (startDeviceDriver).
   */
  static readonly type: DeviceDriverType<BalloonDriver, BalloonDriverOptions> = {
    name: 'virtio-balloon',
    deviceId: DeviceId.BALLOON_TRADITIONAL,
    // driver/balloon/1: MUST_TELL_HOST accepted when offered; PAGE_POISON too, as this driver
    // writes poison_val to deflated pages (driver/balloon/2).
    wantedFeatures: BalloonF.MUST_TELL_HOST | BalloonF.STATS_VQ | BalloonF.DEFLATE_ON_OOM | BalloonF.FREE_PAGE_HINT | BalloonF.PAGE_POISON | BalloonF.PAGE_REPORTING,
    requiredFeatures: 0n,
    attach: (ctx, opts) => new BalloonDriver(ctx, opts),
  };

  private readonly ctx: DriverContext;
  private readonly inflateq: RequestQueue;
  private readonly deflateq: RequestQueue;
  private readonly statsq: RequestQueue | null = null;
  private readonly reportq: RequestQueue | null = null;
  private readonly hinter: FreePageHinter | null = null;
  /** poison_val when PAGE_POISON was negotiated, else null. */
  private readonly poison: number | null = null;
  private readonly statsSource: (() => BalloonStats) | null;
  private statTags: number[] | null = null;
  private statsAddr = 0;
  /** Addresses of the pages in the balloon. */
  private readonly pages: number[] = [];
  private chain: Promise<void> = Promise.resolve();
  private detached = false;

  constructor(ctx: DriverContext, opts: BalloonDriverOptions = {}) {
    checkDriverContext(BalloonDriver.type, ctx);
    this.ctx = ctx;
    const f = ctx.features;
    this.inflateq = new RequestQueue(ctx, balloonQueueIndex(BalloonQueue.INFLATE, f));
    this.deflateq = new RequestQueue(ctx, balloonQueueIndex(BalloonQueue.DEFLATE, f));
    this.statsSource = opts.stats ?? null;
    if ((f & BalloonF.STATS_VQ) !== 0n) {
      this.statsq = new RequestQueue(ctx, balloonQueueIndex(BalloonQueue.STATS, f));
      // driver/balloon/17: an output buffer right after initialization.
      this.postStats();
    }
    if ((f & BalloonF.PAGE_REPORTING) !== 0n) this.reportq = new RequestQueue(ctx, balloonQueueIndex(BalloonQueue.REPORTING, f));
    if ((f & BalloonF.PAGE_POISON) !== 0n) this.poison = readConfigField(BALLOON_CONFIG_LAYOUT, 'poisonVal', (o, l) => ctx.readConfig(o, l), true);
    if ((f & BalloonF.FREE_PAGE_HINT) !== 0n) {
      this.hinter = new FreePageHinter(ctx, new RequestQueue(ctx, balloonQueueIndex(BalloonQueue.FREE_PAGE, f)), opts.hinting);
      // A round the device started before the driver came up.
      this.hinter.onConfigChange();
    }
    const autoAdjust = opts.autoAdjust === true;
    ctx.onConfigChange(() => {
      this.hinter?.onConfigChange();
      if (autoAdjust) void this.adjust().catch(() => undefined);
    });
  }

  /** poison_val in force (PAGE_POISON negotiated), or null. */
  get poisonVal(): number | null {
    return this.poison;
  }

  /** The free page hinting side (FREE_PAGE_HINT negotiated), or null. */
  get freePageHinter(): FreePageHinter | null {
    return this.hinter;
  }

  /** The device's target in pages (num_pages; the balloon config is little-endian, 5.5.4). */
  target(): number {
    return readConfigField(BALLOON_CONFIG_LAYOUT, 'numPages', (o, l) => this.ctx.readConfig(o, l), true);
  }

  /** Pages in the balloon now. */
  get size(): number {
    return this.pages.length;
  }

  /** The PFNs of the pages in the balloon. */
  pfns(): number[] {
    return this.pages.map((a) => Math.floor(a / BALLOON_PAGE_SIZE));
  }

  /** Moves the balloon to the device's target and writes `actual`; calls run one at a time. */
  adjust(): Promise<void> {
    const run = this.chain.then(async () => {
      const want = this.target();
      if (want > this.pages.length) await this.inflateNow(want - this.pages.length);
      else if (want < this.pages.length) await this.deflateNow(this.pages.length - want);
      this.writeActual(this.pages.length);
    });
    this.chain = run.catch(() => undefined);
    return run;
  }

  /** Gives `count` more pages to the balloon (and writes `actual`). */
  inflate(count: number): Promise<void> {
    const run = this.chain.then(async () => {
      await this.inflateNow(count);
      this.writeActual(this.pages.length);
    });
    this.chain = run.catch(() => undefined);
    return run;
  }

  /**
   * Takes `count` pages back from the balloon (and writes `actual`); not below the device's
   * target (driver/balloon/7: that needs DEFLATE_ON_OOM, see `deflateOnOom`).
   */
  deflate(count: number): Promise<void> {
    const run = this.chain.then(async () => {
      checkCount(count);
      if (this.pages.length - count < this.target()) {
        throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `deflating ${count} of ${this.pages.length} pages goes below the target ${this.target()} (driver/balloon/7)`);
      }
      await this.deflateNow(count);
      this.writeActual(this.pages.length);
    });
    this.chain = run.catch(() => undefined);
    return run;
  }

  /**
   * The guest is out of memory (driver/balloon/8): takes up to `count` pages back even below the
   * target, through the deflateq (driver/balloon/9), and writes `actual`. Only with
   * DEFLATE_ON_OOM (driver/balloon/7). Resolves with the pages taken back.
   */
  deflateOnOom(count: number): Promise<number> {
    const run = this.chain.then(async () => {
      if ((this.ctx.features & BalloonF.DEFLATE_ON_OOM) === 0n) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'DEFLATE_ON_OOM was not negotiated (driver/balloon/7)');
      const n = Math.min(count, this.pages.length);
      await this.deflateNow(n);
      this.writeActual(this.pages.length);
      return n;
    });
    this.chain = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  /**
   * Reports free ranges (PAGE_REPORTING); resolves when the device acknowledged them
   * (driver/balloon/39). With PAGE_POISON they are filled with poison_val first
   * (driver/balloon/38); their contents are undefined afterwards (driver/balloon/37).
   */
  async reportFreePages(ranges: readonly Segment[]): Promise<void> {
    if (this.reportq === null) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'PAGE_REPORTING was not negotiated');
    if (this.poison !== null) for (const r of ranges) this.poisonFill(r.addr, r.len);
    await this.reportq.submit(NO_SEGMENTS, ranges);
  }

  detach(): void {
    this.detached = true;
    this.inflateq.detach();
    this.deflateq.detach();
    this.statsq?.detach();
    this.reportq?.detach();
    this.hinter?.detach();
  }

  /** Fills [addr, addr + len) with the 32-bit poison_val pattern (little-endian, like Linux's memset32 on x86). */
  private poisonFill(addr: number, len: number): void {
    const v = this.poison ?? 0;
    if (v === 0 || (v & 0xff) * 0x0101_0101 === v) {
      this.ctx.memory.fill(addr, len, v & 0xff);
      return;
    }
    const b = new Uint8Array(len);
    const dv = new DataView(b.buffer);
    for (let at = 0; at + 4 <= len; at += 4) dv.setUint32(at, v, true);
    this.ctx.memory.write(addr, b);
  }

  private async inflateNow(count: number): Promise<void> {
    checkCount(count);
    const got: number[] = [];
    try {
      for (let i = 0; i < count; i++) got.push(this.ctx.dma.alloc(BALLOON_PAGE_SIZE, BALLOON_PAGE_SIZE));
    } catch (e) {
      for (const a of got) this.ctx.dma.free(a);
      throw e;
    }
    // driver/balloon/12: the pages are not used from here on; they count once acknowledged.
    for (let i = 0; i < got.length; i += PFNS_PER_BUFFER) await this.sendPfns(this.inflateq, got.slice(i, i + PFNS_PER_BUFFER));
    this.pages.push(...got);
  }

  private async deflateNow(count: number): Promise<void> {
    checkCount(count);
    const n = Math.min(count, this.pages.length);
    const back = this.pages.splice(this.pages.length - n, n);
    // driver/balloon/9, 10: told through the deflateq, reused (freed) only once acknowledged.
    for (let i = 0; i < back.length; i += PFNS_PER_BUFFER) {
      const part = back.slice(i, i + PFNS_PER_BUFFER);
      await this.sendPfns(this.deflateq, part);
      for (const a of part) {
        // driver/balloon/34: with PAGE_POISON a page is reused holding poison_val.
        if (this.poison !== null) this.poisonFill(a, BALLOON_PAGE_SIZE);
        this.ctx.dma.free(a);
      }
    }
  }

  /** One buffer of 32-bit PFNs (guest order: virtio32). */
  private async sendPfns(q: RequestQueue, addrs: readonly number[]): Promise<void> {
    const len = addrs.length * 4;
    const buf = this.ctx.dma.alloc(len, 4);
    try {
      const b = new Uint8Array(len);
      const v = new DataView(b.buffer);
      addrs.forEach((a, i) => v.setUint32(i * 4, Math.floor(a / 2 ** BALLOON_PFN_SHIFT), this.ctx.littleEndian));
      this.ctx.memory.write(buf, b);
      await q.submit([{ addr: buf, len }], NO_SEGMENTS);
    } finally {
      this.ctx.dma.free(buf);
    }
  }

  /** driver/balloon/14 and device/balloon/6: all four bytes in one write. */
  private writeActual(pages: number): void {
    writeConfigField(BALLOON_CONFIG_LAYOUT, 'actual', pages, (o, b) => this.ctx.writeConfig(o, b), true);
  }

  /** Fills and posts the one stats buffer (driver/balloon/16, 19, 23); reposted when used (18). */
  private postStats(): void {
    const q = this.statsq;
    if (q === null || this.detached) return;
    const values = this.statsSource?.() ?? {};
    // driver/balloon/23: the subset fixed by the first supply.
    this.statTags ??= Object.keys(values).map(Number).filter((t) => Number.isInteger(t) && t >= 0 && t <= 0xffff);
    const tags = this.statTags;
    const len = Math.max(1, tags.length) * BalloonStat.BYTES;
    if (this.statsAddr === 0) this.statsAddr = this.ctx.dma.alloc(len, 8);
    const b = new Uint8Array(len);
    const v = new DataView(b.buffer);
    const le = this.ctx.littleEndian; // legacy: guest order (device/balloon/10)
    tags.forEach((tag, i) => {
      const val = Math.max(0, Math.floor(values[tag] ?? 0));
      const at = i * BalloonStat.BYTES;
      v.setUint16(at + BalloonStat.TAG, tag, le);
      v.setBigUint64(at + BalloonStat.VAL, BigInt(val), le);
    });
    // No statistics at all: one entry with an unknown tag, which a device ignores (device/balloon/8).
    if (tags.length === 0) v.setUint16(BalloonStat.TAG, 0xffff, le);
    this.ctx.memory.write(this.statsAddr, b);
    q.submit([{ addr: this.statsAddr, len }], NO_SEGMENTS).then(
      () => this.postStats(),
      () => {
        // Stopped (reset, detach): the buffer is ours again.
        if (this.statsAddr !== 0) this.ctx.dma.free(this.statsAddr);
        this.statsAddr = 0;
      },
    );
  }
}

function checkCount(n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `bad page count ${n}`);
}
