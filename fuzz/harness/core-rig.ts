/**
 * A device brought up on the real DeviceCore over guarded guest memory, with its queue's pops
 * and pushes counted so a target can check that every popped chain was completed (or the
 * device set DEVICE_NEEDS_RESET). The ring contents are the target's to write.
 */
import { createHash } from 'node:crypto';
import { DeviceCore } from '../../src/device/device-core.js';
import { setUpQueue } from '../../src/device/queue-register-file.js';
import type { VirtioDevice } from '../../src/device/types.js';
import type { DeviceQueue } from '../../src/queue/types.js';
import { F } from '../../src/spec/features.js';
import { Status } from '../../src/spec/status.js';
import { check } from '../engine/target.js';
import { GuardedMemory } from './guarded-memory.js';
import { drain } from './reuse.js';

export const GUEST_BASE = 0x10000;
export const GUEST_SIZE = 0x10000;
/** Ring areas (packed: the descriptor ring at DESC, event structures at AVAIL and USED). */
export const DESC = GUEST_BASE;
export const AVAIL = GUEST_BASE + 0x1000;
export const USED = GUEST_BASE + 0x2000;
/** Where data buffers go. */
export const DATA = GUEST_BASE + 0x3000;

/**
 * Where queue `index` of `queues` has its areas inside DESC, AVAIL and USED (each 4 KiB):
 * 0x400 apart for up to 4 queues (queue size up to 32), closer for more (0x300 for 5, 0x200
 * for 6 to 8: still room for 32 descriptors), so a fifth queue's descriptor table does not
 * run into queue 0's driver area. Up to 16 queues (then 0x100 apart: 16 descriptors).
 */
export function queueAreaOffset(index: number, queues: number): number {
  return index * (queues <= 4 ? 0x400 : Math.max(0x100, Math.floor(0x1000 / queues / 0x100) * 0x100));
}

export interface RigOptions {
  readonly device: VirtioDevice;
  readonly queueSize: number;
  /** Queues to set up (default: queue 0 only). */
  readonly queues?: number;
  /** Queues where the device keeps buffers for later (receive, event): not expected completed. */
  readonly heldQueues?: readonly number[];
  /** Puts the host side behind the device (a RAM disk, a socket table) back as built. */
  readonly resetHost?: () => void;
  /** The host side's bytes (RAM disks), part of the fingerprint. */
  readonly hostState?: () => readonly Uint8Array[];
  /** Whether guest memory is part of the fingerprint (default true; see DeviceChainsSpec). */
  readonly memoryInFingerprint?: boolean;
  /** Guest memory to use (kept by the caller across rigs), instead of a new one. */
  readonly guarded?: GuardedMemory;
}

/**
 * Built once per target and reused (see harness/reuse.ts): `start` resets the device through
 * the core (2.4), zeroes guest memory, puts the host side back, and brings the device up again
 * with the features of the next input.
 */
export class CoreRig {
  readonly guarded: GuardedMemory;
  readonly core: DeviceCore;
  popped = 0;
  completed = 0;
  usedSignals = 0;
  /** A running hash of the used elements the target read back (noteUsed). */
  usedHash = 0;
  /** Per queue: chains popped and completed. */
  readonly poppedBy: number[] = [];
  readonly completedBy: number[] = [];
  private readonly queues: number;
  private readonly held: readonly number[];
  /** Queues whose methods count already (a core may keep its queue objects across a reset). */
  private readonly wrapped = new WeakSet<DeviceQueue>();

  constructor(private readonly opts: RigOptions) {
    this.queues = opts.queues ?? 1;
    this.held = opts.heldQueues ?? [];
    this.guarded = opts.guarded ?? new GuardedMemory(GUEST_BASE, GUEST_SIZE);
    this.core = new DeviceCore(opts.device, {
      memory: this.guarded.memory,
      interrupts: { usedBuffer: () => this.usedSignals++, configChange: () => {} },
    });
  }

  /**
   * Readies the rig for one input: device reset, memory zeroed, host side reset, then the
   * driver's bring-up (3.1.1) accepting VERSION_1 (RING_PACKED when `packed`) and `extraFeatures`
   * of what the device offers.
   */
  start(packed: boolean, extraFeatures: bigint): void {
    const core = this.core;
    core.setStatus(0);
    this.guarded.clear();
    this.opts.resetHost?.();
    this.popped = this.completed = this.usedSignals = this.usedHash = 0;
    core.setStatus(Status.ACKNOWLEDGE);
    core.setStatus(Status.ACKNOWLEDGE | Status.DRIVER);
    const want = (F.VERSION_1 | (packed ? F.RING_PACKED : 0n) | extraFeatures) & core.deviceFeatures();
    core.setDriverFeatures(want);
    core.setStatus(Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK);
    const n = this.queues;
    for (let q = 0; q < n; q++) {
      const off = queueAreaOffset(q, n);
      setUpQueue(core, q, { size: this.opts.queueSize, descAddr: DESC + off, driverAddr: AVAIL + off, deviceAddr: USED + off });
    }
    core.setStatus(Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK | Status.DRIVER_OK);
    check(core.active, 'protocol', 'the rig could not bring the device up');
    for (let q = 0; q < n; q++) this.count(q, core.queue(q));
  }

  /** Chains popped from request-style queues and not completed yet: the device's async work. */
  get outstanding(): boolean {
    for (let q = 0; q < this.queues; q++) if (!this.held.includes(q) && this.poppedBy[q] !== this.completedBy[q]) return true;
    return false;
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
    if (!q || this.wrapped.has(q)) return;
    this.wrapped.add(q);
    // Fixed-arity wrappers (no rest arrays, no bound functions): they run on every ring call.
    let depth = 0;
    const { pop, undoPop, push, pushDeferred, pushId, pushInOrderBatch } = q;
    const popped = (n: number): void => {
      this.popped += n;
      this.poppedBy[index]! += n;
    };
    const completed = (n: number): void => {
      this.completed += n;
      this.completedBy[index]! += n;
    };
    q.pop = (chain) => {
      depth++;
      let got: boolean;
      try {
        got = pop.call(q, chain);
      } finally {
        depth--;
      }
      if (depth === 0 && got) popped(1);
      return got;
    };
    q.undoPop = (count) => {
      depth++;
      try {
        undoPop.call(q, count);
      } finally {
        depth--;
      }
      if (depth === 0) popped(-count);
    };
    q.push = (chain, written) => {
      depth++;
      try {
        push.call(q, chain, written);
      } finally {
        depth--;
      }
      if (depth === 0) completed(1);
    };
    q.pushDeferred = (chain, written) => {
      depth++;
      try {
        pushDeferred.call(q, chain, written);
      } finally {
        depth--;
      }
      if (depth === 0) completed(1);
    };
    q.pushId = (id, ringDescs, written) => {
      depth++;
      try {
        pushId.call(q, id, ringDescs, written);
      } finally {
        depth--;
      }
      if (depth === 0) completed(1);
    };
    q.pushInOrderBatch = (lastId, count, written) => {
      depth++;
      try {
        pushInOrderBatch.call(q, lastId, count, written);
      } finally {
        depth--;
      }
      if (depth === 0) completed(count);
    };
  }

  /**
   * Lets the device's promise completions and deferred notifications run: microtasks only while
   * no chain is outstanding (the devices behind the rigs complete synchronously or in promise
   * continuations), event-loop turns while one is.
   */
  settle(): Promise<void> {
    return drain(() => this.outstanding);
  }

  /** Records a used element read back by the target, into the fingerprint (no allocation). */
  noteUsed(queue: number, id: number, len: number): void {
    this.usedHash = (Math.imul(this.usedHash, 31) + Math.imul(queue + 1, 0x9e3779b1) + Math.imul(id + 1, 0x85ebca6b) + len) | 0;
  }

  /**
   * What the last input left: guest memory and host-side bytes (digest), chains popped and completed per queue,
   * notifications, device status. The reuse test compares it between a reused and a fresh rig.
   */
  fingerprint(): string {
    const hash = createHash('sha1');
    if (this.opts.memoryInFingerprint !== false) hash.update(this.guarded.bytes);
    for (const b of this.opts.hostState?.() ?? []) hash.update(b);
    const digest = hash.digest('hex');
    return `${digest} used ${this.usedHash} popped ${this.poppedBy.join(',')} completed ${this.completedBy.join(',')} signals ${this.usedSignals} status ${this.core.status}`;
  }

  /** The invariants after a run: guards intact, every popped chain completed or NEEDS_RESET. */
  checkEnd(): void {
    this.guarded.checkGuards();
    if (!this.needsReset) check(this.completed === this.popped, 'chain-not-completed', `${this.popped} chains popped, ${this.completed} completed, device not in NEEDS_RESET`);
  }
}
