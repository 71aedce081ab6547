/**
 * A loopback CAN bus on the host: any number of nodes (virtio-can devices, host ports) attach;
 * a frame one node transmits is received by every other node, in transmission order, in a later
 * turn of the event loop (the bus is a shared medium: the sender's request completes first, then
 * the bus delivers). The bus then tells the sender its frame was transmitted (the acknowledgment
 * a LATE_TX_ACK device waits for).
 *
 * Frames in flight live in a fixed ring of slots with 64-byte payload buffers, so transmitting
 * allocates nothing; when the ring is full the bus refuses the frame (the sender reports it not
 * sent).
 */
import { ErrorCode, VirtioError } from '../../errors.js';
import { CAN_EXT_ID_MAX, CAN_FD_MAX_LEN, CAN_STD_ID_MAX, canLengthValid } from '../../spec/can.js';

/** A CAN frame as the bus carries it. `data` is the payload (RTR frames: empty, `length` the requested DLC length). */
export interface CanFrame {
  /** 11-bit standard or 29-bit extended identifier. */
  readonly id: number;
  /** 29-bit identifier (VIRTIO_CAN_FLAGS_EXTENDED, 5.20.6); false for an 11-bit one. */
  readonly extended: boolean;
  /** A CAN FD frame (VIRTIO_CAN_FLAGS_FD): up to 64 bytes of payload. */
  readonly fd: boolean;
  /** A remote transmission request (VIRTIO_CAN_FLAGS_RTR): no payload; classic frames only. */
  readonly rtr: boolean;
  /** Payload length (for RTR frames the requested length, with no data). */
  readonly length: number;
  /** The payload: at least `length` bytes (only the first `length` count); empty for RTR. */
  readonly data: Uint8Array;
  /** Classic frames of 8 bytes: the DLC when 9..15 (reserved_classic_dlc), else 0. */
  readonly dlc?: number;
}

/** A frame in the bus ring; its payload buffer belongs to the bus (copy what you keep). */
export class CanBusSlot {
  /** 11-bit standard or 29-bit extended identifier. */
  id = 0;
  /** 29-bit identifier. */
  extended = false;
  /** A CAN FD frame. */
  fd = false;
  /** A remote transmission request (no payload). */
  rtr = false;
  /** Payload length in bytes (RTR: the requested length). */
  length = 0;
  /** Classic 8-byte frames: the DLC when 9..15, else 0 (see {@link CanFrame.dlc}). */
  dlc = 0;
  /** 64-byte payload buffer, reused; only the first `length` bytes are the frame's. */
  readonly data = new Uint8Array(CAN_FD_MAX_LEN);
  /** The node that transmitted the frame; null while the slot is free. */
  from: CanBusNode | null = null;
  /** The sender's handle for the frame, returned in its `transmitted` call; null from host ports. */
  token: unknown = null;
  /** Withdrawn by its sender before the bus carried it (a controller stopped). */
  cancelled = false;

  /** A copy of the frame (for hosts that keep it). */
  toFrame(): CanFrame {
    return { id: this.id, extended: this.extended, fd: this.fd, rtr: this.rtr, length: this.length, data: this.data.slice(0, this.rtr ? 0 : this.length), dlc: this.dlc };
  }
}

/** Something on the bus. */
export interface CanBusNode {
  /** A frame another node transmitted (the slot is reused after the call). */
  receive(frame: CanBusSlot): void;
  /** The bus transmitted this node's frame `token` (or dropped it: `ok` false, the node detached). */
  transmitted?(token: unknown, ok: boolean): void;
}

/**
 * A loopback CAN bus shared by virtio-can devices and host ports: each frame one node transmits
 * reaches every other node in a later event-loop turn, then its sender is told it went out.
 */
export class CanBus {
  private readonly nodes = new Set<CanBusNode>();
  private readonly ring: CanBusSlot[];
  private first = 0;
  private count = 0;
  private scheduled = false;
  private readonly flushBound = (): void => this.flush();
  /** Frames carried so far. */
  delivered = 0;

  constructor(
    /** Frames the bus can hold in flight (1..65536); transmit refuses a frame beyond them. */
    readonly capacity = 256,
  ) {
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > 65536) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `bus capacity ${capacity}`);
    this.ring = Array.from({ length: capacity }, () => new CanBusSlot());
  }

  /** Attaches `node`; returns the function that detaches it. */
  attach(node: CanBusNode): () => void {
    this.nodes.add(node);
    return () => void this.nodes.delete(node);
  }

  /** Nodes on the bus. */
  get size(): number {
    return this.nodes.size;
  }

  /**
   * Queues a frame for transmission: `fill` writes it into a free slot. Returns false (nothing
   * queued) when the ring is full. `token` comes back in `from.transmitted` once delivered.
   */
  transmit(from: CanBusNode, token: unknown, fill: (slot: CanBusSlot) => void): boolean {
    if (this.count === this.ring.length) return false;
    const slot = this.ring[(this.first + this.count) % this.ring.length]!;
    fill(slot);
    slot.from = from;
    slot.token = token;
    slot.cancelled = false;
    this.count++;
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flushBound);
    }
    return true;
  }

  /** Withdraws the frame `token` of `from` if the bus has not carried it yet; returns whether it did. */
  cancel(from: CanBusNode, token: unknown): boolean {
    for (let i = 0; i < this.count; i++) {
      const slot = this.ring[(this.first + i) % this.ring.length]!;
      if (slot.from === from && slot.token === token && !slot.cancelled) {
        slot.cancelled = true;
        return true;
      }
    }
    return false;
  }

  /** Transmits `frame` from a host node (checked: identifier and length ranges). */
  send(from: CanBusNode, frame: CanFrame): boolean {
    const idMax = frame.extended ? CAN_EXT_ID_MAX : CAN_STD_ID_MAX;
    if (!Number.isInteger(frame.id) || frame.id < 0 || frame.id > idMax) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `CAN id ${frame.id} out of range`);
    if (!canLengthValid(frame.length, frame.fd) || (frame.rtr && frame.fd) || (!frame.rtr && frame.data.length < frame.length)) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `CAN frame length ${frame.length} invalid`);
    }
    return this.transmit(from, null, (s) => {
      s.id = frame.id;
      s.extended = frame.extended;
      s.fd = frame.fd;
      s.rtr = frame.rtr;
      s.length = frame.length;
      s.dlc = frame.dlc ?? 0;
      if (!frame.rtr) s.data.set(frame.data.subarray(0, frame.length));
    });
  }

  private flush(): void {
    this.scheduled = false;
    // Frames queued while delivering (a node answering at once) go out in the next turn.
    for (let n = this.count; n > 0; n--) {
      const slot = this.ring[this.first]!;
      const from = slot.from;
      const carried = !slot.cancelled;
      if (carried) {
        for (const node of this.nodes) if (node !== from) node.receive(slot);
        this.delivered++;
      }
      this.first = (this.first + 1) % this.ring.length;
      this.count--;
      const token = slot.token;
      slot.from = null;
      slot.token = null;
      if (carried && from !== null && this.nodes.has(from)) from.transmitted?.(token, true);
    }
    if (this.count > 0 && !this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flushBound);
    }
  }
}

/** A host port on a bus: frames to and from host code. */
export class CanHostPort implements CanBusNode {
  private readonly detach: () => void;
  private listeners: ((f: CanFrame) => void)[] = [];
  /** Frames received and not yet taken by `next`. */
  readonly received: CanFrame[] = [];
  private waiters: ((f: CanFrame) => void)[] = [];

  constructor(
    /** The bus the port is attached to (from construction to {@link CanHostPort.close}). */
    readonly bus: CanBus,
  ) {
    this.detach = bus.attach(this);
  }

  receive(slot: CanBusSlot): void {
    const f = slot.toFrame();
    const w = this.waiters.shift();
    if (w) w(f);
    else this.received.push(f);
    for (const l of this.listeners) l(f);
  }

  /** Calls `listener` with every frame the port receives; returns the function that removes it. */
  onFrame(listener: (f: CanFrame) => void): () => void {
    this.listeners.push(listener);
    return () => (this.listeners = this.listeners.filter((l) => l !== listener));
  }

  /** The next frame (one already received first). */
  next(): Promise<CanFrame> {
    const f = this.received.shift();
    return f ? Promise.resolve(f) : new Promise((resolve) => this.waiters.push(resolve));
  }

  /**
   * Transmits `frame` to the other nodes; false when the bus ring is full (nothing sent). Throws
   * INVALID_ARGUMENT for an identifier or length out of range.
   */
  send(frame: CanFrame): boolean {
    return this.bus.send(this, frame);
  }

  /** Detaches the port from the bus: it receives nothing more. */
  close(): void {
    this.detach();
  }
}
