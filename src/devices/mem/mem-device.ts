/**
 * 5.15 Memory Device, device side: a region of guest physical address space in blocks the
 * driver plugs and unplugs with requests on the guest-request queue (PLUG, UNPLUG, UNPLUG ALL,
 * STATE), toward a requested size the host sets (`setRequestedSize`, a configuration change).
 * The block bitmap is the device's truth; where the region is host memory (`hostMemory`, an
 * mmapped area such as a memfd mapping), unplugged blocks are given back to the host kernel
 * with madvise (device/mem/17 lets the device discard them).
 */
import { ErrorCode, VirtioError } from '../../errors.js';
import { QueueServer, type QueueRequest } from '../../device/queue-server.js';
import type { DeviceContext, VirtioDevice } from '../../device/types.js';
import type { Logger } from '../../log.js';
import { MemoryAdvice, adviseMemory } from '../../platform/memory-advice.js';
import { ChainCursor } from '../../queue/chain.js';
import { encodeConfig } from '../../spec/config-layout.js';
import { DeviceId } from '../../spec/device-id.js';
import { F } from '../../spec/features.js';
import {
  MEM_CONFIG_LAYOUT,
  MEM_GUESTQ,
  MemBlockState,
  MemConfig,
  MemF,
  MemRequest,
  MemRequestType,
  MemResponse,
  MemResponseType,
  type MemConfigField,
} from '../../spec/mem.js';
import { MemBlockMap } from './mem-block-map.js';

/** Host memory behind the region, released when blocks are unplugged. */
export interface MemHostMemory {
  /** The region's bytes (offset 0 = `addr`), an mmapped area (a Mapping's `bytes`). */
  readonly bytes: Uint8Array;
  /** MADV_REMOVE for a shared memfd/shmem mapping, MADV_DONTNEED for a private anonymous one. */
  readonly advice: MemoryAdvice;
}

/** Options of MemDevice. */
export interface MemDeviceOptions {
  /** Bytes in the region (a multiple of blockSize; 0 is allowed, device/mem/7). */
  regionSize: number;
  /** Block size: a power of two of at least 4096 (a host page, so a block can be released). Default 2 MiB. */
  blockSize?: number;
  /** Guest physical address of the region (a multiple of blockSize). Default 4 GiB. */
  addr?: number;
  /** requested_size at start (a multiple of blockSize, at most regionSize). Default 0. */
  requestedSize?: number;
  /**
   * How far the usable region reaches beyond requested_size (it grows to requested_size +
   * usableExtent, capped at regionSize, as QEMU's virtio-mem does). Default: the whole region.
   */
  usableExtent?: number;
  /** An ACPI proximity domain: offers ACPI_PXM with node_id. Default: not offered. */
  nodeId?: number;
  /**
   * Offers UNPLUGGED_INACCESSIBLE (the driver must not read unplugged memory) and refuses
   * FEATURES_OK without it (device/mem/12). Default false.
   */
  unpluggedInaccessible?: boolean;
  /**
   * Offers PERSISTENT_SUSPEND (device/mem/15): this device changes block states only on the
   * driver's requests and on `systemReset`, never on a guest's suspend or resume. Default true.
   */
  persistentSuspend?: boolean;
  /** The region's host memory, released with madvise on unplug. Default: none (nothing to release). */
  hostMemory?: MemHostMemory;
  /** Queue size. Default 128. */
  queueSize?: number;
  /** Where the device logs; silent by default. */
  logger?: Logger;
}

const DEFAULT_BLOCK_SIZE = 2 << 20;
const DEFAULT_ADDR = 2 ** 32;

function checkMultiple(name: string, v: number, blockSize: number): void {
  if (!Number.isSafeInteger(v) || v < 0 || v % blockSize !== 0) {
    throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `virtio-mem: ${name} ${v} is not a non-negative multiple of the block size ${blockSize} (device/mem/6)`);
  }
}

/**
 * The virtio-mem device (5.15): a memory region the driver plugs and unplugs in blocks on request.
 * What it implements and its normative coverage: docs/devices/mem.md.
 */
export class MemDevice implements VirtioDevice {
  readonly deviceId = DeviceId.MEM;
  readonly offeredFeatures: bigint;
  readonly queueMaxSizes: readonly number[];
  readonly configSize = MemConfig.SIZE;

  /** Bytes of one memory block, the unit of every plug/unplug (config block_size, 5.15.4): a power of two, 4 KiB..1 GiB. */
  readonly blockSize: number;
  /** Guest physical address where the region starts (config addr, 5.15.4), a multiple of blockSize. */
  readonly addr: number;
  /** Bytes of the whole device-managed region (config region_size, 5.15.4). */
  readonly regionSize: number;
  private readonly blocks: MemBlockMap;
  private readonly extent: number;
  private readonly host: MemHostMemory | null;
  private readonly logger: Logger | undefined;
  private requested: number;
  private usable: number;
  private busy = false;
  private le = true;
  private ctx: DeviceContext | null = null;
  private readonly server: QueueServer;
  private readonly config: Record<MemConfigField, number>;
  // Per-request scratch: nothing is allocated per request.
  private readonly reader = new ChainCursor(false);
  private readonly writer = new ChainCursor(true);
  private readonly reqBytes = new Uint8Array(MemRequest.SIZE);
  private readonly reqView = new DataView(this.reqBytes.buffer);
  private readonly respBytes = new Uint8Array(MemResponse.SIZE);
  private readonly respView = new DataView(this.respBytes.buffer);
  /** Bytes given back to the host with madvise so far, and the releases that failed. */
  releasedBytes = 0;
  /** Unplugged blocks whose madvise(MADV_DONTNEED) failed (the memory stayed with the host process). */
  releaseFailures = 0;
  /** Requests answered, by response type (ACK, NACK, BUSY, ERROR). */
  readonly responses = [0, 0, 0, 0];

  constructor(opts: MemDeviceOptions) {
    const bs = opts.blockSize ?? DEFAULT_BLOCK_SIZE;
    // device/mem/5: a power of two.
    if (!Number.isSafeInteger(bs) || bs < 4096 || (bs & (bs - 1)) !== 0 || bs > 2 ** 30) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `virtio-mem: block size ${bs} is not a power of two in 4 KiB..1 GiB (device/mem/5)`);
    }
    this.blockSize = bs;
    this.addr = opts.addr ?? DEFAULT_ADDR;
    this.regionSize = opts.regionSize;
    this.requested = opts.requestedSize ?? 0;
    this.extent = opts.usableExtent ?? this.regionSize;
    checkMultiple('addr', this.addr, bs);
    checkMultiple('region size', this.regionSize, bs);
    checkMultiple('requested size', this.requested, bs);
    checkMultiple('usable extent', this.extent, bs);
    if (this.addr + this.regionSize > Number.MAX_SAFE_INTEGER) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'virtio-mem: the region ends past 2^53');
    if (this.requested > this.regionSize) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `virtio-mem: requested size ${this.requested} exceeds the region ${this.regionSize}`);
    if (opts.hostMemory && opts.hostMemory.bytes.length < this.regionSize) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `virtio-mem: host memory of ${opts.hostMemory.bytes.length} bytes is smaller than the region`);
    }
    const qs = opts.queueSize ?? 128;
    if (!Number.isInteger(qs) || qs < 1 || qs > 32768) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `virtio-mem: queue size ${qs} not in 1..32768`);
    let features = F.VERSION_1 | F.INDIRECT_DESC | F.EVENT_IDX | F.RING_PACKED | F.IN_ORDER | F.RING_RESET;
    if (opts.nodeId !== undefined) {
      if (!Number.isInteger(opts.nodeId) || opts.nodeId < 0 || opts.nodeId > 0xffff) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `virtio-mem: node id ${opts.nodeId}`);
      features |= MemF.ACPI_PXM;
    }
    if (opts.unpluggedInaccessible === true) features |= MemF.UNPLUGGED_INACCESSIBLE;
    if (opts.persistentSuspend !== false) features |= MemF.PERSISTENT_SUSPEND;
    this.offeredFeatures = features;
    this.queueMaxSizes = [qs];
    this.blocks = new MemBlockMap(this.regionSize / bs);
    this.host = opts.hostMemory ?? null;
    this.logger = opts.logger;
    this.usable = this.fitUsable(0);
    this.config = {
      block_size: bs,
      node_id: opts.nodeId ?? 0,
      addr: this.addr,
      region_size: this.regionSize,
      usable_region_size: this.usable,
      plugged_size: 0,
      requested_size: this.requested,
    };
    const serve = (req: QueueRequest): number => this.serve(req);
    this.server = new QueueServer({ name: 'virtio-mem', numQueues: 1, logger: opts.logger, handler: (i) => (i === MEM_GUESTQ ? serve : null) });
  }

  // ---- the host's side ---------------------------------------------------------------------

  /** requested_size (5.15.4): the bytes the device asks the driver to have plugged; changed by the host with resize. */
  get requestedSize(): number {
    return this.requested;
  }
  /** plugged_size (5.15.4): bytes plugged now (plugged blocks × blockSize). */
  get pluggedSize(): number {
    return this.blocks.pluggedBlocks * this.blockSize;
  }
  /** usable_region_size (5.15.4): bytes from `addr` in which the driver may plug blocks now (grows with requestedSize). */
  get usableRegionSize(): number {
    return this.usable;
  }
  /** Whether block `index` (0 = the block at `addr`) is plugged. */
  isPlugged(index: number): boolean {
    return index >= 0 && index < this.blocks.blocks && this.blocks.isPlugged(index);
  }

  /**
   * A resize request (5.15.6): requested_size becomes `bytes`, the usable region grows to fit
   * it (never shrinks here, device/mem/8), and the driver hears a configuration change
   * (device/mem/9).
   */
  setRequestedSize(bytes: number): void {
    checkMultiple('requested size', bytes, this.blockSize);
    if (bytes > this.regionSize) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `virtio-mem: requested size ${bytes} exceeds the region ${this.regionSize}`);
    this.requested = bytes;
    this.usable = this.fitUsable(this.usable);
    this.config.requested_size = bytes;
    this.config.usable_region_size = this.usable;
    this.ctx?.notifyConfigChange();
  }

  /**
   * While busy (a host operation on the region in progress), every request that would change
   * or depend on block states gets BUSY (device/mem/28, /35, /40); the driver retries.
   */
  setBusy(busy: boolean): void {
    this.busy = busy;
  }

  /**
   * System reset (the VMM resets the machine, not a virtio device reset): every block is
   * unplugged (device/mem/21, /22) and released, and the usable region shrinks to fit
   * requested_size again.
   */
  systemReset(): void {
    this.unplugAllBlocks();
  }

  // ---- VirtioDevice -------------------------------------------------------------------------

  readConfig(offset: number, dst: Uint8Array, features: bigint, littleEndian: boolean): void {
    encodeConfig(MEM_CONFIG_LAYOUT, this.config, features, offset, dst, littleEndian);
  }

  /** driver/mem/1: every field is read-only; writes are ignored. */
  writeConfig(): void {}

  configWritable(): boolean {
    return false;
  }

  validateFeatures(accepted: bigint): string | null {
    if ((this.offeredFeatures & MemF.UNPLUGGED_INACCESSIBLE) !== 0n && (accepted & MemF.UNPLUGGED_INACCESSIBLE) === 0n) {
      return 'virtio-mem: this device needs UNPLUGGED_INACCESSIBLE (device/mem/12)';
    }
    return null;
  }

  activate(ctx: DeviceContext): void {
    this.ctx = ctx;
    this.le = ctx.littleEndian;
    this.server.activate(ctx);
  }

  onQueueNotify(index: number): void {
    this.server.onQueueNotify(index);
  }

  suspend(): Promise<void> | void {
    return this.server.suspend();
  }

  resume(): void {
    this.server.resume();
  }

  /** Device reset: queues stop; block states and memory stay as they are (device/mem/13, /14). */
  reset(): void {
    this.server.reset();
    this.ctx = null;
  }

  resetQueue(index: number): void {
    this.server.resetQueue(index);
  }

  // ---- requests -----------------------------------------------------------------------------

  /** One request: decodes the 24 bytes, answers in 10 (5.15.6); never throws on guest input. */
  private serve({ chain }: QueueRequest): number {
    // A response needs 10 writable bytes: a request without them is not acted on, and what
    // room there is gets ERROR (a malformed request changes nothing).
    const malformed = chain.fault !== null || chain.readableBytes < MemRequest.SIZE || chain.writableBytes < MemResponse.SIZE;
    let type: number = MemResponseType.ERROR;
    let state = 0;
    if (!malformed && this.reader.reset(chain).read(this.reqBytes, 0, MemRequest.SIZE) === MemRequest.SIZE) {
      // device/mem/24, /25: only the type and the request-specific fields are read; padding and
      // bytes past the 24 are ignored.
      const v = this.reqView;
      const le = this.le;
      const hi = v.getUint32(MemRequest.ADDR + (le ? 4 : 0), le);
      const lo = v.getUint32(MemRequest.ADDR + (le ? 0 : 4), le);
      const nb = v.getUint16(MemRequest.NB_BLOCKS, le);
      switch (v.getUint16(MemRequest.TYPE, le)) {
        case MemRequestType.PLUG:
          type = this.changeState(hi, lo, nb, true);
          break;
        case MemRequestType.UNPLUG:
          type = this.changeState(hi, lo, nb, false);
          break;
        case MemRequestType.UNPLUG_ALL:
          type = this.unplugAll();
          break;
        case MemRequestType.STATE: {
          state = this.state(hi, lo, nb);
          type = state < 0 ? MemResponseType.ERROR : MemResponseType.ACK;
          break;
        }
        default:
          type = MemResponseType.ERROR; // an unknown request type
      }
    }
    this.responses[type]!++;
    this.respBytes.fill(0);
    this.respView.setUint16(MemResponse.TYPE, type, this.le);
    if (type === MemResponseType.ACK) this.respView.setUint16(MemResponse.STATE, state, this.le);
    if (chain.fault !== null) return 0;
    return this.writer.reset(chain).write(this.respBytes, 0, Math.min(MemResponse.SIZE, chain.writableBytes));
  }

  /**
   * The first block index of [addr, addr + nb blocks) inside the usable region, or -1
   * (device/mem/26, /33, /46: unaligned, nb_blocks 0, or a block outside the usable region).
   */
  private usableRange(hi: number, lo: number, nb: number): number {
    if (nb === 0 || hi >= 0x20_0000) return -1; // above 2^53: outside any region
    const addr = hi * 0x1_0000_0000 + lo;
    if (addr < this.addr || addr % this.blockSize !== 0) return -1;
    const first = (addr - this.addr) / this.blockSize;
    return first + nb <= this.usable / this.blockSize ? first : -1;
  }

  /** PLUG / UNPLUG (5.15.6.2, 5.15.6.3). */
  private changeState(hi: number, lo: number, nb: number, plug: boolean): MemResponseType {
    const first = this.usableRange(hi, lo, nb);
    if (first < 0) return MemResponseType.ERROR;
    // device/mem/27 (plug: none plugged), /34 (unplug: all plugged).
    const plugged = this.blocks.countPlugged(first, nb);
    if (plug ? plugged !== 0 : plugged !== nb) return MemResponseType.ERROR;
    if (this.busy) return MemResponseType.BUSY;
    // Intro of 5.15: once plugged_size would pass requested_size, plug requests are rejected.
    if (plug && this.pluggedSize + nb * this.blockSize > this.requested) return MemResponseType.NACK;
    this.blocks.setRange(first, nb, plug);
    if (!plug) this.release(first * this.blockSize, nb * this.blockSize);
    // device/mem/30, /37: plugged_size follows, without a notification (device/mem/10).
    this.config.plugged_size = this.pluggedSize;
    return MemResponseType.ACK;
  }

  /** UNPLUG ALL (5.15.6.4): only the type counts (device/mem/38, /39). */
  private unplugAll(): MemResponseType {
    if (this.busy) return MemResponseType.BUSY;
    this.unplugAllBlocks();
    return MemResponseType.ACK;
  }

  private unplugAllBlocks(): void {
    this.blocks.forEachRun(0, this.blocks.blocks, true, this.blocks.blocks, (start, length) => {
      this.release(start * this.blockSize, length * this.blockSize);
      return true;
    });
    this.blocks.clear();
    // device/mem/42, /43: plugged_size 0; the usable region may shrink back to fit the
    // requested size, with no notification (device/mem/9 excepts UNPLUG ALL).
    this.usable = this.fitUsable(0);
    this.config.plugged_size = 0;
    this.config.usable_region_size = this.usable;
  }

  /** STATE (5.15.6.5): PLUGGED, UNPLUGGED or MIXED, or -1 for a bad range (ERROR). */
  private state(hi: number, lo: number, nb: number): number {
    const first = this.usableRange(hi, lo, nb);
    if (first < 0) return -1;
    const plugged = this.blocks.countPlugged(first, nb);
    return plugged === nb ? MemBlockState.PLUGGED : plugged === 0 ? MemBlockState.UNPLUGGED : MemBlockState.MIXED;
  }

  /** The usable size that fits requested_size (+ the extent), at least `floor`, at most the region. */
  private fitUsable(floor: number): number {
    return Math.max(floor, Math.min(this.regionSize, this.requested + this.extent));
  }

  /** Gives [offset, offset + len) of the region back to the host (device/mem/17). */
  private release(offset: number, len: number): void {
    if (this.host === null || len === 0) return;
    try {
      this.releasedBytes += adviseMemory(this.host.bytes, offset, len, this.host.advice);
    } catch (e) {
      // The blocks are unplugged all the same; their contents simply stay (still allowed).
      this.releaseFailures++;
      this.logger?.warn(`virtio-mem: releasing ${len} bytes at +${offset} failed: ${(e as Error).message}`);
    }
  }
}
