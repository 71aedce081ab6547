import type { QueueError } from '../errors.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import type { DescriptorChain } from './chain.js';
import type { DirectBatch } from './direct-batch.js';

/**
 * Where a queue lives and how it was negotiated. For split rings the three areas are the
 * descriptor table, the available (driver) ring and the used (device) ring (2.7); for packed
 * rings they are the descriptor ring, the driver event suppression area and the device event
 * suppression area (2.8.10).
 */
export interface QueueConfig {
  /** Queue size: non-zero; a power of two for split rings; at most 32768. */
  readonly size: number;
  /** Guest address of the descriptor table (split) or descriptor ring (packed). */
  readonly descAddr: number;
  /** Guest address of the available ring (split) or the driver event suppression area (packed). */
  readonly driverAddr: number;
  /** Guest address of the used ring (split) or the device event suppression area (packed). */
  readonly deviceAddr: number;
  /** Negotiated features: RING_PACKED, INDIRECT_DESC, EVENT_IDX, IN_ORDER, VERSION_1... */
  readonly features: bigint;
  /** Legacy interface on a big-endian guest: ring fields in guest (big) endian. Default true. */
  readonly littleEndian?: boolean;
  /** The queue's index on the device, for error reports. */
  readonly index?: number;
}

/**
 * Plain data that lets a queue resume elsewhere (vhost-user GET/SET_VRING_BASE, reconnect,
 * migration). Split rings use the free-running 16-bit indices; packed rings use ring positions
 * (0..size-1) with their wrap counters.
 */
export interface QueueState {
  /**
   * The next available entry the device reads: a free-running 16-bit index (split) or a ring
   * position (packed).
   */
  readonly nextAvail: number;
  /**
   * The next used entry the device writes: a free-running 16-bit index (split) or a ring position
   * (packed).
   */
  readonly nextUsed: number;
  /** Packed only: the driver ring wrap counter at nextAvail (starts true). */
  readonly availWrap: boolean;
  /** Packed only: the device's used wrap counter at nextUsed (starts true). */
  readonly usedWrap: boolean;
}

/**
 * A read-only look at a device-side queue (the live queue inspector): its ring configuration
 * and position as the device holds them. Taking it writes nothing (unlike `state()`, which
 * publishes deferred used entries first).
 */
export interface QueuePeek {
  /** The ring's set-up: size, format and guest addresses. */
  readonly config: QueueConfig;
  /** Split: free-running 16-bit indices; packed: ring positions with their wrap counters. */
  readonly position: QueueState;
  /** Buffers popped and not yet returned. */
  readonly inFlight: number;
  /** Whether the device currently asks for available-buffer notifications (2.7.10 / 2.8.10). */
  readonly notifyEnabled: boolean;
}

/** Device side of a virtqueue (split or packed). */
export interface DeviceQueue {
  /** Queue size: the number of descriptors (2.6). */
  readonly size: number;
  /** The queue's index on its device. */
  readonly index: number;
  /** Whether this is a packed ring (2.8) rather than a split one (2.7). */
  readonly packed: boolean;
  /** Set once the driver broke a ring rule; the queue then yields nothing more. */
  readonly broken: QueueError | null;

  /**
   * Fills `chain` with the next available buffer and returns true, or returns false when none
   * is available. Throws `QueueError` (and marks the queue broken) when the driver broke a ring
   * rule; the device core turns that into DEVICE_NEEDS_RESET. Never allocates.
   */
  pop(chain: DescriptorChain): boolean;

  /**
   * Returns a buffer to the driver with `written` bytes written into its writable part. The
   * used entry is visible to the driver when this returns (release order). Never allocates.
   */
  push(chain: DescriptorChain, written: number): void;

  /** Low-level form of `push` for resubmitted (inflight) buffers: id and ring descriptor count. */
  pushId(id: number, ringDescs: number, written: number): void;

  /**
   * Like `push`, but the used entry becomes visible to the driver only at the next `publish()`,
   * `push`, `needsNotification()` or `state()`: one release store per pass instead of one per
   * buffer (2.7.8 / 2.8.6: the device may make several used entries visible at once). Never
   * allocates.
   */
  pushDeferred(chain: DescriptorChain, written: number): void;

  /** Makes the entries of `pushDeferred` visible to the driver (a no-op when none pend). */
  publish(): void;

  /**
   * IN_ORDER (2.7.9 / 2.8.8 "In-order use of descriptors"): returns the oldest `count` popped
   * buffers with ONE used entry carrying the id `lastId` of the last of them and its written
   * length. The driver treats the others as used completely. Throws INVALID_ARGUMENT without
   * IN_ORDER or when fewer than `count` buffers are in flight.
   */
  pushInOrderBatch(lastId: number, count: number, written: number): void;
  /**
   * Whether `pushInOrderBatch` may be used now (IN_ORDER negotiated, and nothing that records
   * buffers one by one, such as vhost-user inflight tracking). Optional (taken as false).
   */
  readonly inOrderBatching?: boolean;

  /**
   * Pops up to `max` available chains of the plainest shape into `b` without a DescriptorChain
   * each (direct-batch.ts): device-readable descriptors only, no indirect table, every buffer
   * in guest memory; stops before the first other chain, which `pop` then takes. Returns how
   * many (0 also when the queue cannot do this now: packed, IN_ORDER, vhost-user inflight
   * tracking or dirty logging on). The caller pushes them all with `pushDirect` before it
   * returns to the event loop. Optional (taken as always 0). Never allocates.
   */
  popDirect?(b: DirectBatch, max: number): number;
  /**
   * Returns the first `n` chains of the last `popDirect` into `b`, in order, with nothing
   * written; visible to the driver at the next `publish()` (as `pushDeferred`).
   */
  pushDirect?(b: DirectBatch, n: number): void;

  /**
   * Returns the last `count` popped buffers to the ring, not yet pushed: the next pops yield
   * them again, in the same order (a device that took buffers it cannot use yet, as virtio-net
   * mergeable receive buffers: vm-virtio's go_to_previous_position). Nothing is written to guest
   * memory. Throws INVALID_ARGUMENT when fewer than `count` buffers are in flight. The caller
   * guarantees none of them was pushed meanwhile.
   */
  undoPop(count: number): void;

  /**
   * A chain that holds every chain the driver may legally make available on this queue (at
   * most the queue size of descriptors, indirect tables included: driver/split-ring/7,
   * driver/packed-ring/7), with room
   * for buffers split where guest memory regions meet, and at least `minSegments` segments (a
   * device that advertises a larger bound, as virtio-blk seg_max, on a queue the driver made
   * smaller). Allocates: call it when the queue starts, not per request.
   */
  createChain(minSegments?: number): DescriptorChain;

  /**
   * Whether EVENT_IDX governs this queue's notifications (2.7.10 / 2.8.10): the driver names the
   * used index it wants to hear about, so a notification it is sent is one it waits for.
   * Optional for queue implementations outside the library (taken as false).
   */
  readonly eventIdx?: boolean;

  /** Asks the driver not to notify (flag or, with EVENT_IDX, no-op). */
  disableNotification(): void;

  /**
   * Asks the driver to notify again and returns true when more buffers arrived meanwhile
   * (the caller then keeps popping, so no notification is lost).
   */
  enableNotification(): boolean;

  /** Whether the driver must be sent a used-buffer notification for what was pushed since last asked. */
  needsNotification(): boolean;

  /** Whether buffers are available (without consuming them). */
  hasAvailable(): boolean;

  /**
   * How many buffers are available now (without consuming them), where the ring tells at the
   * cost of one index load (split: avail idx minus the next to pop); absent, or negative, where
   * it does not (packed: a walk of descriptors). A hint: the driver may add more at any time.
   */
  availableCount?(): number;

  /**
   * The position to resume from elsewhere (vhost-user GET_VRING_BASE, reconnect, migration);
   * publishes deferred used entries first.
   */
  state(): QueueState;
  /** Validates and applies saved state (QUEUE_BAD_STATE on misfit). */
  setState(s: QueueState): void;
  /**
   * The queue's GuestMemory was rebound in place (region buffers replaced, guest addresses
   * unchanged), or, with `memory`, replaced by another GuestMemory holding the ring at the same
   * guest addresses: derive the ring views again, keeping the position, the buffers in flight
   * and every chain the device holds (they complete onto this same object). Throws, leaving the
   * queue as it was, when the ring does not fit `memory`. Optional: without it the core builds
   * a new queue object, and chains in flight are lost.
   */
  rebind?(memory?: GuestMemory): void;

  /** The guest memory the ring and its buffers live in. */
  readonly memory: GuestMemory;
}

/** One segment handed to the driver-side `add`. */
export interface Segment {
  /** Guest address of the segment. */
  addr: number;
  /** Length of the segment in bytes. */
  len: number;
}

/** Driver side of a virtqueue (split or packed). */
export interface DriverQueue<T = unknown> {
  /** Queue size: the number of descriptors. */
  readonly size: number;
  /** Whether this is a packed ring rather than a split one. */
  readonly packed: boolean;
  /** Descriptors free for new chains. */
  readonly freeCount: number;

  /**
   * Makes a buffer available: `out` segments are device-readable, `in` device-writable.
   * Returns false when there is no room. With `indirect` (INDIRECT_DESC negotiated) the chain
   * goes into an indirect table and takes one ring descriptor.
   */
  add(out: readonly Segment[], inn: readonly Segment[], token: T, indirect?: boolean): boolean;

  /** Publishes added buffers and returns whether the device must be notified (2.7.13 / 2.8.21). */
  kick(): boolean;

  /** 2.9 / 4.x: the value of a notification with NOTIFICATION_DATA (vq index in low 16 bits). */
  notificationData(): number;

  /** Next used buffer's token, or undefined; `lastUsedLen` holds its written length. */
  takeUsed(): T | undefined;
  /**
   * The length the device wrote into the buffer `takeUsed` returned last (the used entry's len).
   */
  readonly lastUsedLen: number;

  /** Suppresses used-buffer notifications. */
  disableInterrupts(): void;
  /** Re-enables them; returns true when used buffers are already pending (caller re-polls). */
  enableInterrupts(): boolean;
}
