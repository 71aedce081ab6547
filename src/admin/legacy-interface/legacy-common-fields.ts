/**
 * 4.1.4.8 the legacy header's fields as LEGACY_COMMON_CFG_READ / WRITE address them (the layout
 * with MSI-X: the vector registers at 20 and 22, the device configuration addressed separately).
 * Which field an offset starts decides the width of an access whose buffer a driver padded to a
 * multiple of 8 bytes (2.13).
 */
import { LegacyReg } from '../../transport/pci/constants.js';

/** One field of the legacy header. */
export interface LegacyCommonField {
  /** Byte offset in the header. */
  readonly offset: number;
  /** Width in bytes. */
  readonly width: 1 | 2 | 4;
}

/** The fields, in offset order. */
export const LEGACY_COMMON_FIELDS: readonly LegacyCommonField[] = [
  { offset: LegacyReg.HOST_FEATURES, width: 4 },
  { offset: LegacyReg.GUEST_FEATURES, width: 4 },
  { offset: LegacyReg.QUEUE_PFN, width: 4 },
  { offset: LegacyReg.QUEUE_SIZE, width: 2 },
  { offset: LegacyReg.QUEUE_SELECT, width: 2 },
  { offset: LegacyReg.QUEUE_NOTIFY, width: 2 },
  { offset: LegacyReg.STATUS, width: 1 },
  { offset: LegacyReg.ISR, width: 1 },
  { offset: LegacyReg.CONFIG_MSIX_VECTOR, width: 2 },
  { offset: LegacyReg.QUEUE_MSIX_VECTOR, width: 2 },
];

/** Width of the field starting at `offset`, or 0 when no field starts there. */
export function legacyCommonFieldWidth(offset: number): number {
  return LEGACY_COMMON_FIELDS.find((f) => f.offset === offset)?.width ?? 0;
}
