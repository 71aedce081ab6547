/**
 * 2.1 / 3.1.1 Device status, the device side's first decision on a driver's status write: which
 * of the bits it sets the device takes. Pure function of the current byte and the written one,
 * used by DeviceCore before it negotiates features (FEATURES_OK) or activates (DRIVER_OK).
 */
import type { Logger } from '../log.js';
import { Status, statusToString } from '../spec/status.js';

/** Bits the driver may write in the status byte (SUSPEND is not offered, 0x20 is reserved). */
export const DRIVER_STATUS_BITS = Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK | Status.DRIVER_OK | Status.FAILED;

/**
 * The bits a non-zero status write `v` adds to `cur` that the device accepts (0: the write is
 * ignored), each refusal logged on `log`:
 * - a write that clears a set bit is ignored (driver/content/2: only a write of 0 clears);
 * - after FAILED only a reset restarts the device (driver/content/3);
 * - DRIVER_OK waits for a reset while DEVICE_NEEDS_RESET is set (2.1.2);
 * - 3.1.1's order (ACKNOWLEDGE, DRIVER, FEATURES_OK, DRIVER_OK): a bit whose earlier steps are
 *   neither set nor in this write is dropped, so the device never negotiates or activates for a
 *   driver that skipped a step.
 */
export function acceptedStatusBits(cur: number, v: number, log: Logger): number {
  const wanted = v & DRIVER_STATUS_BITS;
  const cleared = cur & DRIVER_STATUS_BITS & ~wanted;
  if (cleared !== 0) {
    log.warn(`status write 0x${v.toString(16)} clears ${statusToString(cleared)}: ignored`);
    return 0;
  }
  let added = wanted & ~cur;
  if (added === 0) return 0;
  if (cur & Status.FAILED) {
    log.warn(`status write 0x${v.toString(16)} after FAILED: ignored until reset`);
    return 0;
  }
  if (cur & Status.DEVICE_NEEDS_RESET) added &= ~Status.DRIVER_OK;
  if (added & Status.DRIVER && !((cur | added) & Status.ACKNOWLEDGE)) added &= ~Status.DRIVER;
  if (added & Status.FEATURES_OK && !((cur | added) & Status.DRIVER)) added &= ~Status.FEATURES_OK;
  if (added & Status.DRIVER_OK && !((cur | added) & Status.DRIVER)) added &= ~Status.DRIVER_OK;
  if (added !== (wanted & ~cur)) log.warn(`status write 0x${v.toString(16)} skips a step of 3.1.1: ${statusToString((wanted & ~cur) & ~added)} ignored`);
  return added;
}
