/**
 * Ring targets share their step loop: after the initial ring contents, the input continues
 * with steps (notify, overwrite a ring byte range, bump the driver index, reset the queue's
 * device), each bounded, so one input is a whole driver session of bounded length.
 */
import type { ByteReader } from '../engine/byte-reader.js';
import { check } from '../engine/target.js';
import { type CoreRig, GUEST_BASE, GUEST_SIZE } from './core-rig.js';

/** Steps per input: the step budget of the harness itself. */
export const MAX_STEPS = 24;

export async function runRingSteps(rig: CoreRig, r: ByteReader, bumpIndex: (by: number) => void): Promise<void> {
  for (let s = 0; s < MAX_STEPS && !r.done; s++) {
    switch (r.below(4)) {
      case 0:
        rig.core.notifyQueue(0);
        break;
      case 1: {
        // The driver rewrites part of the ring or a buffer while the device may be using it.
        const off = r.u16() % GUEST_SIZE;
        const data = r.bytes(1 + r.below(32));
        rig.guarded.bytes.set(data.subarray(0, Math.min(data.length, GUEST_SIZE - off)), off);
        break;
      }
      case 2:
        bumpIndex(1 + r.below(4));
        rig.core.notifyQueue(0);
        break;
      default:
        await rig.settle();
    }
  }
  rig.core.notifyQueue(0);
  await rig.settle();
  await rig.settle();
  check(GUEST_BASE > 0, 'protocol', 'guest memory starts above 0 so address 0 is unmapped');
}
