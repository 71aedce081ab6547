/**
 * Device Suspend (content.tex "Device Suspend", VIRTIO_F_SUSPEND), as DeviceCore runs it for a
 * device with suspend and resume hooks.
 *
 * The driver writes its status with SUSPEND added while DRIVER_OK is set: the device stops
 * consuming buffers, lets those in processing be used and notified (device/content/19), then
 * presents SUSPEND 1 and DRIVER_OK 0; a device that cannot suspend sets DEVICE_NEEDS_RESET
 * (device/content/17). The driver then writes its status with DRIVER_OK added: the device
 * resumes and presents SUSPEND 0 and DRIVER_OK 1, or sets DEVICE_NEEDS_RESET
 * (device/content/18). A configuration change meanwhile is notified at resume
 * (device/content/15, /16). The core asks only once the feature is negotiated and the device
 * is running; otherwise the bit is dropped like any bit the driver may not set
 * (device/content/13).
 */
import type { Logger } from '../log.js';
import { Status } from '../spec/status.js';
import type { VirtioDevice } from './types.js';

/** What the protocol reads and changes of the core. */
export interface SuspendHost {
  readonly device: VirtioDevice;
  readonly log: Logger;
  /** Bumped at every reset: a suspension finishing after one is void. */
  readonly epoch: number;
  status: number;
  needsReset(reason: string, cause: unknown): void;
  /** Sends a configuration change notification. */
  configChange(): void;
}

const State = { NONE: 0, SUSPENDING: 1, SUSPENDED: 2 } as const;
type State = (typeof State)[keyof typeof State];

export class SuspendProtocol {
  private state: State = State.NONE;
  private configChangeHeld = false;

  constructor(private readonly host: SuspendHost) {}

  /** Suspending or suspended: no queue access, no notifications, config writes ignored. */
  get active(): boolean {
    return this.state !== State.NONE;
  }

  /** Suspended (SUSPEND presented): not even the notifications of finishing buffers. */
  get suspended(): boolean {
    return this.state === State.SUSPENDED;
  }

  /**
   * A status write `v` over `cur`: starts a suspension or a resume and returns true, or returns
   * false for any other write (the core handles it).
   */
  write(cur: number, v: number): boolean {
    if (this.state === State.NONE && cur & Status.DRIVER_OK && v === (cur | Status.SUSPEND)) {
      this.suspend();
      return true;
    }
    if (this.state === State.SUSPENDED && v === (cur | Status.DRIVER_OK)) {
      this.resume();
      return true;
    }
    return false;
  }

  /** A configuration change: held (true) while suspending or suspended. */
  holdConfigChange(): boolean {
    if (this.state === State.NONE) return false;
    this.configChangeHeld = true;
    return true;
  }

  reset(): void {
    this.state = State.NONE;
    this.configChangeHeld = false;
  }

  private suspend(): void {
    const h = this.host;
    this.state = State.SUSPENDING;
    const epoch = h.epoch;
    const failed = (e: unknown): void => {
      if (epoch !== h.epoch) return;
      this.state = State.NONE;
      h.needsReset(`suspend failed: ${String(e)}`, e);
    };
    const done = (): void => {
      if (epoch !== h.epoch || this.state !== State.SUSPENDING) return;
      this.state = State.SUSPENDED;
      h.status = (h.status & ~Status.DRIVER_OK) | Status.SUSPEND;
      h.log.debug('suspended');
    };
    try {
      const r = h.device.suspend!();
      if (r !== undefined) r.then(done, failed);
      else done();
    } catch (e) {
      failed(e);
    }
  }

  private resume(): void {
    const h = this.host;
    try {
      h.device.resume!();
    } catch (e) {
      h.needsReset(`resume failed: ${String(e)}`, e);
      return;
    }
    this.state = State.NONE;
    h.status = (h.status & ~Status.SUSPEND) | Status.DRIVER_OK;
    h.log.debug('resumed');
    if (this.configChangeHeld) {
      this.configChangeHeld = false;
      h.configChange();
    }
  }
}
