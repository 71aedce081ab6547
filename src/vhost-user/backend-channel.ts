/**
 * The back-end request channel (vhost-user.rst "Back-end communication", BACKEND_REQ): the
 * socket the front-end hands over with SET_BACKEND_REQ_FD, on which the back-end sends its own
 * requests (CONFIG_CHANGE_MSG, VRING_CALL, ...). Messages are framed and encoded by the codec
 * (MessageFramer.send), never by hand.
 *
 * REPLY_ACK: when negotiated, a request sent with `needReply` carries NEED_REPLY and the
 * front-end answers on the same socket with a u64 (0: success). Replies arrive in order, so the
 * waiting requests form a FIFO; at most MAX_PENDING_REPLIES wait at once (a front-end that
 * never answers cannot make the back-end grow without bound), and closing the channel fails
 * them all.
 */
import { VirtioError, ErrorCode } from '../errors.js';
import type { Logger } from '../log.js';
import type { FdWatcher, Platform } from '../platform/types.js';
import { VhostUserError, VhostUserFault, decodeU64Big } from './codec.js';
import { MessageFramer } from './framer.js';
import { type BackendReq, HeaderFlag, MAX_FDS } from './messages.js';

/** Requests waiting for the front-end's acknowledgement at once. */
export const MAX_PENDING_REPLIES = 64;

/** Options of a back-end request sent to the front-end (VhostUserSession.backendRequest). */
export interface BackendRequestOptions {
  /** Ask for an acknowledgement (only when REPLY_ACK was negotiated; default true then). */
  readonly needReply?: boolean;
}

interface Pending {
  readonly request: number;
  resolve(v: bigint): void;
  reject(e: Error): void;
}

export class BackendChannel {
  private framer: MessageFramer | null = null;
  private watcher: FdWatcher | null = null;
  private readonly pending: Pending[] = [];

  constructor(
    private readonly platform: Platform,
    private readonly logger: Logger,
  ) {}

  /** Whether a channel fd was handed over. */
  get open(): boolean {
    return this.framer !== null;
  }

  /** Acknowledgements still awaited. */
  get pendingReplies(): number {
    return this.pending.length;
  }

  /** Takes ownership of the channel fd (SET_BACKEND_REQ_FD), closing a previous one. */
  setFd(fd: number): void {
    this.close();
    this.framer = new MessageFramer(this.platform, fd);
  }

  /**
   * Sends back-end request `request`. With `replyAck` (REPLY_ACK negotiated) and needReply, the
   * promise resolves with the front-end's u64 answer (0: success); otherwise with 0n once sent.
   * Rejects with a VhostUserError when there is no channel, the send fails, too many replies
   * are awaited, or the channel closes first. The fds stay the caller's.
   */
  send(request: BackendReq, replyAck: boolean, payload?: Uint8Array, fds?: readonly number[], o: BackendRequestOptions = {}): Promise<bigint> {
    const framer = this.framer;
    if (framer === null) return Promise.reject(new VhostUserError(VhostUserFault.BAD_STATE, `back-end request ${request}: no back-end channel`));
    if (fds && fds.length > MAX_FDS) return Promise.reject(new VhostUserError(VhostUserFault.UNEXPECTED_FD, `back-end request ${request}: ${fds.length} fds`));
    const needReply = replyAck && (o.needReply ?? true);
    if (needReply && this.pending.length >= MAX_PENDING_REPLIES) {
      return Promise.reject(new VhostUserError(VhostUserFault.BAD_STATE, `back-end request ${request}: ${this.pending.length} replies already awaited`));
    }
    try {
      framer.send(request, HeaderFlag.VERSION | (needReply ? HeaderFlag.NEED_REPLY : 0), payload, fds);
    } catch (e) {
      return Promise.reject(isError(e) ? e : new VhostUserError(VhostUserFault.IO, `back-end request ${request}: ${String(e)}`));
    }
    if (!needReply) return Promise.resolve(0n);
    return new Promise<bigint>((resolve, reject) => {
      this.pending.push({ request, resolve, reject });
      if (this.watcher === null) this.watcher = this.platform.watchReadable(framer.fd, () => this.onReadable());
    });
  }

  private onReadable(): void {
    const framer = this.framer;
    if (framer === null) return;
    for (;;) {
      let m;
      try {
        m = framer.read();
      } catch (e) {
        this.fail(isError(e) ? e : new VhostUserError(VhostUserFault.BAD_HEADER, String(e)));
        return;
      }
      if (m === null) break;
      if (m === 'eof') {
        this.fail(new VhostUserError(VhostUserFault.IO, 'the front-end closed the back-end channel'));
        return;
      }
      for (const fd of m.fds) this.platform.close(fd);
      const p = this.pending.shift();
      if (!p) {
        this.logger.warn(`back-end channel: unexpected message ${m.request} from the front-end (dropped)`);
        continue;
      }
      if (m.request !== p.request || (m.flags & HeaderFlag.REPLY) === 0) {
        p.reject(new VhostUserError(VhostUserFault.BAD_VALUE, `back-end request ${p.request}: answered by ${m.request} (flags 0x${m.flags.toString(16)})`));
        continue;
      }
      try {
        p.resolve(decodeU64Big(m.request, m.payload));
      } catch (e) {
        p.reject(isError(e) ? e : new VhostUserError(VhostUserFault.BAD_SIZE, String(e)));
      }
    }
    if (this.pending.length === 0) this.stopWatching();
  }

  private stopWatching(): void {
    this.watcher?.stop();
    this.watcher = null;
  }

  /** Fails every awaited reply and closes the channel. */
  private fail(e: Error): void {
    this.logger.warn(`back-end channel: ${e.message}`);
    this.close(e);
  }

  /** Closes the channel fd; awaited replies fail. Idempotent. */
  close(reason?: Error): void {
    this.stopWatching();
    const f = this.framer;
    this.framer = null;
    if (f) {
      f.close();
      this.platform.close(f.fd);
    }
    // Built only when a reply is awaited: every session's close comes here.
    if (this.pending.length === 0) return;
    const e = reason ?? new VirtioError(ErrorCode.VHOST_USER_PROTOCOL, 'back-end channel closed');
    for (const p of this.pending.splice(0)) p.reject(e);
  }
}

function isError(e: unknown): e is Error {
  return e instanceof Error;
}
