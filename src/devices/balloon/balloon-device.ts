/**
 * 5.5 Traditional Memory Balloon Device, device side. The host sets a target (`num_pages`,
 * with a configuration change notification); the driver inflates (inflateq: arrays of 32-bit
 * PFNs, 4096-byte units) or deflates (deflateq) and writes `actual`. The device checks every PFN
 * against guest memory, keeps the set of ballooned pages (bounded by guest memory: a page is in
 * it once), and tells the host through callbacks. With STATS_VQ it holds the driver's stats
 * buffer and returns it to ask for fresh statistics (5.5.6.3); with PAGE_REPORTING it passes
 * reported free ranges to the host. Free page hinting is not offered.
 * No allocation per request: PFNs are decoded into one reused array.
 */
import { QueueServer, type QueueRequest } from '../../device/queue-server.js';
import type { DeviceContext, VirtioDevice } from '../../device/types.js';
import { ErrorCode, VirtioError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { ChainCursor } from '../../queue/chain.js';
import { BALLOON_CONFIG_LAYOUT, BALLOON_PFN_SHIFT, BALLOON_STAT_TAGS, BalloonConfig, BalloonF, BalloonQueue, BalloonStat, balloonQueueIndex } from '../../spec/balloon.js';
import { encodeConfig } from '../../spec/config-layout.js';
import { DeviceId } from '../../spec/device-id.js';
import { F } from '../../spec/features.js';

/** PFNs delivered per callback at most (Linux sends up to 256 per buffer). */
const PFN_BATCH = 256;
const PAGE = 1 << BALLOON_PFN_SHIFT;

/** Called with `count` valid PFNs in `pfns` (a reused array: copy what you keep). */
export type BalloonPfnListener = (pfns: Uint32Array, count: number) => void;

/** Memory statistics by tag (5.5.6.4); only the tags the driver supplied. */
export type BalloonStats = Readonly<Partial<Record<number, number>>>;

export interface BalloonDeviceOptions {
  /** Initial target in 4 KiB pages (num_pages). Default 0. */
  readonly numPages?: number;
  /** Device-specific features to offer (default all this device implements: every bit but FREE_PAGE_HINT). */
  readonly features?: bigint;
  /** Maximum queue size. Default 128. */
  readonly queueSize?: number;
  readonly onInflate?: BalloonPfnListener;
  readonly onDeflate?: BalloonPfnListener;
  /** A free page range the driver reported (PAGE_REPORTING), guest-physical. */
  readonly onReport?: (addr: number, len: number) => void;
  /** The driver committed a new `actual`. */
  readonly onActual?: (actual: number) => void;
  readonly logger?: Logger;
}

/** Every feature bit the device implements. */
export const BALLOON_DEVICE_FEATURES = BalloonF.MUST_TELL_HOST | BalloonF.STATS_VQ | BalloonF.DEFLATE_ON_OOM | BalloonF.PAGE_POISON | BalloonF.PAGE_REPORTING;

export class BalloonDevice implements VirtioDevice {
  readonly deviceId = DeviceId.BALLOON_TRADITIONAL;
  readonly offeredFeatures: bigint;
  readonly queueMaxSizes: readonly number[];
  readonly configSize = BalloonConfig.SIZE;

  private readonly o: BalloonDeviceOptions;
  private readonly server: QueueServer;
  private readonly reader = new ChainCursor(false);
  private readonly scratch = new Uint8Array(PFN_BATCH * 4);
  private readonly scratchView = new DataView(this.scratch.buffer);
  private readonly pfns = new Uint32Array(PFN_BATCH);
  private readonly statBytes = new Uint8Array(BalloonStat.BYTES);
  private readonly statView = new DataView(this.statBytes.buffer);
  private ctx: DeviceContext | null = null;
  /** Queue index -> role (BalloonQueue), per the negotiated features. */
  private roles: number[] = [];
  private target: number;
  private actualPages = 0;
  private poison = 0;
  /** Bytes of actual / poison_val written so far (legacy drivers write byte by byte). */
  private readonly staged = new Uint8Array(BalloonConfig.SIZE);
  private readonly ballooned = new Set<number>();
  private badPfns = 0;
  private heldStats: QueueRequest | null = null;
  private statsBuffers = 0;
  private lastStats: BalloonStats | null = null;
  private statsWaiters: ((s: BalloonStats) => void)[] = [];
  private actualWaiters: { pages: number; resolve: () => void }[] = [];

  constructor(opts: BalloonDeviceOptions = {}) {
    const qs = opts.queueSize ?? 128;
    if (!Number.isInteger(qs) || qs < 1 || qs > 32768) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `queueSize ${qs} not in 1..32768`);
    const f = opts.features ?? BALLOON_DEVICE_FEATURES;
    if ((f & ~BALLOON_DEVICE_FEATURES) !== 0n) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `balloon features 0x${f.toString(16)} include bits this device does not implement`);
    this.o = opts;
    this.offeredFeatures = f | F.VERSION_1 | F.INDIRECT_DESC | F.EVENT_IDX | F.RING_PACKED | F.RING_RESET;
    // inflateq, deflateq, then statsq and reporting_vq when offered (5.5.2; no free_page_vq).
    const n = 2 + ((f & BalloonF.STATS_VQ) !== 0n ? 1 : 0) + ((f & BalloonF.PAGE_REPORTING) !== 0n ? 1 : 0);
    this.queueMaxSizes = new Array<number>(n).fill(qs);
    this.target = checkPages(opts.numPages ?? 0);
    const handlers = {
      [BalloonQueue.INFLATE]: (req: QueueRequest) => this.onPfns(req, true),
      [BalloonQueue.DEFLATE]: (req: QueueRequest) => this.onPfns(req, false),
      [BalloonQueue.STATS]: (req: QueueRequest) => this.onStats(req),
      [BalloonQueue.REPORTING]: (req: QueueRequest) => this.onReport(req),
    } as Record<number, (req: QueueRequest) => number | void>;
    this.server = new QueueServer({
      name: 'virtio-balloon',
      numQueues: n,
      logger: opts.logger,
      handler: (i) => handlers[this.roles[i] ?? -1] ?? null,
      queueStopped: (i) => {
        if (this.roles[i] === BalloonQueue.STATS) this.heldStats = null;
      },
    });
  }

  /** The target in pages (num_pages). */
  get numPages(): number {
    return this.target;
  }
  /** The driver's last committed `actual`. */
  get actual(): number {
    return this.actualPages;
  }
  /** The driver's poison_val (PAGE_POISON). */
  get poisonVal(): number {
    return this.poison;
  }
  /** Distinct pages in the balloon now, by the device's count of inflate and deflate requests. */
  get balloonedPages(): number {
    return this.ballooned.size;
  }
  /** Whether the page frame `pfn` is in the balloon. */
  hasPage(pfn: number): boolean {
    return this.ballooned.has(pfn);
  }
  /** PFNs refused because they name no guest memory (or deflate pages not in the balloon). */
  get refusedPfns(): number {
    return this.badPfns;
  }
  /** The last statistics the driver sent (null before any). */
  get stats(): BalloonStats | null {
    return this.lastStats;
  }

  /** Sets the target (num_pages) and tells the driver with a configuration change notification. */
  setTarget(pages: number): void {
    this.target = checkPages(pages);
    this.ctx?.notifyConfigChange();
  }

  /** Resolves once the driver committed `actual === pages` (the caller bounds the wait). */
  whenActual(pages: number): Promise<void> {
    if (this.actualPages === pages) return Promise.resolve();
    return new Promise((resolve) => this.actualWaiters.push({ pages, resolve }));
  }

  /**
   * Asks the driver for fresh statistics (5.5.6.3: the device uses the held buffer, the driver
   * answers with a new one) and resolves with them. The caller bounds the wait.
   */
  requestStats(): Promise<BalloonStats> {
    if (this.ctx !== null && (this.ctx.features & BalloonF.STATS_VQ) === 0n) {
      return Promise.reject(new VirtioError(ErrorCode.INVALID_ARGUMENT, 'virtio-balloon: STATS_VQ was not negotiated'));
    }
    const p = new Promise<BalloonStats>((resolve) => this.statsWaiters.push(resolve));
    this.releaseStats();
    return p;
  }

  readConfig(offset: number, dst: Uint8Array): void {
    // 5.5.4 legacy: little-endian even on a legacy interface.
    const values = { numPages: this.target, actual: this.actualPages, freePageHintCmdId: 0, poisonVal: this.poison };
    encodeConfig(BALLOON_CONFIG_LAYOUT, values, this.offeredFeatures, offset, dst, true);
  }

  writeConfig(offset: number, src: Uint8Array, features: bigint): void {
    const end = offset + src.length;
    for (let i = 0; i < src.length; i++) {
      const at = offset + i;
      if (at >= BalloonConfig.ACTUAL && at < BalloonConfig.SIZE) this.staged[at] = src[i]!;
    }
    const v = new DataView(this.staged.buffer);
    // device/balloon/7: a value is used only once its most significant byte was written.
    if (offset <= BalloonConfig.ACTUAL + 3 && end > BalloonConfig.ACTUAL + 3) this.commitActual(v.getUint32(BalloonConfig.ACTUAL, true));
    const poisonOffered = (features & BalloonF.PAGE_POISON) !== 0n;
    if (poisonOffered && offset <= BalloonConfig.POISON_VAL + 3 && end > BalloonConfig.POISON_VAL + 3) this.poison = v.getUint32(BalloonConfig.POISON_VAL, true);
  }

  activate(ctx: DeviceContext): void {
    this.ctx = ctx;
    this.roles = [];
    for (const role of [BalloonQueue.INFLATE, BalloonQueue.DEFLATE, BalloonQueue.STATS, BalloonQueue.REPORTING]) {
      const i = balloonQueueIndex(role, ctx.features);
      if (i >= 0 && i < this.queueMaxSizes.length) this.roles[i] = role;
    }
    this.statsBuffers = 0;
    this.heldStats = null;
    this.server.activate(ctx);
  }

  onQueueNotify(index: number): void {
    this.server.onQueueNotify(index);
  }

  reset(): void {
    this.server.reset();
    this.ctx = null;
    this.heldStats = null;
    this.roles = [];
    // 5.5: a reset driver starts with an empty balloon (its pages are its own again).
    this.ballooned.clear();
    this.actualPages = 0;
    this.poison = 0;
    this.staged.fill(0);
  }

  resetQueue(index: number): void {
    this.server.resetQueue(index);
  }

  private commitActual(pages: number): void {
    this.actualPages = pages;
    this.o.onActual?.(pages);
    if (this.actualWaiters.length === 0) return;
    const ready = this.actualWaiters.filter((w) => w.pages === pages);
    this.actualWaiters = this.actualWaiters.filter((w) => w.pages !== pages);
    for (const w of ready) w.resolve();
  }

  /** An inflate or deflate buffer: 32-bit PFNs in the guest's order (virtio32). */
  private onPfns(req: QueueRequest, inflate: boolean): number {
    const c = req.chain;
    if (c.fault !== null) return 0;
    const le = this.ctx?.littleEndian ?? true;
    const mem = c.memory;
    const cb = inflate ? this.o.onInflate : this.o.onDeflate;
    this.reader.reset(c);
    // A trailing partial PFN (a length not a multiple of 4) is ignored.
    for (let left = c.readableBytes & ~3; left > 0; ) {
      const got = this.reader.read(this.scratch, 0, Math.min(left, this.scratch.length)) & ~3;
      if (got === 0) break;
      left -= got;
      let n = 0;
      for (let at = 0; at < got; at += 4) {
        const pfn = this.scratchView.getUint32(at, le);
        // The guest is untrusted: a PFN must name a page of guest memory, and a deflated page
        // must be in the balloon (driver/balloon/13); others are counted and skipped.
        if (!mem.isMapped(pfn * PAGE, PAGE) || (!inflate && !this.ballooned.has(pfn))) {
          this.badPfns++;
          continue;
        }
        if (inflate) this.ballooned.add(pfn);
        else this.ballooned.delete(pfn);
        this.pfns[n++] = pfn;
      }
      if (n > 0 && cb) {
        try {
          cb(this.pfns, n);
        } catch (e) {
          this.hostFailed(e);
        }
      }
    }
    return 0;
  }

  /** A stats buffer: parsed (unknown tags ignored, any order) and held until the next request. */
  private onStats(req: QueueRequest): number | void {
    const c = req.chain;
    // driver/balloon/16: at most one buffer; an older one still held goes back first.
    const older = this.heldStats;
    this.heldStats = req;
    if (older !== null && this.server.isLive(older)) this.server.complete(older, 0);
    const first = this.statsBuffers++ === 0;
    // device/balloon/11: on a legacy interface the first buffer's values are not to be trusted.
    const legacy = this.ctx !== null && (this.ctx.features & F.VERSION_1) === 0n;
    if (c.fault !== null || (first && legacy)) {
      if (this.statsWaiters.length > 0) this.releaseStats();
      return;
    }
    const le = this.ctx?.littleEndian ?? true;
    const stats: Record<number, number> = {};
    this.reader.reset(c);
    for (let left = c.readableBytes; left >= BalloonStat.BYTES; left -= BalloonStat.BYTES) {
      if (this.reader.read(this.statBytes) < BalloonStat.BYTES) break;
      const tag = this.statView.getUint16(BalloonStat.TAG, le);
      // device/balloon/8: unknown tags are ignored; device/balloon/9: any order.
      if (tag >= BALLOON_STAT_TAGS) continue;
      const lo = this.statView.getUint32(BalloonStat.VAL + (le ? 0 : 4), le);
      const hi = this.statView.getUint32(BalloonStat.VAL + (le ? 4 : 0), le);
      stats[tag] = hi * 0x1_0000_0000 + lo;
    }
    this.lastStats = stats;
    const ws = this.statsWaiters;
    this.statsWaiters = [];
    for (const w of ws) w(stats);
  }

  /** Returns the held stats buffer: the driver answers with fresh statistics. */
  private releaseStats(): void {
    const req = this.heldStats;
    if (req === null) return;
    this.heldStats = null;
    if (this.server.isLive(req)) this.server.complete(req, 0);
  }

  /** A page report: each segment is a free range; acknowledged by using the buffer. */
  private onReport(req: QueueRequest): number {
    const c = req.chain;
    const cb = this.o.onReport;
    if (c.fault !== null || !cb) return 0;
    // device/balloon/20, 21: the device does not touch the pages (it never writes them).
    for (let i = 0; i < c.count; i++) {
      try {
        cb(c.addrs[i]!, c.lens[i]!);
      } catch (e) {
        this.hostFailed(e);
      }
    }
    return 0;
  }

  /** A host callback threw: its failure is the host's; the guest's buffer still goes back. */
  private hostFailed(e: unknown): void {
    this.o.logger?.warn(`virtio-balloon: host callback threw: ${String(e)}`);
  }
}

function checkPages(n: number): number {
  if (!Number.isInteger(n) || n < 0 || n > 0xffff_ffff) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `balloon pages ${n} not in 0..2^32-1`);
  return n;
}
