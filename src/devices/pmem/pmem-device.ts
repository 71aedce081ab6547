/**
 * 5.19 PMEM Device, device side: the persistent memory range (a PmemBackend) and req_vq, whose
 * flush requests complete once the backend's flush did (device/pmem/6), with ret 0, or -1 for a
 * failed flush and for every malformed request (device/pmem/7). One QueueServer; a flush that
 * takes time (fdatasync) completes later, other requests keep being served.
 *
 * Where the driver finds the range (5.19.5): with VIRTIO_PMEM_F_SHMEM_REGION (offered only with
 * `shmemRegion: true`) as shared memory region 0 (device/pmem/1, device/pmem/2), start and size
 * reading 0 (device/pmem/3); otherwise start is the guest physical address the VMM maps the
 * range at (`start`) and size its length (device/pmem/4, device/pmem/5). The device does not
 * place memory in the guest's address space itself: that is the VMM's (or the transport's)
 * job, which is why `start` is an option.
 */
import { ErrorCode, VirtioError } from '../../errors.js';
import { QueueServer, type QueueRequest } from '../../device/queue-server.js';
import type { DeviceContext, SharedMemoryRegion, VirtioDevice } from '../../device/types.js';
import type { Logger } from '../../log.js';
import { ChainCursor } from '../../queue/chain.js';
import { type ConfigValues, encodeConfig } from '../../spec/config-layout.js';
import { DeviceId } from '../../spec/device-id.js';
import { F } from '../../spec/features.js';
import { PMEM_CONFIG_LAYOUT, PMEM_REQ_SIZE, PMEM_REQ_TYPE_FLUSH, PMEM_REQUESTQ, PMEM_RESP_SIZE, PMEM_SHMEM_ID, PmemConfig, PmemF, PmemRet, type PmemConfigField } from '../../spec/pmem.js';
import type { PmemBackend } from './pmem-backend.js';

/** Options of PmemDevice. */
export interface PmemDeviceOptions {
  /** Guest physical address of the range (config `start` without SHMEM_REGION). Default 0. */
  start?: number;
  /** Offer VIRTIO_PMEM_F_SHMEM_REGION and present the range as shared memory region 0. Default false. */
  shmemRegion?: boolean;
  /** Maximum queue size. Default 128. */
  queueSize?: number;
  /** Where the device logs; silent by default. */
  logger?: Logger;
}

const TRANSPORT_FEATURES = F.VERSION_1 | F.INDIRECT_DESC | F.EVENT_IDX | F.RING_PACKED | F.RING_RESET;

/**
 * The virtio-pmem device (5.19): a persistent memory region backed by a file or RAM, with flush
 * requests. What it implements and its normative coverage: docs/devices/pmem.md.
 */
export class PmemDevice implements VirtioDevice {
  readonly deviceId = DeviceId.PMEM;
  readonly offeredFeatures: bigint;
  readonly queueMaxSizes: readonly number[];
  readonly configSize = PmemConfig.SIZE;
  readonly sharedMemoryRegions?: readonly SharedMemoryRegion[];
  /** Guest physical address of the range: the configuration's `start` (which reads 0 with SHMEM_REGION). */
  readonly start: number;

  private le = true;
  private readonly server: QueueServer;
  private readonly reader = new ChainCursor(false);
  private readonly writer = new ChainCursor(true);
  private readonly scratch = new Uint8Array(4);
  private readonly view = new DataView(this.scratch.buffer);
  private readonly log: Logger | undefined;

  constructor(
    /** The memory range presented and flushed. */
    readonly backend: PmemBackend,
    opts: PmemDeviceOptions = {},
  ) {
    const qs = opts.queueSize ?? 128;
    if (!Number.isInteger(qs) || qs < 1 || qs > 32768) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `queueSize ${qs} not in 1..32768`);
    this.start = opts.start ?? 0;
    if (!Number.isSafeInteger(this.start) || this.start < 0 || !Number.isSafeInteger(this.start + backend.bytes.length)) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `pmem start ${this.start}`);
    }
    this.queueMaxSizes = [qs];
    this.log = opts.logger;
    this.offeredFeatures = TRANSPORT_FEATURES | (opts.shmemRegion ? PmemF.SHMEM_REGION : 0n);
    // device/pmem/2: region ID 0.
    if (opts.shmemRegion) this.sharedMemoryRegions = [{ id: PMEM_SHMEM_ID, length: backend.bytes.length, memory: backend.bytes }];
    this.server = new QueueServer({
      name: 'virtio-pmem',
      numQueues: 1,
      logger: opts.logger,
      handler: (i) => (i === PMEM_REQUESTQ ? this.serve : null),
    });
  }

  /** The range's length in bytes. */
  get size(): number {
    return this.backend.bytes.length;
  }

  private readonly serve = (req: QueueRequest): number | Promise<number> => {
    const chain = req.chain;
    let ok = false;
    if (chain.fault === null && this.reader.reset(chain).read(this.scratch, 0, PMEM_REQ_SIZE) === PMEM_REQ_SIZE) {
      ok = this.view.getUint32(0, this.le) === PMEM_REQ_TYPE_FLUSH;
    }
    if (!ok) return this.respond(req, PmemRet.ERROR);
    let flushed: void | Promise<void>;
    try {
      flushed = this.backend.flush();
    } catch (e) {
      this.log?.warn(`virtio-pmem: flush failed: ${(e as Error).message}`);
      return this.respond(req, PmemRet.ERROR);
    }
    if (flushed === undefined) return this.respond(req, PmemRet.OK);
    // device/pmem/6: completed only once the backend's flush (fdatasync) is done.
    return flushed.then(
      () => this.respond(req, PmemRet.OK),
      (e: unknown) => {
        this.log?.warn(`virtio-pmem: flush failed: ${(e as Error).message}`);
        return this.respond(req, PmemRet.ERROR);
      },
    );
  };

  /** Writes struct virtio_pmem_resp (when the driver gave room for it); returns the bytes written. */
  private respond(req: QueueRequest, ret: number): number {
    const chain = req.chain;
    if (chain.writableBytes < PMEM_RESP_SIZE) return 0;
    this.view.setInt32(0, ret, this.le);
    return this.writer.reset(chain).write(this.scratch, 0, PMEM_RESP_SIZE);
  }

  readConfig(offset: number, dst: Uint8Array, features: bigint, littleEndian: boolean): void {
    // device/pmem/3: 0 and 0 with SHMEM_REGION; device/pmem/5: the address and the length otherwise.
    const shm = (features & PmemF.SHMEM_REGION) !== 0n;
    const values: ConfigValues<PmemConfigField> = shm ? { start: 0, size: 0 } : { start: this.start, size: this.size };
    encodeConfig(PMEM_CONFIG_LAYOUT, values, features, offset, dst, littleEndian);
  }

  writeConfig(): void {
    // 5.19.4: every field is read-only.
  }

  activate(ctx: DeviceContext): void {
    this.le = ctx.littleEndian;
    this.server.activate(ctx);
  }

  onQueueNotify(index: number): void {
    this.server.onQueueNotify(index);
  }

  reset(): void {
    // Flushes in flight finish on the backend (the data persists); their completions are dropped.
    this.server.reset();
  }

  resetQueue(index: number): void {
    this.server.resetQueue(index);
  }
}
