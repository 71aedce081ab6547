/**
 * The device's INTx line over x-remote (QEMU's remote iohub): this side creates two eventfds
 * and hands them over in SET_IRQFD. The device process signals the interrupt eventfd when the
 * line goes up; this side runs the driver's INTx handler, which reads ISR and so lowers the
 * line (4.1.4.5), then signals the resample eventfd, on which the device process signals the
 * interrupt again if the line is still up (level-triggered semantics over edge-style eventfds).
 */
import type { FdWatcher, Platform } from '../../platform/types.js';
import type { XRemoteConnection } from './connection.js';

/** One device's level-triggered INTx line carried over an interrupt and a resample eventfd. */
export class XRemoteIntxLine {
  /** Interrupts delivered so far. */
  interrupts = 0;
  /** The first error the handler threw (the line is then no longer watched). */
  failure: unknown = null;
  private readonly irqFd: number;
  private readonly resampleFd: number;
  private watcher: FdWatcher | null = null;
  private handler: (() => void) | null = null;
  private closed = false;

  constructor(private readonly platform: Platform) {
    this.irqFd = platform.eventfd();
    try {
      this.resampleFd = platform.eventfd();
    } catch (e) {
      platform.close(this.irqFd);
      throw e;
    }
  }

  /** Sends the eventfds to the device and starts delivering interrupts to `handler`. */
  connect(link: XRemoteConnection, handler: () => void): void {
    this.handler = handler;
    link.setIrqfd(this.irqFd, this.resampleFd);
    this.watcher = this.platform.watchReadable(this.irqFd, () => this.onIrq());
  }

  private onIrq(): void {
    if (this.platform.eventfdRead(this.irqFd) === 0) return;
    this.interrupts++;
    try {
      this.handler?.();
      this.platform.eventfdWrite(this.resampleFd, 1);
    } catch (e) {
      // The link broke under the handler (QEMU gone): stop listening; callers see the link error.
      this.failure ??= e;
      this.watcher?.stop();
    }
  }

  /** Stops watching and closes both eventfds. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.watcher?.stop();
    try {
      this.platform.close(this.irqFd);
    } finally {
      this.platform.close(this.resampleFd);
    }
  }
}
