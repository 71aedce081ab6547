/**
 * 5.19 PMEM Device: feature bits, the request queue, the configuration layout and the
 * request/response structures. Constants only.
 */
import { defineConfigLayout } from './config-layout.js';
import { bit } from './features.js';

/** 5.19.3 Feature bits (bit numbers). */
export const PmemFeatureBit = {
  /** The guest physical address range is indicated as a shared memory region. */
  SHMEM_REGION: 0,
} as const;

/** 5.19.3 feature bits as masks (bigint), from PmemFeatureBit. */
export const PmemF = {
  SHMEM_REGION: bit(PmemFeatureBit.SHMEM_REGION),
} as const;

/** 5.19.2 Virtqueues: req_vq. */
export const PMEM_REQUESTQ = 0;

/** 5.19.5 device normative: the shared memory region ID. */
export const PMEM_SHMEM_ID = 0;

/** 5.19.4 struct virtio_pmem_config (16 bytes). */
export const PmemConfig = {
  SIZE: 16,
  START: 0,
  LENGTH: 8,
} as const;

/** struct virtio_pmem_config as a declarative layout: start and size, read-only. */
export const PMEM_CONFIG_LAYOUT = defineConfigLayout(PmemConfig.SIZE, [
  { name: 'start', offset: PmemConfig.START, width: 8, feature: null, access: 'ro' },
  { name: 'size', offset: PmemConfig.LENGTH, width: 8, feature: null, access: 'ro' },
] as const);
/** The field names of PMEM_CONFIG_LAYOUT: the keys of the values encodeConfig takes for it. */
export type PmemConfigField = (typeof PMEM_CONFIG_LAYOUT.fields)[number]['name'];

/** 5.19.6 struct virtio_pmem_req { le32 type; }. */
export const PMEM_REQ_SIZE = 4;
/** 5.19.6 VIRTIO_PMEM_REQ_TYPE_FLUSH. */
export const PMEM_REQ_TYPE_FLUSH = 0;

/** 5.19.7 struct virtio_pmem_resp { le32 ret; }: 0 success, -1 failure (device/pmem/7). */
export const PMEM_RESP_SIZE = 4;
/** struct virtio_pmem_resp.ret values. */
export const PmemRet = {
  OK: 0,
  ERROR: -1,
} as const;
