/**
 * Cold paths of the packed virtqueue (PackedQueue, packed-queue.ts), kept apart from its
 * per-descriptor code: the checks on saved ring positions (`setState`, live migration) and the
 * rewind of nextAvail behind `undoPop`. Free functions over plain values: none runs per
 * descriptor or per chain, and the queue's ring fields stay private to the queue.
 */
import { ErrorCode, VirtioError } from '../errors.js';
import type { QueueState } from './types.js';

/**
 * Throws QUEUE_BAD_STATE unless `s` holds ring positions a packed queue of `size` can be at:
 * both in the ring, both wrap counters booleans, and the device neither behind the driver nor
 * ahead of it by more than one lap (2.8.1).
 */
export function checkPackedState(s: QueueState, size: number): void {
  const ok = (v: number): boolean => Number.isInteger(v) && v >= 0 && v < size;
  const wrapsOk = typeof s.availWrap === 'boolean' && typeof s.usedWrap === 'boolean';
  // The device cannot be ahead of the driver by more than one lap, nor behind it.
  const inFlight = wrapsOk && ok(s.nextAvail) && ok(s.nextUsed) ? (s.availWrap === s.usedWrap ? s.nextAvail - s.nextUsed : s.nextAvail + size - s.nextUsed) : -1;
  if (inFlight < 0 || inFlight > size) {
    throw new VirtioError(
      ErrorCode.QUEUE_BAD_STATE,
      `packed state avail ${s.nextAvail}/${s.availWrap} used ${s.nextUsed}/${s.usedWrap} does not fit a queue of ${size}`,
    );
  }
}

/** Throws INVALID_ARGUMENT unless `undoPop(count)` may run with `inFlight` buffers in flight. */
export function checkUndoCount(count: number, inFlight: number): void {
  // In flight = popped and not yet used; the caller vouches none of the last `count` was used.
  if (!Number.isInteger(count) || count < 1 || count > inFlight) {
    throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `undoPop(${count}) with ${inFlight} buffers in flight`);
  }
}

/** Where `undoPop` puts a packed queue back: its next ring position to read and wrap counter. */
export interface PackedRewind {
  /** Ring position of the oldest undone buffer. */
  nextAvail: number;
  /** The Driver Ring Wrap Counter expected there (2.8.1). */
  availWrap: boolean;
  /** Write position of `recentDescs` once the undone buffers are forgotten. */
  recentPos: number;
}

/**
 * Steps nextAvail back over the ring descriptors of the `count` newest popped buffers
 * (`recentDescs`, a ring of `size` written at `recentPos`), newest first, flipping the Driver
 * Ring Wrap Counter when crossing position 0 (2.8.1). The descriptors still carry the driver's
 * AVAIL/USED flags (the device writes a used descriptor only at push), so the next pops find the
 * same buffers. The event suppression offset stays ahead (see SplitQueue).
 */
export function rewindPackedAvail(recentDescs: Uint16Array, recentPos: number, nextAvail: number, availWrap: boolean, size: number, count: number): PackedRewind {
  let pos = nextAvail;
  let wrap = availWrap;
  let at = recentPos;
  for (let i = 0; i < count; i++) {
    at = at === 0 ? size - 1 : at - 1;
    pos -= recentDescs[at]!;
    if (pos < 0) {
      pos += size;
      wrap = !wrap;
    }
  }
  return { nextAvail: pos, availWrap: wrap, recentPos: at };
}
