/**
 * Dirty page logging for live migration (vhost-user.rst "Migration", LOG_SHMFD): the log area
 * of SET_LOG_BASE, the SET_LOG_FD eventfd, and which guest ranges each started ring logs while
 * VHOST_F_LOG_ALL is negotiated. The marking itself is DirtyLog's and VhostQueue's.
 */
import type { Logger } from '../log.js';
import type { Mapping, Platform } from '../platform/types.js';
import { SplitLayout } from '../spec/ring.js';
import { VhostUserError, VhostUserFault, decodeLog, encodeU64 } from './codec.js';
import { type MessageDispatcher, takeFds } from './dispatcher.js';
import { FrontendReq, PF, VHOST_VRING_F_LOG } from './messages.js';
import { DirtyLog } from './vhost-queue.js';
import type { Vring } from './vring.js';

export interface DirtyLogHost {
  requireProto(req: number, mask: bigint): void;
  /** The log area changed: logging is re-applied to the rings. */
  logChanged(): void;
}

export class SessionDirtyLog {
  private log: DirtyLog | null = null;
  private mapping: Mapping | null = null;
  private logFd = -1;
  /** Whether the rings log now (LOG_ALL and a log area). */
  private logging = false;

  constructor(
    private readonly platform: Platform,
    private readonly logger: Logger,
    private readonly host: DirtyLogHost,
  ) {}

  register(d: MessageDispatcher): void {
    d.on(FrontendReq.SET_LOG_BASE, (msg) => {
      const req = msg.request;
      this.host.requireProto(req, PF.LOG_SHMFD);
      const l = decodeLog(req, msg.payload);
      const [fd] = takeFds(msg, 1, 1);
      let m: Mapping;
      try {
        if (l.size === 0) throw new VhostUserError(VhostUserFault.BAD_VALUE, 'log of size 0', req);
        if (!Number.isSafeInteger(l.offset + l.size)) throw new VhostUserError(VhostUserFault.BAD_VALUE, 'log end overflows', req);
        try {
          m = this.platform.mmap(fd!, 0, l.offset + l.size);
        } catch (e) {
          throw new VhostUserError(VhostUserFault.MAP_FAILED, `log mmap: ${(e as Error).message}`, req, { cause: e });
        }
      } finally {
        this.platform.close(fd!);
      }
      this.mapping?.unmap();
      this.mapping = m;
      this.log = new DirtyLog(m.bytes.subarray(l.offset, l.offset + l.size));
      this.host.logChanged();
      return { payload: encodeU64(0) };
    });
    d.on(FrontendReq.SET_LOG_FD, (msg) => {
      const [fd] = takeFds(msg, 1, 1);
      if (this.logFd >= 0) this.platform.close(this.logFd);
      this.logFd = fd!;
      return null;
    });
  }

  /** Sets what each started ring logs: nothing unless `logAll` (VHOST_F_LOG_ALL) and a log area. */
  apply(rings: readonly Vring[], logAll: boolean): void {
    const on = logAll && this.log !== null;
    if (on !== this.logging) {
      // One line per switch, so a migration's log shows when the device's writes were tracked.
      if (on) this.logger.info(`dirty page logging on (log of ${this.log!.bytes.length} bytes)`);
      else this.logger.info(`dirty page logging off: ${this.log?.marks ?? 0} page marks`);
      this.logging = on;
    }
    for (const r of rings) {
      const q = r.queue;
      if (!q) continue;
      q.log = on ? this.log : null;
      q.logUsedAddr = -1;
      q.logEventAddr = -1;
      if (!on) continue;
      if (q.packed) {
        // Packed: used elements are written over the descriptor ring; event suppression in the device area.
        q.logUsedAddr = r.descGuest;
        q.logUsedLen = 16 * r.num;
        q.logEventAddr = r.usedGuest;
        q.logEventLen = 4;
      } else if (r.addr && (r.addr.flags & VHOST_VRING_F_LOG) !== 0 && r.addr.logGuest >= 0) {
        // "Migration": used ring writes are logged at log_guest_addr of SET_VRING_ADDR (VHOST_VRING_F_LOG).
        q.logUsedAddr = r.addr.logGuest;
        q.logUsedLen = SplitLayout.usedSize(r.num);
        q.logEventAddr = r.addr.logGuest;
        q.logEventLen = SplitLayout.usedSize(r.num);
      }
    }
  }

  /** Unmaps the log and closes its fd (end of session). */
  close(): void {
    if (this.logging) this.logger.info(`dirty page logging ended with the session: ${this.log?.marks ?? 0} page marks`);
    this.logging = false;
    this.mapping?.unmap();
    this.mapping = null;
    this.log = null;
    if (this.logFd >= 0) {
      try {
        this.platform.close(this.logFd);
      } catch (e) {
        this.logger.warn(`log fd close failed: ${(e as Error).message}`);
      }
    }
    this.logFd = -1;
  }
}
