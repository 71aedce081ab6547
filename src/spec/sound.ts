/**
 * 5.14 Sound Device: virtqueues, feature bits, configuration layout, request/event codes,
 * status codes, the structures of the control, event and I/O messages (offsets and sizes), and
 * the PCM format / rate / channel position numbers. Constants only.
 */
import { defineConfigLayout } from './config-layout.js';
import { bit } from './features.js';

/** 5.14.2 Virtqueues. */
export const SoundQueue = {
  CONTROLQ: 0,
  EVENTQ: 1,
  TXQ: 2,
  RXQ: 3,
} as const;

/** 5.14.3 Feature bits (bit numbers). */
export const SoundFeatureBit = {
  /** Control elements (VIRTIO_SND_R_CTL_*). */
  CTLS: 0,
} as const;
/** 5.14.3 feature bits as masks (bigint). */
export const SoundF = { CTLS: bit(SoundFeatureBit.CTLS) } as const;

/** 5.14.4 struct virtio_snd_config. */
export const SoundConfig = { SIZE: 16, JACKS: 0, STREAMS: 4, CHMAPS: 8, CONTROLS: 12 } as const;
/** 5.14.4: controls exists only with VIRTIO_SND_F_CTLS (driver/sound/1: not read otherwise). */
export const SOUND_CONFIG_LAYOUT = defineConfigLayout(SoundConfig.SIZE, [
  { name: 'jacks', offset: SoundConfig.JACKS, width: 4, feature: null, access: 'ro' },
  { name: 'streams', offset: SoundConfig.STREAMS, width: 4, feature: null, access: 'ro' },
  { name: 'chmaps', offset: SoundConfig.CHMAPS, width: 4, feature: null, access: 'ro' },
  { name: 'controls', offset: SoundConfig.CONTROLS, width: 4, feature: SoundF.CTLS, access: 'ro' },
] as const);
/** The field names of SOUND_CONFIG_LAYOUT: the keys of the values encodeConfig takes for it. */
export type SoundConfigField = (typeof SOUND_CONFIG_LAYOUT.fields)[number]['name'];

/** 5.14.6 request, event and status codes (virtio_snd_hdr.code). */
export const SoundCode = {
  R_JACK_INFO: 1,
  R_JACK_REMAP: 2,
  R_PCM_INFO: 0x0100,
  R_PCM_SET_PARAMS: 0x0101,
  R_PCM_PREPARE: 0x0102,
  R_PCM_RELEASE: 0x0103,
  R_PCM_START: 0x0104,
  R_PCM_STOP: 0x0105,
  R_CHMAP_INFO: 0x0200,
  R_CTL_INFO: 0x0300,
  R_CTL_ENUM_ITEMS: 0x0301,
  R_CTL_READ: 0x0302,
  R_CTL_WRITE: 0x0303,
  R_CTL_TLV_READ: 0x0304,
  R_CTL_TLV_WRITE: 0x0305,
  R_CTL_TLV_COMMAND: 0x0306,
  EVT_JACK_CONNECTED: 0x1000,
  EVT_JACK_DISCONNECTED: 0x1001,
  EVT_PCM_PERIOD_ELAPSED: 0x1100,
  EVT_PCM_XRUN: 0x1101,
  EVT_CTL_NOTIFY: 0x1200,
} as const;

/** 5.14.6 common status codes. */
export const SoundStatus = {
  OK: 0x8000,
  BAD_MSG: 0x8001,
  NOT_SUPP: 0x8002,
  IO_ERR: 0x8003,
} as const;

/** 5.14.6 data flow directions (VIRTIO_SND_D_*). */
export const SoundDirection = { OUTPUT: 0, INPUT: 1 } as const;
export type SoundDirection = (typeof SoundDirection)[keyof typeof SoundDirection];

/** Structure sizes and field offsets (5.14.6). */
export const SoundHdr = { SIZE: 4, CODE: 0 } as const;
/** struct virtio_snd_event: hdr (code le32), data le32. */
export const SoundEvent = { SIZE: 8, CODE: 0, DATA: 4 } as const;
/** struct virtio_snd_query_info. */
export const SoundQueryInfo = { SIZE: 16, CODE: 0, START_ID: 4, COUNT: 8, ITEM_SIZE: 12 } as const;
/** struct virtio_snd_jack_hdr / virtio_snd_pcm_hdr / virtio_snd_ctl_hdr: code then an id. */
export const SoundItemHdr = { SIZE: 8, CODE: 0, ID: 4 } as const;
/** struct virtio_snd_jack_remap. */
export const SoundJackRemap = { SIZE: 16, JACK_ID: 4, ASSOCIATION: 8, SEQUENCE: 12 } as const;
/** struct virtio_snd_jack_info (24 bytes). */
export const SoundJackInfo = { SIZE: 24, HDA_FN_NID: 0, FEATURES: 4, HDA_REG_DEFCONF: 8, HDA_REG_CAPS: 12, CONNECTED: 16, PADDING: 17 } as const;
/** struct virtio_snd_pcm_info (32 bytes). */
export const SoundPcmInfo = {
  SIZE: 32,
  HDA_FN_NID: 0,
  FEATURES: 4,
  FORMATS: 8,
  RATES: 16,
  DIRECTION: 24,
  CHANNELS_MIN: 25,
  CHANNELS_MAX: 26,
  PADDING: 27,
} as const;
/** struct virtio_snd_pcm_set_params (24 bytes). */
export const SoundSetParams = {
  SIZE: 24,
  STREAM_ID: 4,
  BUFFER_BYTES: 8,
  PERIOD_BYTES: 12,
  FEATURES: 16,
  CHANNELS: 20,
  FORMAT: 21,
  RATE: 22,
  PADDING: 23,
} as const;
/** struct virtio_snd_chmap_info (24 bytes). */
export const SoundChmapInfo = { SIZE: 24, HDA_FN_NID: 0, DIRECTION: 4, CHANNELS: 5, POSITIONS: 6 } as const;
/** VIRTIO_SND_CHMAP_MAX_SIZE. */
export const SOUND_CHMAP_MAX_SIZE = 18;
/** struct virtio_snd_pcm_xfer (I/O header) and struct virtio_snd_pcm_status (I/O status). */
export const SoundPcmXfer = { SIZE: 4, STREAM_ID: 0 } as const;
/** struct virtio_snd_pcm_status: status le32, latency_bytes le32. */
export const SoundPcmStatus = { SIZE: 8, STATUS: 0, LATENCY_BYTES: 4 } as const;

/** struct virtio_snd_ctl_hdr: code then control_id (5.14.6.10). */
export const SoundCtlHdr = { SIZE: 8, CODE: 0, CONTROL_ID: 4 } as const;
/**
 * struct virtio_snd_ctl_info (96 bytes): `value` is a union holding le64 members, so C's natural
 * alignment puts it at 72 (4 bytes of padding after `name`), as in Linux's uapi header.
 */
export const SoundCtlInfo = {
  SIZE: 96,
  HDA_FN_NID: 0,
  ROLE: 4,
  TYPE: 8,
  ACCESS: 12,
  COUNT: 16,
  INDEX: 20,
  NAME: 24,
  NAME_SIZE: 44,
  PADDING: 68,
  VALUE: 72,
  INTEGER_MIN: 72,
  INTEGER_MAX: 76,
  INTEGER_STEP: 80,
  INTEGER64_MIN: 72,
  INTEGER64_MAX: 80,
  INTEGER64_STEP: 88,
  ENUMERATED_ITEMS: 72,
} as const;
/** struct virtio_snd_ctl_enum_item: one 64-byte 0-terminated name. */
export const SoundCtlEnumItem = { SIZE: 64 } as const;
/** struct virtio_snd_ctl_value: a 512-byte union. */
export const SoundCtlValue = { SIZE: 512 } as const;
/** struct virtio_snd_ctl_iec958 (176 bytes). */
export const SoundCtlIec958 = { SIZE: 176, STATUS: 0, SUBCODE: 24, PAD: 171, DIG_SUBFRAME: 172 } as const;
/** struct virtio_snd_ctl_tlv: type, length (bytes, a multiple of 4), then the value words. */
export const SoundCtlTlv = { HDR_SIZE: 8, TYPE: 0, LENGTH: 4, VALUE: 8 } as const;
/** driver/sound/21: the largest TLV `value` a driver may submit. */
export const SOUND_CTL_TLV_MAX_VALUE = 65536;
/** struct virtio_snd_ctl_event: hdr, le16 control_id, le16 mask. */
export const SoundCtlEvent = { SIZE: 8, CODE: 0, CONTROL_ID: 4, MASK: 6 } as const;

/** VIRTIO_SND_CTL_ROLE_*: `role` is (ROLE << 1) | direction, or UNDEFINED (0). */
export const SoundCtlRole = { UNDEFINED: 0, VOLUME: 1, MUTE: 2, GAIN: 3 } as const;
/** The largest defined role (device/sound/13). */
export const SOUND_CTL_ROLE_MAX = 3;
/** VIRTIO_SND_CTL_TYPE_*. */
export const SoundCtlType = { BOOLEAN: 0, INTEGER: 1, INTEGER64: 2, ENUMERATED: 3, BYTES: 4, IEC958: 5 } as const;
/** One of SoundCtlType. */
export type SoundCtlType = (typeof SoundCtlType)[keyof typeof SoundCtlType];
/** device/sound/15: the largest `count` of each type, by type number. */
export const SOUND_CTL_MAX_COUNT: readonly number[] = [128, 128, 64, 128, 512, 1];
/** VIRTIO_SND_CTL_ACCESS_* (bit numbers of `access`). */
export const SoundCtlAccessBit = { READ: 0, WRITE: 1, VOLATILE: 2, INACTIVE: 3, TLV_READ: 4, TLV_WRITE: 5, TLV_COMMAND: 6 } as const;
/** VIRTIO_SND_CTL_ACCESS_* as masks. */
export const SoundCtlAccess = { READ: 1, WRITE: 2, VOLATILE: 4, INACTIVE: 8, TLV_READ: 16, TLV_WRITE: 32, TLV_COMMAND: 64 } as const;
/** Every defined access bit (device/sound/13). */
export const SOUND_CTL_ACCESS_DEFINED = 0x7f;
/** VIRTIO_SND_CTL_EVT_MASK_* (bit numbers of the control event's `mask`). */
export const SoundCtlEventMaskBit = { VALUE: 0, INFO: 1, TLV: 2 } as const;
/** VIRTIO_SND_CTL_EVT_MASK_* as masks. */
export const SoundCtlEventMask = { VALUE: 1, INFO: 2, TLV: 4 } as const;
/** Every defined event mask bit (device/sound/18). */
export const SOUND_CTL_EVENT_MASK_DEFINED = 7;
/**
 * ALSA's TLV types the chapter refers to for metadata ("ALSA defines several standard metadata
 * types", include/uapi/sound/tlv.h): DB_SCALE is min (0.01 dB, signed) then step (0.01 dB,
 * bits 0..15) with bit 16 set when the minimum value mutes.
 */
export const SoundTlvType = { CONTAINER: 0, DB_SCALE: 1, DB_LINEAR: 2, DB_RANGE: 3, DB_MINMAX: 4, DB_MINMAX_MUTE: 5 } as const;
/** DB_SCALE's "minimum is mute" flag in its second word. */
export const SOUND_TLV_DB_SCALE_MUTE = 0x10000;

/** Jack features (virtio_snd_jack_info.features bits). */
export const SoundJackFeatureBit = { REMAP: 0 } as const;
/** Bits a jack may set (device/sound/1). */
export const SOUND_JACK_FEATURES_DEFINED = 1 << SoundJackFeatureBit.REMAP;

/** PCM stream features (bit numbers in virtio_snd_pcm_info.features and set_params.features). */
export const SoundPcmFeatureBit = {
  SHMEM_HOST: 0,
  SHMEM_GUEST: 1,
  MSG_POLLING: 2,
  EVT_SHMEM_PERIODS: 3,
  EVT_XRUNS: 4,
} as const;
/** Bits defined for PCM features (device/sound/3, driver/sound/6). */
export const SOUND_PCM_FEATURES_DEFINED = 0x1f;

/** PCM sample formats (VIRTIO_SND_PCM_FMT_*). */
export const SoundPcmFormat = {
  IMA_ADPCM: 0,
  MU_LAW: 1,
  A_LAW: 2,
  S8: 3,
  U8: 4,
  S16: 5,
  U16: 6,
  S18_3: 7,
  U18_3: 8,
  S20_3: 9,
  U20_3: 10,
  S24_3: 11,
  U24_3: 12,
  S20: 13,
  U20: 14,
  S24: 15,
  U24: 16,
  S32: 17,
  U32: 18,
  FLOAT: 19,
  FLOAT64: 20,
  DSD_U8: 21,
  DSD_U16: 22,
  DSD_U32: 23,
  IEC958_SUBFRAME: 24,
} as const;
/** Physical width in bits of each format, by format number (IMA ADPCM: 4 bits). */
export const SOUND_FORMAT_PHYSICAL_BITS: readonly number[] = [4, 8, 8, 8, 8, 16, 16, 24, 24, 24, 24, 24, 24, 32, 32, 32, 32, 32, 32, 32, 64, 8, 16, 32, 32];

/** PCM frame rates (VIRTIO_SND_PCM_RATE_*). */
export const SoundPcmRate = {
  R5512: 0,
  R8000: 1,
  R11025: 2,
  R16000: 3,
  R22050: 4,
  R32000: 5,
  R44100: 6,
  R48000: 7,
  R64000: 8,
  R88200: 9,
  R96000: 10,
  R176400: 11,
  R192000: 12,
  R384000: 13,
  R12000: 14,
  R24000: 15,
} as const;
/** Frames per second of each rate, by rate number. */
export const SOUND_RATE_HZ: readonly number[] = [5512, 8000, 11025, 16000, 22050, 32000, 44100, 48000, 64000, 88200, 96000, 176400, 192000, 384000, 12000, 24000];

/** The rate number of `hz`, or -1. */
export function soundRateOf(hz: number): number {
  return SOUND_RATE_HZ.indexOf(hz);
}

/** Bytes per frame of `channels` samples of `format` (0 for IMA ADPCM, which packs two samples a byte). */
export function soundFrameBytes(format: number, channels: number): number {
  const bits = SOUND_FORMAT_PHYSICAL_BITS[format];
  if (bits === undefined || bits < 8) return 0;
  return (bits / 8) * channels;
}

/** Standard channel positions (VIRTIO_SND_CHMAP_*): NONE .. BRC. */
export const SoundChmapPosition = {
  NONE: 0,
  NA: 1,
  MONO: 2,
  FL: 3,
  FR: 4,
  RL: 5,
  RR: 6,
  FC: 7,
  LFE: 8,
  SL: 9,
  SR: 10,
  RC: 11,
  FLC: 12,
  FRC: 13,
  RLC: 14,
  RRC: 15,
  FLW: 16,
  FRW: 17,
  FLH: 18,
  FCH: 19,
  FRH: 20,
  TC: 21,
  TFL: 22,
  TFR: 23,
  TFC: 24,
  TRL: 25,
  TRR: 26,
  TRC: 27,
  TFLC: 28,
  TFRC: 29,
  TSL: 30,
  TSR: 31,
  LLFE: 32,
  RLFE: 33,
  BC: 34,
  BLC: 35,
  BRC: 36,
} as const;
/** The largest defined channel position. */
export const SOUND_CHMAP_POSITION_MAX = 36;
