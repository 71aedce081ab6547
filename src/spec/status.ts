/** 2.1 Device Status Field bits. */
export const Status = {
  ACKNOWLEDGE: 1,
  DRIVER: 2,
  DRIVER_OK: 4,
  FEATURES_OK: 8,
  SUSPEND: 16,
  DEVICE_NEEDS_RESET: 64,
  FAILED: 128,
} as const;
/** One bit of the 2.1 device status field (a value of `Status`); the field itself is an OR of these. */
export type StatusBit = (typeof Status)[keyof typeof Status];

/**
 * The device status byte as names joined by `|` (`ACKNOWLEDGE|DRIVER`), or `RESET` for 0, for logs.
 */
export function statusToString(s: number): string {
  if (s === 0) return 'RESET';
  const names = Object.entries(Status)
    .filter(([, v]) => (s & v) !== 0)
    .map(([k]) => k);
  const unknown = s & ~Object.values(Status).reduce((a, b) => a | b, 0);
  if (unknown) names.push(`0x${unknown.toString(16)}`);
  return names.join('|');
}
