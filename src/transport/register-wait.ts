/**
 * A driver waiting, without blocking the event loop, for a device register to show that an
 * operation finished: a queue reset (2.6.1) whose teardown the device completes later (an I/O it
 * still holds). The device keeps presenting 1 in queue_reset / QueueReset until then
 * (device/transport-pci/23, device/transport-mmio/11); the driver must not consider the reset
 * complete before it reads 0 (driver/transport-pci/20, driver/transport-mmio/14), must verify it
 * happened (driver/content/14), and may only then free the queue's memory (driver/content/15).
 */
import { ErrorCode, VirtioError } from '../errors.js';

/** Default of QueueResetWaitOptions.timeoutMs: 5 s, a device finishing an I/O it holds. */
export const DEFAULT_QUEUE_RESET_TIMEOUT_MS = 5000;

/** Reads made at once, before the first wait (a device that finishes within the write). */
const IMMEDIATE_READS = 8;
/** Event-loop turns polled back to back (promise continuations of the device settle there). */
const TURN_POLLS = 16;
/** Longest pause between two reads once the turns are spent. */
const MAX_PAUSE_MS = 10;

const turn = (): Promise<void> => new Promise<void>((resolve) => setImmediate(resolve));
const pause = (ms: number): Promise<void> => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Resolves once `done()` reads true: a few reads at once, then one per event-loop turn, then
 * with pauses doubling up to MAX_PAUSE_MS, so a device finishing in a promise continuation is
 * seen within a turn and a slow one costs no busy loop. Rejects with VirtioError TIMEOUT naming
 * `what` once `timeoutMs` passed (a device that never finishes is reported, not assumed done).
 * `done` re-selects what it reads each time (other code may have changed a selector meanwhile).
 */
export async function waitForRegister(done: () => boolean, what: string, timeoutMs = DEFAULT_QUEUE_RESET_TIMEOUT_MS): Promise<void> {
  if (!(Number.isFinite(timeoutMs) && timeoutMs >= 0)) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `timeoutMs ${timeoutMs} is not a duration`);
  for (let i = 0; i < IMMEDIATE_READS; i++) if (done()) return;
  const deadline = performance.now() + timeoutMs;
  let waitMs = 1;
  for (let polls = 0; ; polls++) {
    if (polls < TURN_POLLS) await turn();
    else {
      await pause(Math.min(waitMs, Math.max(0, deadline - performance.now())));
      waitMs = Math.min(waitMs * 2, MAX_PAUSE_MS);
    }
    if (done()) return;
    if (performance.now() >= deadline) throw new VirtioError(ErrorCode.TIMEOUT, `${what} did not complete within ${timeoutMs} ms`);
  }
}
