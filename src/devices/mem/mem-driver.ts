/**
 * 5.15 Memory Device, driver side: reads the region's geometry, unplugs what a previous driver
 * left plugged (driver/mem/5), then follows requested_size: on every configuration change it
 * plugs unplugged blocks of the usable region, or unplugs plugged ones the owner of the memory
 * says are free (driver/mem/11, /13), until plugged_size matches or nothing more can be done
 * (driver/mem/15). Requests go through a RequestQueue, one at a time.
 *
 * The driver itself never reads or writes the region (driver/mem/6 to /10): memory it plugs is
 * handed to `onPlugged`, whose owner initialises it before use (driver/mem/12).
 */
import { type DeviceDriver, type DeviceDriverType, checkDriverContext } from '../../driver/device-driver.js';
import { RequestQueue } from '../../driver/request-queue.js';
import type { DriverContext } from '../../driver/types.js';
import { ErrorCode, VirtioError } from '../../errors.js';
import { readConfigFields } from '../../spec/config-layout.js';
import { DeviceId } from '../../spec/device-id.js';
import {
  MEM_CONFIG_LAYOUT,
  MEM_FEATURES,
  MEM_GUESTQ,
  MEM_MAX_BLOCKS_PER_REQUEST,
  MemF,
  MemRequest,
  MemRequestType,
  MemResponse,
  MemResponseType,
  type MemBlockState,
} from '../../spec/mem.js';
import { MemBlockMap } from './mem-block-map.js';

/** Options of MemDriver. */
export interface MemDriverOptions {
  /** Blocks [addr, addr + size) were plugged: initialise them before use (driver/mem/12). */
  onPlugged?(addr: number, size: number): void;
  /** Whether [addr, addr + size) is free to unplug (driver/mem/11). Default: always. */
  canUnplug?(addr: number, size: number): boolean;
  /** Blocks [addr, addr + size) were unplugged: they must not be touched any more (driver/mem/6). */
  onUnplugged?(addr: number, size: number): void;
  /** Follow requested_size on every configuration change (driver/mem/13). Default true. */
  followRequests?: boolean;
  /** First wait after BUSY in ms (doubling up to 1 s). Default 10. */
  busyRetryMs?: number;
  /** BUSY answers to one request before giving up (MemDeviceBusyError). Default 100. */
  maxBusyRetries?: number;
}

/** The region as the configuration describes it (fields that cannot change, device/mem/2). */
export interface MemRegionInfo {
  /** Bytes of one block (block_size, 5.15.4). */
  readonly blockSize: number;
  /** The ACPI proximity domain, or null without ACPI_PXM (driver/mem/3). */
  readonly nodeId: number | null;
  /** Guest physical address of the region's start (addr, 5.15.4). */
  readonly addr: number;
  /** Bytes of the region (region_size, 5.15.4). */
  readonly regionSize: number;
}

/** The sizes that change at run time. */
export interface MemSizes {
  /** usable_region_size (5.15.4): bytes from addr in which blocks may be plugged now. */
  readonly usableRegionSize: number;
  /** plugged_size (5.15.4): bytes the device counts as plugged. */
  readonly pluggedSize: number;
  /** requested_size (5.15.4): bytes the device wants plugged. */
  readonly requestedSize: number;
}

/** What one `resize` achieved. */
export interface MemResizeResult {
  /** The requested_size the driver worked towards, bytes. */
  readonly requestedSize: number;
  /** The bytes plugged afterwards (the driver's count of its acknowledged requests). */
  readonly pluggedSize: number;
  /** Whether plugged_size equals requested_size (driver/mem/15: it may not). */
  readonly reached: boolean;
}

/** The answer to one request: its response type, and the state for an acknowledged STATE. */
export interface MemAnswer {
  /** VIRTIO_MEM_RESP_ACK, NACK, BUSY or ERROR (5.15.6). */
  readonly type: MemResponseType;
  /** STATE acknowledged: the state of the blocks; otherwise null (driver/mem/21). */
  readonly state: MemBlockState | null;
}

/** The device kept answering BUSY. */
export class MemDeviceBusyError extends VirtioError {
  constructor(
    /** The request (VIRTIO_MEM_REQ_*) that kept getting BUSY. */
    readonly requestType: MemRequestType,
  ) {
    super(ErrorCode.TIMEOUT, `virtio-mem: the device stayed busy for request type ${requestType}`);
  }
}

/** The device refused a request the driver's view of the blocks says is valid. */
export class MemRequestError extends VirtioError {
  constructor(
    /** The request refused (VIRTIO_MEM_REQ_PLUG, UNPLUG, UNPLUG_ALL, STATE). */
    readonly requestType: MemRequestType,
    /** The device's answer (NACK or ERROR, 5.15.6). */
    readonly responseType: MemResponseType,
    /** Guest physical address of the first block of the request. */
    readonly addr: number,
    /** Blocks the request covered (nb_blocks). */
    readonly blocks: number,
  ) {
    super(ErrorCode.REQUEST_FAILED, `virtio-mem: request type ${requestType} for ${blocks} blocks at 0x${addr.toString(16)} got response ${responseType}`);
  }
}

const ALL_SIZES = ['usable_region_size', 'plugged_size', 'requested_size'] as const;

/**
 * The virtio-mem driver (5.15): typed requests over the device's queues. Construct it on a
 * DriverContext, or start it with startDeviceDriver and its static `type`.
 */
export class MemDriver implements DeviceDriver {
  /** The DeviceDriver contract: memory devices; every 5.15.3 bit is understood (driver/mem/4). */
  static readonly type: DeviceDriverType<MemDriver, MemDriverOptions> = {
    name: 'virtio-mem',
    deviceId: DeviceId.MEM,
    wantedFeatures: MEM_FEATURES,
    requiredFeatures: 0n,
    attach: (ctx, opts) => new MemDriver(ctx, opts),
  };

  /** The device's memory region as the config describes it (address, sizes, block size). */
  readonly region: MemRegionInfo;
  private readonly ctx: DriverContext;
  private readonly opts: MemDriverOptions;
  private readonly queue: RequestQueue;
  /** The blocks this driver plugged (its view; the device's is the truth). */
  private readonly mine: MemBlockMap;
  private started = false;
  private running: Promise<MemResizeResult> | null = null;
  private again = false;
  private detached = false;
  private timer: NodeJS.Timeout | null = null;
  private wake: (() => void) | null = null;
  /** Outcome of the resize a configuration change started (for callers that wait on it). */
  private lastError: unknown = null;
  /** `whenReached` callers, settled at the end of each resize pass. */
  private reachWaiters: { bytes: number; resolve: (r: MemResizeResult) => void; reject: (e: unknown) => void }[] = [];

  constructor(ctx: DriverContext, opts: MemDriverOptions = {}) {
    checkDriverContext(MemDriver.type, ctx);
    this.ctx = ctx;
    this.opts = opts;
    const read = (o: number, l: number): Uint8Array => ctx.readConfig(o, l);
    const c = readConfigFields(MEM_CONFIG_LAYOUT, ['block_size', 'addr', 'region_size'], read, ctx.littleEndian);
    const bs = c.block_size;
    // device/mem/5, /6: a power of two, and everything else a multiple of it.
    if (!Number.isSafeInteger(bs) || bs < 1 || !Number.isInteger(Math.log2(bs)) || c.addr % bs !== 0 || c.region_size % bs !== 0) {
      throw new VirtioError(ErrorCode.REQUEST_FAILED, `virtio-mem: block size ${bs}, addr 0x${c.addr.toString(16)}, region ${c.region_size}: not a power-of-two block size or not block aligned`);
    }
    // driver/mem/3: node_id means nothing without ACPI_PXM (and is never read then).
    const nodeId = (ctx.features & MemF.ACPI_PXM) !== 0n ? readConfigFields(MEM_CONFIG_LAYOUT, ['node_id'], read, ctx.littleEndian).node_id : null;
    this.region = { blockSize: bs, nodeId, addr: c.addr, regionSize: c.region_size };
    this.mine = new MemBlockMap(c.region_size / bs);
    this.queue = new RequestQueue(ctx, MEM_GUESTQ);
    ctx.onConfigChange(() => this.onConfigChange());
  }

  /** driver/mem/16: the guest may suspend to RAM only with PERSISTENT_SUSPEND negotiated. */
  get allowsSuspend(): boolean {
    return (this.ctx.features & MemF.PERSISTENT_SUSPEND) !== 0n;
  }

  /** Whether unplugged blocks must not even be read (UNPLUGGED_INACCESSIBLE negotiated, driver/mem/10). */
  get unpluggedInaccessible(): boolean {
    return (this.ctx.features & MemF.UNPLUGGED_INACCESSIBLE) !== 0n;
  }

  /** Bytes this driver has plugged. */
  get pluggedByDriver(): number {
    return this.mine.pluggedBlocks * this.region.blockSize;
  }

  /** Whether this driver plugged the block at `addr`. */
  isPlugged(addr: number): boolean {
    const b = (addr - this.region.addr) / this.region.blockSize;
    return Number.isInteger(b) && b >= 0 && b < this.mine.blocks && this.mine.isPlugged(b);
  }

  /** The sizes in the configuration now. */
  sizes(): MemSizes {
    const s = readConfigFields(MEM_CONFIG_LAYOUT, ALL_SIZES, (o, l) => this.ctx.readConfig(o, l), this.ctx.littleEndian);
    return { usableRegionSize: s.usable_region_size, pluggedSize: s.plugged_size, requestedSize: s.requested_size };
  }

  /**
   * Initialisation (5.15.5): memory still plugged (a previous driver's) is unplugged with
   * UNPLUG ALL, retried while BUSY (driver/mem/5); then the driver follows requested_size.
   */
  async start(): Promise<MemResizeResult> {
    if (this.sizes().pluggedSize > 0) await this.unplugAll();
    this.started = true;
    return this.resize();
  }

  /**
   * Plugs or unplugs toward requested_size (driver/mem/13); concurrent calls share one pass, and
   * a change that arrives during a pass starts another.
   */
  resize(): Promise<MemResizeResult> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    const run = (async (): Promise<MemResizeResult> => {
      try {
        let r: MemResizeResult;
        do {
          this.again = false;
          r = await this.resizeOnce();
        } while (this.again && !this.detached);
        this.settleWaiters(r, null);
        return r;
      } catch (e) {
        this.settleWaiters(null, e);
        throw e;
      } finally {
        this.running = null;
      }
    })();
    this.running = run;
    return run;
  }

  /**
   * Resolves once a resize pass ends with plugged_size = requested_size = `bytes` (the host's
   * resize request was followed); rejects when a pass fails. The caller bounds the wait.
   */
  whenReached(bytes: number): Promise<MemResizeResult> {
    return new Promise((resolve, reject) => this.reachWaiters.push({ bytes, resolve, reject }));
  }

  private settleWaiters(r: MemResizeResult | null, error: unknown): void {
    const keep: typeof this.reachWaiters = [];
    for (const w of this.reachWaiters) {
      if (r === null) w.reject(error);
      else if (r.reached && r.pluggedSize === w.bytes) w.resolve(r);
      else keep.push(w);
    }
    this.reachWaiters = keep;
  }

  /** The error of the last resize a configuration change started, or null. */
  get resizeError(): unknown {
    return this.lastError;
  }

  // ---- the four requests (5.15.6), each retried while BUSY ------------------------------------

  /** PLUG `blocks` blocks at `addr`; ACK records them as plugged. */
  plug(addr: number, blocks: number): Promise<MemAnswer> {
    return this.request(MemRequestType.PLUG, addr, blocks);
  }

  /** UNPLUG `blocks` blocks at `addr`; ACK records them as unplugged. */
  unplug(addr: number, blocks: number): Promise<MemAnswer> {
    return this.request(MemRequestType.UNPLUG, addr, blocks);
  }

  /** UNPLUG ALL; fails with MemRequestError unless acknowledged. */
  async unplugAll(): Promise<void> {
    const a = await this.request(MemRequestType.UNPLUG_ALL, 0, 0);
    if (a.type !== MemResponseType.ACK) throw new MemRequestError(MemRequestType.UNPLUG_ALL, a.type, 0, 0);
  }

  /** STATE of `blocks` blocks at `addr`. */
  state(addr: number, blocks: number): Promise<MemAnswer> {
    return this.request(MemRequestType.STATE, addr, blocks);
  }

  detach(): void {
    this.detached = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.wake?.();
    this.queue.detach();
    this.settleWaiters(null, new VirtioError(ErrorCode.INVALID_ARGUMENT, 'virtio-mem: the driver was detached'));
  }

  // ---- internals ----------------------------------------------------------------------------

  private onConfigChange(): void {
    if (!this.started || this.detached || this.opts.followRequests === false) return;
    this.resize().then(
      () => (this.lastError = null),
      (e: unknown) => (this.lastError = e),
    );
  }

  private async resizeOnce(): Promise<MemResizeResult> {
    const bs = this.region.blockSize;
    // plugged_size changes without a configuration change (device/mem/10): like Linux, the
    // driver counts what it plugged itself rather than re-reading it (a front-end may cache
    // the configuration between notifications).
    const s = this.sizes();
    const plugged = this.pluggedByDriver;
    if (plugged < s.requestedSize) {
      // driver/mem/14: only what is asked for, in runs of unplugged blocks, lowest first.
      let want = (s.requestedSize - plugged) / bs;
      const usable = Math.min(s.usableRegionSize, this.region.regionSize) / bs;
      for (const [start, n] of this.runs(0, usable, false, want)) {
        const a = await this.plug(this.region.addr + start * bs, n);
        if (a.type === MemResponseType.NACK) break; // requested_size shrank meanwhile: a change follows
        if (a.type !== MemResponseType.ACK) throw new MemRequestError(MemRequestType.PLUG, a.type, this.region.addr + start * bs, n);
        this.opts.onPlugged?.(this.region.addr + start * bs, n * bs);
        want -= n;
        if (want === 0 || this.again) break;
      }
    } else if (plugged > s.requestedSize) {
      // Highest blocks first, each run only where its owner says it is free (driver/mem/11).
      let excess = (plugged - s.requestedSize) / bs;
      for (const [start, n] of this.runs(0, this.mine.blocks, true, excess, true)) {
        const a = await this.unplug(this.region.addr + start * bs, n);
        if (a.type !== MemResponseType.ACK) throw new MemRequestError(MemRequestType.UNPLUG, a.type, this.region.addr + start * bs, n);
        this.opts.onUnplugged?.(this.region.addr + start * bs, n * bs);
        excess -= n;
        if (excess === 0 || this.again) break;
      }
    }
    const now = this.pluggedByDriver;
    return { requestedSize: s.requestedSize, pluggedSize: now, reached: now === s.requestedSize };
  }

  /**
   * Runs of blocks in [first, first + count) that are `plugged` in the driver's view, at most
   * `limit` blocks in all, each at most 65535 (nb_blocks is le16); from the top when
   * `fromTop`, and then only blocks `canUnplug` accepts. Computed up front: a short list.
   */
  private runs(first: number, count: number, plugged: boolean, limit: number, fromTop = false): [number, number][] {
    const out: [number, number][] = [];
    const bs = this.region.blockSize;
    const ok = (b: number): boolean =>
      this.mine.isPlugged(b) === plugged && (!fromTop || (this.opts.canUnplug?.(this.region.addr + b * bs, bs) ?? true));
    let left = limit;
    if (!fromTop) {
      let b = first;
      while (b < first + count && left > 0) {
        if (!ok(b)) {
          b++;
          continue;
        }
        const start = b;
        while (b < first + count && b - start < Math.min(left, MEM_MAX_BLOCKS_PER_REQUEST) && ok(b)) b++;
        out.push([start, b - start]);
        left -= b - start;
      }
    } else {
      let b = first + count - 1;
      while (b >= first && left > 0) {
        if (!ok(b)) {
          b--;
          continue;
        }
        const end = b;
        while (b >= first && end - b < Math.min(left, MEM_MAX_BLOCKS_PER_REQUEST) && ok(b)) b--;
        out.push([b + 1, end - b]);
        left -= end - b;
      }
    }
    return out;
  }

  /** One request, retried while the device answers BUSY (bounded, doubling waits). */
  private async request(type: MemRequestType, addr: number, blocks: number): Promise<MemAnswer> {
    if (!Number.isSafeInteger(addr) || addr < 0 || !Number.isInteger(blocks) || blocks < 0 || blocks > MEM_MAX_BLOCKS_PER_REQUEST) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `virtio-mem: bad request range 0x${addr.toString(16)} + ${blocks} blocks`);
    }
    let wait = this.opts.busyRetryMs ?? 10;
    const maxRetries = this.opts.maxBusyRetries ?? 100;
    for (let attempt = 0; ; attempt++) {
      const a = await this.requestOnce(type, addr, blocks);
      if (a.type !== MemResponseType.BUSY) {
        if (a.type === MemResponseType.ACK) this.record(type, addr, blocks);
        return a;
      }
      if (attempt >= maxRetries || this.detached) throw new MemDeviceBusyError(type);
      await this.sleep(wait);
      wait = Math.min(wait * 2, 1000);
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.wake = resolve;
      this.timer = setTimeout(() => {
        this.timer = null;
        this.wake = null;
        resolve();
      }, ms);
    });
  }

  /** The driver's view follows each acknowledged request. */
  private record(type: MemRequestType, addr: number, blocks: number): void {
    if (type === MemRequestType.UNPLUG_ALL) {
      this.mine.clear();
      return;
    }
    if (type === MemRequestType.STATE) return;
    const first = (addr - this.region.addr) / this.region.blockSize;
    if (Number.isInteger(first) && first >= 0 && first + blocks <= this.mine.blocks) this.mine.setRange(first, blocks, type === MemRequestType.PLUG);
  }

  private async requestOnce(type: MemRequestType, addr: number, blocks: number): Promise<MemAnswer> {
    const le = this.ctx.littleEndian;
    const req = new Uint8Array(MemRequest.SIZE);
    const v = new DataView(req.buffer);
    v.setUint16(MemRequest.TYPE, type, le);
    if (type !== MemRequestType.UNPLUG_ALL) {
      const hi = Math.floor(addr / 0x1_0000_0000);
      const lo = addr >>> 0;
      v.setUint32(MemRequest.ADDR + (le ? 0 : 4), lo, le);
      v.setUint32(MemRequest.ADDR + (le ? 4 : 0), hi, le);
      v.setUint16(MemRequest.NB_BLOCKS, blocks, le);
    }
    const reqAddr = this.ctx.dma.alloc(MemRequest.SIZE, 8);
    const respAddr = this.ctx.dma.alloc(MemResponse.SIZE, 8);
    try {
      this.ctx.memory.write(reqAddr, req);
      this.ctx.memory.fill(respAddr, MemResponse.SIZE, 0xff);
      // The used length is not relied on (QEMU 7.2's packed rings do not report it, see
      // docs/x-remote.md): the response was filled with 0xff, so one the device did not write
      // reads as the undefined type 0xffff and fails below.
      await this.queue.submit([{ addr: reqAddr, len: MemRequest.SIZE }], [{ addr: respAddr, len: MemResponse.SIZE }]);
      const resp = new Uint8Array(MemResponse.SIZE);
      this.ctx.memory.read(respAddr, resp);
      const rv = new DataView(resp.buffer);
      // driver/mem/17, /19, /20: only the type (and the state of an acknowledged STATE) is read.
      const t = rv.getUint16(MemResponse.TYPE, le);
      if (t > MemResponseType.ERROR) throw new VirtioError(ErrorCode.REQUEST_FAILED, `virtio-mem: unknown response type ${t}`);
      const rt = t as MemResponseType;
      // driver/mem/21: the state only counts when acknowledged.
      const state = type === MemRequestType.STATE && rt === MemResponseType.ACK ? (rv.getUint16(MemResponse.STATE, le) as MemBlockState) : null;
      return { type: rt, state };
    } finally {
      this.ctx.dma.free(reqAddr);
      this.ctx.dma.free(respAddr);
    }
  }
}
