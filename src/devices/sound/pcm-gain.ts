/**
 * What the sound device's standard control elements do to the PCM: a gain in Q16 fixed point
 * (65536 = unity, 0 = silence) applied to the frames the host output receives and the frames the
 * host input produced. The volume element's TLV is ALSA's DB_SCALE (5.14.6.10.3 metadata): value
 * v in 0..VOLUME_MAX is MIN_DB + v x STEP_DB (0.01 dB units), v = 0 mutes.
 *
 * Samples are little-endian (VIRTIO_SND_PCM_FMT_* are ALSA's _LE formats). The gain applies to
 * S8, U8, S16, U16, S32, U32, FLOAT and FLOAT64; other formats (packed 24-bit, companded, DSD,
 * IEC958, ADPCM) pass unchanged. Integer samples: round half up of sample x gain / 65536, unsigned
 * ones around their midpoint; no clipping is needed as the gain never exceeds unity.
 */
import { SOUND_TLV_DB_SCALE_MUTE, SoundPcmFormat, SoundTlvType } from '../../spec/sound.js';
import type { SoundControlTlv } from './sound-elements.js';

/** The volume element's range: 0 (mute) .. 100 (0 dB). */
export const VOLUME_MAX = 100;
/** dB of volume 0 in 0.01 dB (it mutes: DB_SCALE's mute flag). */
export const VOLUME_MIN_CDB = -5000;
/** dB per volume step in 0.01 dB. */
export const VOLUME_STEP_CDB = 50;
/** Unity gain in Q16. */
export const UNITY_GAIN = 65536;

/** The volume element's metadata: DB_SCALE, -50 dB, 0.5 dB a step, minimum mutes. */
export const VOLUME_TLV: SoundControlTlv = { type: SoundTlvType.DB_SCALE, value: [VOLUME_MIN_CDB >>> 0, VOLUME_STEP_CDB | SOUND_TLV_DB_SCALE_MUTE] };

/** Q16 gain of volume `v` (0..VOLUME_MAX) under VOLUME_TLV. */
export function volumeGainQ16(v: number): number {
  if (v <= 0) return 0;
  if (v >= VOLUME_MAX) return UNITY_GAIN;
  const cdb = VOLUME_MIN_CDB + v * VOLUME_STEP_CDB;
  return Math.round(UNITY_GAIN * 10 ** (cdb / 2000));
}

/** Whether `format` is one applyGainQ16 scales. */
export function gainApplies(format: number): boolean {
  switch (format) {
    case SoundPcmFormat.S8:
    case SoundPcmFormat.U8:
    case SoundPcmFormat.S16:
    case SoundPcmFormat.U16:
    case SoundPcmFormat.S32:
    case SoundPcmFormat.U32:
    case SoundPcmFormat.FLOAT:
    case SoundPcmFormat.FLOAT64:
      return true;
    default:
      return false;
  }
}

const scaled = (s: number, g: number): number => Math.floor((s * g + 32768) / 65536);

/** Scales the whole samples of `b[0 .. length)` (a scratch buffer, sample-aligned) by `g` / 65536. */
export function applyGainQ16(format: number, b: Uint8Array, length: number, g: number): void {
  if (g === UNITY_GAIN) return;
  const v = new DataView(b.buffer, b.byteOffset, length);
  switch (format) {
    case SoundPcmFormat.S8:
      for (let i = 0; i < length; i++) v.setInt8(i, scaled(v.getInt8(i), g));
      break;
    case SoundPcmFormat.U8:
      for (let i = 0; i < length; i++) b[i] = 128 + scaled(b[i]! - 128, g);
      break;
    case SoundPcmFormat.S16:
      for (let i = 0; i + 2 <= length; i += 2) v.setInt16(i, scaled(v.getInt16(i, true), g), true);
      break;
    case SoundPcmFormat.U16:
      for (let i = 0; i + 2 <= length; i += 2) v.setUint16(i, 0x8000 + scaled(v.getUint16(i, true) - 0x8000, g), true);
      break;
    case SoundPcmFormat.S32:
      for (let i = 0; i + 4 <= length; i += 4) v.setInt32(i, scaled(v.getInt32(i, true), g), true);
      break;
    case SoundPcmFormat.U32:
      for (let i = 0; i + 4 <= length; i += 4) v.setUint32(i, 0x80000000 + scaled(v.getUint32(i, true) - 0x80000000, g), true);
      break;
    case SoundPcmFormat.FLOAT:
      for (let i = 0; i + 4 <= length; i += 4) v.setFloat32(i, (v.getFloat32(i, true) * g) / 65536, true);
      break;
    case SoundPcmFormat.FLOAT64:
      for (let i = 0; i + 8 <= length; i += 8) v.setFloat64(i, (v.getFloat64(i, true) * g) / 65536, true);
      break;
    default:
      break;
  }
}
