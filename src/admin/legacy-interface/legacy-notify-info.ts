/**
 * 2.12.1.1 VIRTIO_ADMIN_CMD_LEGACY_NOTIFY_INFO: struct virtio_pci_legacy_notify_info entries
 * (u8 flags, u8 bar, u8 padding[6], le64 offset), four in the result, an entry with flags 0
 * ending the list. Encoding for the device, validating decoding for the driver.
 */
import { ErrorCode, VirtioError } from '../../errors.js';

/** flags of an entry. */
export const LegacyNotifyFlags = {
  /** End of list: this entry and all after it are invalid. */
  END: 0x0,
  /** The address is in a BAR of the owner device (its PCI header BARs). */
  OWNER: 0x1,
  /** The address is in a VF BAR of the member device (SR-IOV Extended Capability VF BARn). */
  MEMBER: 0x2,
} as const;

/** Size of one struct virtio_pci_legacy_notify_info. */
export const LEGACY_NOTIFY_ENTRY_SIZE = 16;
/** Entries in struct virtio_admin_cmd_legacy_notify_info_result. */
export const LEGACY_NOTIFY_ENTRIES = 4;
/** Size of the result. */
export const LEGACY_NOTIFY_RESULT_SIZE = LEGACY_NOTIFY_ENTRY_SIZE * LEGACY_NOTIFY_ENTRIES;

/** One valid notification address. */
export interface LegacyNotifyEntry {
  /** LegacyNotifyFlags.OWNER or MEMBER. */
  readonly flags: number;
  /** BAR 1..5 ("bar values 0x1 to 0x5 specify BAR1 to BAR5"). */
  readonly bar: number;
  /** Offset in the BAR, 2-byte aligned. */
  readonly offset: number;
}

/** Why `e` cannot be a valid entry (null when it can), the device's rules of device/admin-cmds-legacy-interface/10. */
export function legacyNotifyEntryProblem(e: LegacyNotifyEntry): string | null {
  if (e.flags !== LegacyNotifyFlags.OWNER && e.flags !== LegacyNotifyFlags.MEMBER) return `flags ${e.flags} is neither owner (1) nor member (2)`;
  // BAR0 of a VF is hardwired to zero when NOTIFY_INFO is supported; 0x1-0x5 are the only values.
  if (!Number.isInteger(e.bar) || e.bar < 1 || e.bar > 5) return `bar ${e.bar} outside 1..5`;
  if (!Number.isSafeInteger(e.offset) || e.offset < 0 || e.offset % 2 !== 0) return `offset ${e.offset} not 2-byte aligned`;
  return null;
}

/**
 * Encodes up to 3 valid entries into the 4-entry result; the entry after the last valid one has
 * flags 0, so the last entry always has flags 0 (device/admin-cmds-legacy-interface/10).
 */
export function encodeLegacyNotifyInfo(entries: readonly LegacyNotifyEntry[]): Uint8Array {
  if (entries.length > LEGACY_NOTIFY_ENTRIES - 1) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `at most ${LEGACY_NOTIFY_ENTRIES - 1} notification addresses (the last entry ends the list)`);
  const out = new Uint8Array(LEGACY_NOTIFY_RESULT_SIZE);
  const view = new DataView(out.buffer);
  entries.forEach((e, i) => {
    const problem = legacyNotifyEntryProblem(e);
    if (problem !== null) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `notification address ${i}: ${problem}`);
    const at = i * LEGACY_NOTIFY_ENTRY_SIZE;
    out[at] = e.flags;
    out[at + 1] = e.bar;
    view.setBigUint64(at + 8, BigInt(e.offset), true);
  });
  return out;
}

/** The BARs the driver knows: size in bytes of BAR n (index 0..5) of the owner and of the member VF BARs (0: absent). */
export interface LegacyNotifyBars {
  /** Sizes of the owner's BAR0..BAR5 (PCI header). */
  readonly owner: readonly number[];
  /** Sizes of the member's VF BAR0..BAR5 (SR-IOV Extended Capability). */
  readonly member: readonly number[];
}

/**
 * Decodes the result as a driver must (driver/admin-cmds-legacy-interface/5, /6): stops at the
 * first entry with flags 0, and ignores any entry whose flags is not 1 or 2, whose bar is not a
 * valid BAR of the owner or member (as flags says), or whose offset is not 2-byte aligned with
 * the 16-bit write inside that BAR. The valid entries in order (the order is a preference).
 */
export function decodeLegacyNotifyInfo(result: Uint8Array, bars: LegacyNotifyBars): LegacyNotifyEntry[] {
  const valid: LegacyNotifyEntry[] = [];
  const view = new DataView(result.buffer, result.byteOffset, result.byteLength);
  for (let at = 0; at + LEGACY_NOTIFY_ENTRY_SIZE <= result.length; at += LEGACY_NOTIFY_ENTRY_SIZE) {
    const flags = result[at]!;
    if (flags === LegacyNotifyFlags.END) break;
    const bar = result[at + 1]!;
    const offset = view.getBigUint64(at + 8, true);
    if (flags !== LegacyNotifyFlags.OWNER && flags !== LegacyNotifyFlags.MEMBER) continue;
    if (bar < 1 || bar > 5) continue;
    const size = (flags === LegacyNotifyFlags.OWNER ? bars.owner : bars.member)[bar] ?? 0;
    if (size <= 0 || offset % 2n !== 0n || offset + 2n > BigInt(size)) continue;
    valid.push({ flags, bar, offset: Number(offset) });
  }
  return valid;
}
