/**
 * One PCM stream of the sound device (5.14.6.6): the command lifecycle with the spec's legal
 * transitions, and the I/O messages waiting for the stream's "hardware".
 *
 * Lifecycle (5.14.6.6.1): SET_PARAMETERS -> set parameters, prepare; PREPARE -> set
 * parameters, prepare, start, release; START -> stop; STOP -> start, release; RELEASE -> set
 * parameters, prepare. Anything else is refused (the control request gets BAD_MSG).
 *
 * Pacing: the I/O messages of a stream wait in a FIFO (a linked list through the pool slots, so
 * nothing is allocated per message) while the stream is prepared or stopped (pre-buffering);
 * while it runs, one timer per stream completes the head message when its frames have been
 * played (output) or recorded (input) at the stream's rate: deadline = max(now, end of the
 * previous message) + bytes / (frame bytes x rate). The guest thus sees real time, with no busy
 * loop, and the deadlines are absolute so timer lateness does not accumulate. When a running
 * stream has no message left for a whole period after the last one ended, that is an underrun
 * (output) or overrun (input): one VIRTIO_SND_EVT_PCM_XRUN if the driver selected
 * VIRTIO_SND_PCM_F_EVT_XRUNS.
 */
import { performance } from 'node:perf_hooks';
import { QueueRequest } from '../../device/queue-server.js';
import type { DescriptorChain } from '../../queue/chain.js';
import { SoundStatus } from '../../spec/sound.js';
import type { PcmParams } from './pcm-host.js';
import type { StreamInfo } from './sound-topology.js';

/** A pool slot of the tx/rx queues: a link for the stream FIFO and the frame bytes it carries. */
export class SoundRequest extends QueueRequest {
  /** The next message queued on the same stream (FIFO link); null at the tail or when not queued. */
  next: SoundRequest | null = null;
  /** Frame bytes: tx, readable bytes after the header; rx, writable bytes before the status. */
  pcmBytes = 0;

  constructor(chain: DescriptorChain, queueIndex: number) {
    super(chain, queueIndex);
  }
}

/**
 * Where a stream's pacing takes its time and timers from: the real clock (REAL_PCM_CLOCK) by
 * default; a test or a fuzz target gives a virtual one, so a message's completion follows that
 * clock instead of wall time.
 */
export interface PcmClock {
  /** Milliseconds since an arbitrary origin (as performance.now()). */
  now(): number;
  /** Calls `fn` once after `ms` milliseconds of this clock; returns a handle for `clearTimer`. */
  setTimer(fn: () => void, ms: number): unknown;
  /** Cancels a timer `setTimer` returned (a timer that already ran is ignored). */
  clearTimer(handle: unknown): void;
}

/** performance.now() and Node's timers. */
export const REAL_PCM_CLOCK: PcmClock = {
  now: () => performance.now(),
  setTimer: (fn, ms) => setTimeout(fn, ms),
  clearTimer: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

/**
 * The state of a PCM stream in the command sequence of 5.14.6.6.1 (SET_PARAMS, PREPARE, START,
 * STOP, RELEASE); a command not allowed in the current state is answered BAD_MSG.
 */
export const PcmState = {
  /** No parameters yet (after reset). */
  INITIAL: 0,
  /** SET_PARAMS accepted: parameters set, nothing prepared. */
  PARAMS: 1,
  /** PREPARE done: ready to START. */
  PREPARED: 2,
  /** START: frames flow. */
  RUNNING: 3,
  /** STOP: frames no longer flow; START again or RELEASE. */
  STOPPED: 4,
  /** RELEASE: resources freed; SET_PARAMS or PREPARE starts over. */
  RELEASED: 5,
} as const;
export type PcmState = (typeof PcmState)[keyof typeof PcmState];

/** What a stream asks of the device. */
export interface PcmStreamHost {
  /**
   * Ends I/O message `req` of `stream` with `status`: with OK its frames are moved (output:
   * to the host; input: from the host) first. Writes the status and completes the request.
   */
  finish(stream: PcmStream, req: SoundRequest, status: number): void;
  /** VIRTIO_SND_EVT_PCM_XRUN for `streamId`. */
  xrun(streamId: number): void;
  /** The stream was prepared / released (host output or input opens / closes). */
  opened(params: PcmParams): void;
  /** The stream was released or reset: host output or input `streamId` closes. */
  closed(streamId: number): void;
}

/**
 * Device side of one PCM stream (5.14.6.6): its state machine, the I/O messages queued on it,
 * and the timer that consumes (output) or fills (input) them at the stream's rate.
 */
export class PcmStream {
  /** Where the stream is in 5.14.6.6.1's state machine. */
  state: PcmState = PcmState.INITIAL;
  /** The parameters of the last SET_PARAMS; null before one (and after reset). */
  params: PcmParams | null = null;
  /** VIRTIO_SND_PCM_F_* selected by the driver. */
  features = 0;
  private head: SoundRequest | null = null;
  private tail: SoundRequest | null = null;
  /** Frame bytes waiting (reported as latency_bytes). */
  queuedBytes = 0;
  /** Messages waiting. */
  queued = 0;
  private timer: unknown = null;
  /** When (the clock's ms) the message in progress ends. */
  private clock = 0;
  /** An xrun was reported for the current empty spell. */
  private xrunReported = false;
  private readonly onTimer = (): void => this.tick();
  private readonly onIdle = (): void => this.idle();

  constructor(
    /** The stream id (index in PCM_INFO, 0-based). */
    readonly id: number,
    /** What the device offers for the stream (formats, rates, channels). */
    readonly info: StreamInfo,
    private readonly host: PcmStreamHost,
    /** Time and timers of the pacing (the real ones by default). */
    private readonly time: PcmClock = REAL_PCM_CLOCK,
  ) {}

  // ---- lifecycle (5.14.6.6.1) ----

  /** VIRTIO_SND_R_PCM_SET_PARAMS (already checked against the stream info). */
  setParams(params: PcmParams, features: number): boolean {
    const s = this.state;
    if (s !== PcmState.INITIAL && s !== PcmState.PARAMS && s !== PcmState.PREPARED && s !== PcmState.RELEASED) return false;
    // Messages pre-buffered for the old parameters (from PREPARE) are the old stream's: ended.
    this.failAll();
    if (s === PcmState.PREPARED) this.host.closed(this.id);
    this.params = params;
    this.features = features;
    this.state = PcmState.PARAMS;
    return true;
  }

  /** VIRTIO_SND_R_PCM_PREPARE: opens the host side; false when the state forbids it. */
  prepare(): boolean {
    const s = this.state;
    if (s !== PcmState.PARAMS && s !== PcmState.PREPARED && s !== PcmState.RELEASED) return false;
    if (this.params === null) return false;
    if (s !== PcmState.PREPARED) this.host.opened(this.params);
    this.state = PcmState.PREPARED;
    return true;
  }

  /** VIRTIO_SND_R_PCM_START: messages start to be consumed at the stream's rate; false when the state forbids it. */
  start(): boolean {
    if (this.state !== PcmState.PREPARED && this.state !== PcmState.STOPPED) return false;
    this.state = PcmState.RUNNING;
    this.clock = this.time.now();
    this.xrunReported = false;
    this.schedule();
    return true;
  }

  /** VIRTIO_SND_R_PCM_STOP: the timer stops, queued messages stay; false unless running. */
  stop(): boolean {
    if (this.state !== PcmState.RUNNING) return false;
    this.state = PcmState.STOPPED;
    this.clearTimer();
    return true;
  }

  /** Stream release: every pending message completes (IO_ERR, not played) before this returns (device/sound/7, device/sound/8). */
  release(): boolean {
    if (this.state !== PcmState.PREPARED && this.state !== PcmState.STOPPED) return false;
    this.failAll();
    this.state = PcmState.RELEASED;
    this.host.closed(this.id);
    return true;
  }

  /** Device reset or the stream's queue stopped: waiting messages are dropped (never completed). */
  drop(): void {
    this.clearTimer();
    this.head = this.tail = null;
    this.queued = 0;
    this.queuedBytes = 0;
  }

  /** Device reset: back to the initial state. */
  reset(): void {
    this.drop();
    if (this.state === PcmState.PREPARED || this.state === PcmState.RUNNING || this.state === PcmState.STOPPED) this.host.closed(this.id);
    this.state = PcmState.INITIAL;
    this.params = null;
    this.features = 0;
  }

  // ---- I/O ----

  /** Whether an I/O message is accepted now (prepared, running or stopped). */
  get acceptsIo(): boolean {
    return this.state === PcmState.PREPARED || this.state === PcmState.RUNNING || this.state === PcmState.STOPPED;
  }

  /** Queues an I/O message (the caller checked `acceptsIo`). */
  enqueue(req: SoundRequest): void {
    req.next = null;
    if (this.tail === null) this.head = req;
    else this.tail.next = req;
    this.tail = req;
    this.queued++;
    this.queuedBytes += req.pcmBytes;
    this.xrunReported = false;
    if (this.state === PcmState.RUNNING && this.timer === null) this.schedule();
    else if (this.state === PcmState.RUNNING && this.queued === 1) {
      // The idle watchdog was armed: the clock restarts with this message.
      this.clearTimer();
      this.schedule();
    }
  }

  private shift(): SoundRequest | null {
    const r = this.head;
    if (r === null) return null;
    this.head = r.next;
    if (this.head === null) this.tail = null;
    r.next = null;
    this.queued--;
    this.queuedBytes -= r.pcmBytes;
    return r;
  }

  private failAll(): void {
    this.clearTimer();
    for (let r = this.shift(); r !== null; r = this.shift()) this.host.finish(this, r, SoundStatus.IO_ERR);
  }

  private durationMs(bytes: number): number {
    const p = this.params!;
    return (bytes * 1000) / (p.frameBytes * p.rateHz);
  }

  private schedule(): void {
    const r = this.head;
    if (r === null || this.state !== PcmState.RUNNING) return;
    const now = this.time.now();
    const start = this.clock > now ? this.clock : now;
    this.clock = start + this.durationMs(r.pcmBytes);
    this.timer = this.time.setTimer(this.onTimer, this.clock - now);
  }

  /** The head message's frames have been played / recorded. */
  private tick(): void {
    this.timer = null;
    if (this.state !== PcmState.RUNNING) return;
    // Timers run against the event loop's cached clock and may fire a little early: the message
    // completes only once its frames have really been played (device/sound/9, device/sound/10).
    const early = this.clock - this.time.now();
    if (early > 0) {
      this.timer = this.time.setTimer(this.onTimer, early);
      return;
    }
    const r = this.shift();
    if (r !== null) this.host.finish(this, r, SoundStatus.OK);
    if (this.head !== null) this.schedule();
    else if (this.state === PcmState.RUNNING) {
      // Nothing queued: a whole period without a message is an xrun.
      this.timer = this.time.setTimer(this.onIdle, this.durationMs(this.params!.periodBytes));
    }
  }

  private idle(): void {
    this.timer = null;
    if (this.state !== PcmState.RUNNING || this.head !== null || this.xrunReported) return;
    this.xrunReported = true;
    this.host.xrun(this.id);
  }

  private clearTimer(): void {
    if (this.timer !== null) this.time.clearTimer(this.timer);
    this.timer = null;
  }
}
