/**
 * The host side of the sound device's PCM streams: where output frames go (a callback, a WAV
 * file) and where input frames come from (a WAV file, a tone generator, silence). The device
 * calls these from its per-stream timers, at the pace of the stream's rate (5.14.6.8).
 */
import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';
import { ErrorCode, VirtioError } from '../../errors.js';
import { SOUND_FORMAT_PHYSICAL_BITS, SoundPcmFormat } from '../../spec/sound.js';

/** The parameters a stream was prepared with (VIRTIO_SND_R_PCM_SET_PARAMS, checked). */
export interface PcmParams {
  /** The stream's index among the device's PCM streams (5.14.6.6). */
  readonly streamId: number;
  /** Interleaved channels per frame. */
  readonly channels: number;
  /** VIRTIO_SND_PCM_FMT_*. */
  readonly format: number;
  /** Frames per second. */
  readonly rateHz: number;
  /** buffer_bytes: the size of the driver's whole ring buffer of frames. */
  readonly bufferBytes: number;
  /** period_bytes: the size of one period, the unit the driver transfers and is notified in. */
  readonly periodBytes: number;
  /** Bytes per frame (channels x physical sample width). */
  readonly frameBytes: number;
}

/** Receives the frames of output streams as the device consumes them. */
export interface PcmOutput {
  /** The stream was prepared with `params` (before any frame). */
  open?(params: PcmParams): void;
  /**
   * Frames of stream `streamId`: `bytes[offset .. offset + length)`, a view of guest memory
   * valid only during the call (copy what you keep).
   */
  write(streamId: number, bytes: Uint8Array, offset: number, length: number): void;
  /** The stream was released (or the device reset). */
  close?(streamId: number): void;
}

/** Produces the frames of input streams as the device fills the driver's buffers. */
export interface PcmInput {
  /** The stream was prepared with `params` (before any read). */
  open?(params: PcmParams): void;
  /** Fills `bytes[offset .. offset + length)` (guest memory) with frames of stream `streamId`. */
  read(streamId: number, bytes: Uint8Array, offset: number, length: number): void;
  /** The stream was released (or the device reset). */
  close?(streamId: number): void;
}

/** Output that discards frames (the default). */
export const DISCARD_OUTPUT: PcmOutput = { write() {} };
/** Input of zero bytes (the default; silence for the signed formats). */
export const SILENT_INPUT: PcmInput = {
  read(_s, bytes, offset, length) {
    bytes.fill(0, offset, offset + length);
  },
};

/** Output to a callback that gets a copy of every period's frames. */
export function callbackOutput(cb: (streamId: number, frames: Uint8Array) => void, open?: (p: PcmParams) => void): PcmOutput {
  return {
    open,
    write(streamId, bytes, offset, length) {
      cb(streamId, bytes.slice(offset, offset + length));
    },
  };
}

const WAV_HEADER = 44;

/** WAVE format tag and bits per sample for the formats a WAV file holds; null for the others. */
function wavFormat(format: number): { tag: number; bits: number } | null {
  switch (format) {
    case SoundPcmFormat.U8:
      return { tag: 1, bits: 8 };
    case SoundPcmFormat.S16:
      return { tag: 1, bits: 16 };
    case SoundPcmFormat.S24_3:
      return { tag: 1, bits: 24 };
    case SoundPcmFormat.S32:
      return { tag: 1, bits: 32 };
    case SoundPcmFormat.FLOAT:
      return { tag: 3, bits: 32 };
    case SoundPcmFormat.FLOAT64:
      return { tag: 3, bits: 64 };
    case SoundPcmFormat.MU_LAW:
      return { tag: 7, bits: 8 };
    case SoundPcmFormat.A_LAW:
      return { tag: 6, bits: 8 };
    default:
      return null;
  }
}

function wavHeader(p: PcmParams, dataBytes: number): Uint8Array {
  const f = wavFormat(p.format) ?? { tag: 1, bits: SOUND_FORMAT_PHYSICAL_BITS[p.format] ?? 8 };
  const h = new Uint8Array(WAV_HEADER);
  const v = new DataView(h.buffer);
  const ascii = (at: number, s: string): void => {
    for (let i = 0; i < s.length; i++) h[at + i] = s.charCodeAt(i);
  };
  ascii(0, 'RIFF');
  v.setUint32(4, 36 + dataBytes, true);
  ascii(8, 'WAVE');
  ascii(12, 'fmt ');
  v.setUint32(16, 16, true);
  v.setUint16(20, f.tag, true);
  v.setUint16(22, p.channels, true);
  v.setUint32(24, p.rateHz, true);
  v.setUint32(28, p.rateHz * p.frameBytes, true);
  v.setUint16(32, p.frameBytes, true);
  v.setUint16(34, f.bits, true);
  ascii(36, 'data');
  v.setUint32(40, dataBytes, true);
  return h;
}

/**
 * Writes one output stream (`streamId`) to a WAV file: the header at `open`, frames as they are
 * played, the RIFF and data sizes at `close`. A second prepare rewrites the file.
 */
export class WavFileOutput implements PcmOutput {
  private fd: number | null = null;
  private params: PcmParams | null = null;
  private bytes = 0;

  constructor(
    /** The WAV file written (created or truncated at each prepare). */
    readonly path: string,
    /** The output stream recorded; other streams' frames are ignored. */
    readonly streamId = 0,
  ) {}

  /** Bytes of frames written so far. */
  get dataBytes(): number {
    return this.bytes;
  }

  open(params: PcmParams): void {
    if (params.streamId !== this.streamId) return;
    this.close(this.streamId);
    this.fd = openSync(this.path, 'w');
    this.params = params;
    this.bytes = 0;
    writeSync(this.fd, wavHeader(params, 0));
  }

  write(streamId: number, bytes: Uint8Array, offset: number, length: number): void {
    if (streamId !== this.streamId || this.fd === null) return;
    writeSync(this.fd, bytes, offset, length);
    this.bytes += length;
  }

  close(streamId: number): void {
    if (streamId !== this.streamId || this.fd === null || this.params === null) return;
    writeSync(this.fd, wavHeader(this.params, this.bytes), 0, WAV_HEADER, 0);
    closeSync(this.fd);
    this.fd = null;
  }
}

/** A WAV file's format and frames. */
export interface WavData {
  /** wFormatTag: 1 = integer PCM, 3 = IEEE float. */
  readonly tag: number;
  /** Channels per frame. */
  readonly channels: number;
  /** Frames per second (Hz). */
  readonly rateHz: number;
  /** Bits of one sample (8, 16, 24, 32...). */
  readonly bitsPerSample: number;
  /** The frames: the data chunk's bytes (a view into the file, cut short if the file is). */
  readonly data: Uint8Array;
}

/** Parses a RIFF/WAVE file (the fmt and data chunks; other chunks skipped). */
export function parseWav(file: Uint8Array): WavData {
  const v = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const tag4 = (at: number): string => String.fromCharCode(file[at]!, file[at + 1]!, file[at + 2]!, file[at + 3]!);
  if (file.length < 12 || tag4(0) !== 'RIFF' || tag4(8) !== 'WAVE') throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'not a RIFF/WAVE file');
  let fmt: Omit<WavData, 'data'> | null = null;
  for (let at = 12; at + 8 <= file.length; ) {
    const id = tag4(at);
    const len = v.getUint32(at + 4, true);
    const body = at + 8;
    if (id === 'fmt ' && len >= 16 && body + 16 <= file.length) {
      fmt = { tag: v.getUint16(body, true), channels: v.getUint16(body + 2, true), rateHz: v.getUint32(body + 4, true), bitsPerSample: v.getUint16(body + 14, true) };
    } else if (id === 'data') {
      if (fmt === null) break;
      return { ...fmt, data: file.subarray(body, Math.min(file.length, body + len)) };
    }
    at = body + len + (len & 1);
  }
  throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'WAVE file without fmt and data chunks');
}

/** Input from a WAV file's frames, looped; the stream's format should match the file's. */
export class WavFileInput implements PcmInput {
  /** The parsed file (read once, at construction). */
  readonly wav: WavData;
  private pos = 0;

  constructor(
    path: string,
    /** The input stream fed; other streams get silence. */
    readonly streamId = 0,
  ) {
    this.wav = parseWav(readFileSync(path));
    if (this.wav.data.length === 0) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `${path}: no frames`);
  }

  /** The stream was prepared: it starts again from the file's first frame. */
  open(params: PcmParams): void {
    if (params.streamId === this.streamId) this.pos = 0;
  }

  read(streamId: number, bytes: Uint8Array, offset: number, length: number): void {
    if (streamId !== this.streamId) {
      bytes.fill(0, offset, offset + length);
      return;
    }
    const d = this.wav.data;
    let done = 0;
    while (done < length) {
      const n = Math.min(length - done, d.length - this.pos);
      bytes.set(d.subarray(this.pos, this.pos + n), offset + done);
      done += n;
      this.pos = (this.pos + n) % d.length;
    }
  }
}

/**
 * Input of a sine tone (S16, U8 or S32; other formats silence), the same on every channel: the
 * sample of frame k is round(amplitude * sin(2 pi f k / rate)) in the format's range.
 */
export class ToneInput implements PcmInput {
  private readonly frame = new Map<number, number>();
  private readonly params = new Map<number, PcmParams>();

  constructor(
    /** Tone frequency (Hz). */
    readonly frequencyHz = 440,
    /** 0..1 of full scale. */
    readonly amplitude = 0.5,
  ) {}

  /** The stream was prepared: its tone starts again at frame 0 with the new parameters. */
  open(params: PcmParams): void {
    this.params.set(params.streamId, params);
    this.frame.set(params.streamId, 0);
  }

  /** The value of frame `k` at `rateHz`, in -1..1 times amplitude. */
  sample(k: number, rateHz: number): number {
    return this.amplitude * Math.sin((2 * Math.PI * this.frequencyHz * k) / rateHz);
  }

  read(streamId: number, bytes: Uint8Array, offset: number, length: number): void {
    const p = this.params.get(streamId);
    bytes.fill(0, offset, offset + length);
    if (!p || p.frameBytes === 0) return;
    const v = new DataView(bytes.buffer, bytes.byteOffset + offset, length);
    const width = p.frameBytes / p.channels;
    let k = this.frame.get(streamId) ?? 0;
    for (let at = 0; at + p.frameBytes <= length; at += p.frameBytes, k++) {
      const s = this.sample(k, p.rateHz);
      for (let c = 0; c < p.channels; c++) {
        const o = at + c * width;
        if (p.format === SoundPcmFormat.S16) v.setInt16(o, Math.round(s * 32767), true);
        else if (p.format === SoundPcmFormat.U8) v.setUint8(o, Math.round(128 + s * 127));
        else if (p.format === SoundPcmFormat.S32) v.setInt32(o, Math.round(s * 0x7fffffff), true);
      }
    }
    this.frame.set(streamId, k);
  }
}
