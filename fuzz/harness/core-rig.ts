/**
 * A device brought up on the real DeviceCore over guarded guest memory, with its queue's pops
 * and pushes counted so a target can check that every popped chain was completed (or the
 * device set DEVICE_NEEDS_RESET). The ring contents are the target's to write.
 */
import { DeviceCore } from '../../src/device/device-core.js';
import { setUpQueue } from '../../src/device/queue-register-file.js';
import type { VirtioDevice } from '../../src/device/types.js';
import type { DeviceQueue } from '../../src/queue/types.js';
import { F } from '../../src/spec/features.js';
import { Status } from '../../src/spec/status.js';
import { check } from '../engine/target.js';
import { GuardedMemory } from './guarded-memory.js';

export const GUEST_BASE = 0x10000;
export const GUEST_SIZE = 0x10000;
/** Ring areas (packed: the descriptor ring at DESC, event structures at AVAIL and USED). */
export const DESC = GUEST_BASE;
export const AVAIL = GUEST_BASE + 0x1000;
export const USED = GUEST_BASE + 0x2000;
/** Where data buffers go. */
export const DATA = GUEST_BASE + 0x3000;

export interface RigOptions {
  readonly device: VirtioDevice;
  readonly queueSize: number;
  readonly packed: boolean;
  /** Feature bits the driver accepts beyond VERSION_1 (and RING_PACKED when packed). */
  readonly extraFeatures: bigint;
  /** Queues to set up (default: queue 0 only). */
  readonly queues?: number;
}

export class CoreRig {
  readonly guarded = new GuardedMemory(GUEST_BASE, GUEST_SIZE);
  readonly core: DeviceCore;
  popped = 0;
  completed = 0;
  usedSignals = 0;
  /** Per queue: chains popped and completed. */
  readonly poppedBy: number[] = [];
  readonly completedBy: number[] = [];

  constructor(opts: RigOptions) {
    this.core = new DeviceCore(opts.device, {
      memory: this.guarded.memory,
      interrupts: { usedBuffer: () => this.usedSignals++, configChange: () => {} },
    });
    const core = this.core;
    core.setStatus(Status.ACKNOWLEDGE);
    core.setStatus(Status.ACKNOWLEDGE | Status.DRIVER);
    const want = (F.VERSION_1 | (opts.packed ? F.RING_PACKED : 0n) | opts.extraFeatures) & core.deviceFeatures();
    core.setDriverFeatures(want);
    core.setStatus(Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK);
    const n = opts.queues ?? 1;
    for (let q = 0; q < n; q++) {
      const off = q * 0x400;
      setUpQueue(core, q, { size: opts.queueSize, descAddr: DESC + off, driverAddr: AVAIL + off, deviceAddr: USED + off });
    }
    core.setStatus(Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK | Status.DRIVER_OK);
    check(core.active, 'protocol', 'the rig could not bring the device up');
    for (let q = 0; q < n; q++) this.count(q, core.queue(q));
  }

  get memory(): GuardedMemory['memory'] {
    return this.guarded.memory;
  }

  get needsReset(): boolean {
    return (this.core.status & Status.DEVICE_NEEDS_RESET) !== 0;
  }

  /**
   * Wraps the queue's pop and push family to count chains in and out. A queue may implement one
   * through another (split `push` calls `pushId`): only the outermost call counts.
   */
  private count(index: number, q: DeviceQueue | null): void {
    this.poppedBy[index] = 0;
    this.completedBy[index] = 0;
    if (!q) return;
    let depth = 0;
    const outer = <A extends unknown[], R>(fn: (...a: A) => R, after: (r: NoInfer<R>, a: NoInfer<A>) => void): ((...a: A) => R) => {
      return (...a: A): R => {
        depth++;
        let r: R;
        try {
          r = fn(...a);
        } finally {
          depth--;
        }
        if (depth === 0) after(r, a);
        return r;
      };
    };
    const popped = (n: number): void => {
      this.popped += n;
      this.poppedBy[index]! += n;
    };
    const completed = (n: number): void => {
      this.completed += n;
      this.completedBy[index]! += n;
    };
    q.pop = outer(q.pop.bind(q), (got) => {
      if (got) popped(1);
    });
    q.undoPop = outer(q.undoPop.bind(q), (_r, [n]) => popped(-n));
    q.push = outer(q.push.bind(q), () => completed(1));
    q.pushDeferred = outer(q.pushDeferred.bind(q), () => completed(1));
    q.pushId = outer(q.pushId.bind(q), () => completed(1));
    q.pushInOrderBatch = outer(q.pushInOrderBatch.bind(q), (_r, [, n]) => completed(n));
  }

  /** Lets the device's promise completions and deferred notifications run. */
  async settle(): Promise<void> {
    await new Promise<void>((r) => setImmediate(r));
  }

  /** The invariants after a run: guards intact, every popped chain completed or NEEDS_RESET. */
  checkEnd(): void {
    this.guarded.checkGuards();
    if (!this.needsReset) check(this.completed === this.popped, 'chain-not-completed', `${this.popped} chains popped, ${this.completed} completed, device not in NEEDS_RESET`);
  }
}
