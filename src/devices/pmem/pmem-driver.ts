/**
 * 5.19 PMEM Device, driver side: where the persistent range is (5.19.5) and flush requests on
 * req_vq. Without VIRTIO_PMEM_F_SHMEM_REGION the range is read from start and size
 * (driver/pmem/2); with it the driver uses shared memory region 0, which the caller queried from
 * its transport (`PciDriverTransport.sharedMemoryRegions()`, `MmioDriverTransport...`) and
 * passes as `region`, and never start or size (driver/pmem/1). The DriverContext has no view of
 * shared memory, hence the option.
 */
import { type DeviceDriver, type DeviceDriverType, checkDriverContext } from '../../driver/device-driver.js';
import { RequestQueue } from '../../driver/request-queue.js';
import type { DriverContext } from '../../driver/types.js';
import { ErrorCode, VirtioError } from '../../errors.js';
import { readConfigFields } from '../../spec/config-layout.js';
import { DeviceId } from '../../spec/device-id.js';
import { PMEM_CONFIG_LAYOUT, PMEM_REQUESTQ, PMEM_REQ_SIZE, PMEM_REQ_TYPE_FLUSH, PMEM_RESP_SIZE, PMEM_SHMEM_ID, PmemF, PmemRet } from '../../spec/pmem.js';

/** A guest physical range. */
export interface PmemRange {
  /** First guest physical address. */
  readonly base: number;
  /** Bytes in the range. */
  readonly length: number;
}

/** Options of PmemDriver. */
export interface PmemDriverOptions {
  /** Shared memory regions of the device as its transport lists them (needed with SHMEM_REGION). */
  regions?: readonly {
    /** shmid of the region (VIRTIO_PMEM_SHMEM_REGION_ID is 0). */
    readonly id: number;
    /** Guest physical address where the transport maps it. */
    readonly base: number;
    /** Bytes in the region. */
    readonly length: number;
  }[];
}

/** A flush the device answered with another status than 0. */
export class PmemFlushError extends VirtioError {
  constructor(
    /** The `ret` of struct virtio_pmem_resp: 0 is success, -1 a failed flush (or a malformed request). */
    readonly ret: number,
  ) {
    super(ErrorCode.REQUEST_FAILED, `virtio-pmem flush failed: ret ${ret}`);
  }
}

/**
 * The virtio-pmem driver (5.19): typed requests over the device's queues. Construct it on a
 * DriverContext, or start it with startDeviceDriver and its static `type`.
 */
export class PmemDriver implements DeviceDriver {
  /**
   * The DeviceDriver contract: the device id, the feature bits this driver can use and needs,
   * and how to attach it (startDeviceDriver).
   */
  static readonly type: DeviceDriverType<PmemDriver, PmemDriverOptions> = {
    name: 'virtio-pmem',
    deviceId: DeviceId.PMEM,
    // SHMEM_REGION only when the caller can hand over the region list: see the constructor.
    wantedFeatures: PmemF.SHMEM_REGION,
    requiredFeatures: 0n,
    attach: (ctx, opts) => new PmemDriver(ctx, opts),
  };

  /** Where the persistent range is in guest physical memory. */
  readonly range: PmemRange;
  private readonly ctx: DriverContext;
  private readonly queue: RequestQueue;

  constructor(ctx: DriverContext, opts: PmemDriverOptions = {}) {
    checkDriverContext(PmemDriver.type, ctx);
    this.ctx = ctx;
    if ((ctx.features & PmemF.SHMEM_REGION) !== 0n) {
      // driver/pmem/1: shared memory region 0, never start or size.
      const r = opts.regions?.find((x) => x.id === PMEM_SHMEM_ID);
      if (r === undefined) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'VIRTIO_PMEM_F_SHMEM_REGION negotiated: pass the transport\'s shared memory region 0 (driver/pmem/1)');
      this.range = { base: r.base, length: r.length };
    } else {
      // driver/pmem/2: start and size.
      const v = readConfigFields(PMEM_CONFIG_LAYOUT, ['start', 'size'], (o, n) => ctx.readConfig(o, n), ctx.littleEndian);
      this.range = { base: v.start, length: v.size };
    }
    this.queue = new RequestQueue(ctx, PMEM_REQUESTQ);
  }

  /** VIRTIO_PMEM_REQ_TYPE_FLUSH: resolves once the device made earlier writes persistent. */
  async flush(): Promise<void> {
    const ret = await this.request(PMEM_REQ_TYPE_FLUSH);
    if (ret !== PmemRet.OK) throw new PmemFlushError(ret);
  }

  /** Sends a request of `type` (tests send others); resolves with the device's ret. */
  async request(type: number): Promise<number> {
    const { dma, memory, littleEndian } = this.ctx;
    const req = dma.alloc(PMEM_REQ_SIZE, 4);
    const resp = dma.alloc(PMEM_RESP_SIZE, 4);
    try {
      memory.writeU32(req, type >>> 0, littleEndian);
      memory.writeU32(resp, 0x7eadbeef, littleEndian);
      // The response is read, never the used length (QEMU 7.2 leaves it 0 in used packed descriptors).
      await this.queue.submit([{ addr: req, len: PMEM_REQ_SIZE }], [{ addr: resp, len: PMEM_RESP_SIZE }]);
      return memory.readU32(resp, littleEndian) | 0;
    } finally {
      dma.free(req);
      dma.free(resp);
    }
  }

  /** Stops using the device: pending flushes fail with RequestAbortedError('detached'). */
  detach(): void {
    this.queue.detach();
  }
}
