/**
 * Device-independent feature bits (6 Reserved Feature Bits) and the legacy ones (6.3).
 * Feature sets are bigint bitmaps; `bit(n)` turns a bit number into a mask.
 */
export const FeatureBit = {
  /** 6.3 legacy: notify even when the avail ring is empty. */
  NOTIFY_ON_EMPTY: 24,
  /** 6.3 legacy: the device accepts arbitrary descriptor layouts. */
  ANY_LAYOUT: 27,
  INDIRECT_DESC: 28,
  EVENT_IDX: 29,
  /** 6.3 legacy: QEMU sets it to detect broken drivers; a driver never acks it. */
  UNUSED: 30,
  VERSION_1: 32,
  ACCESS_PLATFORM: 33,
  RING_PACKED: 34,
  IN_ORDER: 35,
  ORDER_PLATFORM: 36,
  SR_IOV: 37,
  NOTIFICATION_DATA: 38,
  NOTIF_CONFIG_DATA: 39,
  RING_RESET: 40,
  /** Device-type range, but defined for every device (6: ADMIN_VQ is 41). */
  ADMIN_VQ: 41,
  SUSPEND: 43,
} as const;
export type FeatureBit = (typeof FeatureBit)[keyof typeof FeatureBit];

/** Feature bit number `n` as a mask (1n << n). */
export function bit(n: number): bigint {
  return 1n << BigInt(n);
}

/** Whether bit number `n` is set in `features`. */
export function hasFeature(features: bigint, n: number): boolean {
  return ((features >> BigInt(n)) & 1n) === 1n;
}

/** Masks of the device-independent bits above, for convenience. */
export const F = Object.fromEntries(
  Object.entries(FeatureBit).map(([k, v]) => [k, bit(v)]),
) as { readonly [K in keyof typeof FeatureBit]: bigint };

/**
 * 2.2: bits 0 to 23, 41, 42 and 50 to 127 are device-type specific; 24 to 40 and 43 are
 * transport and queue extensions; 44 to 49 and 128 up are reserved for the future.
 */
export function isDeviceTypeBit(n: number): boolean {
  return (n >= 0 && n <= 23) || n === 41 || n === 42 || (n >= 50 && n <= 127);
}

/**
 * Whether feature bit `n` is reserved for future extensions (2.2: 44 to 49, and 128 up): neither
 * side may set it.
 */
export function isReservedForFutureBit(n: number): boolean {
  return (n >= 44 && n <= 49) || n >= 128;
}

/** The transport/queue bits this library implements (offered by its devices where relevant). */
export const TRANSPORT_FEATURES_SUPPORTED =
  F.INDIRECT_DESC |
  F.EVENT_IDX |
  F.VERSION_1 |
  F.ACCESS_PLATFORM |
  F.RING_PACKED |
  F.IN_ORDER |
  F.ORDER_PLATFORM |
  F.NOTIFICATION_DATA |
  F.RING_RESET |
  // Offered only for devices with suspend and resume hooks (DeviceCore).
  F.SUSPEND;

/** Lists the bit numbers set in a feature bitmap (for logs and errors). */
export function featureBits(features: bigint): number[] {
  const out: number[] = [];
  for (let i = 0; features >> BigInt(i) !== 0n; i++) if (hasFeature(features, i)) out.push(i);
  return out;
}

/**
 * 2.2: the mask of every device-type bit (0 to 23, 41, 42, 50 to 127). The one place the mask is
 * computed: a transport offers `device.offeredFeatures & DEVICE_TYPE_FEATURES` plus the
 * transport bits it honours.
 */
export const DEVICE_TYPE_FEATURES: bigint = (() => {
  let m = 0n;
  for (let i = 0; i < 128; i++) if (isDeviceTypeBit(i)) m |= bit(i);
  return m;
})();
