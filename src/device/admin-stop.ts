/**
 * The stopped mode of a group member device (2.12.1.5 "Device parts", VIRTIO_ADMIN_CMD_DEV_MODE_SET
 * with VIRTIO_ADMIN_CMD_DEV_MODE_F_STOPPED), as DeviceCore runs it.
 *
 * Unlike Device Suspend (suspend-protocol.ts) the owner, not the member's driver, stops the
 * member, and the member's status byte does not change: the member's driver keeps running and
 * may go on notifying. A stopped device initiates no transport request (device/admin-cmds-device-parts/9):
 * no virtqueue access, no used-buffer and no configuration change notification. Driver
 * notifications are accepted and remembered (device/admin-cmds-device-parts/8), and delivered when the
 * device resumes, with the notifications the device held meanwhile, so nothing is lost.
 *
 * Stopping finishes what is outstanding first (device/admin-cmds-device-parts/8): the device's suspend
 * hook stops popping and resolves once every buffer it took is used and notified, so the used
 * ring holds every observed buffer and a split ring's position can be read from it.
 */
import type { DeviceQueue, QueueState } from '../queue/types.js';
import type { VirtioDevice } from './types.js';
import { ErrorCode, VirtioError } from '../errors.js';

/** What the stop reads of the core. */
export interface AdminStopHost {
  readonly device: VirtioDevice;
  /** Bumped at every reset: a stop finishing after one is over at once. */
  readonly epoch: number;
  /** Whether the device was activated (its queues may be in use). */
  readonly active: boolean;
  /** Delivers a held driver notification. */
  notifyQueue(index: number): void;
  /** Delivers a held used-buffer notification (with event suppression). */
  signalUsed(index: number): void;
  /** Delivers a held configuration change notification. */
  configChange(): void;
}

const Mode = { RUNNING: 0, STOPPING: 1, STOPPED: 2 } as const;
type Mode = (typeof Mode)[keyof typeof Mode];

export class AdminStop {
  private mode: Mode = Mode.RUNNING;
  /** The epoch in which the device's suspend hook was called (-1: not suspended). */
  private suspendedEpoch = -1;
  private readonly heldKicks: Uint8Array;
  private readonly heldUsed: Uint8Array;
  private heldConfig = false;
  /** Ring positions the next activation starts its queues at (a restore). */
  private pendingStates: readonly (QueueState | null)[] | null = null;
  /** An activation (DRIVER_OK) that came while stopped: it runs at resume. */
  private deferred: (() => void) | null = null;
  /** Resolves a stop waiting for the device when a reset ends the wait. */
  private wake: (() => void) | null = null;

  constructor(
    private readonly host: AdminStopHost,
    numQueues: number,
  ) {
    this.heldKicks = new Uint8Array(numQueues);
    this.heldUsed = new Uint8Array(numQueues);
  }

  /** Stopping or stopped. */
  get active(): boolean {
    return this.mode !== Mode.RUNNING;
  }

  /** Stopped: the stop command completed. */
  get stopped(): boolean {
    return this.mode === Mode.STOPPED;
  }

  /**
   * Stops the device. Resolves once nothing is outstanding. Stopping a stopped device succeeds at
   * once (device/admin-cmds-device-parts/11). Rejects (mode unchanged) when the device is running and
   * cannot finish its outstanding buffers: it has no suspend hook.
   */
  async stop(): Promise<void> {
    if (this.mode === Mode.STOPPED) return;
    const h = this.host;
    if (this.mode === Mode.RUNNING && h.active && h.device.suspend === undefined) {
      throw new VirtioError(ErrorCode.STATUS_INVALID, 'the device has no suspend hook: it cannot finish its outstanding buffers to stop');
    }
    this.mode = Mode.STOPPING;
    const epoch = h.epoch;
    if (h.active && this.suspendedEpoch !== epoch) {
      this.suspendedEpoch = epoch;
      try {
        const done = h.device.suspend!();
        // A reset meanwhile ends the wait: the device has nothing outstanding after it.
        if (done !== undefined) await Promise.race([done, new Promise<void>((resolve) => (this.wake = resolve))]);
      } catch (e) {
        // The command fails without side effects: the device runs on.
        this.mode = Mode.RUNNING;
        this.suspendedEpoch = -1;
        throw new VirtioError(ErrorCode.DEVICE_ERROR, `the device could not stop: ${String(e)}`, { cause: e });
      } finally {
        this.wake = null;
      }
    }
    if (this.mode === Mode.STOPPING) this.mode = Mode.STOPPED;
  }

  /**
   * Resumes: the device consumes buffers again, then the notifications held while stopped go
   * out. Resuming a running device does nothing (device/admin-cmds-device-parts/12). `kickAll` also
   * notifies every queue once (a restored device re-reads rings the driver filled elsewhere).
   */
  resume(kickAll = false): void {
    if (this.mode === Mode.RUNNING) return;
    const h = this.host;
    this.mode = Mode.RUNNING;
    this.wake?.();
    this.wake = null;
    if (this.suspendedEpoch === h.epoch && h.active) h.device.resume?.();
    this.suspendedEpoch = -1;
    const activate = this.deferred;
    this.deferred = null;
    activate?.();
    if (this.heldConfig) {
      this.heldConfig = false;
      h.configChange();
    }
    for (let i = 0; i < this.heldUsed.length; i++) {
      if (this.heldUsed[i] === 0) continue;
      this.heldUsed[i] = 0;
      h.signalUsed(i);
    }
    for (let i = 0; i < this.heldKicks.length; i++) {
      if (this.heldKicks[i] === 0 && !kickAll) continue;
      this.heldKicks[i] = 0;
      h.notifyQueue(i);
    }
  }

  /**
   * The member's driver set DRIVER_OK while the device is stopped (after a member reset): true
   * when the activation is held until resume, as a device serves the buffers already there when
   * it starts, and a stopped device accesses no virtqueue (device/admin-cmds-device-parts/9).
   */
  deferActivation(activate: () => void): boolean {
    if (this.mode === Mode.RUNNING) return false;
    this.deferred = activate;
    return true;
  }

  /** A driver notification: true when held (stopping or stopped), to be delivered at resume. */
  holdKick(index: number): boolean {
    if (this.mode === Mode.RUNNING) return false;
    if (index >= 0 && index < this.heldKicks.length) this.heldKicks[index] = 1;
    return true;
  }

  /** A used-buffer notification: held once stopped (those of buffers finishing while stopping go out). */
  holdUsed(index: number): boolean {
    if (this.mode !== Mode.STOPPED) return false;
    if (index >= 0 && index < this.heldUsed.length) this.heldUsed[index] = 1;
    return true;
  }

  /** A configuration change notification: held while stopping or stopped. */
  holdConfigChange(): boolean {
    if (this.mode === Mode.RUNNING) return false;
    this.heldConfig = true;
    return true;
  }

  /** Ring positions for the queues of the next activation (null entries: start as built). */
  restoreQueueStatesAtActivation(states: readonly (QueueState | null)[]): void {
    this.pendingStates = states;
  }

  /** Activation: applies restored positions to the queues just built (throws QUEUE_BAD_STATE). */
  applyPendingStates(queues: readonly (DeviceQueue | null)[]): void {
    const states = this.pendingStates;
    this.pendingStates = null;
    if (states === null) return;
    for (let i = 0; i < queues.length; i++) {
      const s = states[i];
      const q = queues[i];
      if (s && q) q.setState(s);
    }
  }

  /**
   * Device reset: the device has nothing outstanding and its parts are at their defaults
   * (device/admin-cmds-device-parts/13); held notifications and restored positions are void. The mode
   * itself is the owner's and stays.
   */
  reset(): void {
    this.heldKicks.fill(0);
    this.heldUsed.fill(0);
    this.heldConfig = false;
    this.pendingStates = null;
    this.suspendedEpoch = -1;
    this.deferred = null;
    this.wake?.();
    this.wake = null;
  }
}
