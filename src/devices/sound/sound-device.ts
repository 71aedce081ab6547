/**
 * 5.14 Sound Device, device side: jacks, PCM streams and channel maps (sound-topology.ts), the
 * control queue (sound-control.ts), the event queue (sound-events.ts), and the tx / rx queues
 * whose I/O messages each stream paces at its rate (pcm-stream.ts). Output frames go to a
 * PcmOutput, input frames come from a PcmInput (pcm-host.ts). One QueueServer serves all
 * four queues.
 *
 * I/O messages (5.14.6.8): tx = header (4, readable), frames (readable), status (8, writable);
 * rx = header (4, readable), frames (writable), status (8, writable, last). A message for an
 * unknown stream, a stream of the other direction, a stream that is not prepared / running /
 * stopped, or of the wrong shape (driver/sound/13, driver/sound/15) gets IO_ERR at once; one
 * without room for the status returns with nothing written.
 *
 * Control elements (5.14.6.10, VIRTIO_SND_F_CTLS): sound-mixer.ts holds them (a volume and a
 * switch per stream, a capture source per input stream, and the application's own), the control
 * queue serves them (sound-ctl-requests.ts), and their values scale or silence the frames the
 * host output receives and the host input produced (pcm-gain.ts). A value, access or metadata
 * the host changes raises VIRTIO_SND_EVT_CTL_NOTIFY with the matching mask.
 */
import { ErrorCode, VirtioError } from '../../errors.js';
import { QueueServer } from '../../device/queue-server.js';
import type { DeviceContext, VirtioDevice } from '../../device/types.js';
import type { Logger } from '../../log.js';
import { ChainCursor, type DescriptorChain } from '../../queue/chain.js';
import { encodeConfig } from '../../spec/config-layout.js';
import { DeviceId } from '../../spec/device-id.js';
import { F } from '../../spec/features.js';
import {
  SOUND_CONFIG_LAYOUT,
  SoundCode,
  SoundConfig,
  SoundCtlAccess,
  SoundCtlEventMask,
  SoundDirection,
  SoundF,
  SoundPcmFeatureBit,
  SoundPcmStatus,
  SoundPcmXfer,
  SoundQueue,
  SoundStatus,
} from '../../spec/sound.js';
import { UNITY_GAIN, applyGainQ16, gainApplies } from './pcm-gain.js';
import { DISCARD_OUTPUT, type PcmInput, type PcmOutput, type PcmParams, SILENT_INPUT } from './pcm-host.js';
import { type PcmClock, PcmState, PcmStream, type PcmStreamHost, REAL_PCM_CLOCK, SoundRequest } from './pcm-stream.js';
import { type JackState, SoundControl } from './sound-control.js';
import { SoundCtlRequests } from './sound-ctl-requests.js';
import type { SoundControlConfig, SoundControlTlv, SoundControlValue } from './sound-elements.js';
import { SoundEventQueue } from './sound-events.js';
import { SoundMixer, type SoundStreamControls } from './sound-mixer.js';
import {
  DEFAULT_CHMAPS,
  DEFAULT_JACKS,
  DEFAULT_STREAMS,
  type SoundChmapConfig,
  type SoundJackConfig,
  type SoundStreamConfig,
  checkChmap,
  checkJack,
  streamInfo,
} from './sound-topology.js';

/** The scratch buffer of scaled frames: 64 KiB, whole samples of every format the gain applies to. */
const SCRATCH_BYTES = 65536;

/** Options of SoundDevice. */
export interface SoundDeviceOptions {
  /** The jacks presented (5.14.6.4). Default: one connected headphone jack. */
  readonly jacks?: readonly SoundJackConfig[];
  /** The PCM streams presented, ids in order (5.14.6.6). Default: one stereo output, one stereo input. */
  readonly streams?: readonly SoundStreamConfig[];
  /** The channel maps presented (5.14.6.9). Default: one stereo map per direction. */
  readonly chmaps?: readonly SoundChmapConfig[];
  /** Where output frames go. Default: discarded. */
  readonly output?: PcmOutput;
  /** Where input frames come from. Default: zeros. */
  readonly input?: PcmInput;
  /**
   * Called before the device touches guest memory outside a guest access (stream timers, jack
   * events): an emulator whose RAM buffer moves (v86) refreshes its view here.
   */
  readonly beforeHostAccess?: () => void;
  /**
   * Control elements (VIRTIO_SND_F_CTLS): true (the default) offers the feature with the standard
   * elements of each stream (sound-mixer.ts); more come with `addControl`. false: not offered.
   */
  readonly controls?: boolean;
  /** Maximum queue size (all four queues). Default 256. */
  readonly queueSize?: number;
  /**
   * Time and timers the streams are paced by (5.14.6.8: a message completes once its frames have
   * been played or recorded at the stream's rate). Default: performance.now() and Node's timers;
   * a test or fuzz target gives a virtual clock.
   */
  readonly clock?: PcmClock;
  /** Where the device logs; silent by default. */
  readonly logger?: Logger;
}

/**
 * The virtio-snd device (5.14): PCM streams (WAV files or callbacks), jacks and channel maps. What
 * it implements and its normative coverage: docs/devices/sound.md.
 */
export class SoundDevice implements VirtioDevice, PcmStreamHost {
  readonly deviceId = DeviceId.SOUND;
  /** VIRTIO_SND_F_CTLS unless `controls: false`. Messages complete out of order across streams: no IN_ORDER. */
  readonly offeredFeatures: bigint;
  readonly queueMaxSizes: readonly number[];
  readonly configSize = SoundConfig.SIZE;

  /** The PCM streams, indexed by stream id. */
  readonly streams: readonly PcmStream[];
  private readonly jacks: JackState[];
  private readonly chmaps: readonly SoundChmapConfig[];
  private readonly output: PcmOutput;
  private readonly input: PcmInput;
  private readonly beforeHostAccess: (() => void) | undefined;
  private readonly server: QueueServer<SoundRequest>;
  private readonly control: SoundControl;
  private readonly events: SoundEventQueue;
  private readonly mixer: SoundMixer | null;
  /** Between activate and reset: the driver has read `controls`, so no element may be added. */
  private active = false;
  private ctlsNegotiated = false;
  /** Each stream's format since its last prepare (for the gain). */
  private readonly formats: Int16Array;
  /** Frames scaled by a gain pass through here (64 KiB, a multiple of every scaled sample size). */
  private scratch: Uint8Array | null = null;
  private le = true;
  private readonly reader = new ChainCursor(false);
  private readonly writer = new ChainCursor(true);
  private readonly hdr = new Uint8Array(SoundPcmXfer.SIZE);
  private readonly hdrView = new DataView(this.hdr.buffer);
  private readonly status = new Uint8Array(SoundPcmStatus.SIZE);
  private readonly statusView = new DataView(this.status.buffer);
  /** The stream whose frames `moveOut` / `moveIn` handle (set just before `spans`). */
  private moving = 0;
  private readonly moveOut = (b: Uint8Array, o: number, n: number): void => this.output.write(this.moving, b, o, n);
  private readonly moveIn = (b: Uint8Array, o: number, n: number): void => this.input.read(this.moving, b, o, n);

  constructor(opts: SoundDeviceOptions = {}) {
    const qs = opts.queueSize ?? 256;
    if (!Number.isInteger(qs) || qs < 1 || qs > 32768) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `queueSize ${qs} not in 1..32768`);
    this.queueMaxSizes = [qs, qs, qs, qs];
    const jacks = opts.jacks ?? DEFAULT_JACKS;
    jacks.forEach(checkJack);
    this.jacks = jacks.map((j) => ({ hdaFnNid: j.hdaFnNid ?? 0, defconf: j.hdaRegDefconf ?? 0, caps: j.hdaRegCaps ?? 0, connected: j.connected ?? false, remap: j.remap ?? false }));
    const chmaps = opts.chmaps ?? DEFAULT_CHMAPS;
    chmaps.forEach(checkChmap);
    this.chmaps = chmaps;
    const clock = opts.clock ?? REAL_PCM_CLOCK;
    this.streams = (opts.streams ?? DEFAULT_STREAMS).map((s, i) => new PcmStream(i, streamInfo(s, i), this, clock));
    this.formats = new Int16Array(this.streams.length);
    this.mixer = opts.controls === false ? null : new SoundMixer(this.streams.map((s) => s.info));
    this.offeredFeatures = F.VERSION_1 | F.INDIRECT_DESC | F.EVENT_IDX | F.RING_PACKED | F.RING_RESET | (this.mixer ? SoundF.CTLS : 0n);
    this.output = opts.output ?? DISCARD_OUTPUT;
    this.input = opts.input ?? SILENT_INPUT;
    this.beforeHostAccess = opts.beforeHostAccess;
    this.server = new QueueServer<SoundRequest>({
      name: 'virtio-snd',
      numQueues: 4,
      logger: opts.logger,
      newRequest: (chain: DescriptorChain, q: number) => new SoundRequest(chain, q),
      handler: (i) => (i === SoundQueue.CONTROLQ ? this.control.serve : i === SoundQueue.EVENTQ ? this.events.serve : i === SoundQueue.TXQ ? this.serveTx : this.serveRx),
      queueStopped: (i) => this.queueStopped(i),
    });
    const mixer = this.mixer;
    const ctls = mixer ? new SoundCtlRequests(mixer.elements, () => mixer.update()) : null;
    this.control = new SoundControl(this.jacks, this.streams, this.chmaps, ctls);
    this.events = new SoundEventQueue(this.server);
  }

  // ---- host API ----

  /** Plugs or unplugs jack `id`: its state changes and the driver gets JACK_CONNECTED / DISCONNECTED. */
  setJackConnected(id: number, connected: boolean): void {
    const j = this.jacks[id];
    if (j === undefined) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `no jack ${id}`);
    if (j.connected === connected) return;
    j.connected = connected;
    this.beforeHostAccess?.();
    this.events.raise(connected ? SoundCode.EVT_JACK_CONNECTED : SoundCode.EVT_JACK_DISCONNECTED, id);
  }

  /** Jack `id`'s pin default configuration now (changed by JACK_REMAP). */
  jackDefconf(id: number): number {
    return this.jacks[id]?.defconf ?? 0;
  }

  // ---- control elements (5.14.6.10) ----

  private mixerOrThrow(): SoundMixer {
    if (this.mixer === null) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'control elements are off (controls: false)');
    return this.mixer;
  }

  /**
   * Adds a control element of the application (checked: defined role / type / access, count,
   * names, (name, index) unique); returns its control id. Only before the driver starts (or
   * after a reset): `controls` cannot change under a driver.
   */
  addControl(config: SoundControlConfig): number {
    const m = this.mixerOrThrow();
    if (this.active) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'control elements are added before the driver starts');
    return m.add(config);
  }

  /** The number of control elements (`controls` of the configuration; 0 without CTLS). */
  get controlCount(): number {
    return this.mixer?.elements.length ?? 0;
  }

  /** The control id of the element (name, index), or -1. */
  controlId(name: string, index = 0): number {
    return this.mixer?.find(name, index) ?? -1;
  }

  /** The ids of stream `streamId`'s standard elements (volume, switch, capture source). */
  streamControls(streamId: number): SoundStreamControls {
    const sc = this.mixerOrThrow().streamControls[streamId];
    if (sc === undefined) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `no stream ${streamId}`);
    return sc;
  }

  /** Element `id`'s value now (a copy). */
  controlValue(id: number): SoundControlValue {
    return this.mixerOrThrow().element(id).value();
  }

  /** Element `id`'s metadata now, or null. */
  controlTlv(id: number): SoundControlTlv | null {
    return this.mixerOrThrow().element(id).tlv;
  }

  /** The host changes element `id`'s value (checked; throws on an invalid one): applied, and the driver gets CTL_NOTIFY with VALUE. */
  setControlValue(id: number, value: SoundControlValue): void {
    const m = this.mixerOrThrow();
    m.element(id).setValue(value);
    m.update();
    this.notifyControl(id, SoundCtlEventMask.VALUE);
  }

  /** The host changes element `id`'s metadata: the driver gets CTL_NOTIFY with TLV. */
  setControlTlv(id: number, tlv: SoundControlTlv): void {
    this.mixerOrThrow().element(id).setTlv(tlv);
    this.notifyControl(id, SoundCtlEventMask.TLV);
  }

  /** The host marks element `id` active or INACTIVE (an inactive standard element leaves the PCM alone): CTL_NOTIFY with INFO. */
  setControlActive(id: number, active: boolean): void {
    const m = this.mixerOrThrow();
    const e = m.element(id);
    const access = active ? e.access & ~SoundCtlAccess.INACTIVE : e.access | SoundCtlAccess.INACTIVE;
    if (access === e.access) return;
    e.access = access;
    m.update();
    this.notifyControl(id, SoundCtlEventMask.INFO);
  }

  /** device/sound/18: `mask` is only ever one of SoundCtlEventMask's bits, from the calls above. */
  private notifyControl(id: number, mask: number): void {
    if (!this.active || !this.ctlsNegotiated) return;
    this.beforeHostAccess?.();
    // struct virtio_snd_ctl_event: le16 control_id, le16 mask where virtio_snd_event has its le32 data.
    this.events.raise(SoundCode.EVT_CTL_NOTIFY, this.le ? (id | (mask << 16)) >>> 0 : ((id << 16) | mask) >>> 0);
  }

  /** Events dropped because the driver had no event buffer and MAX_PENDING_EVENTS were waiting. */
  get eventsDropped(): number {
    return this.events.dropped;
  }

  // ---- PcmStreamHost ----

  finish(stream: PcmStream, req: SoundRequest, status: number): void {
    if (!this.server.isLive(req)) return;
    this.beforeHostAccess?.();
    const c = req.chain;
    const output = stream.info.direction === SoundDirection.OUTPUT;
    let written: number;
    this.moving = stream.id;
    // The elements' values apply whether or not the driver negotiated CTLS (the host may set them).
    const gain = this.mixer === null ? UNITY_GAIN : this.mixer.gains[stream.id]!;
    const scaled = gain !== UNITY_GAIN && gainApplies(this.formats[stream.id]!);
    if (output) {
      // device/sound/9: the whole buffer is handed to the host before the message completes.
      if (status === SoundStatus.OK) {
        this.reader.reset(c).skip(SoundPcmXfer.SIZE);
        if (scaled) this.scaledOut(stream.id, req.pcmBytes, gain);
        else this.reader.spans(req.pcmBytes, this.moveOut);
      }
      written = this.writeStatus(c, 0, status, stream.queuedBytes);
    } else {
      // device/sound/10: the buffer is filled completely (end of stream: released, nothing recorded).
      let frames = 0;
      if (status === SoundStatus.OK) frames = scaled ? this.scaledIn(stream.id, c, req.pcmBytes, gain) : this.writer.reset(c).spans(req.pcmBytes, this.moveIn);
      written = frames + this.writeStatus(c, req.pcmBytes, status, 0);
    }
    this.server.complete(req, written);
  }

  /** Output frames through the scratch buffer, scaled, to the host output (reader already past the header). */
  private scaledOut(streamId: number, bytes: number, gain: number): void {
    const b = (this.scratch ??= new Uint8Array(SCRATCH_BYTES));
    for (let left = bytes; left > 0; ) {
      const n = this.reader.read(b, 0, Math.min(left, b.length));
      if (n === 0) break;
      applyGainQ16(this.formats[streamId]!, b, n, gain);
      this.output.write(streamId, b, 0, n);
      left -= n;
    }
  }

  /** Input frames from the host input through the scratch buffer, scaled, into the driver's buffer. */
  private scaledIn(streamId: number, c: DescriptorChain, bytes: number, gain: number): number {
    const b = (this.scratch ??= new Uint8Array(SCRATCH_BYTES));
    const w = this.writer.reset(c);
    let done = 0;
    while (done < bytes) {
      const n = Math.min(bytes - done, b.length);
      this.input.read(streamId, b, 0, n);
      applyGainQ16(this.formats[streamId]!, b, n, gain);
      const k = w.write(b, 0, n);
      done += k;
      if (k < n) break;
    }
    return done;
  }

  xrun(streamId: number): void {
    const s = this.streams[streamId];
    if (s === undefined || (s.features & (1 << SoundPcmFeatureBit.EVT_XRUNS)) === 0) return;
    this.beforeHostAccess?.();
    this.events.raise(SoundCode.EVT_PCM_XRUN, streamId);
  }

  opened(params: PcmParams): void {
    const s = this.streams[params.streamId]!;
    this.formats[params.streamId] = params.format;
    if (s.info.direction === SoundDirection.OUTPUT) this.output.open?.(params);
    else this.input.open?.(params);
  }

  /** Stream `streamId` was released or reset: closes its host output or input. */
  closed(streamId: number): void {
    const s = this.streams[streamId]!;
    if (s.info.direction === SoundDirection.OUTPUT) this.output.close?.(streamId);
    else this.input.close?.(streamId);
  }

  // ---- I/O queues ----

  private readonly serveTx = (req: SoundRequest): number | void => this.io(req, SoundDirection.OUTPUT);
  private readonly serveRx = (req: SoundRequest): number | void => this.io(req, SoundDirection.INPUT);

  private io(req: SoundRequest, dir: SoundDirection): number | void {
    const c = req.chain;
    if (c.fault !== null || c.writableBytes < SoundPcmStatus.SIZE) return 0;
    const statusAt = c.writableBytes - SoundPcmStatus.SIZE;
    if (this.reader.reset(c).read(this.hdr) < SoundPcmXfer.SIZE) return this.writeStatus(c, statusAt, SoundStatus.IO_ERR, 0);
    const s = this.streams[this.hdrView.getUint32(SoundPcmXfer.STREAM_ID, this.le)];
    // driver/sound/13: tx has only the status writable; driver/sound/15: rx has only the header readable.
    const shapeOk = dir === SoundDirection.OUTPUT ? c.writableBytes === SoundPcmStatus.SIZE : c.readableBytes === SoundPcmXfer.SIZE;
    if (s === undefined || s.info.direction !== dir || !shapeOk || !s.acceptsIo) return this.writeStatus(c, statusAt, SoundStatus.IO_ERR, 0);
    req.pcmBytes = dir === SoundDirection.OUTPUT ? c.readableBytes - SoundPcmXfer.SIZE : statusAt;
    s.enqueue(req);
  }

  /** Writes virtio_snd_pcm_status at `at` in the writable part; returns its bytes. */
  private writeStatus(c: DescriptorChain, at: number, status: number, latency: number): number {
    this.statusView.setUint32(0, status, this.le);
    this.statusView.setUint32(4, latency >>> 0, this.le);
    const w = this.writer.reset(c);
    if (w.skip(at) !== at) return 0;
    return w.write(this.status);
  }

  private queueStopped(i: number): void {
    if (i === SoundQueue.EVENTQ) this.events.queueStopped();
    else if (i === SoundQueue.TXQ || i === SoundQueue.RXQ) {
      const dir = i === SoundQueue.TXQ ? SoundDirection.OUTPUT : SoundDirection.INPUT;
      for (const s of this.streams) if (s.info.direction === dir) s.drop();
    }
  }

  // ---- VirtioDevice ----

  readConfig(offset: number, dst: Uint8Array, _features: bigint, littleEndian: boolean): void {
    encodeConfig(SOUND_CONFIG_LAYOUT, { jacks: this.jacks.length, streams: this.streams.length, chmaps: this.chmaps.length, controls: this.controlCount }, this.offeredFeatures, offset, dst, littleEndian);
  }

  /** Every field is driver-read-only (5.14.4): writes are ignored. */
  writeConfig(): void {}

  configWritable(): boolean {
    return false;
  }

  activate(ctx: DeviceContext): void {
    this.le = ctx.littleEndian;
    this.active = true;
    this.ctlsNegotiated = this.mixer !== null && (ctx.features & SoundF.CTLS) !== 0n;
    this.control.configure(ctx.littleEndian, this.ctlsNegotiated);
    this.events.configure(ctx.littleEndian);
    this.server.activate(ctx);
  }

  onQueueNotify(index: number): void {
    this.server.onQueueNotify(index);
  }

  reset(): void {
    this.active = false;
    this.ctlsNegotiated = false;
    for (const s of this.streams) s.reset();
    this.events.reset();
    this.server.reset();
  }

  resetQueue(index: number): void {
    this.server.resetQueue(index);
  }

  /** The state of stream `id` (PcmState). */
  streamState(id: number): PcmState | undefined {
    return this.streams[id]?.state;
  }
}
