/**
 * The SCSI commands of the host's logical units that move no block data: INQUIRY (standard data
 * and the VPD pages 0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2), REPORT LUNS, READ CAPACITY (10) and
 * (16), MODE SENSE (6) and (10), REQUEST SENSE. Each builds its parameter data into one scratch
 * buffer of the device (no allocation per command) and says how much of it the CDB's allocation
 * length lets through; errors are CHECK CONDITION with a sense key and additional sense code.
 * Numbers are big-endian, as every SCSI structure (SPC-4 3.5).
 */
import { Asc, FixedSense, ModePage, SCSI_REPORT_LUNS_WLUN, ScsiStatus, SenseKey, VpdPage } from '../../spec/scsi.js';
import { SCSI_BLOCK_SIZE, type ScsiLogicalUnit } from './scsi-lun.js';

/** What one command produced: status and sense, or parameter data in the scratch buffer. */
export class CommandResult {
  status: number = ScsiStatus.GOOD;
  senseKey: number = SenseKey.NO_SENSE;
  /** (asc << 8) | ascq. */
  asc: number = Asc.NO_ADDITIONAL_SENSE;
  /** Bytes of parameter data built in the scratch buffer. */
  dataLen = 0;
  /** The CDB's allocation length: the data-in buffer the command expects. */
  allocLen = 0;

  clear(): void {
    this.status = ScsiStatus.GOOD;
    this.senseKey = SenseKey.NO_SENSE;
    this.asc = Asc.NO_ADDITIONAL_SENSE;
    this.dataLen = 0;
    this.allocLen = 0;
  }

  check(key: number, asc: number): void {
    this.status = ScsiStatus.CHECK_CONDITION;
    this.senseKey = key;
    this.asc = asc;
    this.dataLen = 0;
  }
}

/** Largest unmap block descriptor count and WRITE SAME length the device accepts (VPD 0xb0). */
export const MAX_UNMAP_DESCRIPTORS = 64;
export const MAX_UNMAP_BLOCKS = 0x40_0000;
export const MAX_WRITE_SAME_BLOCKS = 0x40_0000;
/** Maximum transfer length in blocks (VPD 0xb0): 0xffff, max_sectors of the configuration. */
export const MAX_TRANSFER_BLOCKS = 0xffff;
/** Scratch buffer size: the largest parameter data (REPORT LUNS of 256 LUNs: 8 + 256 * 8). */
export const SCRATCH_BYTES = 4096;

const VENDOR = 'VIRTIO  ';
const REVISION = '1.0 ';
const SUPPORTED_VPD = [
  VpdPage.SUPPORTED_PAGES,
  VpdPage.UNIT_SERIAL_NUMBER,
  VpdPage.DEVICE_IDENTIFICATION,
  VpdPage.BLOCK_LIMITS,
  VpdPage.BLOCK_DEVICE_CHARACTERISTICS,
  VpdPage.LOGICAL_BLOCK_PROVISIONING,
];

const U32 = 0x1_0000_0000;

export function be16(b: Uint8Array, at: number, v: number): void {
  b[at] = (v >>> 8) & 0xff;
  b[at + 1] = v & 0xff;
}
export function be32(b: Uint8Array, at: number, v: number): void {
  b[at] = (v >>> 24) & 0xff;
  b[at + 1] = (v >>> 16) & 0xff;
  b[at + 2] = (v >>> 8) & 0xff;
  b[at + 3] = v & 0xff;
}
export function be64(b: Uint8Array, at: number, v: number): void {
  be32(b, at, Math.floor(v / U32));
  be32(b, at + 4, v % U32);
}
export function getBe16(b: Uint8Array, at: number): number {
  return (b[at]! << 8) | b[at + 1]!;
}
export function getBe32(b: Uint8Array, at: number): number {
  return ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
}
/** A 64-bit big-endian number; values past 2^53 come back as MAX_SAFE_INTEGER (surely out of range). */
export function getBe64(b: Uint8Array, at: number): number {
  const hi = getBe32(b, at);
  if (hi > 0x1f_ffff) return Number.MAX_SAFE_INTEGER;
  return hi * U32 + getBe32(b, at + 4);
}

function putAscii(b: Uint8Array, at: number, s: string): void {
  for (let i = 0; i < s.length; i++) b[at + i] = s.charCodeAt(i);
}

/** Fills `dst` (at least 18 bytes) with fixed-format sense data (SPC-4 4.5.3). */
export function buildFixedSense(dst: Uint8Array, key: number, asc: number): number {
  dst.fill(0, 0, FixedSense.SIZE);
  dst[0] = FixedSense.RESPONSE_CODE;
  dst[FixedSense.KEY] = key & 0x0f;
  dst[FixedSense.ADDITIONAL_LENGTH] = FixedSense.SIZE - 8;
  dst[FixedSense.ASC] = (asc >>> 8) & 0xff;
  dst[FixedSense.ASCQ] = asc & 0xff;
  return FixedSense.SIZE;
}

/** The host's view the emulation needs: its LUNs by id, ascending. */
export interface LunDirectory {
  /** Fills `ids` with the LUN ids present, ascending; returns how many. */
  lunIds(ids: Int32Array): number;
}

/**
 * INQUIRY (SPC-4 6.6). `lun` null: no logical unit at that address (peripheral qualifier 011b),
 * or the REPORT LUNS well-known LU when `wlun`.
 */
export function inquiry(cdb: Uint8Array, lun: ScsiLogicalUnit | null, wlun: boolean, r: CommandResult, d: Uint8Array): void {
  r.allocLen = getBe16(cdb, 3);
  const evpd = (cdb[1]! & 0x01) !== 0;
  const page = cdb[2]!;
  if ((cdb[1]! & 0xfe) !== 0) return r.check(SenseKey.ILLEGAL_REQUEST, Asc.INVALID_FIELD_IN_CDB);
  if (!evpd) {
    if (page !== 0) return r.check(SenseKey.ILLEGAL_REQUEST, Asc.INVALID_FIELD_IN_CDB);
    d.fill(0, 0, 36);
    // Byte 0: peripheral qualifier and device type: 0x00 disk, 0x1e well-known LU, 0x7f none.
    d[0] = lun !== null ? 0x00 : wlun ? 0x1e : 0x7f;
    d[2] = 0x06; // SPC-4
    d[3] = 0x02; // response data format 2
    d[4] = 36 - 5; // additional length
    d[7] = 0x02; // CMDQUE: tagged command queuing
    putAscii(d, 8, VENDOR);
    if (lun !== null) d.set(lun.product, 16);
    else putAscii(d, 16, wlun ? 'REPORT LUNS WLUN' : '                ');
    putAscii(d, 32, REVISION);
    r.dataLen = 36;
    return;
  }
  if (lun === null) return r.check(SenseKey.ILLEGAL_REQUEST, Asc.INVALID_FIELD_IN_CDB);
  d.fill(0, 0, 64);
  d[1] = page;
  switch (page) {
    case VpdPage.SUPPORTED_PAGES:
      for (let i = 0; i < SUPPORTED_VPD.length; i++) d[4 + i] = SUPPORTED_VPD[i]!;
      be16(d, 2, SUPPORTED_VPD.length);
      r.dataLen = 4 + SUPPORTED_VPD.length;
      return;
    case VpdPage.UNIT_SERIAL_NUMBER:
      d.set(lun.serial, 4);
      be16(d, 2, lun.serial.length);
      r.dataLen = 4 + lun.serial.length;
      return;
    case VpdPage.DEVICE_IDENTIFICATION: {
      // One T10 vendor ID based designator (SPC-4 7.8.6.4): code set ASCII, association LU.
      const n = 8 + lun.serial.length;
      d[4] = 0x02; // code set 2: ASCII
      d[5] = 0x01; // PIV 0, association 0 (LU), designator type 1 (T10 vendor ID)
      d[7] = n;
      putAscii(d, 8, VENDOR);
      d.set(lun.serial, 16);
      be16(d, 2, 4 + n);
      r.dataLen = 8 + n;
      return;
    }
    case VpdPage.BLOCK_LIMITS:
      be16(d, 2, 0x3c);
      d[4] = 0x01; // WSNZ: a WRITE SAME of 0 blocks is refused
      be32(d, 8, MAX_TRANSFER_BLOCKS); // maximum transfer length
      be32(d, 12, 8); // optimal transfer length
      be32(d, 20, MAX_UNMAP_BLOCKS); // maximum unmap LBA count
      be32(d, 24, MAX_UNMAP_DESCRIPTORS); // maximum unmap block descriptor count
      be32(d, 28, 1); // optimal unmap granularity
      be64(d, 36, MAX_WRITE_SAME_BLOCKS); // maximum write same length
      r.dataLen = 64;
      return;
    case VpdPage.BLOCK_DEVICE_CHARACTERISTICS:
      be16(d, 2, 0x3c);
      be16(d, 4, 1); // medium rotation rate 1: non-rotating
      r.dataLen = 64;
      return;
    case VpdPage.LOGICAL_BLOCK_PROVISIONING:
      be16(d, 2, 4);
      // LBPU (UNMAP) and LBPWS (WRITE SAME 16 with UNMAP); no LBPRZ: the backend interface
      // leaves unmapped blocks unspecified. Provisioning type 0 (full).
      d[5] = 0x80 | 0x40;
      r.dataLen = 8;
      return;
    default:
      return r.check(SenseKey.ILLEGAL_REQUEST, Asc.INVALID_FIELD_IN_CDB);
  }
}

/** 5.6.6.1 single level LUN structure of `id`: peripheral (id < 256) or flat space addressing. */
export function putLun(d: Uint8Array, at: number, id: number): void {
  d.fill(0, at, at + 8);
  if (id < 256) d[at + 1] = id;
  else {
    d[at] = 0x40 | (id >>> 8);
    d[at + 1] = id & 0xff;
  }
}

/** REPORT LUNS (SPC-4 6.33); `ids` is a scratch list. */
export function reportLuns(cdb: Uint8Array, dir: LunDirectory, ids: Int32Array, r: CommandResult, d: Uint8Array): void {
  r.allocLen = getBe32(cdb, 6);
  const select = cdb[2]!;
  // SPC-4: allocation length below 16 is an error; select report 0, 1 (well-known) or 2 (all).
  if (r.allocLen < 16 || select > 2) return r.check(SenseKey.ILLEGAL_REQUEST, Asc.INVALID_FIELD_IN_CDB);
  let n = 0;
  if (select !== 1) {
    const count = dir.lunIds(ids);
    for (let i = 0; i < count; i++) putLun(d, 8 + 8 * n++, ids[i]!);
  }
  if (select !== 0) {
    d.fill(0, 8 + 8 * n, 16 + 8 * n);
    be16(d, 8 + 8 * n++, SCSI_REPORT_LUNS_WLUN);
  }
  d.fill(0, 0, 8);
  be32(d, 0, n * 8);
  r.dataLen = 8 + n * 8;
}

/** READ CAPACITY (10) (SBC-3 5.15). */
export function readCapacity10(lun: ScsiLogicalUnit, r: CommandResult, d: Uint8Array): void {
  r.allocLen = 8;
  // A capacity past 32 bits returns 0xffffffff: use READ CAPACITY (16).
  be32(d, 0, lun.blocks - 1 > 0xffff_ffff ? 0xffff_ffff : lun.blocks - 1);
  be32(d, 4, SCSI_BLOCK_SIZE);
  r.dataLen = 8;
}

/** READ CAPACITY (16) (SBC-3 5.16). */
export function readCapacity16(cdb: Uint8Array, lun: ScsiLogicalUnit, r: CommandResult, d: Uint8Array): void {
  r.allocLen = getBe32(cdb, 10);
  d.fill(0, 0, 32);
  be64(d, 0, lun.blocks - 1);
  be32(d, 8, SCSI_BLOCK_SIZE);
  d[14] = 0x80; // LBPME: UNMAP and WRITE SAME with UNMAP provision blocks (no LBPRZ)
  r.dataLen = 32;
}

/** REQUEST SENSE (SPC-4 6.39): the pending unit attention (cleared), else NO SENSE. */
export function requestSense(cdb: Uint8Array, lun: ScsiLogicalUnit | null, r: CommandResult, d: Uint8Array): void {
  r.allocLen = cdb[4]!;
  if ((cdb[1]! & 0x01) !== 0) return r.check(SenseKey.ILLEGAL_REQUEST, Asc.INVALID_FIELD_IN_CDB); // DESC: fixed only
  if (lun === null) r.dataLen = buildFixedSense(d, SenseKey.ILLEGAL_REQUEST, Asc.LOGICAL_UNIT_NOT_SUPPORTED);
  else if (lun.unitAttention >= 0) {
    r.dataLen = buildFixedSense(d, SenseKey.UNIT_ATTENTION, lun.unitAttention);
    lun.unitAttention = -1;
  } else r.dataLen = buildFixedSense(d, SenseKey.NO_SENSE, Asc.NO_ADDITIONAL_SENSE);
}

/** MODE SENSE (6) and (10) (SPC-4 6.11, 6.12): the caching and control pages. */
export function modeSense(cdb: Uint8Array, ten: boolean, lun: ScsiLogicalUnit, r: CommandResult, d: Uint8Array): void {
  r.allocLen = ten ? getBe16(cdb, 7) : cdb[4]!;
  const dbd = (cdb[1]! & 0x08) !== 0;
  const pc = cdb[2]! >>> 6;
  const page = cdb[2]! & 0x3f;
  const subpage = cdb[3]!;
  if (pc === 3) return r.check(SenseKey.ILLEGAL_REQUEST, Asc.SAVING_PARAMETERS_NOT_SUPPORTED);
  if ((page !== ModePage.CACHING && page !== ModePage.CONTROL && page !== ModePage.ALL) || (subpage !== 0 && subpage !== 0xff)) {
    return r.check(SenseKey.ILLEGAL_REQUEST, Asc.INVALID_FIELD_IN_CDB);
  }
  const hdr = ten ? 8 : 4;
  const bdLen = dbd ? 0 : 8;
  let at = hdr + bdLen;
  d.fill(0, 0, at);
  // Device-specific parameter: WP and DPOFUA (FUA honoured on writes).
  d[ten ? 3 : 2] = (lun.readOnly ? 0x80 : 0) | 0x10;
  if (ten) be16(d, 6, bdLen);
  else d[3] = bdLen;
  if (!dbd) {
    be32(d, hdr, lun.blocks > 0xffff_ffff ? 0xffff_ffff : lun.blocks);
    be32(d, hdr + 4, SCSI_BLOCK_SIZE); // density code 0, block length
  }
  const changeable = pc === 1;
  if (page === ModePage.CACHING || page === ModePage.ALL) {
    d.fill(0, at, at + 20);
    d[at] = ModePage.CACHING;
    d[at + 1] = 18;
    // WCE: the backends cache writes until SYNCHRONIZE CACHE (a file's page cache); not changeable.
    if (!changeable) d[at + 2] = 0x04;
    at += 20;
  }
  if (page === ModePage.CONTROL || page === ModePage.ALL) {
    d.fill(0, at, at + 12);
    d[at] = ModePage.CONTROL;
    d[at + 1] = 10;
    if (!changeable) {
      d[at + 3] = 0x10; // queue algorithm modifier 1: unrestricted reordering
      be16(d, at + 10, 0xffff); // extended self-test completion time: none
    }
    at += 12;
  }
  if (ten) be16(d, 0, at - 2);
  else d[0] = at - 1;
  r.dataLen = at;
}
