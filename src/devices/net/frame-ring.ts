/**
 * A bounded single-producer single-consumer ring of Ethernet frames in a SharedArrayBuffer: how
 * the switch of one thread hands frames to the switch of another (`virtio-ts net --threads`,
 * docs/worker-threads.md). One thread pushes, one thread pops; neither ever blocks:
 *
 *  - A full ring drops the frame and counts it (`dropped`): the ring never grows and a slow or
 *    dead consumer never stalls the producer (an Ethernet switch drops on a full output queue).
 *  - Frames are copied once, into their slot; the consumer hands the slot itself to its switch
 *    (a NetPacket over the slot's bytes), whose receivers copy what they keep.
 *  - Indices are free-running 32-bit counters (`head` written by the producer only, `tail` by
 *    the consumer only), published with Atomics.store after the slot is written and read with
 *    Atomics.load before it is read: the SharedArrayBuffer memory model orders the slot's bytes
 *    before the index that publishes them.
 *  - The consumer runs on an event loop and may read several rings: each ring names its
 *    consumer's `Doorbell`. The consumer says it is going to sleep there, checks its rings once
 *    more and waits with Atomics.waitAsync; a producer rings the bell only when its consumer
 *    sleeps, so a busy consumer costs the producers no notify (a lost wake-up is impossible:
 *    both sides use sequentially consistent atomics, the consumer's "sleeping" store comes before
 *    its last look at the rings, the producer's index store before its look at "sleeping").
 *
 * Frames travel as ordinary frames with their checksum state (needs-csum start/offset, data
 * valid); GSO packets are segmented by the sending switch first (the link port does not take
 * GSO), so a slot holds at most `frameBytes`.
 */
import { ErrorCode, VirtioError } from '../../errors.js';
import { waitAsync } from '../../transport/in-process/worker-protocol.js';
import { NetPacket } from './packet.js';

/** Int32 control words at the start of the buffer. */
const HEAD = 0;
const TAIL = 1;
const DROPPED = 2;
const OVERSIZE = 3;
const PUSHED = 4;
/** Control words (padded to 64 bytes, a cache line). */
const CONTROL_WORDS = 16;
/** Per-slot metadata words: length, flags, csumStart, csumOffset. */
const SLOT_META = 16;

const FLAG_NEEDS_CSUM = 1;
const FLAG_CSUM_VALID = 2;

/** Largest frame a slot may be made for: the largest MTU plus an Ethernet header and a VLAN tag. */
export const MAX_FRAME_RING_BYTES = 65_535 + 18;

/** Slots a ring has at most (a power of two). */
export const MAX_FRAME_RING_SLOTS = 1 << 16;

/** Bytes of a SharedArrayBuffer holding a ring of `slots` slots of `frameBytes` each. */
export function frameRingBytes(slots: number, frameBytes: number): number {
  return CONTROL_WORDS * 4 + slots * (SLOT_META + slotData(frameBytes));
}

/** Slot data rounded up to 8 bytes (keeps every slot's metadata aligned). */
function slotData(frameBytes: number): number {
  return (frameBytes + 7) & ~7;
}

/** The shape of a ring: what both sides need to agree on (structured-cloneable with the buffer). */
export interface FrameRingSpec {
  /** The ring's storage (shared, not copied, when posted to a worker). */
  readonly buffer: SharedArrayBuffer;
  /** Slots, a power of two. */
  readonly slots: number;
  /** Largest frame a slot holds, bytes. */
  readonly frameBytes: number;
  /** The consumer's doorbell (Doorbell.create), shared by every ring it reads. */
  readonly doorbell: SharedArrayBuffer;
}

/** Doorbell words: a sequence number bumped per ring, and "the consumer sleeps". */
const BELL_SEQ = 0;
const BELL_SLEEPING = 1;

/** Where the consumer of one or more rings sleeps and its producers wake it. */
export class Doorbell {
  private readonly words: Int32Array;

  constructor(buffer: SharedArrayBuffer) {
    this.words = new Int32Array(buffer, 0, 2);
  }

  /** Storage for a doorbell. */
  static create(): SharedArrayBuffer {
    return new SharedArrayBuffer(8);
  }

  /** Producer side: wakes the consumer if it sleeps. */
  ring(): void {
    const w = this.words;
    if (Atomics.load(w, BELL_SLEEPING) !== 0) {
      Atomics.add(w, BELL_SEQ, 1);
      Atomics.notify(w, BELL_SEQ);
    }
  }

  /**
   * Consumer side: resolves once `hasWork()` is true or a producer rang, or after `timeoutMs`.
   * `hasWork` is asked after "sleeping" is set, so a frame pushed meanwhile is never missed.
   */
  async sleep(hasWork: () => boolean, timeoutMs: number): Promise<void> {
    const w = this.words;
    Atomics.store(w, BELL_SLEEPING, 1);
    try {
      const seq = Atomics.load(w, BELL_SEQ);
      if (hasWork()) return;
      const r = waitAsync(w, BELL_SEQ, seq, timeoutMs);
      if (r.async) await r.value;
    } finally {
      Atomics.store(w, BELL_SLEEPING, 0);
    }
  }

  /** Wakes the consumer whether or not a frame came (to stop it). */
  wake(): void {
    Atomics.add(this.words, BELL_SEQ, 1);
    Atomics.notify(this.words, BELL_SEQ);
  }
}

/** Makes the storage of a ring (zeroed: empty). */
export function createFrameRing(slots: number, frameBytes: number, doorbell: SharedArrayBuffer): FrameRingSpec {
  if (!Number.isInteger(slots) || slots < 2 || slots > MAX_FRAME_RING_SLOTS || (slots & (slots - 1)) !== 0) {
    throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `frame ring slots ${slots}: a power of two in 2..${MAX_FRAME_RING_SLOTS}`);
  }
  if (!Number.isInteger(frameBytes) || frameBytes < 14 || frameBytes > MAX_FRAME_RING_BYTES) {
    throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `frame ring frame size ${frameBytes}: 14..${MAX_FRAME_RING_BYTES} bytes`);
  }
  return { buffer: new SharedArrayBuffer(frameRingBytes(slots, frameBytes)), slots, frameBytes, doorbell };
}

/** Common view of a ring's storage. */
class FrameRingView {
  protected readonly control: Int32Array;
  protected readonly meta: Int32Array[] = [];
  protected readonly bytes: Uint8Array[] = [];
  protected readonly mask: number;
  /** Largest frame a slot holds, bytes. */
  readonly frameBytes: number;

  constructor(spec: FrameRingSpec) {
    if (spec.buffer.byteLength < frameRingBytes(spec.slots, spec.frameBytes)) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'frame ring buffer too small for its slots');
    }
    this.control = new Int32Array(spec.buffer, 0, CONTROL_WORDS);
    this.mask = spec.slots - 1;
    this.frameBytes = spec.frameBytes;
    const stride = SLOT_META + slotData(spec.frameBytes);
    for (let i = 0; i < spec.slots; i++) {
      const at = CONTROL_WORDS * 4 + i * stride;
      this.meta.push(new Int32Array(spec.buffer, at, SLOT_META / 4));
      this.bytes.push(new Uint8Array(spec.buffer, at + SLOT_META, spec.frameBytes));
    }
  }

  /** Frames dropped because the ring was full (written by the producer). */
  get dropped(): number {
    return Atomics.load(this.control, DROPPED) >>> 0;
  }

  /** Frames dropped because they were larger than a slot (written by the producer). */
  get oversize(): number {
    return Atomics.load(this.control, OVERSIZE) >>> 0;
  }

  /** Frames pushed (written by the producer). */
  get pushed(): number {
    return Atomics.load(this.control, PUSHED) >>> 0;
  }

  /** Frames waiting in the ring now. */
  get pending(): number {
    return (Atomics.load(this.control, HEAD) - Atomics.load(this.control, TAIL)) | 0;
  }
}

/** The producer side (one thread). */
export class FrameRingProducer extends FrameRingView {
  private readonly bell: Doorbell;
  /**
   * Views [0, n) of each sender's frame buffer, made on first use per length: `set` copies a
   * whole view (memcpy), and a `subarray` per frame would allocate a typed array per packet.
   * Bounded by the senders' buffers (a few per port) times the frame lengths seen; forgotten
   * with the buffers.
   */
  private readonly prefixes = new WeakMap<Uint8Array, (Uint8Array | undefined)[]>();

  constructor(spec: FrameRingSpec) {
    super(spec);
    this.bell = new Doorbell(spec.doorbell);
  }

  /**
   * Copies `p` into the next slot and publishes it; false (counted in `dropped` or `oversize`)
   * when the ring is full or the frame larger than a slot. Never blocks, never allocates.
   */
  push(p: NetPacket): boolean {
    const c = this.control;
    const head = Atomics.load(c, HEAD);
    if (p.length > this.frameBytes) {
      Atomics.store(c, OVERSIZE, (Atomics.load(c, OVERSIZE) + 1) | 0);
      return false;
    }
    if (((head - Atomics.load(c, TAIL)) | 0) > this.mask) {
      Atomics.store(c, DROPPED, (Atomics.load(c, DROPPED) + 1) | 0);
      return false;
    }
    const slot = head & this.mask;
    this.bytes[slot]!.set(this.prefix(p.data, p.length));
    const m = this.meta[slot]!;
    m[0] = p.length;
    m[1] = (p.needsCsum ? FLAG_NEEDS_CSUM : 0) | (p.csumValid ? FLAG_CSUM_VALID : 0);
    m[2] = p.csumStart;
    m[3] = p.csumOffset;
    Atomics.store(c, HEAD, (head + 1) | 0);
    Atomics.store(c, PUSHED, (Atomics.load(c, PUSHED) + 1) | 0);
    this.bell.ring();
    return true;
  }

  /** data[0, length) as a view made once per (buffer, length). */
  private prefix(data: Uint8Array, length: number): Uint8Array {
    if (length === data.length) return data;
    let views = this.prefixes.get(data);
    if (views === undefined) this.prefixes.set(data, (views = []));
    let v = views[length];
    if (v === undefined) v = views[length] = data.subarray(0, length);
    return v;
  }
}

/** The consumer side (one thread): `drain` hands each frame, in its slot, to a callback. */
export class FrameRingConsumer extends FrameRingView {
  /** One packet per slot, over the slot's bytes: handing a frame on allocates nothing. */
  private readonly packets: NetPacket[] = [];

  constructor(spec: FrameRingSpec) {
    super(spec);
    for (let i = 0; i < spec.slots; i++) this.packets.push(NetPacket.over(this.bytes[i]!));
  }

  /**
   * Hands up to `budget` waiting frames to `take` (synchronously: the slot is reused once it
   * returns, so `take` copies what it keeps) and returns how many.
   */
  drain(take: (p: NetPacket) => void, budget: number): number {
    const c = this.control;
    let tail = Atomics.load(c, TAIL);
    const head = Atomics.load(c, HEAD);
    let n = 0;
    while (tail !== head && n < budget) {
      const slot = tail & this.mask;
      const m = this.meta[slot]!;
      const p = this.packets[slot]!;
      p.clearOffloads();
      p.length = Math.min(m[0]!, this.frameBytes);
      const flags = m[1]!;
      p.needsCsum = (flags & FLAG_NEEDS_CSUM) !== 0;
      p.csumValid = (flags & FLAG_CSUM_VALID) !== 0;
      p.csumStart = m[2]!;
      p.csumOffset = m[3]!;
      take(p);
      tail = (tail + 1) | 0;
      // Released slot by slot: the producer may refill it at once.
      Atomics.store(c, TAIL, tail);
      n++;
    }
    return n;
  }
}
