/**
 * 5.13 IOMMU Device, device side: ATTACH, DETACH, MAP, UNMAP and PROBE on the request queue, fault
 * reports on the event queue, the configuration with its bypass field, and the translation state
 * (iommu-domains.ts) other devices access guest memory through.
 *
 * Offered: INPUT_RANGE, DOMAIN_RANGE, MAP_UNMAP (device/iommu/1), PROBE, MMIO, BYPASS_CONFIG;
 * not BYPASS (device/iommu/2, /3). Page granule 4 KiB (2 MiB too in page_size_mask).
 *
 * The guest is untrusted: a request shorter than its structure gets VIRTIO_IOMMU_S_INVAL, an
 * unknown type the buffer unused (device/iommu/10), a buffer without room for the tail length 0;
 * mappings per domain, domains and fault reports waiting for buffers are bounded.
 */
import { QueueServer, type QueueRequest } from '../../device/queue-server.js';
import type { DeviceContext, VirtioDevice } from '../../device/types.js';
import { ErrorCode, VirtioError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { ChainCursor, type DescriptorChain } from '../../queue/chain.js';
import { decodeConfigWrite, encodeConfig } from '../../spec/config-layout.js';
import { DeviceId } from '../../spec/device-id.js';
import { F } from '../../spec/features.js';
import {
  IOMMU_ATTACH_F_BYPASS,
  IOMMU_CONFIG_LAYOUT,
  IOMMU_HEAD_SIZE,
  IOMMU_PROBE_PROPERTY_HEADER,
  IOMMU_RESV_MEM_LENGTH,
  IOMMU_TAIL_SIZE,
  IommuConfig,
  IommuF,
  IommuFault,
  IommuMapFlag,
  IommuProbeType,
  IommuQueue,
  IommuRequest,
  IommuRequestSize,
  IommuStatus,
} from '../../spec/iommu.js';
import { type EndpointSpec, IommuDomain, type IommuFaultInfo, type IommuMapping, IommuTranslation } from './iommu-domains.js';

/** Options of IommuDevice. */
export interface IommuDeviceOptions {
  /** The endpoints behind this IOMMU. Default: endpoint 0 alone. */
  endpoints?: readonly EndpointSpec[];
  /** Initial (and system-reset) value of config bypass (device/iommu/6). Default 0. */
  bypass?: 0 | 1;
  /** Offer VIRTIO_IOMMU_F_PROBE. Default true. */
  probe?: boolean;
  /** 5.13.4 domain_range. Default 1..0xffff. */
  domainRange?: readonly [number, number];
  /** probe_size. Default 512. */
  probeSize?: number;
  /** Mappings per domain at most (NOMEM beyond). Default 65536. */
  maxMappings?: number;
  /** Maximum size of the request and event queues, 1..32768. Default 128. */
  queueSize?: number;
  /** Where the device logs; silent by default. */
  logger?: Logger;
}

/** 4 KiB granule, 2 MiB pages too (device/iommu/4, device/iommu/5). */
export const IOMMU_PAGE_SIZE_MASK = 0x1000 | 0x20_0000;
const GRANULE = 0x1000;
/** input_range: 48-bit IOVAs. */
export const IOMMU_INPUT_END = 2 ** 48 - 1;
/** Fault reports kept while no event buffer waits (later ones are dropped). */
export const IOMMU_MAX_PENDING_FAULTS = 64;
const MAX_DOMAINS = 4096;
const U32 = 0x1_0000_0000;

/**
 * The virtio-iommu device (5.13): domains, mappings, endpoints and faults, with an IOVA view of
 * guest memory per endpoint. What it implements and its normative coverage: docs/devices/iommu.md.
 */
export class IommuDevice implements VirtioDevice {
  readonly deviceId = DeviceId.IOMMU;
  readonly offeredFeatures: bigint;
  readonly queueMaxSizes: readonly number[];
  readonly configSize = IommuConfig.SIZE;
  /** Endpoints, domains and mappings; what a kit device behind this IOMMU translates through (endpointMemory). */
  readonly translation: IommuTranslation;

  private readonly initialBypass: 0 | 1;
  private bypass: 0 | 1;
  private readonly domainRange: readonly [number, number];
  private readonly probeSize: number;
  private readonly maxMappings: number;
  private features = 0n;
  private readonly server: QueueServer;
  private readonly reader = new ChainCursor(false);
  private readonly writer = new ChainCursor(true);
  private readonly req = new Uint8Array(IOMMU_HEAD_SIZE + IommuRequestSize.PROBE);
  private readonly view = new DataView(this.req.buffer);
  private readonly tail = new Uint8Array(IOMMU_TAIL_SIZE);
  private readonly props: Uint8Array;
  private readonly eventBuffers: QueueRequest[] = [];
  private readonly faults: Uint8Array[] = [];
  /** Fault reports dropped for want of event buffers. */
  faultsDropped = 0;

  constructor(opts: IommuDeviceOptions = {}) {
    const qs = opts.queueSize ?? 128;
    if (!Number.isInteger(qs) || qs < 1 || qs > 32768) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `queueSize ${qs} not in 1..32768`);
    this.queueMaxSizes = [qs, qs];
    this.translation = new IommuTranslation(opts.endpoints ?? [{ id: 0 }]);
    this.translation.onFault = (f) => this.reportFault(f);
    this.initialBypass = opts.bypass ?? 0;
    this.bypass = this.initialBypass;
    this.domainRange = opts.domainRange ?? [1, 0xffff];
    this.probeSize = opts.probeSize ?? 512;
    this.maxMappings = opts.maxMappings ?? 65536;
    this.props = new Uint8Array(this.probeSize);
    this.offeredFeatures =
      IommuF.INPUT_RANGE | IommuF.DOMAIN_RANGE | IommuF.MAP_UNMAP | IommuF.MMIO | IommuF.BYPASS_CONFIG | ((opts.probe ?? true) ? IommuF.PROBE : 0n) | F.VERSION_1 | F.INDIRECT_DESC | F.EVENT_IDX | F.RING_PACKED | F.RING_RESET;
    this.syncBypass();
    const serveReq = (r: QueueRequest): number => this.serve(r);
    const serveEvent = (r: QueueRequest): number | void => this.takeEventBuffer(r);
    this.server = new QueueServer({
      name: 'virtio-iommu',
      numQueues: 2,
      logger: opts.logger,
      handler: (i) => (i === IommuQueue.REQUESTQ ? serveReq : i === IommuQueue.EVENTQ ? serveEvent : null),
      queueStopped: (i) => {
        if (i === IommuQueue.EVENTQ) this.eventBuffers.length = 0;
      },
    });
  }

  /** The config bypass field now. */
  get bypassField(): 0 | 1 {
    return this.bypass;
  }

  /** System reset (device/iommu/7): bypass back to its initial value (a device reset keeps it). */
  systemReset(): void {
    this.bypass = this.initialBypass;
    this.syncBypass();
  }

  private syncBypass(): void {
    // 5.13.5.2: with BYPASS_CONFIG offered, config bypass decides for unattached endpoints.
    this.translation.unattachedBypass = this.bypass === 1;
    this.translation.refreshAll();
  }

  private serve({ chain }: QueueRequest): number {
    if (chain.fault !== null || chain.writableBytes < IOMMU_TAIL_SIZE) return 0;
    this.currentChain = chain;
    const r = this.reader.reset(chain);
    if (r.read(this.req, 0, IOMMU_HEAD_SIZE) !== IOMMU_HEAD_SIZE) return this.status(chain.writableBytes, IommuStatus.INVAL);
    // device/iommu/11: head.reserved is ignored.
    const type = this.req[0]!;
    const size = sizeOf(type);
    // device/iommu/10: an unknown type (or PROBE without the feature: device/iommu/43) is not answered.
    if (size === 0 || (type === IommuRequest.PROBE && (this.features & IommuF.PROBE) === 0n)) return 0;
    if (r.read(this.req, IOMMU_HEAD_SIZE, size) !== size) return this.status(chain.writableBytes, IommuStatus.INVAL);
    switch (type) {
      case IommuRequest.ATTACH:
        return this.status(chain.writableBytes, this.attach());
      case IommuRequest.DETACH:
        return this.status(chain.writableBytes, this.detach());
      case IommuRequest.MAP:
        return this.status(chain.writableBytes, this.map());
      case IommuRequest.UNMAP:
        return this.status(chain.writableBytes, this.unmap());
      default:
        return this.probe(chain.writableBytes);
    }
  }

  private u32(at: number): number {
    return this.view.getUint32(IOMMU_HEAD_SIZE + at, true);
  }

  private u64(at: number): number {
    return this.view.getUint32(IOMMU_HEAD_SIZE + at + 4, true) * U32 + this.view.getUint32(IOMMU_HEAD_SIZE + at, true);
  }

  private inDomainRange(domain: number): boolean {
    return domain >= this.domainRange[0] && domain <= this.domainRange[1];
  }

  /** 5.13.6.2 ATTACH. */
  private attach(): number {
    const domainId = this.u32(0);
    const endpoint = this.u32(4);
    const flags = this.u32(8);
    // device/iommu/13: reserved not zero.
    if (this.u32(12) !== 0) return IommuStatus.INVAL;
    // device/iommu/14: ATTACH_F_BYPASS is a flag only with BYPASS_CONFIG negotiated.
    const known = (this.features & IommuF.BYPASS_CONFIG) !== 0n ? IOMMU_ATTACH_F_BYPASS : 0;
    if ((flags & ~known) !== 0) return IommuStatus.INVAL;
    const ep = this.translation.endpoints.get(endpoint);
    if (ep === undefined) return IommuStatus.NOENT; // device/iommu/15
    if (!this.inDomainRange(domainId)) return IommuStatus.RANGE;
    const bypass = (flags & IOMMU_ATTACH_F_BYPASS) !== 0;
    const t = this.translation;
    let d = t.domains.get(domainId);
    if (d !== undefined) {
      if (d.bypass !== bypass) return IommuStatus.INVAL; // device/iommu/18
      const others = [...d.endpoints].filter((e) => e !== endpoint);
      // device/iommu/16, /17, /22, /23: sharing a domain needs endpoints that may share, and
      // the endpoint's reserved regions clear of the domain's mappings.
      if (others.length > 0 && (ep.exclusive || others.some((o) => t.endpoints.get(o)?.exclusive))) return IommuStatus.UNSUPP;
      if ((ep.reserved ?? []).some((r) => d!.overlaps(r.start, r.end))) return IommuStatus.UNSUPP;
    } else if (t.domains.size >= MAX_DOMAINS) return IommuStatus.NOMEM;
    // device/iommu/19, /20: attached elsewhere: detached from there first.
    const old = t.attached.get(endpoint);
    if (old !== undefined && old.id !== domainId) this.detachFrom(old, endpoint);
    if (d === undefined) {
      d = new IommuDomain(domainId, bypass);
      t.domains.set(domainId, d);
    }
    // device/iommu/24: attached.
    d.endpoints.add(endpoint);
    t.attached.set(endpoint, d);
    t.refresh(endpoint);
    return IommuStatus.OK;
  }

  private detachFrom(d: IommuDomain, endpoint: number): void {
    const t = this.translation;
    d.endpoints.delete(endpoint);
    t.attached.delete(endpoint);
    // A domain without endpoints is destroyed with its mappings (5.13.6.3).
    if (d.endpoints.size === 0) t.domains.delete(d.id);
    // device/iommu/28: from now on the endpoint cannot reach the domain's mappings.
    t.refresh(endpoint);
  }

  /** 5.13.6.3 DETACH (device/iommu/25: reserved ignored). */
  private detach(): number {
    const domainId = this.u32(0);
    const endpoint = this.u32(4);
    if (!this.translation.endpoints.has(endpoint)) return IommuStatus.NOENT; // device/iommu/26
    const d = this.translation.domains.get(domainId);
    if (d === undefined || !d.endpoints.has(endpoint)) return IommuStatus.INVAL; // device/iommu/27
    this.detachFrom(d, endpoint);
    return IommuStatus.OK;
  }

  /** 5.13.6.4 MAP. */
  private map(): number {
    if ((this.features & IommuF.MAP_UNMAP) === 0n) return IommuStatus.UNSUPP;
    const domainId = this.u32(0);
    const virtStart = this.u64(4);
    const virtEnd = this.u64(12);
    const physStart = this.u64(20);
    const flags = this.u32(28);
    const known = IommuMapFlag.READ | IommuMapFlag.WRITE | ((this.features & IommuF.MMIO) !== 0n ? IommuMapFlag.MMIO : 0);
    if ((flags & ~known) !== 0) return IommuStatus.INVAL; // device/iommu/31
    const d = this.translation.domains.get(domainId);
    if (d === undefined) return IommuStatus.NOENT; // device/iommu/32
    if (d.bypass) return IommuStatus.INVAL; // device/iommu/33
    if (virtEnd < virtStart) return IommuStatus.INVAL;
    // device/iommu/29: virt_start, phys_start, virt_end + 1 on the granule; the input range.
    if (virtStart % GRANULE !== 0 || physStart % GRANULE !== 0 || (virtEnd + 1) % GRANULE !== 0) return IommuStatus.RANGE;
    if (virtEnd > IOMMU_INPUT_END || !Number.isSafeInteger(physStart + (virtEnd - virtStart))) return IommuStatus.RANGE;
    if (d.overlaps(virtStart, virtEnd)) return IommuStatus.INVAL; // device/iommu/30
    // device/iommu/53: no mapping over a RESV_MEM region of an endpoint of the domain.
    for (const e of d.endpoints) {
      for (const r of this.translation.endpoints.get(e)?.reserved ?? []) if (r.start <= virtEnd && r.end >= virtStart) return IommuStatus.INVAL;
    }
    if (d.mappings.length >= this.maxMappings) return IommuStatus.NOMEM;
    const m: IommuMapping = { virtStart, virtEnd, physStart, flags };
    d.mappings.splice(d.lowerBound(virtStart), 0, m);
    this.translation.refreshDomain(d);
    return IommuStatus.OK;
  }

  /** 5.13.6.5 UNMAP. */
  private unmap(): number {
    if ((this.features & IommuF.MAP_UNMAP) === 0n) return IommuStatus.UNSUPP;
    const domainId = this.u32(0);
    const virtStart = this.u64(4);
    const virtEnd = this.u64(12);
    // device/iommu/36: reserved not zero: INVAL, nothing unmapped.
    if (this.u32(20) !== 0) return IommuStatus.INVAL;
    const d = this.translation.domains.get(domainId);
    if (d === undefined) return IommuStatus.NOENT; // device/iommu/37
    if (d.bypass) return IommuStatus.INVAL; // device/iommu/38
    if (virtEnd < virtStart) return IommuStatus.INVAL;
    const from = d.lowerBound(virtStart);
    let to = from;
    while (to < d.mappings.length && d.mappings[to]!.virtStart <= virtEnd) {
      const m = d.mappings[to]!;
      // device/iommu/39: a mapping the range would split: RANGE, nothing removed.
      if (m.virtStart < virtStart || m.virtEnd > virtEnd) return IommuStatus.RANGE;
      to++;
    }
    // device/iommu/40: every mapping inside the range goes; unmapped parts are fine.
    if (to > from) {
      d.mappings.splice(from, to - from);
      this.translation.refreshDomain(d);
    }
    return IommuStatus.OK;
  }

  /** 5.13.6.6 PROBE: the endpoint's RESV_MEM properties, then zeroes, then the tail. */
  private probe(room: number): number {
    const endpoint = this.u32(0); // device/iommu/41: reserved ignored
    const props = this.props;
    props.fill(0); // device/iommu/49
    let status: number = IommuStatus.OK;
    const ep = this.translation.endpoints.get(endpoint);
    if (room < this.probeSize + IOMMU_TAIL_SIZE) status = IommuStatus.INVAL;
    else if (ep === undefined) status = IommuStatus.NOENT; // device/iommu/42
    else {
      const pv = new DataView(props.buffer);
      let at = 0;
      for (const r of ep.reserved ?? []) {
        if (at + IOMMU_PROBE_PROPERTY_HEADER + IOMMU_RESV_MEM_LENGTH > this.probeSize) {
          // device/iommu/47, /48: the list does not fit probe_size: no property, INVAL.
          props.fill(0);
          status = IommuStatus.INVAL;
          break;
        }
        pv.setUint16(at, IommuProbeType.RESV_MEM, true); // reserved bits of type zero (device/iommu/44)
        pv.setUint16(at + 2, IOMMU_RESV_MEM_LENGTH, true); // device/iommu/45: without the header
        props[at + 4] = r.subtype;
        setU64(pv, at + 8, r.start);
        setU64(pv, at + 16, r.end);
        at += IOMMU_PROBE_PROPERTY_HEADER + IOMMU_RESV_MEM_LENGTH; // device/iommu/46
      }
    }
    if (room < this.probeSize + IOMMU_TAIL_SIZE) return this.status(room, status);
    const w = this.writer.reset(this.currentChain!);
    w.write(props);
    w.skip(room - this.probeSize - IOMMU_TAIL_SIZE);
    this.tail.fill(0);
    this.tail[0] = status;
    w.write(this.tail);
    return w.moved;
  }

  private currentChain: DescriptorChain | null = null;

  /** Writes the tail (status, reserved zero: device/iommu/11) at the end of the writable part. */
  private status(room: number, status: number): number {
    const w = this.writer.reset(this.currentChain!);
    w.skip(room - IOMMU_TAIL_SIZE);
    this.tail.fill(0);
    this.tail[0] = status;
    w.write(this.tail);
    return w.moved;
  }

  // ---- eventq: fault reports ----

  private reportFault(f: IommuFaultInfo): void {
    if (this.server.context === null) return;
    if (this.faults.length >= IOMMU_MAX_PENDING_FAULTS) {
      this.faultsDropped++;
      return;
    }
    const b = new Uint8Array(IommuFault.SIZE);
    const v = new DataView(b.buffer);
    b[IommuFault.REASON] = f.reason; // reserved, reserved1 zero (device/iommu/55)
    v.setUint32(IommuFault.FLAGS, f.flags, true); // only defined flags (device/iommu/56)
    v.setUint32(IommuFault.ENDPOINT, f.endpoint, true); // device/iommu/57
    setU64(v, IommuFault.ADDRESS, f.address);
    this.faults.push(b);
    this.deliver();
  }

  private takeEventBuffer(req: QueueRequest): number | void {
    if (req.chain.fault !== null || req.chain.readableCount > 0) return 0;
    this.eventBuffers.push(req);
    this.deliver();
  }

  private readonly eventWriter = new ChainCursor(true);

  private deliver(): void {
    while (this.eventBuffers.length > 0 && this.faults.length > 0) {
      const req = this.eventBuffers.shift()!;
      if (!this.server.isLive(req)) continue;
      // device/iommu/59: a buffer too small for the report is returned unused (never split over buffers).
      if (req.chain.writableBytes < IommuFault.SIZE) {
        this.server.complete(req, 0);
        continue;
      }
      this.server.complete(req, this.eventWriter.reset(req.chain).write(this.faults.shift()!));
    }
  }

  readConfig(offset: number, dst: Uint8Array, features: bigint, littleEndian: boolean): void {
    encodeConfig(
      IOMMU_CONFIG_LAYOUT,
      {
        pageSizeMask: IOMMU_PAGE_SIZE_MASK,
        inputRangeStart: 0,
        inputRangeEnd: IOMMU_INPUT_END,
        domainRangeStart: this.domainRange[0],
        domainRangeEnd: this.domainRange[1],
        probeSize: this.probeSize,
        bypass: this.bypass, // device/iommu/8: only ever 0 or 1
      },
      this.offeredFeatures,
      offset,
      dst,
      littleEndian,
    );
    void features;
  }

  /** driver/iommu/2..5: only bypass is writable, with BYPASS_CONFIG negotiated; bit 0 counts. */
  writeConfig(offset: number, src: Uint8Array, features: bigint, littleEndian: boolean): void {
    if ((features & IommuF.BYPASS_CONFIG) === 0n) return;
    decodeConfigWrite(IOMMU_CONFIG_LAYOUT, offset, src, features, littleEndian, (name, v) => {
      if (name !== 'bypass') return;
      this.bypass = (v & 1) as 0 | 1;
      this.syncBypass();
    });
  }

  activate(ctx: DeviceContext): void {
    this.features = ctx.features;
    this.translation.setPhysical(ctx.memory);
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

  /** Device reset: domains and mappings go; bypass stays (device/iommu/7). */
  reset(): void {
    this.server.reset();
    this.translation.clear();
    this.faults.length = 0;
    this.eventBuffers.length = 0;
    this.features = 0n;
  }

  resetQueue(index: number): void {
    this.server.resetQueue(index);
  }
}

function sizeOf(type: number): number {
  switch (type) {
    case IommuRequest.ATTACH:
      return IommuRequestSize.ATTACH;
    case IommuRequest.DETACH:
      return IommuRequestSize.DETACH;
    case IommuRequest.MAP:
      return IommuRequestSize.MAP;
    case IommuRequest.UNMAP:
      return IommuRequestSize.UNMAP;
    case IommuRequest.PROBE:
      return IommuRequestSize.PROBE;
    default:
      return 0;
  }
}

function setU64(v: DataView, at: number, value: number): void {
  v.setUint32(at, value >>> 0, true);
  v.setUint32(at + 4, Math.floor(value / U32) >>> 0, true);
}
