/**
 * What a sound device presents (5.14.6): its jacks, PCM streams and channel maps, as the host
 * configures them, checked once so the information the device writes never holds an undefined
 * value (device/sound/1, device/sound/3, device/sound/11, device/sound/12).
 */
import { ErrorCode, VirtioError } from '../../errors.js';
import {
  SOUND_CHMAP_MAX_SIZE,
  SOUND_CHMAP_POSITION_MAX,
  SOUND_FORMAT_PHYSICAL_BITS,
  SOUND_RATE_HZ,
  SoundChmapPosition,
  SoundDirection,
  SoundPcmFeatureBit,
  SoundPcmFormat,
  SoundPcmRate,
} from '../../spec/sound.js';

/** One jack the device presents (VIRTIO_SND_R_JACK_INFO, 5.14.6.4). */
export interface SoundJackConfig {
  /** HDA function group node (links jacks, streams and maps). Default 0. */
  readonly hdaFnNid?: number;
  /** HDA pin default configuration (7.3.3.31). Default 0. */
  readonly hdaRegDefconf?: number;
  /** HDA pin capabilities (7.3.4.9). Default 0. */
  readonly hdaRegCaps?: number;
  /** Whether something is plugged in at start (the jack's `connected` field). Default false. */
  readonly connected?: boolean;
  /** Whether the jack takes VIRTIO_SND_R_JACK_REMAP (VIRTIO_SND_JACK_F_REMAP). */
  readonly remap?: boolean;
}

/** One PCM stream the device presents (VIRTIO_SND_R_PCM_INFO, 5.14.6.6). */
export interface SoundStreamConfig {
  /** HDA function group node (links jacks, streams and maps). Default 0. */
  readonly hdaFnNid?: number;
  /** OUTPUT (playback, guest to host) or INPUT (capture, host to guest). */
  readonly direction: SoundDirection;
  /** VIRTIO_SND_PCM_FMT_* numbers (byte-sized formats only: not IMA ADPCM). */
  readonly formats: readonly number[];
  /** VIRTIO_SND_PCM_RATE_* numbers. */
  readonly rates: readonly number[];
  /** Fewest channels per frame the stream takes (1..255). */
  readonly channelsMin: number;
  /** Most channels per frame the stream takes (channelsMin..255). */
  readonly channelsMax: number;
  /** Offer VIRTIO_SND_PCM_F_EVT_XRUNS (underrun/overrun events). Default true. */
  readonly xrunEvents?: boolean;
}

/** One channel map the device presents (VIRTIO_SND_R_CHMAP_INFO, 5.14.6.9). */
export interface SoundChmapConfig {
  /** HDA function group node (links jacks, streams and maps). Default 0. */
  readonly hdaFnNid?: number;
  /** Which streams the map is for: OUTPUT or INPUT. */
  readonly direction: SoundDirection;
  /** VIRTIO_SND_CHMAP_* positions, at most VIRTIO_SND_CHMAP_MAX_SIZE. */
  readonly positions: readonly number[];
}

/** A stream as the device keeps it: the bitmaps it writes in PCM_INFO. */
export interface StreamInfo {
  /** HDA function group node. */
  readonly hdaFnNid: number;
  /** OUTPUT or INPUT. */
  readonly direction: SoundDirection;
  /** Bitmap of the formats: bit n set = VIRTIO_SND_PCM_FMT n supported. */
  readonly formats: bigint;
  /** Bitmap of the rates: bit n set = VIRTIO_SND_PCM_RATE n supported. */
  readonly rates: bigint;
  /** Fewest channels per frame. */
  readonly channelsMin: number;
  /** Most channels per frame. */
  readonly channelsMax: number;
  /** VIRTIO_SND_PCM_F_* bits offered. */
  readonly features: number;
}

/** Default topology: one stereo output and one stereo input (S16/U8, 8000..48000 Hz), a headphone jack, two stereo maps. */
export const DEFAULT_STREAMS: readonly SoundStreamConfig[] = [
  {
    direction: SoundDirection.OUTPUT,
    formats: [SoundPcmFormat.U8, SoundPcmFormat.S16, SoundPcmFormat.S32],
    rates: [SoundPcmRate.R8000, SoundPcmRate.R16000, SoundPcmRate.R44100, SoundPcmRate.R48000],
    channelsMin: 1,
    channelsMax: 2,
  },
  {
    direction: SoundDirection.INPUT,
    formats: [SoundPcmFormat.U8, SoundPcmFormat.S16, SoundPcmFormat.S32],
    rates: [SoundPcmRate.R8000, SoundPcmRate.R16000, SoundPcmRate.R44100, SoundPcmRate.R48000],
    channelsMin: 1,
    channelsMax: 2,
  },
];
export const DEFAULT_JACKS: readonly SoundJackConfig[] = [{ connected: true, remap: true, hdaRegDefconf: 0x0221_4010, hdaRegCaps: 0x0000_0010 }];
export const DEFAULT_CHMAPS: readonly SoundChmapConfig[] = [
  { direction: SoundDirection.OUTPUT, positions: [SoundChmapPosition.FL, SoundChmapPosition.FR] },
  { direction: SoundDirection.INPUT, positions: [SoundChmapPosition.FL, SoundChmapPosition.FR] },
];

const u32 = (v: number | undefined, what: string): number => {
  const x = v ?? 0;
  if (!Number.isInteger(x) || x < 0 || x > 0xffffffff) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `${what}: ${x} is not a u32`);
  return x;
};
const direction = (d: number, what: string): SoundDirection => {
  if (d !== SoundDirection.OUTPUT && d !== SoundDirection.INPUT) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `${what}: undefined direction ${d}`);
  return d;
};

/** Checks a stream configuration and builds its PCM_INFO bitmaps (device/sound/3: only defined values). */
export function streamInfo(s: SoundStreamConfig, i: number): StreamInfo {
  const what = `stream ${i}`;
  let formats = 0n;
  for (const f of s.formats) {
    const bits = SOUND_FORMAT_PHYSICAL_BITS[f];
    if (!Number.isInteger(f) || bits === undefined || bits < 8) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `${what}: format ${f} is undefined or not byte-sized`);
    formats |= 1n << BigInt(f);
  }
  let rates = 0n;
  for (const r of s.rates) {
    if (!Number.isInteger(r) || SOUND_RATE_HZ[r] === undefined) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `${what}: rate ${r} is undefined`);
    rates |= 1n << BigInt(r);
  }
  if (formats === 0n || rates === 0n) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `${what}: no format or no rate`);
  const { channelsMin: lo, channelsMax: hi } = s;
  if (!Number.isInteger(lo) || !Number.isInteger(hi) || lo < 1 || hi > 255 || lo > hi) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `${what}: channels ${lo}..${hi}`);
  return {
    hdaFnNid: u32(s.hdaFnNid, what),
    direction: direction(s.direction, what),
    formats,
    rates,
    channelsMin: lo,
    channelsMax: hi,
    features: s.xrunEvents === false ? 0 : 1 << SoundPcmFeatureBit.EVT_XRUNS,
  };
}

/** Checks a jack (u32 fields). */
export function checkJack(j: SoundJackConfig, i: number): void {
  u32(j.hdaFnNid, `jack ${i}`);
  u32(j.hdaRegDefconf, `jack ${i}`);
  u32(j.hdaRegCaps, `jack ${i}`);
}

/** Checks a channel map (device/sound/11, device/sound/12: defined direction, at most 18 positions, defined positions). */
export function checkChmap(c: SoundChmapConfig, i: number): void {
  const what = `chmap ${i}`;
  u32(c.hdaFnNid, what);
  direction(c.direction, what);
  if (c.positions.length > SOUND_CHMAP_MAX_SIZE) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `${what}: more than ${SOUND_CHMAP_MAX_SIZE} channels`);
  for (const p of c.positions) {
    if (!Number.isInteger(p) || p < 0 || p > SOUND_CHMAP_POSITION_MAX) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `${what}: undefined position ${p}`);
  }
}
