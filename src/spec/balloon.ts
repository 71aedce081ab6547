/**
 * 5.5 Traditional Memory Balloon Device: feature bits, queues, configuration layout, statistics
 * tags. Constants only, no logic.
 */
import { defineConfigLayout } from './config-layout.js';
import { bit } from './features.js';

/** 5.5.3 Feature bits (bit numbers). */
export const BalloonFeatureBit = {
  /** Host has to be told before pages from the balloon are used. */
  MUST_TELL_HOST: 0,
  /** A virtqueue for reporting guest memory statistics is present. */
  STATS_VQ: 1,
  /** Deflate balloon on guest out of memory condition. */
  DEFLATE_ON_OOM: 2,
  /** free_page_vq present, free_page_hint_cmd_id valid. */
  FREE_PAGE_HINT: 3,
  /** The driver writes poison_val to pages after deflating them; poison_val valid. */
  PAGE_POISON: 4,
  /** reporting_vq present. */
  PAGE_REPORTING: 5,
} as const;
export type BalloonFeatureBit = (typeof BalloonFeatureBit)[keyof typeof BalloonFeatureBit];

/** The feature bits above as bigint masks. */
export const BalloonF = Object.fromEntries(Object.entries(BalloonFeatureBit).map(([k, v]) => [k, bit(v)])) as {
  readonly [K in keyof typeof BalloonFeatureBit]: bigint;
};

/**
 * 5.5.2 Virtqueues, in order. statsq, free_page_vq and reporting_vq exist only with their
 * feature, and a queue that does not exist takes no index: the ones present are numbered in
 * this order from 0 (as Linux's virtio_balloon asks for them). `balloonQueueIndex` computes it.
 */
export const BalloonQueue = {
  INFLATE: 0,
  DEFLATE: 1,
  STATS: 2,
  FREE_PAGE: 3,
  REPORTING: 4,
} as const;
export type BalloonQueue = (typeof BalloonQueue)[keyof typeof BalloonQueue];

/** The queue index of `role` under `features`, or -1 when that queue does not exist. */
export function balloonQueueIndex(role: BalloonQueue, features: bigint): number {
  const present = [true, true, (features & BalloonF.STATS_VQ) !== 0n, (features & BalloonF.FREE_PAGE_HINT) !== 0n, (features & BalloonF.PAGE_REPORTING) !== 0n];
  if (!present[role]) return -1;
  let index = 0;
  for (let r = 0; r < role; r++) if (present[r]) index++;
  return index;
}

/** 5.5.6: page frame numbers are addresses divided by 4096, whatever the guest page size. */
export const BALLOON_PFN_SHIFT = 12;
/** The page size balloon page frame numbers count in (4096 bytes, 5.5.6). */
export const BALLOON_PAGE_SIZE = 4096;

/** 5.5.4 struct virtio_balloon_config: byte offsets (all le32). */
export const BalloonConfig = {
  NUM_PAGES: 0,
  ACTUAL: 4,
  FREE_PAGE_HINT_CMD_ID: 8,
  POISON_VAL: 12,
  SIZE: 16,
} as const;

/**
 * 5.5.4 as a declarative layout. Legacy note: the balloon config is little-endian even on a
 * legacy interface (unlike other devices), so it is always encoded little-endian.
 */
export const BALLOON_CONFIG_LAYOUT = defineConfigLayout(BalloonConfig.SIZE, [
  { name: 'numPages', offset: BalloonConfig.NUM_PAGES, width: 4, feature: null, access: 'ro' },
  { name: 'actual', offset: BalloonConfig.ACTUAL, width: 4, feature: null, access: 'rw' },
  { name: 'freePageHintCmdId', offset: BalloonConfig.FREE_PAGE_HINT_CMD_ID, width: 4, feature: BalloonF.FREE_PAGE_HINT, access: 'ro' },
  { name: 'poisonVal', offset: BalloonConfig.POISON_VAL, width: 4, feature: BalloonF.PAGE_POISON, access: 'rw' },
]);
/** The field names of BALLOON_CONFIG_LAYOUT: the keys of the values encodeConfig takes for it. */
export type BalloonConfigField = (typeof BALLOON_CONFIG_LAYOUT.fields)[number]['name'];

/** 5.5.6.3: struct virtio_balloon_stat (packed): le16 tag, le64 val. */
export const BalloonStat = {
  TAG: 0,
  VAL: 2,
  BYTES: 10,
} as const;

/** 5.5.6.4 Memory Statistics Tags. */
export const BalloonStatTag = {
  SWAP_IN: 0,
  SWAP_OUT: 1,
  MAJFLT: 2,
  MINFLT: 3,
  MEMFREE: 4,
  MEMTOT: 5,
  AVAIL: 6,
  CACHES: 7,
  HTLB_PGALLOC: 8,
  HTLB_PGFAIL: 9,
} as const;
export type BalloonStatTag = (typeof BalloonStatTag)[keyof typeof BalloonStatTag];
/** Tags this version knows (others are ignored, device/balloon/8). */
export const BALLOON_STAT_TAGS = 10;

/** 5.5.6.5 Free page hinting: reserved command IDs. */
export const BalloonCmdId = {
  STOP: 0,
  DONE: 1,
} as const;

/**
 * 5.5.6.4 tags by name, for host APIs and the CLI (the names QEMU's QOM `guest-stats` uses,
 * without its "stat-" prefix).
 */
export const BALLOON_STAT_NAMES = [
  'swap-in',
  'swap-out',
  'major-faults',
  'minor-faults',
  'free-memory',
  'total-memory',
  'available-memory',
  'disk-caches',
  'htlb-pgalloc',
  'htlb-pgfail',
] as const;
/** 5.5.6.4 the name of one known statistic tag, as listed in `BALLOON_STAT_NAMES` (index = tag). */
export type BalloonStatName = (typeof BALLOON_STAT_NAMES)[number];

/** The name of a known tag, or null (device/balloon/8: others are ignored). */
export function balloonStatName(tag: number): BalloonStatName | null {
  return BALLOON_STAT_NAMES[tag] ?? null;
}

/** 5.5.6.5: the first command ID that is not reserved. */
export const BALLOON_FIRST_HINT_CMD_ID = 2;
