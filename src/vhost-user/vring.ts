/**
 * One vring's protocol state (vhost-user.rst "Ring states"): size, addresses and base collected
 * while stopped; started by SET_VRING_KICK and stopped by GET_VRING_BASE; enabled by
 * SET_VRING_ENABLE(1), or from the start when VHOST_USER_F_PROTOCOL_FEATURES was not negotiated.
 * Only a started and enabled ring is lent to the device core.
 */
import type { QueueError } from '../errors.js';
import type { FdWatcher } from '../platform/types.js';
import type { QueueState } from '../queue/types.js';
import { MAX_QUEUE_SIZE } from '../spec/ring.js';
import type { VringAddr } from './messages.js';
import type { VhostQueue } from './vhost-queue.js';

/**
 * Whether a ring is being served: 'started' after its kick fd and a SET_VRING_ENABLE (with protocol
 * features) or GET_VRING_BASE stopped it.
 */
export type RingPhase = 'stopped' | 'started';

/** Busy-poll adaptation: the first suspension length (see RingScheduler). */
export const POLL_SUSPEND_MIN = 16;

export interface Vring {
  /** The ring index. */
  readonly index: number;
  readonly maxSize: number;
  num: number;
  addr: VringAddr | null;
  base: number;
  kickFd: number;
  callFd: number;
  errFd: number;
  polling: boolean;
  started: boolean;
  enabled: boolean;
  littleEndian: boolean;
  queue: VhostQueue | null;
  watcher: FdWatcher | null;
  pollTimer: ReturnType<typeof setInterval> | null;
  broken: QueueError | null;
  /** A used-buffer notification was asked for during the current processing pass. */
  callPending: boolean;
  /** Busy-poll adaptation: consecutive episodes whose polling found nothing. */
  pollWasted: number;
  /** Episodes left to run without polling, and the length of the next suspension. */
  pollSuspended: number;
  pollSuspendLen: number;
  /** Guest addresses of the ring parts while started. */
  descGuest: number;
  usedGuest: number;
}

/** Snapshot of a ring for logs and tests. */
export interface RingInfo {
  /** The ring's queue index (the vring index of the vhost-user messages). */
  readonly index: number;
  /** Ring size from SET_VRING_NUM (0 before it). */
  readonly num: number;
  /** Whether the ring is being served. */
  readonly started: boolean;
  /**
   * Whether SET_VRING_ENABLE enabled it (rings start disabled when protocol features are
   * negotiated).
   */
  readonly enabled: boolean;
  /** The kick eventfd from SET_VRING_KICK, or -1 (none, or polling). */
  readonly kickFd: number;
  /** The call eventfd from SET_VRING_CALL, or -1. */
  readonly callFd: number;
  /** The error eventfd from SET_VRING_ERR, or -1. */
  readonly errFd: number;
  /** The ring has no kick fd (SET_VRING_KICK with the no-fd flag): the back-end polls it. */
  readonly polling: boolean;
  /** The ring rule the front-end's driver broke, if any (the device is then DEVICE_NEEDS_RESET). */
  readonly broken: QueueError | null;
}

export function newVring(index: number, deviceMax: number): Vring {
  return {
    index,
    maxSize: Math.min(deviceMax, MAX_QUEUE_SIZE),
    num: 0,
    addr: null,
    base: 0,
    kickFd: -1,
    callFd: -1,
    errFd: -1,
    polling: false,
    started: false,
    enabled: false,
    littleEndian: true,
    queue: null,
    watcher: null,
    pollTimer: null,
    broken: null,
    callPending: false,
    pollWasted: 0,
    pollSuspended: 0,
    pollSuspendLen: POLL_SUSPEND_MIN,
    descGuest: -1,
    usedGuest: -1,
  };
}

export function ringInfo(r: Vring): RingInfo {
  return {
    index: r.index,
    num: r.num,
    started: r.started,
    enabled: r.enabled,
    kickFd: r.kickFd,
    callFd: r.callFd,
    errFd: r.errFd,
    polling: r.polling,
    broken: r.broken,
  };
}

/**
 * GET_VRING_BASE's value. Split: the 16-bit avail index. Packed (QEMU's format): bits 0-14 avail
 * position, 15 its wrap counter, 16-30 used position, 31 its wrap counter.
 */
export function encodeVringBase(s: QueueState, packed: boolean): number {
  if (!packed) return s.nextAvail & 0xffff;
  const avail = (s.nextAvail & 0x7fff) | (s.availWrap ? 0x8000 : 0);
  const used = (s.nextUsed & 0x7fff) | (s.usedWrap ? 0x8000 : 0);
  return (avail | (used << 16)) >>> 0;
}

/**
 * The queue position a ring starts from when no saved state is at hand (SET_VRING_BASE).
 * Split: avail from the base, used from the used ring in guest memory (`usedIdx`).
 */
export function stateFromBase(base: number, packed: boolean, usedIdx: () => number): QueueState {
  if (packed) {
    const avail = base & 0xffff;
    // A front-end that sends only the avail half (DPDK's format) stopped the ring with
    // nothing in flight: the used position is the avail position.
    const used = base >>> 16 || avail;
    return {
      nextAvail: avail & 0x7fff,
      availWrap: (avail & 0x8000) !== 0,
      nextUsed: used & 0x7fff,
      usedWrap: (used & 0x8000) !== 0,
    };
  }
  return { nextAvail: base & 0xffff, nextUsed: usedIdx(), availWrap: true, usedWrap: true };
}
