/**
 * 5.14.6 the sound device's control queue: item information (JACK_INFO, PCM_INFO, CHMAP_INFO),
 * JACK_REMAP, and the PCM lifecycle (SET_PARAMS, PREPARE, RELEASE, START, STOP). Every request
 * is answered synchronously with a status: BAD_MSG for a malformed request, an id out of range,
 * a response buffer too small or a transition the lifecycle does not allow; NOT_SUPP for
 * parameters or requests the device does not support (control elements without
 * VIRTIO_SND_F_CTLS negotiated, a jack without REMAP, a format the stream does not offer). With
 * CTLS the control element requests go to sound-ctl-requests.ts. A request with no room for the
 * 4-byte status is returned with nothing written.
 */
import { ChainCursor } from '../../queue/chain.js';
import {
  SOUND_PCM_FEATURES_DEFINED,
  SOUND_RATE_HZ,
  SoundChmapInfo,
  SoundCode,
  SoundHdr,
  SoundItemHdr,
  SoundJackFeatureBit,
  SoundJackInfo,
  SoundJackRemap,
  SoundPcmFeatureBit,
  SoundPcmInfo,
  SoundQueryInfo,
  SoundSetParams,
  SoundStatus,
  soundFrameBytes,
} from '../../spec/sound.js';
import type { PcmParams } from './pcm-host.js';
import type { PcmStream, SoundRequest } from './pcm-stream.js';
import type { SoundCtlRequests } from './sound-ctl-requests.js';
import type { SoundChmapConfig } from './sound-topology.js';

/** A jack as the device keeps it (connection and defconf change at run time). */
export interface JackState {
  hdaFnNid: number;
  defconf: number;
  caps: number;
  connected: boolean;
  remap: boolean;
}

/** The largest item size a query may ask for (larger structures of later revisions are zero-padded up to it). */
const MAX_ITEM_SIZE = 4096;
/** Intermediate buffer the device allows a stream (device/sound/6: it keeps none beyond the driver's buffers). */
export const MAX_BUFFER_BYTES = 4 << 20;

const SHMEM = (1 << SoundPcmFeatureBit.SHMEM_HOST) | (1 << SoundPcmFeatureBit.SHMEM_GUEST);

export class SoundControl {
  private le = true;
  private ctlsNegotiated = false;
  private readonly reader = new ChainCursor(false);
  private readonly writer = new ChainCursor(true);
  /** The longest request read (set params). */
  private readonly req = new Uint8Array(SoundSetParams.SIZE);
  private readonly reqView = new DataView(this.req.buffer);
  /** One item of information (the largest is PCM_INFO's 32 bytes). */
  private readonly item = new Uint8Array(SoundPcmInfo.SIZE);
  private readonly itemView = new DataView(this.item.buffer);
  private readonly status = new Uint8Array(SoundHdr.SIZE);
  private readonly statusView = new DataView(this.status.buffer);
  /** The control handler. */
  readonly serve = (req: SoundRequest): number => this.handle(req);

  constructor(
    private readonly jacks: JackState[],
    private readonly streams: readonly PcmStream[],
    private readonly chmaps: readonly SoundChmapConfig[],
    /** The control element requests (null: VIRTIO_SND_F_CTLS not offered). */
    private readonly ctls: SoundCtlRequests | null = null,
  ) {}

  configure(littleEndian: boolean, ctlsNegotiated = false): void {
    this.le = littleEndian;
    this.ctlsNegotiated = ctlsNegotiated && this.ctls !== null;
    this.ctls?.configure(littleEndian);
  }

  private handle(r: SoundRequest): number {
    const c = r.chain;
    if (c.fault !== null || c.writableBytes < SoundHdr.SIZE) return 0;
    const got = this.reader.reset(c).read(this.req, 0, Math.min(this.req.length, c.readableBytes));
    this.writer.reset(c);
    if (got < SoundHdr.SIZE) return this.answer(SoundStatus.BAD_MSG);
    const code = this.u32(0);
    switch (code) {
      case SoundCode.R_JACK_INFO:
      case SoundCode.R_PCM_INFO:
      case SoundCode.R_CHMAP_INFO:
        return this.info(code, got, c.writableBytes);
      case SoundCode.R_JACK_REMAP:
        return this.answer(this.remap(got));
      case SoundCode.R_PCM_SET_PARAMS:
        return this.answer(this.setParams(got));
      case SoundCode.R_PCM_PREPARE:
      case SoundCode.R_PCM_RELEASE:
      case SoundCode.R_PCM_START:
      case SoundCode.R_PCM_STOP:
        return this.answer(this.lifecycle(code, got));
      default:
        if (code < SoundCode.R_CTL_INFO || code > SoundCode.R_CTL_TLV_COMMAND) return this.answer(SoundStatus.BAD_MSG);
        // Control elements (0x03xx) exist only with VIRTIO_SND_F_CTLS negotiated (5.14.6.10).
        return this.ctlsNegotiated && this.ctls !== null ? this.ctls.handle(code, c) : this.answer(SoundStatus.NOT_SUPP);
    }
  }

  private u32(at: number): number {
    return this.reqView.getUint32(at, this.le);
  }

  private answer(status: number): number {
    this.statusView.setUint32(0, status, this.le);
    return this.writer.write(this.status);
  }

  /** 5.14.6.1 item information: header, then `count` items of `size` bytes (zero-padded beyond the structure). */
  private info(code: number, got: number, writable: number): number {
    if (got < SoundQueryInfo.SIZE) return this.answer(SoundStatus.BAD_MSG);
    const start = this.u32(SoundQueryInfo.START_ID);
    const count = this.u32(SoundQueryInfo.COUNT);
    const size = this.u32(SoundQueryInfo.ITEM_SIZE);
    const total = code === SoundCode.R_JACK_INFO ? this.jacks.length : code === SoundCode.R_PCM_INFO ? this.streams.length : this.chmaps.length;
    const ours = code === SoundCode.R_JACK_INFO ? SoundJackInfo.SIZE : code === SoundCode.R_PCM_INFO ? SoundPcmInfo.SIZE : SoundChmapInfo.SIZE;
    // driver/sound/4 and driver/sound/5 broken, or an item smaller than the structure: BAD_MSG.
    if (start + count > total || size < ours || size > MAX_ITEM_SIZE || SoundHdr.SIZE + count * size > writable) return this.answer(SoundStatus.BAD_MSG);
    let n = this.answer(SoundStatus.OK);
    for (let i = start; i < start + count; i++) {
      this.item.fill(0); // device/sound/2, device/sound/4: padding bytes 0
      if (code === SoundCode.R_JACK_INFO) this.jackInfo(i);
      else if (code === SoundCode.R_PCM_INFO) this.pcmInfo(i);
      else this.chmapInfo(i);
      n += this.writer.write(this.item, 0, ours);
      n += this.writer.fill(size - ours);
    }
    return n;
  }

  private jackInfo(i: number): void {
    const j = this.jacks[i]!;
    const v = this.itemView;
    v.setUint32(SoundJackInfo.HDA_FN_NID, j.hdaFnNid, this.le);
    // device/sound/1: REMAP is the only defined jack feature.
    v.setUint32(SoundJackInfo.FEATURES, j.remap ? 1 << SoundJackFeatureBit.REMAP : 0, this.le);
    v.setUint32(SoundJackInfo.HDA_REG_DEFCONF, j.defconf >>> 0, this.le);
    v.setUint32(SoundJackInfo.HDA_REG_CAPS, j.caps >>> 0, this.le);
    this.item[SoundJackInfo.CONNECTED] = j.connected ? 1 : 0;
  }

  private pcmInfo(i: number): void {
    const s = this.streams[i]!.info;
    const v = this.itemView;
    v.setUint32(SoundPcmInfo.HDA_FN_NID, s.hdaFnNid, this.le);
    v.setUint32(SoundPcmInfo.FEATURES, s.features, this.le);
    // device/sound/3: only the defined formats and rates the topology checked.
    v.setBigUint64(SoundPcmInfo.FORMATS, s.formats, this.le);
    v.setBigUint64(SoundPcmInfo.RATES, s.rates, this.le);
    this.item[SoundPcmInfo.DIRECTION] = s.direction;
    this.item[SoundPcmInfo.CHANNELS_MIN] = s.channelsMin;
    this.item[SoundPcmInfo.CHANNELS_MAX] = s.channelsMax;
  }

  private chmapInfo(i: number): void {
    const m = this.chmaps[i]!;
    this.itemView.setUint32(SoundChmapInfo.HDA_FN_NID, m.hdaFnNid ?? 0, this.le);
    this.item[SoundChmapInfo.DIRECTION] = m.direction;
    this.item[SoundChmapInfo.CHANNELS] = m.positions.length;
    for (let k = 0; k < m.positions.length; k++) this.item[SoundChmapInfo.POSITIONS + k] = m.positions[k]!;
  }

  /** VIRTIO_SND_R_JACK_REMAP: association and sequence go into the pin default configuration (HDA 7.3.3.31 bits 7:4 and 3:0). */
  private remap(got: number): number {
    if (got < SoundJackRemap.SIZE) return SoundStatus.BAD_MSG;
    const j = this.jacks[this.u32(SoundJackRemap.JACK_ID)];
    if (j === undefined) return SoundStatus.BAD_MSG;
    if (!j.remap) return SoundStatus.NOT_SUPP;
    const association = this.u32(SoundJackRemap.ASSOCIATION);
    const sequence = this.u32(SoundJackRemap.SEQUENCE);
    if (association > 15 || sequence > 15) return SoundStatus.BAD_MSG;
    j.defconf = ((j.defconf & ~0xff) | (association << 4) | sequence) >>> 0;
    return SoundStatus.OK;
  }

  private setParams(got: number): number {
    if (got < SoundSetParams.SIZE) return SoundStatus.BAD_MSG;
    const streamId = this.u32(SoundItemHdr.ID);
    const s = this.streams[streamId];
    if (s === undefined) return SoundStatus.BAD_MSG;
    const bufferBytes = this.u32(SoundSetParams.BUFFER_BYTES);
    const periodBytes = this.u32(SoundSetParams.PERIOD_BYTES);
    const features = this.u32(SoundSetParams.FEATURES);
    const channels = this.req[SoundSetParams.CHANNELS]!;
    const format = this.req[SoundSetParams.FORMAT]!;
    const rate = this.req[SoundSetParams.RATE]!;
    // driver/sound/6: undefined values and a period that does not divide the buffer are malformed.
    if ((features & ~SOUND_PCM_FEATURES_DEFINED) !== 0 || format > 63 || SOUND_RATE_HZ[rate] === undefined) return SoundStatus.BAD_MSG;
    if (periodBytes === 0 || bufferBytes === 0 || bufferBytes % periodBytes !== 0) return SoundStatus.BAD_MSG;
    // driver/sound/9: both shared memory bits at once.
    if ((features & SHMEM) === SHMEM) return SoundStatus.BAD_MSG;
    // driver/sound/7, driver/sound/8: what the stream information does not offer.
    const info = s.info;
    if ((features & ~info.features) !== 0) return SoundStatus.NOT_SUPP;
    if (((info.formats >> BigInt(format)) & 1n) === 0n || ((info.rates >> BigInt(rate)) & 1n) === 0n) return SoundStatus.NOT_SUPP;
    if (channels < info.channelsMin || channels > info.channelsMax) return SoundStatus.NOT_SUPP;
    const frameBytes = soundFrameBytes(format, channels);
    // Whole frames per period; the buffer the device would need at most (device/sound/6).
    if (frameBytes === 0 || periodBytes % frameBytes !== 0) return SoundStatus.BAD_MSG;
    if (bufferBytes > MAX_BUFFER_BYTES) return SoundStatus.NOT_SUPP;
    const params: PcmParams = { streamId, channels, format, rateHz: SOUND_RATE_HZ[rate]!, bufferBytes, periodBytes, frameBytes };
    return s.setParams(params, features) ? SoundStatus.OK : SoundStatus.BAD_MSG;
  }

  private lifecycle(code: number, got: number): number {
    if (got < SoundItemHdr.SIZE) return SoundStatus.BAD_MSG;
    const s = this.streams[this.u32(SoundItemHdr.ID)];
    if (s === undefined) return SoundStatus.BAD_MSG;
    let ok: boolean;
    if (code === SoundCode.R_PCM_PREPARE) ok = s.prepare();
    else if (code === SoundCode.R_PCM_RELEASE) ok = s.release();
    else if (code === SoundCode.R_PCM_START) ok = s.start();
    else ok = s.stop();
    return ok ? SoundStatus.OK : SoundStatus.BAD_MSG;
  }
}
