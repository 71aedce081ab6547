/**
 * virtio-snd (5.14): control requests on the controlq (a code among every request of 5.14.6
 * mostly, any u32 sometimes: JACK_INFO / PCM_INFO / CHMAP_INFO / CTL_INFO queries with start,
 * count and item size right or wrong; JACK_REMAP; PCM_SET_PARAMS with stream ids among the
 * three or past them, buffer and period bytes, features, channels, formats and rates offered
 * or not; PREPARE / RELEASE / START / STOP; the control element requests CTL_ENUM_ITEMS /
 * CTL_READ / CTL_WRITE (up to 4 members of the 512-byte value, the value short sometimes) /
 * CTL_TLV_READ / CTL_TLV_WRITE / CTL_TLV_COMMAND (TLV length right mostly, any sometimes) with
 * control ids among the 10 elements or past them), then raw bytes; virtio_snd_pcm_xfer (stream
 * id) with PCM frames as raw bytes on the txq, and with writable frames and status on the rxq;
 * buffers on the eventq. A session's control requests set up, prepare and start streams so its
 * I/O messages reach the data path (frames to the host output, from the host input, scaled by
 * the volume and switch elements).
 *
 * The host side is in memory: the output hashes the frames it gets per stream, the input
 * produces a counting pattern (both are the reuse fingerprint's host state). Streams are paced
 * by a virtual clock (SoundDeviceOptions.clock) on which time passes at once whenever every
 * pending timer is due: a running stream plays or records its messages, then reports its xrun,
 * within the round's settling, so runs do not depend on wall time.
 *
 * The eventq, txq and rxq are held queues: the device keeps event buffers until an event, and
 * I/O messages while their stream is prepared or stopped (pre-buffering, 5.14.6.8). In their
 * place checkHost asserts that no message waits on a running stream once the input settled
 * (the clock must have played it) and that the frames the host output got are the ones sent.
 *
 * A new device per input (freshDevice): JACK_REMAP's pin configuration and the control
 * elements' values and metadata are the host's state and persist across a device reset, so a
 * reused device would answer JACK_INFO / CTL_READ with what earlier inputs wrote.
 */
import { type ByteReader, ByteWriter } from '../engine/byte-reader.js';
import { check, type FuzzTarget } from '../engine/target.js';
import { deviceChainsOutcome, runDeviceChains, type DeviceChainsSpec } from '../harness/device-chains.js';
import { deviceChainsSeed, type SeedChain } from '../harness/device-chains-seeds.js';
import { type PcmClock, PcmState } from '../../src/devices/sound/pcm-stream.js';
import type { PcmInput, PcmOutput, PcmParams } from '../../src/devices/sound/pcm-host.js';
import { DEFAULT_STREAMS } from '../../src/devices/sound/sound-topology.js';
import { SoundDevice } from '../../src/devices/sound/sound-device.js';
import { SoundCode, SoundCtlAccess, SoundCtlRole, SoundCtlType, SoundDirection, SoundPcmFeatureBit, SoundPcmFormat, SoundPcmRate } from '../../src/spec/sound.js';

const CONTROLQ = 0;
const EVENTQ = 1;
const TXQ = 2;
const RXQ = 3;
const QUEUE_SIZE = 32;

/** Every request code of 5.14.6 (events too: a driver must not send them). */
const CODES = Object.values(SoundCode);
const IDS = [0, 1, 2, 3, 10, 11];
const COUNTS = [1, 2, 3, 0, 5, 0x4000_0000];
/** Item sizes: each structure's own (24 jack and chmap, 32 PCM, 96 control), smaller, larger, past 4096. */
const ITEM_SIZES = [24, 32, 96, 0, 23, 64, 4096, 4097];
const NIBBLES = [0, 1, 15, 16];
const STREAM_IDS = [0, 1, 2, 3];
const BUFFER_BYTES = [64, 128, 4096, 0, 48, 4 << 20, (4 << 20) + 64];
const PERIOD_BYTES = [16, 32, 64, 0, 3, 4096];
const PCM_FEATURES = [0, 1 << SoundPcmFeatureBit.EVT_XRUNS, 1 << SoundPcmFeatureBit.SHMEM_HOST, 3, 1 << 5];
const CHANNELS = [1, 2, 0, 3, 8];
const FORMATS = [SoundPcmFormat.U8, SoundPcmFormat.S16, SoundPcmFormat.S32, SoundPcmFormat.FLOAT, SoundPcmFormat.S24_3, SoundPcmFormat.MU_LAW, SoundPcmFormat.IMA_ADPCM, 25, 64];
const RATES = [SoundPcmRate.R8000, SoundPcmRate.R16000, SoundPcmRate.R48000, SoundPcmRate.R384000, SoundPcmRate.R5512, 16];
const CONTROL_IDS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
/** Value members: in range of the volume (0..100), switch, enumerated or not. */
const VALUES = [0, 1, 50, 100, 2, 0xffff_ffff, 101, 995];
const TLV_TYPES = [1, 0, 4, 0x1234];
const TLV_LENGTHS = [0, 4, 3, 8, 65540, 0xffff_fffc];

/** A value among `choices` (by a byte's index) mostly, any u32 when the byte is 0xf0 or more. */
function choose(r: ByteReader, choices: readonly number[]): number {
  const v = r.u8();
  return v < 0xf0 ? choices[v % choices.length]! : r.u32();
}

/** A byte field: among `choices` mostly, any byte sometimes. */
function chooseByte(r: ByteReader, choices: readonly number[]): number {
  const v = r.u8();
  return v < 0xf0 ? choices[v % choices.length]! : r.u8();
}

/** The TLV length of the chain being shaped is set by `finish` to what follows the TLV header. */
let fixTlvLength = false;

function control(r: ByteReader, w: ByteWriter): void {
  const code = choose(r, CODES);
  w.u32(code);
  switch (code) {
    case SoundCode.R_JACK_INFO:
    case SoundCode.R_PCM_INFO:
    case SoundCode.R_CHMAP_INFO:
    case SoundCode.R_CTL_INFO:
      // struct virtio_snd_query_info: start_id, count, size.
      w.u32(choose(r, IDS)).u32(choose(r, COUNTS)).u32(choose(r, ITEM_SIZES));
      return;
    case SoundCode.R_JACK_REMAP:
      w.u32(choose(r, STREAM_IDS)).u32(choose(r, NIBBLES)).u32(choose(r, NIBBLES));
      return;
    case SoundCode.R_PCM_SET_PARAMS:
      w.u32(choose(r, STREAM_IDS)).u32(choose(r, BUFFER_BYTES)).u32(choose(r, PERIOD_BYTES)).u32(choose(r, PCM_FEATURES));
      w.u8(chooseByte(r, CHANNELS)).u8(chooseByte(r, FORMATS)).u8(chooseByte(r, RATES)).u8(0);
      return;
    case SoundCode.R_PCM_PREPARE:
    case SoundCode.R_PCM_RELEASE:
    case SoundCode.R_PCM_START:
    case SoundCode.R_PCM_STOP:
      w.u32(choose(r, STREAM_IDS));
      return;
    case SoundCode.R_CTL_ENUM_ITEMS:
    case SoundCode.R_CTL_READ:
    case SoundCode.R_CTL_TLV_READ:
      w.u32(choose(r, CONTROL_IDS));
      return;
    case SoundCode.R_CTL_WRITE: {
      // struct virtio_snd_ctl_value: 512 bytes (128 le32 / 64 le64 members, or bytes); short sometimes.
      w.u32(choose(r, CONTROL_IDS));
      const members = r.below(5);
      for (let i = 0; i < members; i++) w.u32(choose(r, VALUES));
      if (r.below(8) !== 0) w.bytes(new Uint8Array(512 - 4 * members));
      return;
    }
    case SoundCode.R_CTL_TLV_WRITE:
    case SoundCode.R_CTL_TLV_COMMAND: {
      // ctl_hdr, then struct virtio_snd_ctl_tlv: type, length, value words.
      w.u32(choose(r, CONTROL_IDS)).u32(choose(r, TLV_TYPES));
      fixTlvLength = r.below(4) !== 0;
      w.u32(fixTlvLength ? 0 : choose(r, TLV_LENGTHS));
      for (let i = r.below(5); i > 0; i--) w.u32(choose(r, VALUES));
      return;
    }
    default:
  }
}

function header(queue: number, r: ByteReader): Uint8Array {
  fixTlvLength = false;
  const w = new ByteWriter();
  if (queue === CONTROLQ) control(r, w);
  else if (queue === TXQ || queue === RXQ) w.u32(choose(r, STREAM_IDS)); // struct virtio_snd_pcm_xfer
  return w.finish();
}

function finish(queue: number, msg: Uint8Array): void {
  if (queue !== CONTROLQ || !fixTlvLength || msg.length < 16) return;
  new DataView(msg.buffer, msg.byteOffset, msg.byteLength).setUint32(12, (msg.length - 16) & ~3, true);
}

// ---- the host side ----

/** Fails the input (a finding) when a pump fires this many timers: the streams would loop. */
const TIMER_BUDGET = 100_000;

interface VirtualTimer {
  readonly at: number;
  readonly seq: number;
  readonly fn: () => void;
  live: boolean;
}

/**
 * Time that passes at once: a timer set now is due at now + ms; in a microtask after the
 * device's synchronous work, the due timers fire in deadline order (then order set), each
 * moving the clock to its deadline, until none is left.
 */
class InstantClock implements PcmClock {
  private t = 0;
  private seq = 0;
  private generation = 0;
  private pumping = false;
  private fired = 0;
  private readonly timers: VirtualTimer[] = [];

  now(): number {
    return this.t;
  }

  setTimer(fn: () => void, ms: number): unknown {
    const timer: VirtualTimer = { at: this.t + Math.max(0, ms), seq: this.seq++, fn, live: true };
    this.timers.push(timer);
    if (!this.pumping) {
      this.pumping = true;
      const g = this.generation;
      queueMicrotask(() => this.pump(g));
    }
    return timer;
  }

  clearTimer(handle: unknown): void {
    (handle as VirtualTimer).live = false;
  }

  /** Between inputs: no timer, time 0 (a pump queued before is void). */
  reset(): void {
    this.timers.length = 0;
    this.t = 0;
    this.seq = 0;
    this.fired = 0;
    this.pumping = false;
    this.generation++;
  }

  private pump(generation: number): void {
    if (generation !== this.generation) return;
    for (;;) {
      let next = -1;
      for (let i = 0; i < this.timers.length; i++) {
        const c = this.timers[i]!;
        if (!c.live) continue;
        const n = next < 0 ? null : this.timers[next]!;
        if (n === null || c.at < n.at || (c.at === n.at && c.seq < n.seq)) next = i;
      }
      if (next < 0) break;
      const timer = this.timers[next]!;
      this.timers.splice(next, 1);
      if (timer.at > this.t) this.t = timer.at;
      check(++this.fired < TIMER_BUDGET, 'step-budget', `the sound streams fired ${TIMER_BUDGET} timers in one input`);
      timer.fn();
    }
    this.timers.length = 0;
    this.pumping = false;
  }
}

/** Output frames hashed per stream; input frames a counting pattern per stream from its prepare. */
class MemoryPcm implements PcmOutput, PcmInput {
  /** Per stream: frames out (bytes), their hash, frames in (bytes), opens, closes. */
  readonly state = new Uint32Array(4 * 5);

  open(params: PcmParams): void {
    this.state[params.streamId * 5 + 2] = 0;
    this.state[params.streamId * 5 + 3]!++;
  }

  write(streamId: number, bytes: Uint8Array, offset: number, length: number): void {
    const at = streamId * 5;
    let h = this.state[at + 1]!;
    for (let i = 0; i < length; i++) h = (Math.imul(h, 31) + bytes[offset + i]!) >>> 0;
    this.state[at + 1] = h;
    this.state[at] = this.state[at]! + length;
  }

  read(streamId: number, bytes: Uint8Array, offset: number, length: number): void {
    const at = streamId * 5 + 2;
    const pos = this.state[at]!;
    for (let i = 0; i < length; i++) bytes[offset + i] = ((pos + i) * 13) & 0xff;
    this.state[at] = pos + length;
  }

  close(streamId: number): void {
    this.state[streamId * 5 + 4]!++;
  }
}

const clock = new InstantClock();
const pcm = new MemoryPcm();
let current: SoundDevice | null = null;

/**
 * Three streams (the default stereo output and input, an output of 1 to 8 channels in more
 * formats without xrun events), two jacks (one remappable), the standard control elements (ids
 * 0..6) and four of the application's (7..10): an INTEGER64 with TLV read / write / command and
 * hooks that refuse some values, BYTES, IEC958, a read-only ENUMERATED.
 */
function buildDevice(): SoundDevice {
  const d = new SoundDevice({
    queueSize: QUEUE_SIZE,
    jacks: [{ connected: true, remap: true, hdaRegDefconf: 0x0221_4010 }, { connected: false }],
    streams: [
      ...DEFAULT_STREAMS,
      {
        direction: SoundDirection.OUTPUT,
        formats: [SoundPcmFormat.U8, SoundPcmFormat.S16, SoundPcmFormat.S24_3, SoundPcmFormat.FLOAT, SoundPcmFormat.MU_LAW],
        rates: [SoundPcmRate.R8000, SoundPcmRate.R48000, SoundPcmRate.R384000],
        channelsMin: 1,
        channelsMax: 8,
        xrunEvents: false,
      },
    ],
    output: pcm,
    input: pcm,
    clock,
  });
  const A = SoundCtlAccess;
  d.addControl({
    name: 'Fuzz Level',
    type: SoundCtlType.INTEGER64,
    count: 2,
    min: -5n,
    max: 1000n,
    step: 5n,
    access: A.READ | A.WRITE | A.TLV_READ | A.TLV_WRITE | A.TLV_COMMAND,
    tlv: { type: 1, value: [0, 100] },
    onWrite: (v) => (v as readonly bigint[])[0] !== 995n,
    onTlvWrite: (t) => t.type !== 0x1234,
    onTlvCommand: (t) => t.type !== 0,
  });
  d.addControl({ name: 'Fuzz Bytes', type: SoundCtlType.BYTES, count: 16 });
  d.addControl({ name: 'Fuzz IEC958', type: SoundCtlType.IEC958, access: A.READ | A.WRITE | A.VOLATILE });
  d.addControl({ name: 'Fuzz Mode', type: SoundCtlType.ENUMERATED, items: ['A', 'B', 'C'], access: A.READ, role: SoundCtlRole.GAIN, direction: SoundDirection.INPUT });
  return d;
}

/** No message waits on a running stream after the input settled: the clock played them all. */
function checkHost(): void {
  const d = current;
  if (d === null) return;
  for (const s of d.streams) check(s.state !== PcmState.RUNNING || s.queued === 0, 'chain-not-completed', `stream ${s.id} runs with ${s.queued} messages waiting after the input settled`);
}

const spec: DeviceChainsSpec = {
  device: () => {
    const device = buildDevice();
    current = device;
    const resetHost = (): void => {
      clock.reset();
      pcm.state.fill(0);
    };
    return { device, resetHost, hostState: () => [new Uint8Array(pcm.state.buffer)] };
  },
  queues: 4,
  heldQueues: [EVENTQ, TXQ, RXQ],
  queueSize: QUEUE_SIZE,
  rounds: 5,
  header,
  finish,
  checkHost,
  freshDevice: { dispose: (d) => d.reset() },
};

// ---- seeds (choice bytes are indexes into the lists above) ----

const i = (list: readonly number[], v: number): number => list.indexOf(v);
const ctl = (code: number, fields: readonly number[], writable: SeedChain['writable'] = 4, rest: readonly number[] = []): SeedChain => ({
  queue: CONTROLQ,
  header: (w) => w.u8(i(CODES, code)).bytes(fields),
  rest,
  writable,
});
const setParams = (stream: number, buffer: number, period: number, channels: number, format: number, rate: number, features = 0): SeedChain =>
  ctl(SoundCode.R_PCM_SET_PARAMS, [stream, i(BUFFER_BYTES, buffer), i(PERIOD_BYTES, period), i(PCM_FEATURES, features), i(CHANNELS, channels), i(FORMATS, format), i(RATES, rate)]);
const life = (code: number, stream: number): SeedChain => ctl(code, [stream]);
const xfer = (queue: number, stream: number, frames: number, writable: SeedChain['writable']): SeedChain => ({
  queue,
  header: (w) => w.u8(stream),
  rest: Array.from({ length: frames }, (_, k) => (k * 7) & 0xff),
  writable,
});
const query = (code: number, start: number, count: number, size: number, writable: SeedChain['writable']): SeedChain => ctl(code, [i(IDS, start), i(COUNTS, count), i(ITEM_SIZES, size)], writable);
const event: SeedChain = { queue: EVENTQ, writable: 8, emptyMessage: true };
const XRUNS = 1 << SoundPcmFeatureBit.EVT_XRUNS;

function seeds(): Uint8Array[] {
  return [
    // A driver's probe: PCM_INFO of the 3 streams, JACK_INFO of the 2 jacks, CHMAP_INFO, CTL_INFO of element 0.
    deviceChainsSeed(true, [[query(SoundCode.R_PCM_INFO, 0, 3, 32, 512), query(SoundCode.R_JACK_INFO, 0, 2, 24, 64), query(SoundCode.R_CHMAP_INFO, 0, 2, 24, 64), query(SoundCode.R_CTL_INFO, 0, 1, 96, 512)]], spec),
    // Playback: stream 0 U8 mono 8000 Hz with xrun events, prepared and started, two messages of 16 frames, an event buffer; then stop and release.
    deviceChainsSeed(true, [
      [event, setParams(0, 64, 16, 1, SoundPcmFormat.U8, SoundPcmRate.R8000, XRUNS), life(SoundCode.R_PCM_PREPARE, 0), life(SoundCode.R_PCM_START, 0)],
      [xfer(TXQ, 0, 16, 8), xfer(TXQ, 0, 16, 8)],
      [life(SoundCode.R_PCM_STOP, 0), life(SoundCode.R_PCM_RELEASE, 0)],
    ], spec),
    // Capture: stream 1 S16 mono 16000 Hz, prepared, a 56-frame-byte message posted, started, then stopped.
    deviceChainsSeed(false, [[setParams(1, 128, 32, 1, SoundPcmFormat.S16, SoundPcmRate.R16000), life(SoundCode.R_PCM_PREPARE, 1), xfer(RXQ, 1, 0, 64), life(SoundCode.R_PCM_START, 1)], [life(SoundCode.R_PCM_STOP, 1)]], spec),
    // Control elements: stream 0's volume to 50 (read back), TLV read, capture source items; then
    // playback scaled by that volume; then a TLV write and command on element 7.
    deviceChainsSeed(true, [
      [ctl(SoundCode.R_CTL_WRITE, [0, 1, i(VALUES, 50), 1], 4), ctl(SoundCode.R_CTL_READ, [0], 1500), ctl(SoundCode.R_CTL_TLV_READ, [0], 64), ctl(SoundCode.R_CTL_ENUM_ITEMS, [4], 512)],
      [setParams(0, 128, 32, 2, SoundPcmFormat.S16, SoundPcmRate.R48000), life(SoundCode.R_PCM_PREPARE, 0), life(SoundCode.R_PCM_START, 0), xfer(TXQ, 0, 32, 8)],
      [ctl(SoundCode.R_CTL_TLV_WRITE, [7, i(TLV_TYPES, 1), 1, 2, 0, i(VALUES, 1)]), ctl(SoundCode.R_CTL_TLV_COMMAND, [7, i(TLV_TYPES, 4), 1, 1, i(VALUES, 2)])],
    ], spec),
    // Pre-buffered playback released (both messages IO_ERR, device/sound/7), set up again, then
    // new parameters while prepared (the pre-buffered message fails, the host side closes).
    deviceChainsSeed(true, [
      [setParams(0, 64, 16, 1, SoundPcmFormat.U8, SoundPcmRate.R8000), life(SoundCode.R_PCM_PREPARE, 0), xfer(TXQ, 0, 16, 8), xfer(TXQ, 0, 16, 8)],
      [life(SoundCode.R_PCM_RELEASE, 0), setParams(0, 128, 32, 2, SoundPcmFormat.S16, SoundPcmRate.R16000), life(SoundCode.R_PCM_PREPARE, 0), xfer(TXQ, 0, 32, 8)],
      [setParams(0, 64, 16, 2, SoundPcmFormat.S32, SoundPcmRate.R48000)],
    ], spec),
    // Capture at volume 50 (scaled input, S32 stereo) and playback muted by its switch (U8).
    deviceChainsSeed(true, [
      [ctl(SoundCode.R_CTL_WRITE, [2, 1, i(VALUES, 50), 1]), setParams(1, 64, 16, 2, SoundPcmFormat.S32, SoundPcmRate.R48000), life(SoundCode.R_PCM_PREPARE, 1), xfer(RXQ, 1, 0, 64)],
      [life(SoundCode.R_PCM_START, 1), ctl(SoundCode.R_CTL_WRITE, [1, 1, i(VALUES, 0), 1]), setParams(0, 64, 16, 1, SoundPcmFormat.U8, SoundPcmRate.R8000), life(SoundCode.R_PCM_PREPARE, 0)],
      [life(SoundCode.R_PCM_START, 0), xfer(TXQ, 0, 16, 8)],
    ], spec),
  ];
}

export const target: FuzzTarget = { name: 'sound-requests', maxLen: 1024, seeds, run: (d) => runDeviceChains(spec, d), outcome: () => deviceChainsOutcome(spec) };
