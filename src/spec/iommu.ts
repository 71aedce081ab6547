/**
 * 5.13 IOMMU Device: feature bits, queues, configuration layout, request types and layouts,
 * status codes, PROBE properties and fault reports. Constants only.
 */
import { defineConfigLayout } from './config-layout.js';
import { bit } from './features.js';

/** 5.13.3 Feature bits (bit numbers). */
export const IommuFeatureBit = {
  INPUT_RANGE: 0,
  DOMAIN_RANGE: 1,
  MAP_UNMAP: 2,
  BYPASS: 3,
  PROBE: 4,
  MMIO: 5,
  BYPASS_CONFIG: 6,
} as const;

/** 5.13.3 feature bits as masks (bigint), from IommuFeatureBit. */
export const IommuF = {
  INPUT_RANGE: bit(IommuFeatureBit.INPUT_RANGE),
  DOMAIN_RANGE: bit(IommuFeatureBit.DOMAIN_RANGE),
  MAP_UNMAP: bit(IommuFeatureBit.MAP_UNMAP),
  BYPASS: bit(IommuFeatureBit.BYPASS),
  PROBE: bit(IommuFeatureBit.PROBE),
  MMIO: bit(IommuFeatureBit.MMIO),
  BYPASS_CONFIG: bit(IommuFeatureBit.BYPASS_CONFIG),
} as const;

/** 5.13.2 Virtqueues. */
export const IommuQueue = {
  REQUESTQ: 0,
  EVENTQ: 1,
} as const;

/** 5.13.4 struct virtio_iommu_config (40 bytes). */
export const IommuConfig = {
  SIZE: 40,
  PAGE_SIZE_MASK: 0,
  INPUT_RANGE_START: 8,
  INPUT_RANGE_END: 16,
  DOMAIN_RANGE_START: 24,
  DOMAIN_RANGE_END: 28,
  PROBE_SIZE: 32,
  BYPASS: 36,
} as const;

/** 5.13.4: fields (the 64-bit ones hold values up to 2^53 - 1 here); only bypass is writable (driver/iommu/3). */
export const IOMMU_CONFIG_LAYOUT = defineConfigLayout(IommuConfig.SIZE, [
  { name: 'pageSizeMask', offset: IommuConfig.PAGE_SIZE_MASK, width: 8, feature: null, access: 'ro' },
  { name: 'inputRangeStart', offset: IommuConfig.INPUT_RANGE_START, width: 8, feature: IommuF.INPUT_RANGE, access: 'ro' },
  { name: 'inputRangeEnd', offset: IommuConfig.INPUT_RANGE_END, width: 8, feature: IommuF.INPUT_RANGE, access: 'ro' },
  { name: 'domainRangeStart', offset: IommuConfig.DOMAIN_RANGE_START, width: 4, feature: IommuF.DOMAIN_RANGE, access: 'ro' },
  { name: 'domainRangeEnd', offset: IommuConfig.DOMAIN_RANGE_END, width: 4, feature: IommuF.DOMAIN_RANGE, access: 'ro' },
  { name: 'probeSize', offset: IommuConfig.PROBE_SIZE, width: 4, feature: IommuF.PROBE, access: 'ro' },
  { name: 'bypass', offset: IommuConfig.BYPASS, width: 1, feature: IommuF.BYPASS_CONFIG, access: 'rw' },
]);

/** 5.13.6 request types. */
export const IommuRequest = {
  ATTACH: 1,
  DETACH: 2,
  MAP: 3,
  UNMAP: 4,
  PROBE: 5,
} as const;

/** 5.13.6 status codes. */
export const IommuStatus = {
  OK: 0,
  IOERR: 1,
  UNSUPP: 2,
  DEVERR: 3,
  INVAL: 4,
  RANGE: 5,
  NOENT: 6,
  FAULT: 7,
  NOMEM: 8,
} as const;

/** struct virtio_iommu_req_head / req_tail: 4 bytes each. */
export const IOMMU_HEAD_SIZE = 4;
/** Size of struct virtio_iommu_req_tail (status u8, reserved[3]). */
export const IOMMU_TAIL_SIZE = 4;

/** Device-readable sizes after the head. */
export const IommuRequestSize = {
  /** domain, endpoint, flags, reserved[4] */
  ATTACH: 16,
  /** domain, endpoint, reserved[8] */
  DETACH: 16,
  /** domain, virt_start, virt_end, phys_start, flags */
  MAP: 32,
  /** domain, virt_start, virt_end, reserved[4] */
  UNMAP: 24,
  /** endpoint, reserved[64] */
  PROBE: 68,
} as const;

/** VIRTIO_IOMMU_ATTACH_F_BYPASS: the attached domain bypasses translation (BYPASS_CONFIG). */
export const IOMMU_ATTACH_F_BYPASS = 1;

/** 5.13.6.6 VIRTIO_IOMMU_MAP_F_*: access rights of a mapping (READ, WRITE, MMIO). */
export const IommuMapFlag = {
  READ: 1,
  WRITE: 2,
  MMIO: 4,
} as const;

/** PROBE property types and the RESV_MEM property. */
export const IommuProbeType = {
  NONE: 0,
  RESV_MEM: 1,
} as const;
/** Size of struct virtio_iommu_probe_property's header (type le16, length le16). */
export const IOMMU_PROBE_PROPERTY_HEADER = 4;
/** struct virtio_iommu_probe_resv_mem after the header: subtype, reserved[3], start, end. */
export const IOMMU_RESV_MEM_LENGTH = 20;
/** 5.13.6.8.2.1 reserved memory region subtypes (RESERVED, MSI). */
export const IommuResvMem = {
  RESERVED: 0,
  MSI: 1,
} as const;

/** struct virtio_iommu_fault (24 bytes). */
export const IommuFault = {
  SIZE: 24,
  REASON: 0,
  FLAGS: 4,
  ENDPOINT: 8,
  ADDRESS: 16,
} as const;

/** 5.13.6.9 VIRTIO_IOMMU_FAULT_R_*: why an access faulted. */
export const IommuFaultReason = {
  UNKNOWN: 0,
  DOMAIN: 1,
  MAPPING: 2,
} as const;

/**
 * 5.13.6.9 VIRTIO_IOMMU_FAULT_F_*: the kind of access that faulted and whether `address` is valid.
 */
export const IommuFaultFlag = {
  READ: 1,
  WRITE: 2,
  EXEC: 4,
  ADDRESS: 0x100,
} as const;
