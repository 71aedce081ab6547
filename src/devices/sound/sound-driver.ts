/**
 * 5.14 Sound Device, driver side: reads jacks/streams/chmaps (and `controls` only when
 * VIRTIO_SND_F_CTLS was negotiated: driver/sound/1), keeps the event queue populated with device-writable buffers of
 * struct virtio_snd_event size (driver/sound/2, driver/sound/3), queries item information
 * within the configured counts with a response buffer of hdr + count * size (driver/sound/4,
 * driver/sound/5), checks stream parameters against the stream information before sending them
 * (driver/sound/6 to 10), and moves PCM frames through the tx / rx queues (driver/sound/11) in
 * period-sized messages (driver/sound/12, driver/sound/14) of the right shape (driver/sound/13,
 * driver/sound/15). Control elements (5.14.6.10): information, enumerated items, values and
 * metadata, each request sent only when the element's access allows it (driver/sound/16 to
 * driver/sound/20) and metadata never above 65536 bytes (driver/sound/21); CTL_NOTIFY events
 * carry their control id and mask.
 */
import { type DeviceDriver, type DeviceDriverType, checkDriverContext } from '../../driver/device-driver.js';
import { RequestQueue } from '../../driver/request-queue.js';
import type { DriverContext } from '../../driver/types.js';
import { ErrorCode, VirtioError } from '../../errors.js';
import { readConfigFields } from '../../spec/config-layout.js';
import { DeviceId } from '../../spec/device-id.js';
import {
  SOUND_CONFIG_LAYOUT,
  SoundCtlEvent,
  SoundF,
  SOUND_PCM_FEATURES_DEFINED,
  SOUND_RATE_HZ,
  SoundChmapInfo,
  SoundCode,
  SoundEvent,
  SoundHdr,
  SoundJackInfo,
  SoundPcmFeatureBit,
  SoundPcmInfo,
  SoundPcmStatus,
  SoundQueue,
  SoundSetParams,
  SoundStatus,
  soundFrameBytes,
} from '../../spec/sound.js';
import { SoundControlElementsDriver } from './sound-driver-controls.js';

/** Struct virtio_snd_jack_info (5.14.6.4.1), decoded. */
export interface SoundJackInfoResult {
  /** `hdr.hda_fn_nid` of struct virtio_snd_jack_info. */
  readonly hdaFnNid: number;
  /** `features` of struct virtio_snd_jack_info. */
  readonly features: number;
  /** `hda_reg_defconf` of struct virtio_snd_jack_info. */
  readonly hdaRegDefconf: number;
  /** `hda_reg_caps` of struct virtio_snd_jack_info. */
  readonly hdaRegCaps: number;
  /** `connected` of struct virtio_snd_jack_info. */
  readonly connected: boolean;
  /** The padding bytes as the device wrote them. */
  readonly padding: Uint8Array;
}
/** Struct virtio_snd_pcm_info (5.14.6.6.2), decoded. */
export interface SoundPcmInfoResult {
  /** `hdr.hda_fn_nid` of struct virtio_snd_pcm_info. */
  readonly hdaFnNid: number;
  /** `features` of struct virtio_snd_pcm_info. */
  readonly features: number;
  /** `formats` of struct virtio_snd_pcm_info. */
  readonly formats: bigint;
  /** `rates` of struct virtio_snd_pcm_info. */
  readonly rates: bigint;
  /** `direction` of struct virtio_snd_pcm_info. */
  readonly direction: number;
  /** `channels_min` of struct virtio_snd_pcm_info. */
  readonly channelsMin: number;
  /** `channels_max` of struct virtio_snd_pcm_info. */
  readonly channelsMax: number;
  /** `padding` of struct virtio_snd_pcm_info. */
  readonly padding: Uint8Array;
}
/** Struct virtio_snd_chmap_info (5.14.6.10.1), decoded. */
export interface SoundChmapInfoResult {
  /** `hdr.hda_fn_nid` of struct virtio_snd_chmap_info. */
  readonly hdaFnNid: number;
  /** `direction` of struct virtio_snd_chmap_info. */
  readonly direction: number;
  /** `positions` of struct virtio_snd_chmap_info. */
  readonly positions: readonly number[];
}
/** One notification from the event queue (5.14.6.3): jack connected/disconnected, period elapsed, xrun, control element. */
export interface SoundEventResult {
  /** VIRTIO_SND_EVT_* code. */
  readonly code: number;
  /** The jack or stream id the event is about (the event's le32 `data`). */
  readonly data: number;
  /** VIRTIO_SND_EVT_CTL_NOTIFY: the element's control id. */
  readonly controlId?: number;
  /** VIRTIO_SND_EVT_CTL_NOTIFY: VIRTIO_SND_CTL_EVT_MASK_* bits (VALUE, INFO, TLV). */
  readonly mask?: number;
}
/** Struct virtio_snd_ctl_info (5.14.6.10.1), decoded. */
export interface SoundControlInfoResult {
  /** `hdr.hda_fn_nid`. */
  readonly hdaFnNid: number;
  /** `role`: (VIRTIO_SND_CTL_ROLE_* << 1) | direction, or 0. */
  readonly role: number;
  /** VIRTIO_SND_CTL_TYPE_*. */
  readonly type: number;
  /** VIRTIO_SND_CTL_ACCESS_* mask. */
  readonly access: number;
  /** Members of the value. */
  readonly count: number;
  /** Index for elements of the same name. */
  readonly index: number;
  /** The name (up to its 0 terminator). */
  readonly name: string;
  /** INTEGER / INTEGER64: min, max, step (bigints for INTEGER64); ENUMERATED: items; otherwise absent. */
  readonly min?: number | bigint;
  /** Maximum (INTEGER / INTEGER64). */
  readonly max?: number | bigint;
  /** Step, 0 = variable (INTEGER / INTEGER64). */
  readonly step?: number | bigint;
  /** Number of items (ENUMERATED). */
  readonly items?: number;
  /** The 4 bytes between `name` and `value` as the device wrote them. */
  readonly padding: Uint8Array;
}
/** VIRTIO_SND_R_PCM_SET_PARAMS fields. */
export interface SoundPcmParams {
  /** Size of the stream's whole hardware buffer (bytes). */
  readonly bufferBytes: number;
  /** Size of one period (bytes): the device signals PCM_PERIOD_ELAPSED after each. */
  readonly periodBytes: number;
  /** VIRTIO_SND_PCM_F_* bits. Default 0. */
  readonly features?: number;
  /** Channels per frame, within the stream's channels_min..channels_max. */
  readonly channels: number;
  /** VIRTIO_SND_PCM_FMT_*. */
  readonly format: number;
  /** VIRTIO_SND_PCM_RATE_*. */
  readonly rate: number;
}
/** The status part of one I/O message. */
export interface SoundIoResult {
  /** VIRTIO_SND_S_* of the message (IO_ERR when the device returned no status). */
  readonly status: number;
  /** The device's latency_bytes: bytes still in its buffers when it answered (5.14.6.8). */
  readonly latencyBytes: number;
}

/** A control request answered with a status other than VIRTIO_SND_S_OK. */
export class SoundRequestError extends VirtioError {
  constructor(
    /** VIRTIO_SND_R_* code of the request refused. */
    readonly request: number,
    /** VIRTIO_SND_S_* status the device answered (BAD_MSG, NOT_SUPP, IO_ERR). */
    readonly status: number,
  ) {
    super(ErrorCode.REQUEST_FAILED, `virtio-snd request 0x${request.toString(16)}: status 0x${status.toString(16)}`);
  }
}

/** Options of SoundDriver. */
export interface SoundDriverOptions {
  /** Event buffers kept in the event queue. Default 16. */
  eventBuffers?: number;
}

const SHMEM = (1 << SoundPcmFeatureBit.SHMEM_HOST) | (1 << SoundPcmFeatureBit.SHMEM_GUEST);

/**
 * The virtio-snd driver (5.14): typed requests over the device's queues. Construct it on a
 * DriverContext, or start it with startDeviceDriver and its static `type`.
 */
export class SoundDriver implements DeviceDriver {
  /**
   * The DeviceDriver contract: the device id, the feature bits this driver can use and needs,
   * and how to attach it (startDeviceDriver).
   */
  static readonly type: DeviceDriverType<SoundDriver, SoundDriverOptions> = {
    name: 'virtio-snd',
    deviceId: DeviceId.SOUND,
    // VIRTIO_SND_F_CTLS: control elements when the device has them.
    wantedFeatures: SoundF.CTLS,
    requiredFeatures: 0n,
    attach: (ctx, opts) => new SoundDriver(ctx, opts),
  };

  /** The configuration: how many jacks, PCM streams and channel maps the device has. */
  readonly config: {
    /** Number of jacks (5.14.4). */
    readonly jacks: number;
    /** Number of PCM streams. */
    readonly streams: number;
    /** Number of channel maps. */
    readonly chmaps: number;
    /** Number of control elements (0, not read, without VIRTIO_SND_F_CTLS). */
    readonly controls: number;
  };
  /** The device's control elements (5.14.6.10): information, items, values, metadata. */
  readonly controlElements: SoundControlElementsDriver;
  private readonly ctx: DriverContext;
  private readonly le: boolean;
  private readonly control: RequestQueue;
  private readonly eventq: RequestQueue;
  private readonly tx: RequestQueue;
  private readonly rx: RequestQueue;
  private readonly streamInfo = new Map<number, SoundPcmInfoResult>();
  private readonly params = new Map<number, SoundPcmParams>();
  private listeners: ((e: SoundEventResult) => void)[] = [];
  private waiters: ((e: SoundEventResult) => void)[] = [];
  private readonly received: SoundEventResult[] = [];
  private detached = false;

  constructor(ctx: DriverContext, opts: SoundDriverOptions = {}) {
    checkDriverContext(SoundDriver.type, ctx);
    this.ctx = ctx;
    this.le = ctx.littleEndian;
    // driver/sound/1: `controls` is read only with VIRTIO_SND_F_CTLS negotiated.
    const read = (o: number, l: number): Uint8Array => ctx.readConfig(o, l);
    const base = readConfigFields(SOUND_CONFIG_LAYOUT, ['jacks', 'streams', 'chmaps'], read, this.le);
    const controls = this.hasControls ? readConfigFields(SOUND_CONFIG_LAYOUT, ['controls'], read, this.le).controls : 0;
    this.config = { ...base, controls };
    this.controlElements = new SoundControlElementsDriver((req, n) => this.ok(req, n), this.le, controls);
    this.control = new RequestQueue(ctx, SoundQueue.CONTROLQ);
    this.eventq = new RequestQueue(ctx, SoundQueue.EVENTQ);
    this.tx = new RequestQueue(ctx, SoundQueue.TXQ);
    this.rx = new RequestQueue(ctx, SoundQueue.RXQ);
    const n = opts.eventBuffers ?? 16;
    for (let i = 0; i < n; i++) this.postEventBuffer();
  }

  /** Whether VIRTIO_SND_F_CTLS was negotiated (control elements usable). */
  get hasControls(): boolean {
    return (this.ctx.features & SoundF.CTLS) !== 0n;
  }

  detach(): void {
    this.detached = true;
    for (const q of [this.control, this.eventq, this.tx, this.rx]) q.detach();
  }

  // ---- events ----

  /** Hears every event; returns an unsubscribe function. */
  onEvent(listener: (e: SoundEventResult) => void): () => void {
    this.listeners.push(listener);
    return () => (this.listeners = this.listeners.filter((l) => l !== listener));
  }

  /** The next event (one received and not yet taken first). */
  nextEvent(): Promise<SoundEventResult> {
    const e = this.received.shift();
    if (e) return Promise.resolve(e);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** driver/sound/2, driver/sound/3: one device-writable buffer of struct virtio_snd_event, re-posted after each event. */
  private postEventBuffer(): void {
    if (this.detached) return;
    const addr = this.ctx.dma.alloc(SoundEvent.SIZE, 8);
    this.eventq.submit([], [{ addr, len: SoundEvent.SIZE }]).then(
      (used) => {
        const b = new Uint8Array(SoundEvent.SIZE);
        this.ctx.memory.read(addr, b);
        this.ctx.dma.free(addr);
        if (used >= SoundEvent.SIZE) {
          const v = new DataView(b.buffer);
          const code = v.getUint32(SoundEvent.CODE, this.le);
          const data = v.getUint32(SoundEvent.DATA, this.le);
          // struct virtio_snd_ctl_event: le16 control_id, le16 mask in place of `data`.
          const e: SoundEventResult =
            code === SoundCode.EVT_CTL_NOTIFY ? { code, data, controlId: v.getUint16(SoundCtlEvent.CONTROL_ID, this.le), mask: v.getUint16(SoundCtlEvent.MASK, this.le) } : { code, data };
          const w = this.waiters.shift();
          if (w) w(e);
          else this.received.push(e);
          for (const l of this.listeners) l(e);
        }
        this.postEventBuffer();
      },
      () => this.ctx.dma.free(addr),
    );
  }

  // ---- control ----

  /** Sends a raw control request; resolves with the status and the response payload after the header. */
  async command(
    request: Uint8Array,
    responseBytes: number = SoundHdr.SIZE,
  ): Promise<{
    /** VIRTIO_SND_S_* from the response header. */
    status: number;
    /** The response bytes after the header. */
    payload: Uint8Array;
  }> {
    const inLen = Math.max(SoundHdr.SIZE, responseBytes);
    const reqAddr = this.ctx.dma.alloc(Math.max(1, request.length), 8);
    const respAddr = this.ctx.dma.alloc(inLen, 8);
    try {
      this.ctx.memory.write(reqAddr, request);
      const used = await this.control.submit([{ addr: reqAddr, len: request.length }], [{ addr: respAddr, len: inLen }]);
      const resp = new Uint8Array(Math.min(used, inLen));
      this.ctx.memory.read(respAddr, resp);
      if (resp.length < SoundHdr.SIZE) throw new VirtioError(ErrorCode.REQUEST_FAILED, `virtio-snd: response of ${resp.length} bytes`);
      return { status: new DataView(resp.buffer).getUint32(0, this.le), payload: resp.subarray(SoundHdr.SIZE) };
    } finally {
      this.ctx.dma.free(reqAddr);
      this.ctx.dma.free(respAddr);
    }
  }

  private async ok(request: Uint8Array, responseBytes: number = SoundHdr.SIZE): Promise<Uint8Array> {
    const r = await this.command(request, responseBytes);
    if (r.status !== SoundStatus.OK) throw new SoundRequestError(new DataView(request.buffer).getUint32(0, this.le), r.status);
    return r.payload;
  }

  private words(...w: number[]): Uint8Array {
    const b = new Uint8Array(w.length * 4);
    const v = new DataView(b.buffer);
    w.forEach((x, i) => v.setUint32(i * 4, x >>> 0, this.le));
    return b;
  }

  /** driver/sound/4, driver/sound/5: a query within the count of the configuration, with room for every item. */
  private async query(code: number, total: number, size: number, start: number, count: number): Promise<DataView[]> {
    if (!Number.isInteger(start) || !Number.isInteger(count) || start < 0 || count < 0 || start + count > total) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `items ${start}..${start + count} of ${total} (driver/sound/4)`);
    }
    if (count === 0) return [];
    const payload = await this.ok(this.words(code, start, count, size), SoundHdr.SIZE + count * size);
    if (payload.length < count * size) throw new VirtioError(ErrorCode.REQUEST_FAILED, `virtio-snd: ${payload.length} bytes of information for ${count} items`);
    return Array.from({ length: count }, (_, i) => new DataView(payload.buffer, payload.byteOffset + i * size, size));
  }

  /** VIRTIO_SND_R_JACK_INFO: the jacks' information, `count` from `start` (all by default). */
  async jackInfo(start = 0, count = this.config.jacks - start): Promise<SoundJackInfoResult[]> {
    const items = await this.query(SoundCode.R_JACK_INFO, this.config.jacks, SoundJackInfo.SIZE, start, count);
    return items.map((v) => ({
      hdaFnNid: v.getUint32(SoundJackInfo.HDA_FN_NID, this.le),
      features: v.getUint32(SoundJackInfo.FEATURES, this.le),
      hdaRegDefconf: v.getUint32(SoundJackInfo.HDA_REG_DEFCONF, this.le),
      hdaRegCaps: v.getUint32(SoundJackInfo.HDA_REG_CAPS, this.le),
      connected: v.getUint8(SoundJackInfo.CONNECTED) !== 0,
      padding: new Uint8Array(v.buffer, v.byteOffset + SoundJackInfo.PADDING, SoundJackInfo.SIZE - SoundJackInfo.PADDING).slice(),
    }));
  }

  /** VIRTIO_SND_R_PCM_INFO: the PCM streams' information (direction, formats, rates, channels). */
  async pcmInfo(start = 0, count = this.config.streams - start): Promise<SoundPcmInfoResult[]> {
    const items = await this.query(SoundCode.R_PCM_INFO, this.config.streams, SoundPcmInfo.SIZE, start, count);
    const out = items.map((v) => ({
      hdaFnNid: v.getUint32(SoundPcmInfo.HDA_FN_NID, this.le),
      features: v.getUint32(SoundPcmInfo.FEATURES, this.le),
      formats: v.getBigUint64(SoundPcmInfo.FORMATS, this.le),
      rates: v.getBigUint64(SoundPcmInfo.RATES, this.le),
      direction: v.getUint8(SoundPcmInfo.DIRECTION),
      channelsMin: v.getUint8(SoundPcmInfo.CHANNELS_MIN),
      channelsMax: v.getUint8(SoundPcmInfo.CHANNELS_MAX),
      padding: new Uint8Array(v.buffer, v.byteOffset + SoundPcmInfo.PADDING, SoundPcmInfo.SIZE - SoundPcmInfo.PADDING).slice(),
    }));
    out.forEach((s, i) => this.streamInfo.set(start + i, s));
    return out;
  }

  /** VIRTIO_SND_R_CHMAP_INFO: the channel maps' information. */
  async chmapInfo(start = 0, count = this.config.chmaps - start): Promise<SoundChmapInfoResult[]> {
    const items = await this.query(SoundCode.R_CHMAP_INFO, this.config.chmaps, SoundChmapInfo.SIZE, start, count);
    return items.map((v) => {
      const n = v.getUint8(SoundChmapInfo.CHANNELS);
      return {
        hdaFnNid: v.getUint32(SoundChmapInfo.HDA_FN_NID, this.le),
        direction: v.getUint8(SoundChmapInfo.DIRECTION),
        positions: Array.from({ length: Math.min(n, SoundChmapInfo.SIZE - SoundChmapInfo.POSITIONS) }, (_, k) => v.getUint8(SoundChmapInfo.POSITIONS + k)),
      };
    });
  }

  /** VIRTIO_SND_R_JACK_REMAP (only for a jack with VIRTIO_SND_JACK_F_REMAP; the device refuses others). */
  async jackRemap(jackId: number, association: number, sequence: number): Promise<void> {
    await this.ok(this.words(SoundCode.R_JACK_REMAP, jackId, association, sequence));
  }

  /**
   * VIRTIO_SND_R_PCM_SET_PARAMS, checked first against the stream information (queried if not
   * yet): driver/sound/6 (period divides buffer, defined values), driver/sound/7 (offered
   * feature/format/rate), driver/sound/8 (channels in range), driver/sound/9 (not both shared
   * memory bits), driver/sound/10 (padding 0), driver/sound/11 (no shared memory bit: the tx
   * and rx queues carry the frames).
   */
  async setParams(streamId: number, p: SoundPcmParams): Promise<void> {
    const info = this.streamInfo.get(streamId) ?? (await this.pcmInfo(streamId, 1))[0]!;
    const features = p.features ?? 0;
    const bad = (why: string): never => {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `stream ${streamId}: ${why}`);
    };
    if (!(p.periodBytes > 0) || !Number.isInteger(p.bufferBytes) || !Number.isInteger(p.periodBytes) || p.bufferBytes % p.periodBytes !== 0) bad('period_bytes must divide buffer_bytes (driver/sound/6)');
    if ((features & ~SOUND_PCM_FEATURES_DEFINED) !== 0 || SOUND_RATE_HZ[p.rate] === undefined || !(p.format >= 0 && p.format < 64)) bad('undefined feature, format or rate (driver/sound/6)');
    if ((features & SHMEM) === SHMEM) bad('both shared memory bits (driver/sound/9)');
    if ((features & SHMEM) !== 0) bad('shared memory transport is not used: frames go through the tx/rx queues (driver/sound/11)');
    if ((features & ~info.features) !== 0 || ((info.formats >> BigInt(p.format)) & 1n) === 0n || ((info.rates >> BigInt(p.rate)) & 1n) === 0n) bad('feature, format or rate not in the stream information (driver/sound/7)');
    if (p.channels < info.channelsMin || p.channels > info.channelsMax) bad(`channels ${p.channels} outside ${info.channelsMin}..${info.channelsMax} (driver/sound/8)`);
    const b = new Uint8Array(SoundSetParams.SIZE);
    const v = new DataView(b.buffer);
    v.setUint32(0, SoundCode.R_PCM_SET_PARAMS, this.le);
    v.setUint32(4, streamId, this.le);
    v.setUint32(SoundSetParams.BUFFER_BYTES, p.bufferBytes, this.le);
    v.setUint32(SoundSetParams.PERIOD_BYTES, p.periodBytes, this.le);
    v.setUint32(SoundSetParams.FEATURES, features, this.le);
    b[SoundSetParams.CHANNELS] = p.channels;
    b[SoundSetParams.FORMAT] = p.format;
    b[SoundSetParams.RATE] = p.rate;
    b[SoundSetParams.PADDING] = 0; // driver/sound/10
    await this.ok(b);
    this.params.set(streamId, p);
  }

  /** VIRTIO_SND_R_PCM_PREPARE: prepares the stream (after SET_PARAMS). */
  prepare(streamId: number): Promise<void> {
    return this.pcmCommand(SoundCode.R_PCM_PREPARE, streamId);
  }
  /** VIRTIO_SND_R_PCM_RELEASE: releases the stream's resources. */
  release(streamId: number): Promise<void> {
    return this.pcmCommand(SoundCode.R_PCM_RELEASE, streamId);
  }
  /** VIRTIO_SND_R_PCM_START: starts the stream. */
  start(streamId: number): Promise<void> {
    return this.pcmCommand(SoundCode.R_PCM_START, streamId);
  }
  /** VIRTIO_SND_R_PCM_STOP: stops the stream. */
  stop(streamId: number): Promise<void> {
    return this.pcmCommand(SoundCode.R_PCM_STOP, streamId);
  }

  private async pcmCommand(code: number, streamId: number): Promise<void> {
    await this.ok(this.words(code, streamId));
  }

  // ---- I/O ----

  private periodOf(streamId: number): number {
    const p = this.params.get(streamId);
    if (!p) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `stream ${streamId} has no parameters`);
    return p.periodBytes;
  }

  /**
   * One tx message: header and frames device-readable, status device-writable only
   * (driver/sound/13). Resolves when the device has consumed the frames.
   */
  async writeMessage(streamId: number, frames: Uint8Array): Promise<SoundIoResult> {
    const addr = this.ctx.dma.alloc(4 + frames.length + SoundPcmStatus.SIZE, 8);
    try {
      this.ctx.memory.write(addr, this.words(streamId));
      this.ctx.memory.write(addr + 4, frames);
      const st = addr + 4 + frames.length;
      const used = await this.tx.submit(
        [
          { addr, len: 4 },
          { addr: addr + 4, len: frames.length },
        ].filter((s) => s.len > 0),
        [{ addr: st, len: SoundPcmStatus.SIZE }],
      );
      return this.readStatus(st, used >= SoundPcmStatus.SIZE);
    } finally {
      this.ctx.dma.free(addr);
    }
  }

  /** Plays `frames` on an output stream in period-sized messages (driver/sound/12; the last may be shorter), all queued at once. */
  async write(streamId: number, frames: Uint8Array): Promise<SoundIoResult[]> {
    const period = this.periodOf(streamId);
    const parts: Promise<SoundIoResult>[] = [];
    for (let at = 0; at < frames.length; at += period) parts.push(this.writeMessage(streamId, frames.subarray(at, at + period)));
    return Promise.all(parts);
  }

  /**
   * One rx message: header device-readable only (driver/sound/15), `bytes` of frames then the
   * status device-writable. Resolves with the frames the device recorded (used length - 8).
   */
  async readMessage(
    streamId: number,
    bytes: number,
  ): Promise<
    SoundIoResult & {
      /** The captured frames. */
      frames: Uint8Array;
    }
  > {
    const addr = this.ctx.dma.alloc(4 + bytes + SoundPcmStatus.SIZE, 8);
    try {
      this.ctx.memory.write(addr, this.words(streamId));
      const used = await this.rx.submit([{ addr, len: 4 }], [{ addr: addr + 4, len: bytes + SoundPcmStatus.SIZE }]);
      const got = Math.max(0, Math.min(bytes, used - SoundPcmStatus.SIZE));
      const frames = new Uint8Array(got);
      this.ctx.memory.read(addr + 4, frames);
      return { ...this.readStatus(addr + 4 + bytes, used >= SoundPcmStatus.SIZE), frames };
    } finally {
      this.ctx.dma.free(addr);
    }
  }

  /** Records `bytes` bytes from an input stream in period-sized messages (driver/sound/14: queue them before START). */
  readMessages(
    streamId: number,
    bytes: number,
  ): Promise<
    (SoundIoResult & {
      /** The frames captured by this message (at most one period). */
      frames: Uint8Array;
    })[]
  > {
    const period = this.periodOf(streamId);
    const parts: Promise<SoundIoResult & { frames: Uint8Array }>[] = [];
    for (let at = 0; at < bytes; at += period) parts.push(this.readMessage(streamId, Math.min(period, bytes - at)));
    return Promise.all(parts);
  }

  private readStatus(at: number, present: boolean): SoundIoResult {
    if (!present) return { status: SoundStatus.IO_ERR, latencyBytes: 0 };
    const b = new Uint8Array(SoundPcmStatus.SIZE);
    this.ctx.memory.read(at, b);
    const v = new DataView(b.buffer);
    return { status: v.getUint32(SoundPcmStatus.STATUS, this.le), latencyBytes: v.getUint32(SoundPcmStatus.LATENCY_BYTES, this.le) };
  }

  /** Bytes per frame of the parameters set on `streamId`. */
  frameBytes(streamId: number): number {
    const p = this.params.get(streamId);
    return p ? soundFrameBytes(p.format, p.channels) : 0;
  }
}
