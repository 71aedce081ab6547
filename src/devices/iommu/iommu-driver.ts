/**
 * 5.13 IOMMU Device, driver side: ATTACH / DETACH / MAP / UNMAP / PROBE requests (reserved fields
 * zero: driver/iommu/8, /12, /16, /17, /23, /30), the bypass config field, and fault reports from
 * the event queue. The driver keeps its own record of domains, mappings and probed reserved
 * regions, so it refuses what the spec forbids it to send: addresses outside input_range
 * (driver/iommu/10), domains outside domain_range (driver/iommu/11), MAP or UNMAP on a bypass
 * domain (driver/iommu/18, /28), MMIO without the feature (driver/iommu/22), UNMAP ranges that
 * start or end inside a mapping (driver/iommu/26, /27), mappings over reserved regions
 * (driver/iommu/35). With PROBE negotiated an endpoint is probed before its first ATTACH
 * (driver/iommu/7).
 */
import { type DeviceDriver, type DeviceDriverType, checkDriverContext } from '../../driver/device-driver.js';
import { RequestQueue } from '../../driver/request-queue.js';
import type { DriverContext } from '../../driver/types.js';
import { ErrorCode, VirtioError } from '../../errors.js';
import { readConfigFields, writeConfigField } from '../../spec/config-layout.js';
import { DeviceId } from '../../spec/device-id.js';
import {
  IOMMU_ATTACH_F_BYPASS,
  IOMMU_CONFIG_LAYOUT,
  IOMMU_PROBE_PROPERTY_HEADER,
  IOMMU_TAIL_SIZE,
  IommuF,
  IommuFault,
  IommuFaultFlag,
  IommuFaultReason,
  IommuMapFlag,
  IommuProbeType,
  IommuQueue,
  IommuRequest,
  IommuResvMem,
  IommuStatus,
} from '../../spec/iommu.js';

const U32 = 0x1_0000_0000;

/** The device answered a request with a status other than OK. */
export class IommuStatusError extends VirtioError {
  constructor(
    /** The request that failed, e.g. `MAP` or `ATTACH`. */
    readonly operation: string,
    /** VIRTIO_IOMMU_S_* status the device answered (IOERR, UNSUPP, DEVERR, INVAL, RANGE, NOENT, FAULT, NOMEM). */
    readonly status: number,
  ) {
    super(ErrorCode.REQUEST_FAILED, `virtio-iommu ${operation}: status ${status}`);
  }
}

/** The fields of struct virtio_iommu_config (5.13.4), as numbers. */
export interface IommuDriverConfig {
  /** `page_size_mask` of struct virtio_iommu_config. */
  readonly pageSizeMask: number;
  /** `input_range` (start, end) of struct virtio_iommu_config. */
  readonly inputRange: readonly [number, number];
  /** `domain_range` (start, end) of struct virtio_iommu_config. */
  readonly domainRange: readonly [number, number];
  /** `probe_size` of struct virtio_iommu_config. */
  readonly probeSize: number;
}

/** A RESV_MEM property of PROBE (5.13.6.8.2.1): an IOVA range the driver must not map, or may only map as MSI. */
export interface IommuReservedRegion {
  /** VIRTIO_IOMMU_RESV_MEM_T_RESERVED or _MSI. */
  readonly subtype: number;
  /** First IOVA of the region. */
  readonly start: number;
  /** Last IOVA of the region (inclusive). */
  readonly end: number;
}

/** A fault event the device sent on the eventq (struct virtio_iommu_fault, 5.13.6.9). */
export interface IommuFaultReport {
  /** VIRTIO_IOMMU_FAULT_R_UNKNOWN, _DOMAIN or _MAPPING. */
  readonly reason: number;
  /** VIRTIO_IOMMU_FAULT_F_READ / WRITE / EXEC / ADDRESS. */
  readonly flags: number;
  /** The endpoint whose access faulted. */
  readonly endpoint: number;
  /** Present with VIRTIO_IOMMU_FAULT_F_ADDRESS. */
  readonly address: number | null;
}

/** Options of IommuDriver. */
export interface IommuDriverOptions {
  /** eventq buffers kept posted. Default 8. */
  eventBuffers?: number;
}

interface DomainRecord {
  bypass: boolean;
  endpoints: Set<number>;
  mappings: { start: number; end: number }[];
}

/**
 * The virtio-iommu driver (5.13): typed requests over the device's queues. Construct it on a
 * DriverContext, or start it with startDeviceDriver and its static `type`.
 */
export class IommuDriver implements DeviceDriver {
  /** driver/iommu/1: accepts INPUT_RANGE, DOMAIN_RANGE, PROBE; MAP_UNMAP as it sends MAP and UNMAP (driver/iommu/6). */
  static readonly type: DeviceDriverType<IommuDriver, IommuDriverOptions> = {
    name: 'virtio-iommu',
    deviceId: DeviceId.IOMMU,
    wantedFeatures: IommuF.INPUT_RANGE | IommuF.DOMAIN_RANGE | IommuF.PROBE | IommuF.MAP_UNMAP | IommuF.MMIO | IommuF.BYPASS_CONFIG,
    requiredFeatures: 0n,
    attach: (ctx, opts) => new IommuDriver(ctx, opts),
  };

  /** The configuration as read at attach (page sizes, input and domain ranges, probe size). */
  readonly config: IommuDriverConfig;
  private readonly ctx: DriverContext;
  private readonly requests: RequestQueue;
  private readonly events: RequestQueue;
  private readonly domains = new Map<number, DomainRecord>();
  private readonly probed = new Map<number, IommuReservedRegion[]>();
  private listeners: ((f: IommuFaultReport) => void)[] = [];
  private detached = false;

  constructor(ctx: DriverContext, opts: IommuDriverOptions = {}) {
    checkDriverContext(IommuDriver.type, ctx);
    this.ctx = ctx;
    const f = ctx.features;
    const c = readConfigFields(IOMMU_CONFIG_LAYOUT, ['pageSizeMask', 'inputRangeStart', 'inputRangeEnd', 'domainRangeStart', 'domainRangeEnd', 'probeSize'], (o, l) => ctx.readConfig(o, l), ctx.littleEndian);
    this.config = {
      pageSizeMask: c.pageSizeMask,
      // 5.13.4: without the features, the whole 64-bit space and 32-bit domain space.
      inputRange: (f & IommuF.INPUT_RANGE) !== 0n ? [c.inputRangeStart, c.inputRangeEnd] : [0, Number.MAX_SAFE_INTEGER],
      domainRange: (f & IommuF.DOMAIN_RANGE) !== 0n ? [c.domainRangeStart, c.domainRangeEnd] : [0, 0xffff_ffff],
      probeSize: (f & IommuF.PROBE) !== 0n ? c.probeSize : 0,
    };
    this.requests = new RequestQueue(ctx, IommuQueue.REQUESTQ);
    this.events = new RequestQueue(ctx, IommuQueue.EVENTQ);
    for (let i = 0; i < (opts.eventBuffers ?? 8); i++) this.postEventBuffer();
  }

  /** The page granule: the lowest bit of page_size_mask. */
  get granule(): number {
    const m = this.config.pageSizeMask;
    return m === 0 ? 0x1000 : m & -m;
  }

  /** Adds a listener for fault reports on the event queue; returns a function that removes it. */
  onFault(listener: (f: IommuFaultReport) => void): () => void {
    this.listeners.push(listener);
    return () => (this.listeners = this.listeners.filter((l) => l !== listener));
  }

  /** config bypass, bit 0 only (driver/iommu/5). */
  get bypass(): 0 | 1 {
    return (this.ctx.readConfig(36, 1)[0]! & 1) as 0 | 1;
  }

  /** Writes config bypass (driver/iommu/2: only with BYPASS_CONFIG; driver/iommu/4: 0 or 1; /3: nothing else). */
  setBypass(on: boolean): void {
    if ((this.ctx.features & IommuF.BYPASS_CONFIG) === 0n) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'virtio-iommu: bypass needs VIRTIO_IOMMU_F_BYPASS_CONFIG');
    writeConfigField(IOMMU_CONFIG_LAYOUT, 'bypass', on ? 1 : 0, (o, b) => this.ctx.writeConfig(o, b), this.ctx.littleEndian);
  }

  /** Sends a raw request: the readable part, `extra` writable bytes before the tail; resolves with the status and the bytes written. */
  async request(readable: Uint8Array, extra = 0): Promise<{
    /** VIRTIO_IOMMU_S_* from the request's tail (0: OK). */
    status: number;
    /** The device-writable part the device filled before the tail (`extra` bytes, e.g. PROBE properties). */
    written: Uint8Array;
  }> {
    const inLen = extra + IOMMU_TAIL_SIZE;
    const addr = this.ctx.dma.alloc(readable.length + inLen, 8);
    try {
      this.ctx.memory.write(addr, readable);
      this.ctx.memory.fill(addr + readable.length, inLen, 0);
      const used = await this.requests.submit([{ addr, len: readable.length }], [{ addr: addr + readable.length, len: inLen }]);
      // driver/iommu/9: a buffer used without being written is a failure.
      if (used === 0) throw new VirtioError(ErrorCode.REQUEST_FAILED, `virtio-iommu request ${readable[0]}: the device did not answer`);
      const written = new Uint8Array(inLen);
      this.ctx.memory.read(addr + readable.length, written);
      // driver/iommu/8: the tail's reserved bytes are ignored.
      return { status: written[extra]!, written: written.subarray(0, extra) };
    } finally {
      this.ctx.dma.free(addr);
    }
  }

  private async call(op: string, readable: Uint8Array, extra = 0): Promise<Uint8Array> {
    const r = await this.request(readable, extra);
    if (r.status !== IommuStatus.OK) throw new IommuStatusError(op, r.status);
    return r.written;
  }

  /** ATTACH (probing the endpoint first with PROBE negotiated: driver/iommu/7). */
  async attach(domain: number, endpoint: number, opts: { bypass?: boolean } = {}): Promise<void> {
    this.checkDomain(domain);
    if (this.config.probeSize > 0 && !this.probed.has(endpoint)) await this.probe(endpoint);
    const existing = this.domains.get(domain);
    // driver/iommu/14, /15: the flag follows what the domain is.
    const bypass = existing ? existing.bypass : (opts.bypass ?? false);
    if (bypass && (this.ctx.features & IommuF.BYPASS_CONFIG) === 0n) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'virtio-iommu: bypass domains need VIRTIO_IOMMU_F_BYPASS_CONFIG');
    const b = req(IommuRequest.ATTACH, 16);
    b.v.setUint32(4, domain, true);
    b.v.setUint32(8, endpoint, true);
    b.v.setUint32(12, bypass ? IOMMU_ATTACH_F_BYPASS : 0, true);
    await this.call('ATTACH', b.bytes);
    for (const d of this.domains.values()) d.endpoints.delete(endpoint);
    const rec = existing ?? { bypass, endpoints: new Set<number>(), mappings: [] };
    rec.endpoints.add(endpoint);
    this.domains.set(domain, rec);
    for (const [id, d] of this.domains) if (d.endpoints.size === 0) this.domains.delete(id);
  }

  /** DETACH `endpoint` from `domain`. */
  async detachEndpoint(domain: number, endpoint: number): Promise<void> {
    this.checkDomain(domain);
    const b = req(IommuRequest.DETACH, 16);
    b.v.setUint32(4, domain, true);
    b.v.setUint32(8, endpoint, true);
    await this.call('DETACH', b.bytes);
    const d = this.domains.get(domain);
    d?.endpoints.delete(endpoint);
    if (d && d.endpoints.size === 0) this.domains.delete(domain);
  }

  /** MAP [virtStart, virtEnd] to physStart with the access wanted (driver/iommu/21: READ for reads). */
  async map(domain: number, virtStart: number, virtEnd: number, physStart: number, access: { read?: boolean; write?: boolean; mmio?: boolean }): Promise<void> {
    const d = this.checkMapping(domain, virtStart, virtEnd, 'MAP');
    if (access.mmio && (this.ctx.features & IommuF.MMIO) === 0n) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'virtio-iommu: MMIO mappings need VIRTIO_IOMMU_F_MMIO (driver/iommu/22)');
    for (const e of d?.endpoints ?? []) {
      for (const r of this.probed.get(e) ?? []) {
        if (r.start <= virtEnd && r.end >= virtStart) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `virtio-iommu: 0x${virtStart.toString(16)} overlaps a reserved region of endpoint ${e} (driver/iommu/35)`);
      }
    }
    const b = req(IommuRequest.MAP, 32);
    b.v.setUint32(4, domain, true);
    setU64(b.v, 8, virtStart);
    setU64(b.v, 16, virtEnd);
    setU64(b.v, 24, physStart);
    b.v.setUint32(32, (access.read ? IommuMapFlag.READ : 0) | (access.write ? IommuMapFlag.WRITE : 0) | (access.mmio ? IommuMapFlag.MMIO : 0), true);
    await this.call('MAP', b.bytes);
    d?.mappings.push({ start: virtStart, end: virtEnd });
  }

  /** VIRTIO_IOMMU_T_UNMAP: removes the mappings of `domain` within [virtStart, virtEnd]. */
  async unmap(domain: number, virtStart: number, virtEnd: number): Promise<void> {
    const d = this.checkMapping(domain, virtStart, virtEnd, 'UNMAP');
    if (d && d.mappings.some((m) => (m.start < virtStart && m.end >= virtStart) || (m.start <= virtEnd && m.end > virtEnd))) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'virtio-iommu: an UNMAP range must not start or end inside a mapping (driver/iommu/26, /27)');
    }
    const b = req(IommuRequest.UNMAP, 24);
    b.v.setUint32(4, domain, true);
    setU64(b.v, 8, virtStart);
    setU64(b.v, 16, virtEnd);
    await this.call('UNMAP', b.bytes);
    if (d) d.mappings = d.mappings.filter((m) => m.end < virtStart || m.start > virtEnd);
  }

  /** PROBE: the endpoint's reserved regions (driver/iommu/29: properties of probe_size bytes). */
  async probe(endpoint: number): Promise<IommuReservedRegion[]> {
    if (this.config.probeSize === 0) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'virtio-iommu: PROBE not negotiated');
    const b = req(IommuRequest.PROBE, 68);
    b.v.setUint32(4, endpoint, true);
    const props = await this.call('PROBE', b.bytes, this.config.probeSize);
    const regions = parseProperties(props);
    this.probed.set(endpoint, regions);
    return regions;
  }

  private checkDomain(domain: number): void {
    const [lo, hi] = this.config.domainRange;
    if (!Number.isInteger(domain) || domain < lo || domain > hi) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `virtio-iommu: domain ${domain} outside domain_range (driver/iommu/11)`);
  }

  private checkMapping(domain: number, virtStart: number, virtEnd: number, op: string): DomainRecord | undefined {
    this.checkDomain(domain);
    const [lo, hi] = this.config.inputRange;
    if (!Number.isSafeInteger(virtStart) || !Number.isSafeInteger(virtEnd) || virtStart < lo || virtEnd > hi || virtEnd < virtStart) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `virtio-iommu ${op}: range outside input_range (driver/iommu/10)`);
    }
    const d = this.domains.get(domain);
    if (d?.bypass) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `virtio-iommu: no ${op} on a bypass domain (driver/iommu/18, /28)`);
    return d;
  }

  private postEventBuffer(): void {
    if (this.detached) return;
    const len = IommuFault.SIZE;
    const addr = this.ctx.dma.alloc(len, 8);
    this.events.submit([], [{ addr, len }]).then(
      (used) => {
        const b = new Uint8Array(len);
        this.ctx.memory.read(addr, b);
        this.ctx.dma.free(addr);
        this.postEventBuffer();
        const f = used >= IommuFault.SIZE ? parseFault(b) : null;
        if (f) for (const l of this.listeners) l(f);
      },
      () => this.ctx.dma.free(addr),
    );
  }

  detach(): void {
    this.detached = true;
    this.requests.detach();
    this.events.detach();
  }
}

/** Parses a fault report; null when it must be ignored (driver/iommu/38). */
export function parseFault(b: Uint8Array): IommuFaultReport | null {
  const v = new DataView(b.buffer, b.byteOffset, b.length);
  if (b[1] !== 0 || b[2] !== 0 || b[3] !== 0) return null; // driver/iommu/38: reserved not zero
  const known = IommuFaultFlag.READ | IommuFaultFlag.WRITE | IommuFaultFlag.EXEC | IommuFaultFlag.ADDRESS;
  const flags = v.getUint32(IommuFault.FLAGS, true) & known; // driver/iommu/40 (reserved1 ignored: driver/iommu/39)
  const reason = b[IommuFault.REASON]! <= IommuFaultReason.MAPPING ? b[IommuFault.REASON]! : IommuFaultReason.UNKNOWN; // driver/iommu/41
  const address = (flags & IommuFaultFlag.ADDRESS) !== 0 ? v.getUint32(IommuFault.ADDRESS + 4, true) * U32 + v.getUint32(IommuFault.ADDRESS, true) : null;
  return { reason, flags, endpoint: v.getUint32(IommuFault.ENDPOINT, true), address };
}

/** Parses PROBE properties (driver/iommu/31..34, /36, /37). */
export function parseProperties(p: Uint8Array): IommuReservedRegion[] {
  const v = new DataView(p.buffer, p.byteOffset, p.length);
  const out: IommuReservedRegion[] = [];
  let at = 0;
  while (at + IOMMU_PROBE_PROPERTY_HEADER <= p.length) {
    const typeField = v.getUint16(at, true);
    const length = v.getUint16(at + 2, true); // driver/iommu/32: the length field, never the type, says how long
    if (typeField === IommuProbeType.NONE) break;
    const type = typeField & 0x0fff;
    const reserved = typeField & 0xf000;
    const body = at + IOMMU_PROBE_PROPERTY_HEADER;
    if (body + length > p.length) break;
    // driver/iommu/33: reserved bits set: ignored; /31: unknown types ignored; /34: go on.
    if (reserved === 0 && type === IommuProbeType.RESV_MEM && length >= 20) {
      const subtype = p[body]!; // driver/iommu/36: reserved bytes ignored
      out.push({
        // driver/iommu/37: unknown subtypes are RESERVED.
        subtype: subtype === IommuResvMem.MSI ? IommuResvMem.MSI : IommuResvMem.RESERVED,
        start: v.getUint32(body + 4, true) + v.getUint32(body + 8, true) * U32,
        end: v.getUint32(body + 12, true) + v.getUint32(body + 16, true) * U32,
      });
    }
    at = body + length;
  }
  return out;
}

function req(type: number, size: number): { bytes: Uint8Array; v: DataView } {
  const bytes = new Uint8Array(4 + size);
  bytes[0] = type;
  return { bytes, v: new DataView(bytes.buffer) };
}

function setU64(v: DataView, at: number, value: number): void {
  v.setUint32(at, value >>> 0, true);
  v.setUint32(at + 4, Math.floor(value / U32) >>> 0, true);
}
