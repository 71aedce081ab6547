/**
 * The translation state of a virtio-iommu (5.13): endpoints, domains and their mappings, and
 * the device side of translation: `translate` (IOVA to guest-physical, permission checked) and
 * `endpointMemory` (a GuestMemory whose regions are the mappings of the endpoint's domain, for a
 * device of the kit to access its buffers through, zero-copy). Accesses that do not translate
 * are reported to `onFault` (the device sends them on the eventq).
 */
import { GuestMemory, type RegionSpec } from '../../memory/guest-memory.js';
import { IommuFaultFlag, IommuFaultReason, IommuMapFlag } from '../../spec/iommu.js';

/** One MAP of a domain (5.13.6.4): IOVAs virtStart..virtEnd onto guest-physical memory from physStart. */
export interface IommuMapping {
  /** First IOVA of the range. */
  readonly virtStart: number;
  /** Inclusive (5.13.6.4). */
  readonly virtEnd: number;
  /** Guest-physical address virtStart maps to. */
  readonly physStart: number;
  /** VIRTIO_IOMMU_MAP_F_READ / WRITE / MMIO: what accesses the mapping allows. */
  readonly flags: number;
}

/** A virtio-iommu domain (5.13.6.2 ATTACH): an address space shared by the endpoints attached to it. */
export class IommuDomain {
  /** Ids of the endpoints attached to it now. */
  readonly endpoints = new Set<number>();
  /** Sorted by virtStart, never overlapping. */
  mappings: IommuMapping[] = [];
  constructor(
    /** The domain id the driver chose (within config domain_range). */
    readonly id: number,
    /** Created by ATTACH with VIRTIO_IOMMU_ATTACH_F_BYPASS: accesses are not translated, MAP is refused. */
    readonly bypass: boolean,
  ) {}

  /** Index of the first mapping whose virtEnd >= addr. */
  lowerBound(addr: number): number {
    let lo = 0;
    let hi = this.mappings.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.mappings[mid]!.virtEnd < addr) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Whether any mapping meets the IOVA range start..end (inclusive): MAP of such a range fails INVAL. */
  overlaps(start: number, end: number): boolean {
    const m = this.mappings[this.lowerBound(start)];
    return m !== undefined && m.virtStart <= end;
  }
}

/** An endpoint (a device behind the IOMMU) the host declares, with its PROBE properties. */
export interface EndpointSpec {
  /** The endpoint id the driver names in ATTACH, DETACH and PROBE (5.13.6). */
  readonly id: number;
  /** RESV_MEM regions of the endpoint (PROBE). */
  readonly reserved?: readonly {
    /** First virtual address of the region. */
    readonly start: number;
    /** Last virtual address of the region (inclusive). */
    readonly end: number;
    /** VIRTIO_IOMMU_RESV_MEM_T_RESERVED (0) or _MSI (1) (5.13.6.8.2.1). */
    readonly subtype: number;
  }[];
  /** An endpoint that must not share a domain (a device that cannot be isolated otherwise). Default false. */
  readonly exclusive?: boolean;
}

/** What `translate` answers: the guest-physical address, or a fault reason. */
export interface Translation {
  /** Whether the access translates (mapped with the permissions asked, or bypassed). */
  readonly ok: boolean;
  /** The guest-physical address when `ok`; the faulting IOVA otherwise. */
  readonly address: number;
  /** VIRTIO_IOMMU_FAULT_R_* (5.13.6.9) when not `ok`: UNKNOWN endpoint, DOMAIN, MAPPING; 0 when ok. */
  readonly reason: number;
}

/** An access that did not translate, as the device reports it on the eventq (5.13.6.9). */
export interface IommuFaultInfo {
  /** The endpoint that made the access. */
  readonly endpoint: number;
  /** VIRTIO_IOMMU_FAULT_R_UNKNOWN, _DOMAIN or _MAPPING. */
  readonly reason: number;
  /** VIRTIO_IOMMU_FAULT_F_READ / WRITE of the access, with F_ADDRESS (the address is always known here). */
  readonly flags: number;
  /** The IOVA accessed. */
  readonly address: number;
}

/** A GuestMemory that follows the domain of one endpoint (regions replaced on every change). */
class EndpointMemory extends GuestMemory {
  constructor(
    regions: readonly RegionSpec[],
    private readonly miss: (addr: number, len: number) => void,
  ) {
    super(regions);
  }

  override locate(addr: number, len: number): number {
    const r = super.locate(addr, len);
    if (r < 0) this.miss(addr, len);
    return r;
  }
}

/** The translation state of one virtio-iommu (see the file comment, 5.13). */
export class IommuTranslation {
  /** The endpoints behind the IOMMU, by id. */
  readonly endpoints = new Map<number, EndpointSpec>();
  /** The domains that exist now (created by ATTACH, gone with their last endpoint), by id. */
  readonly domains = new Map<number, IommuDomain>();
  /** The domain each attached endpoint is in. */
  readonly attached = new Map<number, IommuDomain>();
  /** Whether unattached endpoints bypass (config bypass with BYPASS_CONFIG, or BYPASS). */
  unattachedBypass = false;
  /** Called for every access that does not translate (the device queues a fault event); null: not reported. */
  onFault: ((f: IommuFaultInfo) => void) | null = null;
  private readonly views = new Map<number, { memory: EndpointMemory; access: number }>();

  constructor(
    endpoints: readonly EndpointSpec[],
    /** Guest-physical memory, what mappings point into. */
    private physical: GuestMemory | null = null,
  ) {
    for (const e of endpoints) this.endpoints.set(e.id, e);
  }

  /** The guest-physical memory mappings point into (null: none yet); every endpoint view is rebuilt. */
  setPhysical(memory: GuestMemory | null): void {
    this.physical = memory;
    this.refreshAll();
  }

  /** Whether `endpoint` is in bypass mode (5.13.5.2). */
  bypassed(endpoint: number): boolean {
    const d = this.attached.get(endpoint);
    return d === undefined ? this.unattachedBypass : d.bypass;
  }

  /**
   * IOVA `addr` .. `addr + len - 1` of `endpoint` for an access of kind `access`
   * (IommuMapFlag.READ / WRITE): the guest-physical address when one mapping covers it with that
   * permission (device/iommu/34), else a fault (reported).
   */
  translate(endpoint: number, addr: number, len: number, access: number): Translation {
    if (!this.endpoints.has(endpoint)) return this.fault(endpoint, IommuFaultReason.UNKNOWN, access, addr);
    const d = this.attached.get(endpoint);
    if (d === undefined) {
      // device/iommu/12: no access for an unattached endpoint out of bypass mode.
      return this.unattachedBypass ? { ok: true, address: addr, reason: 0 } : this.fault(endpoint, IommuFaultReason.DOMAIN, access, addr);
    }
    if (d.bypass) return { ok: true, address: addr, reason: 0 };
    const m = d.mappings[d.lowerBound(addr)];
    const end = addr + Math.max(len, 1) - 1;
    if (m === undefined || m.virtStart > addr || m.virtEnd < end || (m.flags & access) !== access) {
      return this.fault(endpoint, IommuFaultReason.MAPPING, access, addr);
    }
    return { ok: true, address: m.physStart + (addr - m.virtStart), reason: 0 };
  }

  /**
   * Guest memory as `endpoint` sees it through the IOMMU, for mappings allowing `access`
   * (default READ | WRITE: a kit device both reads and writes through one view, so a mapping
   * lacking either permission is left out, device/iommu/34). Follows ATTACH, DETACH, MAP and
   * UNMAP as they happen; a bypassed endpoint sees guest-physical memory as it is.
   */
  endpointMemory(endpoint: number, access: number = IommuMapFlag.READ | IommuMapFlag.WRITE): GuestMemory {
    let v = this.views.get(endpoint);
    if (v === undefined) {
      const memory = new EndpointMemory([], (addr) => this.fault(endpoint, this.attached.has(endpoint) ? IommuFaultReason.MAPPING : IommuFaultReason.DOMAIN, access, addr));
      v = { memory, access };
      this.views.set(endpoint, v);
      this.refresh(endpoint);
    }
    return v.memory;
  }

  /** Rebuilds the views of the endpoints of `d` (or of `endpoint`). */
  refreshDomain(d: IommuDomain): void {
    for (const e of d.endpoints) this.refresh(e);
  }

  /** Rebuilds the endpointMemory view of `endpoint` (if one was made) from its domain's mappings. */
  refresh(endpoint: number): void {
    const v = this.views.get(endpoint);
    if (v === undefined) return;
    v.memory.replaceRegions(this.regionsOf(endpoint, v.access));
  }

  /** Rebuilds every endpointMemory view (after a change to physical memory or bypass). */
  refreshAll(): void {
    for (const e of this.views.keys()) this.refresh(e);
  }

  /** Device reset: no domain, no mapping. */
  clear(): void {
    this.domains.clear();
    this.attached.clear();
    this.refreshAll();
  }

  private regionsOf(endpoint: number, access: number): RegionSpec[] {
    const phys = this.physical;
    if (phys === null) return [];
    if (this.bypassed(endpoint)) return phys.regionSpecs();
    const d = this.attached.get(endpoint);
    if (d === undefined) return [];
    const out: RegionSpec[] = [];
    for (const m of d.mappings) {
      if ((m.flags & access) !== access || (m.flags & IommuMapFlag.MMIO) !== 0) continue;
      const len = m.virtEnd - m.virtStart + 1;
      // A mapping over guest RAM: its bytes are the RAM's (zero-copy). One crossing regions or
      // outside RAM is left out (accesses to it fault).
      const r = phys.locate(m.physStart, len);
      if (r < 0) continue;
      const off = m.physStart - phys.baseOf(r);
      out.push({ guestBase: m.virtStart, bytes: phys.bytesOf(r).subarray(off, off + len) });
    }
    return out;
  }

  private fault(endpoint: number, reason: number, access: number, address: number): Translation {
    const flags = ((access & IommuMapFlag.READ) !== 0 ? IommuFaultFlag.READ : 0) | ((access & IommuMapFlag.WRITE) !== 0 ? IommuFaultFlag.WRITE : 0) | IommuFaultFlag.ADDRESS;
    this.onFault?.({ endpoint, reason, flags, address });
    return { ok: false, address, reason };
  }
}
