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
  SoundDirection,
  SoundPcmFeatureBit,
  SoundPcmStatus,
  SoundPcmXfer,
  SoundQueue,
  SoundStatus,
} from '../../spec/sound.js';
import { DISCARD_OUTPUT, type PcmInput, type PcmOutput, type PcmParams, SILENT_INPUT } from './pcm-host.js';
import { PcmState, PcmStream, type PcmStreamHost, SoundRequest } from './pcm-stream.js';
import { type JackState, SoundControl } from './sound-control.js';
import { SoundEventQueue } from './sound-events.js';
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
  /** Maximum queue size (all four queues). Default 256. */
  readonly queueSize?: number;
  /** Where the device logs; silent by default. */
  readonly logger?: Logger;
}

/**
 * The virtio-snd device (5.14): PCM streams (WAV files or callbacks), jacks and channel maps. What
 * it implements and its normative coverage: docs/devices/sound.md.
 */
export class SoundDevice implements VirtioDevice, PcmStreamHost {
  readonly deviceId = DeviceId.SOUND;
  /** VIRTIO_SND_F_CTLS is not offered (no control elements). Messages complete out of order across streams: no IN_ORDER. */
  readonly offeredFeatures = F.VERSION_1 | F.INDIRECT_DESC | F.EVENT_IDX | F.RING_PACKED | F.RING_RESET;
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
    this.streams = (opts.streams ?? DEFAULT_STREAMS).map((s, i) => new PcmStream(i, streamInfo(s, i), this));
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
    this.control = new SoundControl(this.jacks, this.streams, this.chmaps);
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
    if (output) {
      // device/sound/9: the whole buffer is handed to the host before the message completes.
      if (status === SoundStatus.OK) {
        this.reader.reset(c).skip(SoundPcmXfer.SIZE);
        this.reader.spans(req.pcmBytes, this.moveOut);
      }
      written = this.writeStatus(c, 0, status, stream.queuedBytes);
    } else {
      // device/sound/10: the buffer is filled completely (end of stream: released, nothing recorded).
      const frames = status === SoundStatus.OK ? this.writer.reset(c).spans(req.pcmBytes, this.moveIn) : 0;
      written = frames + this.writeStatus(c, req.pcmBytes, status, 0);
    }
    this.server.complete(req, written);
  }

  xrun(streamId: number): void {
    const s = this.streams[streamId];
    if (s === undefined || (s.features & (1 << SoundPcmFeatureBit.EVT_XRUNS)) === 0) return;
    this.beforeHostAccess?.();
    this.events.raise(SoundCode.EVT_PCM_XRUN, streamId);
  }

  opened(params: PcmParams): void {
    const s = this.streams[params.streamId]!;
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
    encodeConfig(SOUND_CONFIG_LAYOUT, { jacks: this.jacks.length, streams: this.streams.length, chmaps: this.chmaps.length, controls: 0 }, this.offeredFeatures, offset, dst, littleEndian);
  }

  /** Every field is driver-read-only (5.14.4): writes are ignored. */
  writeConfig(): void {}

  configWritable(): boolean {
    return false;
  }

  activate(ctx: DeviceContext): void {
    this.le = ctx.littleEndian;
    this.control.configure(ctx.littleEndian);
    this.events.configure(ctx.littleEndian);
    this.server.activate(ctx);
  }

  onQueueNotify(index: number): void {
    this.server.onQueueNotify(index);
  }

  reset(): void {
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
