/**
 * One logical unit of the virtio-scsi host (5.6): a direct-access block device (SBC) over a
 * virtio-blk backend, with 512-byte logical blocks, its identity for INQUIRY and the unit
 * attention condition it reports on the next command (SAM-5 5.14: one pending condition; a newer
 * one replaces an older one, as a reset outranks a capacity change).
 */
import { ErrorCode, VirtioError } from '../../errors.js';
import type { BlkBackend } from '../blk/backend.js';

/** The logical block size the device exposes (the blk backends count 512-byte sectors). */
export const SCSI_BLOCK_SIZE = 512;

/** How a logical unit presents itself (INQUIRY, VPD, MODE SENSE). */
export interface ScsiLunOptions {
  /** Refuse writes (MODE SENSE WP, DATA PROTECT on writes). Also when the backend is read-only. */
  readonly readOnly?: boolean;
  /** Unit serial number (VPD 0x80) and part of the device identification (VPD 0x83); ASCII, at most 32 bytes. */
  readonly serial?: string;
  /** INQUIRY product identification (ASCII, at most 16 bytes). Default 'virtio-ts disk'. */
  readonly product?: string;
}

const MAX_SERIAL = 32;

/** One logical unit of target 0: a disk over a block backend, with its identity and pending unit attention. */
export class ScsiLogicalUnit {
  /** Writes refused (the option, or a read-only backend). */
  readonly readOnly: boolean;
  /** ASCII bytes of the serial number. */
  readonly serial: Uint8Array;
  /** ASCII product id, space-padded to 16 bytes. */
  readonly product: Uint8Array;
  /** Logical blocks of SCSI_BLOCK_SIZE bytes. */
  blocks: number;
  /** Pending unit attention as (asc << 8) | ascq, or -1 when none. */
  unitAttention = -1;

  constructor(
    /** LUN id on target 0 (0..255). */
    readonly id: number,
    /** Where the blocks live. */
    readonly backend: BlkBackend,
    opts: ScsiLunOptions = {},
  ) {
    this.readOnly = (opts.readOnly ?? false) || (backend.readOnly ?? false);
    const serial = opts.serial ?? `vts${id.toString(16).padStart(4, '0')}`;
    if (!isPrintableAscii(serial) || serial.length > MAX_SERIAL) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `LUN ${id}: serial must be printable ASCII of at most ${MAX_SERIAL} bytes`);
    }
    this.serial = asciiBytes(serial, serial.length);
    const product = opts.product ?? 'virtio-ts disk';
    if (!isPrintableAscii(product) || product.length > 16) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `LUN ${id}: product must be printable ASCII of at most 16 bytes`);
    this.product = asciiBytes(product, 16);
    this.blocks = Math.floor(backend.size / SCSI_BLOCK_SIZE);
    if (this.blocks < 1) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `LUN ${id}: the backend holds no whole ${SCSI_BLOCK_SIZE}-byte block`);
  }

  /** Re-reads the backend size; true when the capacity changed. */
  refreshBlocks(): boolean {
    const b = Math.floor(this.backend.size / SCSI_BLOCK_SIZE);
    if (b === this.blocks) return false;
    this.blocks = b;
    return true;
  }
}

function isPrintableAscii(s: string): boolean {
  return /^[\x20-\x7e]*$/.test(s);
}

/** `s` as ASCII, space-padded (SPC-4 4.4.1) to `len` bytes. */
export function asciiBytes(s: string, len: number): Uint8Array {
  const out = new Uint8Array(len).fill(0x20);
  for (let i = 0; i < s.length && i < len; i++) out[i] = s.charCodeAt(i);
  return out;
}
