/**
 * The front-end request dispatcher: one handler per request, and the rules every request obeys
 * whatever it does (vhost-user.rst "Communication", "REPLY_ACK"):
 *  - the payload size is checked before a handler runs (codec.checkRequestSize);
 *  - fds: a handler takes the fds it keeps (`takeFds`), refuses those it does not expect
 *    (`noFds`); every fd left in the message is closed after the handler, success or not;
 *  - replies: a request with an explicit reply (GET_*) is always answered, with a value meaning
 *    "error" when it failed (an unanswered GET_* freezes QEMU); any other request is answered
 *    with a u64 0 / 1 when REPLY_ACK was negotiated and the front-end set NEED_REPLY;
 *  - a refused request is a VhostUserError reported through `onRefused`; nothing a front-end
 *    sends makes `handle` throw (only a failing sink, the socket gone, does).
 */
import { type VirtioError, isVirtioError } from '../errors.js';
import type { Platform } from '../platform/types.js';
import type { Logger } from '../log.js';
import { REPLY_FLAGS, VhostUserError, VhostUserFault, checkRequestSize, decodeU64, encodeInflight, encodeU64 } from './codec.js';
import { FrontendReq, HeaderFlag, VRING_IDX_MASK, VRING_NOFD_MASK, type VhostUserMessage } from './messages.js';

/** Where replies and back-end requests go (the connection's framer). */
export type MessageSink = (request: number, flags: number, payload?: Uint8Array, fds?: readonly number[]) => void;

/** A handler's explicit reply. */
export interface Reply {
  payload: Uint8Array;
  fds?: number[];
  /** Close these fds after sending (fds handed to the front-end). */
  closeAfter?: boolean;
}

/** Handles one request: its explicit reply, or null (then REPLY_ACK decides). Throws to refuse. */
export type RequestHandler = (msg: VhostUserMessage) => Reply | null;

/** Requests whose reply is part of the protocol (sent whatever REPLY_ACK says). */
const EXPLICIT_REPLY = new Set<number>([
  FrontendReq.GET_FEATURES,
  FrontendReq.GET_PROTOCOL_FEATURES,
  FrontendReq.GET_VRING_BASE,
  FrontendReq.GET_QUEUE_NUM,
  FrontendReq.GET_CONFIG,
  FrontendReq.GET_INFLIGHT_FD,
  FrontendReq.GET_MAX_MEM_SLOTS,
  FrontendReq.GET_STATUS,
  FrontendReq.IOTLB_MSG,
  FrontendReq.POSTCOPY_ADVISE,
  FrontendReq.POSTCOPY_END,
  FrontendReq.GET_SHARED_OBJECT,
  FrontendReq.SET_DEVICE_STATE_FD,
  FrontendReq.CHECK_DEVICE_STATE,
]);

/**
 * Requests whose reply has no error form: any value it could carry reads as a real answer
 * (GET_VRING_BASE's {index, num} is a ring position). Refusing one ends the session, so the
 * front-end sees the failure instead of resuming a ring from a made-up base.
 */
const NO_ERROR_REPLY = new Set<number>([FrontendReq.GET_VRING_BASE]);

/** A refused request that has no error reply: the connection must end (see NO_ERROR_REPLY). */
export class SessionEndingError extends VhostUserError {
  constructor(
    readonly refusal: VirtioError,
    request: number,
  ) {
    super(VhostUserFault.BAD_STATE, `no error reply exists, ending the session (${refusal.message})`, request, { cause: refusal });
  }
}

/** Whether `request` always gets a reply of its own. */
export function hasExplicitReply(request: number): boolean {
  return EXPLICIT_REPLY.has(request);
}

/** The session state the reply rules depend on. */
export interface DispatchState {
  /** REPLY_ACK negotiated. */
  readonly replyAck: boolean;
  /** LOG_SHMFD negotiated (SET_LOG_BASE then has a reply). */
  readonly logShmfd: boolean;
}

export class MessageDispatcher {
  private readonly handlers = new Map<number, RequestHandler>();
  /** Consulted for requests no handler claims (device-specific requests). */
  fallback: RequestHandler | null = null;

  constructor(
    private readonly platform: Platform,
    private readonly logger: Logger,
    private readonly state: DispatchState,
    private readonly onRefused: (e: VirtioError, request: number) => void,
  ) {}

  /** Registers the handler of `request` (one per request). */
  on(request: number, handler: RequestHandler): void {
    this.handlers.set(request, handler);
  }

  /** Handles one framed request and replies through `sink`. */
  handle(msg: VhostUserMessage, sink: MessageSink): void {
    let reply: Reply | null = null;
    let err: VirtioError | null = null;
    try {
      checkRequestSize(msg.request, msg.payload.length);
      const h = this.handlers.get(msg.request) ?? this.fallback;
      if (h === null) throw new VhostUserError(VhostUserFault.UNSUPPORTED, 'not implemented by this back-end', msg.request);
      reply = h(msg);
    } catch (e) {
      err = isVirtioError(e) ? e : new VhostUserError(VhostUserFault.BAD_STATE, String(e), msg.request, { cause: e });
    } finally {
      this.closeFds(msg.fds);
    }
    const needReply = (msg.flags & HeaderFlag.NEED_REPLY) !== 0 && this.state.replyAck;
    if (err) {
      this.onRefused(err, msg.request);
      if (NO_ERROR_REPLY.has(msg.request)) throw new SessionEndingError(err, msg.request);
      const r = this.errorReply(msg);
      if (r) sink(msg.request, REPLY_FLAGS, r.payload);
      else if (needReply) sink(msg.request, REPLY_FLAGS, encodeU64(1));
      return;
    }
    if (reply) {
      try {
        sink(msg.request, REPLY_FLAGS, reply.payload, reply.fds);
      } finally {
        if (reply.closeAfter && reply.fds) this.closeFds(reply.fds);
      }
    } else if (needReply) sink(msg.request, REPLY_FLAGS, encodeU64(0));
  }

  /** The reply a request with an explicit reply gets when it fails. */
  private errorReply(msg: VhostUserMessage): Reply | null {
    if (!EXPLICIT_REPLY.has(msg.request)) {
      // SET_LOG_BASE has a reply only with LOG_SHMFD.
      if (msg.request === FrontendReq.SET_LOG_BASE && this.state.logShmfd) return { payload: encodeU64(1) };
      return null;
    }
    switch (msg.request) {
      case FrontendReq.GET_CONFIG:
        // "uses zero length of payload to indicate an error"
        return { payload: new Uint8Array(0) };
      case FrontendReq.GET_INFLIGHT_FD:
        return { payload: encodeInflight({ mmapSize: 0, mmapOffset: 0, numQueues: 0, queueSize: 0 }) };
      case FrontendReq.SET_DEVICE_STATE_FD:
        return { payload: encodeU64(1 | VRING_NOFD_MASK) };
      case FrontendReq.GET_FEATURES:
      case FrontendReq.GET_PROTOCOL_FEATURES:
      case FrontendReq.GET_QUEUE_NUM:
      case FrontendReq.GET_MAX_MEM_SLOTS:
      case FrontendReq.GET_STATUS:
        return { payload: encodeU64(0) };
      default:
        return { payload: encodeU64(1) };
    }
  }

  /** Closes every fd still owned by a message (set to -1 as closed). */
  closeFds(fds: number[]): void {
    for (let i = 0; i < fds.length; i++) {
      const fd = fds[i]!;
      if (fd >= 0) {
        try {
          this.platform.close(fd);
        } catch (e) {
          this.logger.warn(`close(${fd}) failed: ${(e as Error).message}`);
        }
        fds[i] = -1;
      }
    }
  }
}

// --- fd rules for handlers -------------------------------------------------------------------

/** Refuses a message that carries fds. */
export function noFds(msg: VhostUserMessage): void {
  if (msg.fds.length > 0) throw new VhostUserError(VhostUserFault.UNEXPECTED_FD, `${msg.fds.length} unexpected fds`, msg.request);
}

/** Takes ownership of between min and max fds of the message (removed from msg.fds). */
export function takeFds(msg: VhostUserMessage, min: number, max: number): number[] {
  const n = msg.fds.length;
  if (n < min) throw new VhostUserError(VhostUserFault.MISSING_FD, `${n} fds, expected ${min}`, msg.request);
  if (n > max) throw new VhostUserError(VhostUserFault.UNEXPECTED_FD, `${n} fds, expected ${max}`, msg.request);
  const out = msg.fds.slice();
  msg.fds.fill(-1);
  return out;
}

/**
 * SET_VRING_KICK / CALL / ERR: ring index bits 0-7, bit 8 "no fd" (polling). Returns the index
 * and the fd taken (-1 with the no-fd bit). `checkIndex` refuses a bad index before the fd is
 * taken (the dispatcher then closes it).
 */
export function vringFd(msg: VhostUserMessage, checkIndex: (index: number) => void): { index: number; fd: number } {
  const v = decodeU64(msg.request, msg.payload);
  if ((v & ~(VRING_IDX_MASK | VRING_NOFD_MASK)) !== 0) {
    throw new VhostUserError(VhostUserFault.BAD_VALUE, `reserved bits set in 0x${v.toString(16)}`, msg.request);
  }
  const index = v & VRING_IDX_MASK;
  checkIndex(index);
  if ((v & VRING_NOFD_MASK) !== 0) {
    if (msg.fds.length > 0) throw new VhostUserError(VhostUserFault.UNEXPECTED_FD, 'fd with the invalid-fd flag', msg.request);
    return { index, fd: -1 };
  }
  const [fd] = takeFds(msg, 1, 1);
  return { index, fd: fd! };
}
