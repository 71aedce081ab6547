/**
 * The front-end's end of the back-end channel (vhost-user.rst "Back-end communication",
 * BACKEND_REQ protocol feature): a socketpair whose other half goes to the back-end with
 * SET_BACKEND_REQ_FD, and the back-end's requests read from ours. CONFIG_CHANGE_MSG is the one
 * honoured (the transport re-reads the config, then tells the driver); any request asking for a
 * reply gets one (0: handled, 1: not). Split from frontend-transport.ts, which owns one per
 * connection.
 */
import type { FdWatcher, Platform } from '../platform/types.js';
import { REPLY_FLAGS, encodeU64 } from './codec.js';
import { MessageFramer } from './framer.js';
import type { VhostUserFrontend } from './frontend.js';
import { BackendReq, HeaderFlag } from './messages.js';

/** The back-end channel of one VhostUserDriverTransport connection (none until `open`). */
export class FrontendBackendChannel {
  private fd = -1;
  private framer: MessageFramer | null = null;
  private watcher: FdWatcher | null = null;

  /** `configChange`: a CONFIG_CHANGE_MSG arrived (called once per message). */
  constructor(
    private readonly platform: Platform,
    private readonly configChange: () => void,
  ) {}

  /** Creates the socketpair, hands the back-end its half (SET_BACKEND_REQ_FD) and watches ours. */
  async open(fe: VhostUserFrontend): Promise<void> {
    const [mine, theirs] = this.platform.socketpair();
    try {
      await fe.setBackendReqFd(theirs);
    } finally {
      this.platform.close(theirs);
    }
    this.fd = mine;
    this.framer = new MessageFramer(this.platform, mine);
    this.watcher = this.platform.watchReadable(mine, () => this.onMessage());
  }

  /** Requests on the back-end channel: config changes (re-read, then notify the driver). */
  private onMessage(): void {
    const fr = this.framer;
    if (!fr) return;
    for (let n = 0; n < 64; n++) {
      let m;
      try {
        m = fr.read();
      } catch {
        this.stop();
        return;
      }
      if (m === null) return;
      if (m === 'eof') {
        this.stop();
        return;
      }
      for (const fd of m.fds) if (fd >= 0) this.platform.close(fd);
      const ok = m.request === BackendReq.CONFIG_CHANGE_MSG;
      if ((m.flags & HeaderFlag.NEED_REPLY) !== 0) {
        try {
          fr.send(m.request, REPLY_FLAGS, encodeU64(ok ? 0 : 1));
        } catch {
          // The channel is gone; the main socket reports it.
        }
      }
      if (ok) this.configChange();
    }
  }

  /** Stops watching and closes our half (idempotent). */
  stop(): void {
    this.watcher?.stop();
    this.watcher = null;
    this.framer?.close();
    this.framer = null;
    if (this.fd >= 0) this.platform.close(this.fd);
    this.fd = -1;
  }
}
