/**
 * 5.5 Traditional Memory Balloon Device, device side. The host sets a target (`num_pages`,
 * with a configuration change notification); the driver inflates (inflateq: arrays of 32-bit
 * PFNs, 4096-byte units) or deflates (deflateq) and writes `actual`. The device checks every PFN
 * against guest memory, keeps the set of ballooned pages (bounded by guest memory: a page is in
 * it once), and tells the host through callbacks. With STATS_VQ it holds the driver's stats
 * buffer and returns it to ask for fresh statistics (5.5.6.3); with FREE_PAGE_HINT the host
 * runs hinting rounds (free-page-hints.ts); with PAGE_REPORTING it passes reported free ranges
 * to the host. Pages the driver gave up (inflated, reported) go to a PageReleaser
 * (page-release.ts: madvise where guest memory is mmapped).
 * No allocation per request: PFNs are decoded into one reused array.
 */
import { QueueServer, type QueueRequest } from '../../device/queue-server.js';
import type { DeviceContext, VirtioDevice } from '../../device/types.js';
import { ErrorCode, VirtioError } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { GuestMemory } from '../../memory/guest-memory.js';
import { ChainCursor } from '../../queue/chain.js';
import {
  BALLOON_CONFIG_LAYOUT,
  BALLOON_PFN_SHIFT,
  BALLOON_STAT_TAGS,
  BalloonCmdId,
  BalloonConfig,
  BalloonF,
  BalloonQueue,
  BalloonStat,
  type BalloonStatName,
  balloonQueueIndex,
  balloonStatName,
} from '../../spec/balloon.js';
import { encodeConfig } from '../../spec/config-layout.js';
import { DeviceId } from '../../spec/device-id.js';
import { F } from '../../spec/features.js';
import { FreePageHints, type FreePageHint, type FreePageHintListener } from './free-page-hints.js';
import type { PageReleaser } from './page-release.js';

/** PFNs delivered per callback at most (Linux sends up to 256 per buffer). */
const PFN_BATCH = 256;
const PAGE = 1 << BALLOON_PFN_SHIFT;

/** Called with `count` valid PFNs in `pfns` (a reused array: copy what you keep). */
export type BalloonPfnListener = (pfns: Uint32Array, count: number) => void;

/** Memory statistics by tag (5.5.6.4); only the tags the driver supplied. */
export type BalloonStats = Readonly<Partial<Record<number, number>>>;
/** The same by name (BALLOON_STAT_NAMES), e.g. `{ 'free-memory': 1048576 }`. */
export type BalloonNamedStats = Readonly<Partial<Record<BalloonStatName, number>>>;

/** Statistics by tag -> by name (tags this version does not know are left out). */
export function balloonStatsByName(stats: BalloonStats): BalloonNamedStats {
  const out: Partial<Record<BalloonStatName, number>> = {};
  for (const [tag, value] of Object.entries(stats)) {
    const name = balloonStatName(Number(tag));
    if (name !== null && value !== undefined) out[name] = value;
  }
  return out;
}

/** Options of BalloonDevice. */
export interface BalloonDeviceOptions {
  /** Initial target in 4 KiB pages (num_pages). Default 0. */
  readonly numPages?: number;
  /** Device-specific features to offer (default all this device implements: every bit of 5.5.3). */
  readonly features?: bigint;
  /** Maximum queue size. Default 128. */
  readonly queueSize?: number;
  /** Told of the page frame numbers of each inflate buffer (pages the guest gave up). */
  readonly onInflate?: BalloonPfnListener;
  /** Told of the page frame numbers of each deflate buffer (pages the guest takes back). */
  readonly onDeflate?: BalloonPfnListener;
  /** A free page range the driver reported (PAGE_REPORTING), guest-physical. */
  readonly onReport?: (addr: number, len: number) => void;
  /** The driver committed a new `actual`. */
  readonly onActual?: (actual: number) => void;
  /** A free range the driver hinted under the current command ID (FREE_PAGE_HINT). */
  readonly onHint?: FreePageHintListener;
  /**
   * What to do with inflated and reported pages (page-release.ts). Default: nothing (guest
   * memory in a JS buffer has nothing to give back); `madvisePageReleaser` for vhost-user.
   */
  readonly releasePages?: PageReleaser;
  /**
   * device/balloon/1: refuse FEATURES_OK when the driver does not accept MUST_TELL_HOST (while
   * offered). Default false: such drivers are served (a legacy interface cannot refuse anyway).
   */
  readonly requireMustTellHost?: boolean;
  /** Where the device logs; silent by default. */
  readonly logger?: Logger;
}

/** Every feature bit the device implements. */
export const BALLOON_DEVICE_FEATURES =
  BalloonF.MUST_TELL_HOST | BalloonF.STATS_VQ | BalloonF.DEFLATE_ON_OOM | BalloonF.FREE_PAGE_HINT | BalloonF.PAGE_POISON | BalloonF.PAGE_REPORTING;

/**
 * The traditional memory balloon device (5.5): inflate and deflate queues, memory statistics, free
 * page hinting and reporting. What it implements and its normative coverage:
 * docs/devices/balloon.md.
 */
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
  private pendingStats: Promise<BalloonStats> | null = null;
  private actualWaiters: { pages: number; resolve: () => void }[] = [];
  private readonly hinting: FreePageHints;
  private released = 0;
  private poisonWritesRefused = 0;

  constructor(opts: BalloonDeviceOptions = {}) {
    const qs = opts.queueSize ?? 128;
    if (!Number.isInteger(qs) || qs < 1 || qs > 32768) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `queueSize ${qs} not in 1..32768`);
    const f = opts.features ?? BALLOON_DEVICE_FEATURES;
    if ((f & ~BALLOON_DEVICE_FEATURES) !== 0n) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `balloon features 0x${f.toString(16)} include bits this device does not implement`);
    this.o = opts;
    this.offeredFeatures = f | F.VERSION_1 | F.INDIRECT_DESC | F.EVENT_IDX | F.RING_PACKED | F.RING_RESET;
    // inflateq, deflateq, then statsq, free_page_vq and reporting_vq when offered (5.5.2).
    const n = 2 + [BalloonF.STATS_VQ, BalloonF.FREE_PAGE_HINT, BalloonF.PAGE_REPORTING].filter((b) => (f & b) !== 0n).length;
    this.queueMaxSizes = new Array<number>(n).fill(qs);
    this.target = checkPages(opts.numPages ?? 0);
    this.hinting = new FreePageHints(opts.onHint, (e) => this.hostFailed(e));
    const handlers = {
      [BalloonQueue.INFLATE]: (req: QueueRequest) => this.onPfns(req, true),
      [BalloonQueue.DEFLATE]: (req: QueueRequest) => this.onPfns(req, false),
      [BalloonQueue.STATS]: (req: QueueRequest) => this.onStats(req),
      [BalloonQueue.FREE_PAGE]: (req: QueueRequest) => this.hinting.handle(req, this.ctx?.littleEndian ?? true),
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
  /** The same by name (`{ 'free-memory': ..., 'total-memory': ... }`), or null before any. */
  get namedStats(): BalloonNamedStats | null {
    return this.lastStats === null ? null : balloonStatsByName(this.lastStats);
  }
  /** Bytes the PageReleaser released (inflated and reported pages). */
  get releasedBytes(): number {
    return this.released;
  }
  /** poison_val writes ignored because the driver was already DRIVER_OK (driver/balloon/36). */
  get refusedPoisonWrites(): number {
    return this.poisonWritesRefused;
  }

  /** free_page_hint_cmd_id now (5.5.6.5). */
  get freePageHintCmdId(): number {
    return this.hinting.cmdId;
  }
  /** The ranges hinted in the current round (bounded; the `onHint` callback sees all). */
  get freePageHints(): readonly FreePageHint[] {
    return this.hinting.hints();
  }
  /** Bytes hinted in the current round. */
  get hintedBytes(): number {
    return this.hinting.hintedBytes;
  }
  /** Hinted ranges ignored (a stale command ID, device/balloon/14). */
  get ignoredHints(): number {
    return this.hinting.ignoredHints;
  }

  /**
   * Starts a free page hinting round: a new command ID in free_page_hint_cmd_id and a
   * configuration change notification. Returns the ID (hints arrive through `onHint`).
   */
  startHinting(): number {
    this.requireFeature(BalloonF.FREE_PAGE_HINT, 'FREE_PAGE_HINT');
    const id = this.hinting.start();
    this.ctx?.notifyConfigChange();
    return id;
  }
  /** The host cannot use more hints now (device/balloon/12): STOP; the driver keeps its pages. */
  stopHinting(): void {
    this.requireFeature(BalloonF.FREE_PAGE_HINT, 'FREE_PAGE_HINT');
    this.hinting.end(BalloonCmdId.STOP);
    this.ctx?.notifyConfigChange();
  }
  /** The host no longer needs the hinted pages (device/balloon/17): DONE; the driver frees them. */
  finishHinting(): void {
    this.requireFeature(BalloonF.FREE_PAGE_HINT, 'FREE_PAGE_HINT');
    this.hinting.end(BalloonCmdId.DONE);
    this.ctx?.notifyConfigChange();
  }
  /** Resolves once the driver ended round `cmdId` with STOP (the caller bounds the wait). */
  whenHintingStopped(cmdId: number): Promise<void> {
    return this.hinting.whenStopped(cmdId);
  }

  validateFeatures(accepted: bigint): string | null {
    const offered = (this.offeredFeatures & BalloonF.MUST_TELL_HOST) !== 0n;
    if (this.o.requireMustTellHost && offered && (accepted & BalloonF.MUST_TELL_HOST) === 0n) {
      return 'virtio-balloon: this device needs MUST_TELL_HOST (device/balloon/1)';
    }
    return null;
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
   * answers with a new one) and resolves with them. The caller bounds the wait. Requests made
   * while one is pending share its answer (a driver that never answers holds one waiter).
   */
  requestStats(): Promise<BalloonStats> {
    try {
      this.requireFeature(BalloonF.STATS_VQ, 'STATS_VQ');
    } catch (e) {
      return Promise.reject(e as Error);
    }
    if (this.pendingStats !== null) return this.pendingStats;
    const p = new Promise<BalloonStats>((resolve) => this.statsWaiters.push(resolve));
    this.pendingStats = p;
    this.releaseStats();
    return p;
  }

  readConfig(offset: number, dst: Uint8Array): void {
    // 5.5.4 legacy: little-endian even on a legacy interface.
    const values = { numPages: this.target, actual: this.actualPages, freePageHintCmdId: this.hinting.cmdId, poisonVal: this.poison };
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
    if (poisonOffered && offset <= BalloonConfig.POISON_VAL + 3 && end > BalloonConfig.POISON_VAL + 3) {
      // driver/balloon/35, 36: poison_val is set before DRIVER_OK; a later write is not used.
      if (this.ctx === null) this.poison = v.getUint32(BalloonConfig.POISON_VAL, true);
      else this.poisonWritesRefused++;
    }
  }

  activate(ctx: DeviceContext): void {
    this.ctx = ctx;
    this.roles = [];
    for (const role of [BalloonQueue.INFLATE, BalloonQueue.DEFLATE, BalloonQueue.STATS, BalloonQueue.FREE_PAGE, BalloonQueue.REPORTING]) {
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
    this.hinting.reset();
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
      // device/balloon/3: an inflated page's contents may go before the inflate is used.
      if (inflate && n > 0) this.releasePfns(mem, n);
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
    this.pendingStats = null;
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
    if (c.fault !== null) return 0;
    // device/balloon/20: without PAGE_POISON the pages may be dropped before the buffer is used;
    // device/balloon/21: with it, only when poison_val is 0 (a dropped page reads back zero).
    const poisoned = this.ctx !== null && (this.ctx.features & BalloonF.PAGE_POISON) !== 0n;
    const release = !poisoned || this.poison === 0;
    for (let i = c.readableCount; i < c.count; i++) {
      if (release) this.release(c.memory, c.addrs[i]!, c.lens[i]!);
      if (!cb) continue;
      try {
        cb(c.addrs[i]!, c.lens[i]!);
      } catch (e) {
        this.hostFailed(e);
      }
    }
    return 0;
  }

  /** Releases the `n` pages in `this.pfns`, a run of consecutive frames at a time. */
  private releasePfns(mem: GuestMemory, n: number): void {
    if (!this.o.releasePages) return;
    let start = this.pfns[0]!;
    let run = 1;
    for (let i = 1; i <= n; i++) {
      const pfn = i < n ? this.pfns[i]! : -1;
      if (pfn === start + run) {
        run++;
        continue;
      }
      this.release(mem, start * PAGE, run * PAGE);
      start = pfn;
      run = 1;
    }
  }

  private release(mem: GuestMemory, addr: number, len: number): void {
    const r = this.o.releasePages;
    if (!r) return;
    try {
      this.released += r(mem, addr, len);
    } catch (e) {
      this.hostFailed(e);
    }
  }

  private requireFeature(bit: bigint, name: string): void {
    if (this.ctx !== null && (this.ctx.features & bit) === 0n) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `virtio-balloon: ${name} was not negotiated`);
    if ((this.offeredFeatures & bit) === 0n) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `virtio-balloon: ${name} is not offered`);
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
