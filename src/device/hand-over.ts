/**
 * When the queue server hands completions to a driver that runs alongside the device (a
 * vhost-user front-end: `DeviceContext.notifyUsedNow`, with EVENT_IDX) in the middle of a pass:
 * after every so many synchronous completions it publishes them and notifies the driver if it
 * waits for them (its used_event says so), so the driver consumes and refills while the device
 * serves the rest. Without it the two sides take turns, the driver idle for the whole pass and
 * the device idle while the driver works; too often, and each hand-over the driver waits for
 * costs the device a call eventfd write, a few µs where system calls trap to a hypervisor
 * (bench/README.md "s20-fs").
 */
import { ErrorCode, VirtioError } from '../errors.js';
import type { DeviceQueue } from '../queue/types.js';

/** Completions per hand-over by default, and at least where a device asks for more. */
export const HAND_OVER_EVERY = 4;

/** A device's `QueueServerOptions.handOverEvery`, checked (default HAND_OVER_EVERY). */
export function handOverCap(asked: number | undefined): number {
  const every = asked ?? HAND_OVER_EVERY;
  if (!Number.isInteger(every) || every < 1) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `handOverEvery is a positive integer, not ${every}`);
  return every;
}

/**
 * Completions per hand-over in the round starting now on `vq`: up to a `cap` above
 * HAND_OVER_EVERY, half of what the driver made available, so it refills while the device
 * serves the other half (at the whole depth the two sides take turns: virtio-fs at 8 in flight,
 * 4 KiB reads 30 % slower with 8 than 4). The cap where the ring cannot tell (packed rings).
 */
export function handOverPoint(cap: number, vq: DeviceQueue): number {
  if (cap <= HAND_OVER_EVERY) return cap;
  const n = vq.availableCount?.() ?? -1;
  return n < 0 ? cap : Math.min(cap, Math.max(HAND_OVER_EVERY, n >>> 1));
}
