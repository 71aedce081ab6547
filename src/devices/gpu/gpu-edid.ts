/**
 * The EDID a virtio-gpu scanout reports (5.7.6.8 VIRTIO_GPU_CMD_GET_EDID: "the EDID display data
 * blob (as specified by VESA)"): one 128-byte EDID 1.4 base block whose preferred detailed
 * timing is the scanout's size at 60 Hz, with a monitor name and range limits, checksummed.
 */
import { ErrorCode, VirtioError } from '../../errors.js';

/** EDID base block size (VESA E-EDID 1.4). */
export const EDID_BLOCK_SIZE = 128;

const HEADER = [0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00];
/** sRGB primaries and white point, as most virtual displays report them. */
const SRGB_CHROMATICITY = [0xee, 0x91, 0xa3, 0x54, 0x4c, 0x99, 0x26, 0x0f, 0x50, 0x54];
/** Blanking of the generated detailed timing (a reduced-blanking style mode). */
const H_BLANK = 160;
const H_SYNC_OFFSET = 48;
const H_SYNC_WIDTH = 32;
const V_BLANK = 30;
const V_SYNC_OFFSET = 3;
const V_SYNC_WIDTH = 5;
const REFRESH_HZ = 60;
/** The largest active size a detailed timing descriptor holds (12 bits). */
export const EDID_MAX_DIMENSION = 4095;

/** What {@link buildEdid} puts in the EDID a GET_EDID answers (5.7.6.8). */
export interface EdidOptions {
  /** Preferred width in pixels, 1..4095. */
  readonly width: number;
  /** Preferred height in pixels, 1..4095. */
  readonly height: number;
  /** Monitor name (at most 13 ASCII characters). Default "virtio-ts". */
  readonly name?: string;
  /** Serial number (32 bits). Default 0. */
  readonly serial?: number;
}

/** Builds the EDID base block of a display of `width` x `height` pixels. */
export function buildEdid(opts: EdidOptions): Uint8Array {
  const { width, height } = opts;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1 || width > EDID_MAX_DIMENSION || height > EDID_MAX_DIMENSION) {
    throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `EDID size ${width}x${height} not in 1..${EDID_MAX_DIMENSION}`);
  }
  const name = opts.name ?? 'virtio-ts';
  if (!/^[\x20-\x7e]{0,13}$/.test(name)) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'EDID monitor name: at most 13 printable ASCII characters');
  const e = new Uint8Array(EDID_BLOCK_SIZE);
  e.set(HEADER, 0);
  // Manufacturer "VTS": three 5-bit letters, big-endian (E-EDID 3.4.1).
  const id = ((0x56 - 64) << 10) | ((0x54 - 64) << 5) | (0x53 - 64);
  e[8] = id >> 8;
  e[9] = id & 0xff;
  e[10] = 0x01; // product code 0x0001
  new DataView(e.buffer).setUint32(12, (opts.serial ?? 0) >>> 0, true);
  e[16] = 1; // week 1
  e[17] = 2024 - 1990; // model year
  e[18] = 1; // EDID 1.4
  e[19] = 4;
  e[20] = 0xa5; // digital, 8 bits per colour, DisplayPort
  // Physical size in cm at about 96 dpi (0.0265 cm a pixel), at least 1.
  const wMm = Math.max(1, Math.round(width * 0.265));
  const hMm = Math.max(1, Math.round(height * 0.265));
  e[21] = Math.min(255, Math.max(1, Math.round(wMm / 10)));
  e[22] = Math.min(255, Math.max(1, Math.round(hMm / 10)));
  e[23] = 120; // gamma 2.2
  e[24] = 0x06; // sRGB default colour space, preferred timing is native
  e.set(SRGB_CHROMATICITY, 25);
  e[35] = 0x21; // established timings: 640x480@60, 800x600@60
  e[36] = 0x08; // 1024x768@60
  for (let i = 38; i < 54; i++) e[i] = 0x01; // no standard timings
  writeDetailedTiming(e, 54, width, height, wMm, hMm);
  writeTextDescriptor(e, 72, 0xfc, name);
  writeRangeLimits(e, 90, width, height);
  writeTextDescriptor(e, 108, 0xff, String((opts.serial ?? 0) >>> 0));
  e[126] = 0; // no extension blocks
  let sum = 0;
  for (let i = 0; i < 127; i++) sum += e[i]!;
  e[127] = (256 - (sum & 0xff)) & 0xff;
  return e;
}

function pixelClock10kHz(width: number, height: number): number {
  return Math.min(0xffff, Math.ceil(((width + H_BLANK) * (height + V_BLANK) * REFRESH_HZ) / 10_000));
}

/** 18-byte detailed timing descriptor (E-EDID 3.10.2). */
function writeDetailedTiming(e: Uint8Array, at: number, w: number, h: number, wMm: number, hMm: number): void {
  const clock = pixelClock10kHz(w, h);
  e[at] = clock & 0xff;
  e[at + 1] = clock >> 8;
  e[at + 2] = w & 0xff;
  e[at + 3] = H_BLANK & 0xff;
  e[at + 4] = ((w >> 8) << 4) | (H_BLANK >> 8);
  e[at + 5] = h & 0xff;
  e[at + 6] = V_BLANK & 0xff;
  e[at + 7] = ((h >> 8) << 4) | (V_BLANK >> 8);
  e[at + 8] = H_SYNC_OFFSET & 0xff;
  e[at + 9] = H_SYNC_WIDTH & 0xff;
  e[at + 10] = ((V_SYNC_OFFSET & 0xf) << 4) | (V_SYNC_WIDTH & 0xf);
  e[at + 11] = ((H_SYNC_OFFSET >> 8) << 6) | ((H_SYNC_WIDTH >> 8) << 4) | ((V_SYNC_OFFSET >> 4) << 2) | (V_SYNC_WIDTH >> 4);
  const mmW = Math.min(4095, wMm);
  const mmH = Math.min(4095, hMm);
  e[at + 12] = mmW & 0xff;
  e[at + 13] = mmH & 0xff;
  e[at + 14] = ((mmW >> 8) << 4) | (mmH >> 8);
  e[at + 15] = 0;
  e[at + 16] = 0;
  e[at + 17] = 0x1e; // digital separate sync, both polarities positive
}

/** Display descriptor with a text payload (0xfc name, 0xff serial): 13 bytes, ended by 0x0a, padded with spaces. */
function writeTextDescriptor(e: Uint8Array, at: number, tag: number, text: string): void {
  e[at + 3] = tag;
  const s = text.slice(0, 13);
  for (let i = 0; i < 13; i++) e[at + 5 + i] = i < s.length ? s.charCodeAt(i) : i === s.length ? 0x0a : 0x20;
}

/** Display range limits descriptor (0xfd) that covers the preferred mode. */
function writeRangeLimits(e: Uint8Array, at: number, w: number, h: number): void {
  e[at + 3] = 0xfd;
  e[at + 5] = 50; // vertical Hz min
  e[at + 6] = 125; // vertical Hz max
  e[at + 7] = 30; // horizontal kHz min
  const hKhz = Math.ceil(((h + V_BLANK) * REFRESH_HZ) / 1000);
  e[at + 8] = Math.min(255, Math.max(160, hKhz)); // horizontal kHz max
  e[at + 9] = Math.min(255, Math.ceil(pixelClock10kHz(w, h) / 1000) + 1); // max pixel clock in 10 MHz
  e[at + 10] = 0x00; // default GTF
  e[at + 11] = 0x0a;
  for (let i = 12; i < 18; i++) e[at + i] = 0x20;
}

/** Whether `edid` starts with a valid base block (header and checksum), for drivers and tests. */
export function edidBaseBlockValid(edid: Uint8Array): boolean {
  if (edid.length < EDID_BLOCK_SIZE) return false;
  for (let i = 0; i < 8; i++) if (edid[i] !== HEADER[i]) return false;
  let sum = 0;
  for (let i = 0; i < EDID_BLOCK_SIZE; i++) sum += edid[i]!;
  return (sum & 0xff) === 0;
}

/** The preferred mode's active size from the first detailed timing descriptor. */
export function edidPreferredSize(edid: Uint8Array): {
  /** Horizontal active pixels. */
  width: number;
  /** Vertical active lines. */
  height: number;
} {
  const at = 54;
  return { width: edid[at + 2]! | ((edid[at + 4]! >> 4) << 8), height: edid[at + 5]! | ((edid[at + 7]! >> 4) << 8) };
}
