/**
 * One front-end connection's requests, split between the main thread's back-end and the ring
 * workers (worker-protocol.ts says which goes where). Ordering guarantees, all from calling the
 * workers synchronously (worker-call-channel.ts) inside the main thread's message handling:
 *  - a ring request is handled by the ring's worker before the next request is read; its reply
 *    (GET_VRING_BASE's base: the worker stopped the ring and read its position) is the worker's;
 *  - a session request (features, memory table, memory slots, config, resets, status) is handled
 *    by the main thread, then by every worker, and only then is the main thread's reply sent: a
 *    REPLY_ACK of SET_MEM_TABLE means every thread has mapped the new table;
 *  - a request the main thread refuses reaches no worker (their sessions stay as they were).
 * Memory region fds are duplicated for each worker before the main thread maps (and closes) its
 * own: one owner per fd, each closes its copy once mapped. Ring fds (kick, call, err) go to the
 * ring's worker alone, which owns them from then on (fd numbers are process-wide).
 */
import { isVirtioError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Platform } from '../platform/types.js';
import type { VhostUserBackend } from './backend.js';
import { VhostUserError, VhostUserFault } from './codec.js';
import type { MessageSink } from './dispatcher.js';
import { BackendReq, HeaderFlag, PF, frontendReqName, type VhostUserMessage } from './messages.js';
import { Status } from '../spec/status.js';
import type { WorkerCallChannel } from './worker-call-channel.js';
import { FD_COPY_REQUESTS, Route, routeOf, type WorkerAnswer, type WorkerCall } from './worker-protocol.js';

/** Takes a connection's requests instead of the back-end's dispatcher (VhostUserBackendOptions.messageRouter). */
export interface VhostUserMessageRouter {
  /** Handles one request, replying through `sink`; throws when the session must end. */
  handle(msg: VhostUserMessage, sink: MessageSink): void;
  /** The session ended: the workers stop their rings and drop their session. */
  close(): void;
}

/** The ring workers as a router sees them (WorkerPool). */
export interface RingWorkers {
  /** One call channel per worker thread, by worker index (the index `ownerOf` returns). */
  readonly channels: readonly WorkerCallChannel<WorkerCall, WorkerAnswer>[];
  /** The worker serving ring `index`. */
  ownerOf(index: number): number;
}

export class WorkerMessageRouter implements VhostUserMessageRouter {
  private closed = false;

  constructor(
    private readonly session: number,
    private readonly workers: RingWorkers,
    private readonly backend: VhostUserBackend,
    private readonly dispatchMain: (msg: VhostUserMessage, sink: MessageSink) => void,
    private readonly platform: Platform,
    private readonly logger: Logger,
    /** Called once when the session ends (the pool forgets the router). */
    private readonly onClose: () => void = () => undefined,
    /** The session's device arguments and counters, for the workers' session-start (worker-protocol.ts). */
    start: { readonly args?: unknown; readonly stats?: SharedArrayBuffer } = {},
  ) {
    for (const c of workers.channels) this.answer(c.call({ kind: 'session-start', session, ...start }), -1);
  }

  /** Whether this session has rings on the thread behind `channel`. */
  uses(channel: WorkerCallChannel<WorkerCall, WorkerAnswer>): boolean {
    return this.workers.channels.includes(channel);
  }

  handle(msg: VhostUserMessage, sink: MessageSink): void {
    const { route, ring } = routeOf(msg, this.backend.numQueues);
    if (route === Route.MAIN) {
      this.dispatchMain(msg, sink);
      return;
    }
    if (route === Route.RING) {
      const fds = msg.fds.slice();
      // The fds move to the worker: the message no longer holds them here.
      msg.fds.fill(-1);
      const a = this.call(this.workers.ownerOf(ring), { ...msg, fds });
      for (const r of a.replies) sink(r.request, r.flags, r.payload ?? undefined, r.fds);
      if (a.refused !== null) this.noteRefusal(msg.request, a.refused);
      return;
    }
    this.handleSessionRequest(msg, sink);
  }

  /** A session request: the main thread first, every worker next, the main thread's reply last. */
  private handleSessionRequest(msg: VhostUserMessage, sink: MessageSink): void {
    const channels = this.workers.channels;
    const copies: number[][] = channels.map(() => []);
    if (FD_COPY_REQUESTS.has(msg.request)) {
      try {
        for (const c of copies) for (const fd of msg.fds) c.push(fd >= 0 ? this.platform.dup(fd) : -1);
      } catch (e) {
        this.closeAll(copies);
        throw e;
      }
    }
    const held: [number, number, Uint8Array | undefined, readonly number[] | undefined][] = [];
    const errors = this.backend.errorCount;
    this.dispatchMain(msg, (request, flags, payload, fds) => held.push([request, flags, payload?.slice(), fds ? [...fds] : undefined]));
    if (this.backend.errorCount > errors) {
      this.closeAll(copies);
    } else {
      // The workers' own acknowledgements are not wanted: the front-end gets the main thread's.
      const flags = msg.flags & ~HeaderFlag.NEED_REPLY;
      for (let i = 0; i < channels.length; i++) {
        let a: WorkerAnswer;
        try {
          a = this.call(i, { ...msg, flags, fds: copies[i]! });
        } catch (e) {
          // The copies of the threads not reached are still ours.
          this.closeAll(copies.slice(i + 1));
          throw e;
        }
        if (a.refused !== null) {
          // The main thread took it, a worker did not: the threads disagree on the session.
          const why = `ring thread ${i} refused ${frontendReqName(msg.request)}: ${a.refused}`;
          this.noteRefusal(msg.request, a.refused);
          this.backend.core.setNeedsReset(why);
        }
      }
    }
    for (const h of held) sink(...h);
  }

  private call(worker: number, message: VhostUserMessage): WorkerAnswer {
    return this.answer(this.workers.channels[worker]!.call({ kind: 'message', session: this.session, message }), worker);
  }

  /** Ends the session when the worker's back-end did (a refusal with no error reply). */
  private answer(a: WorkerAnswer, worker: number): WorkerAnswer {
    if (a.ended !== null) throw new VhostUserError(VhostUserFault.BAD_STATE, `ring thread ${worker} ended the session: ${a.ended}`);
    return a;
  }

  private noteRefusal(request: number, message: string): void {
    const e = new VhostUserError(VhostUserFault.BAD_VALUE, message, request);
    this.backend.errorCount++;
    this.backend.lastError = e;
    this.logger.warn(`vhost-user ${frontendReqName(request)} refused by a ring thread: ${message}`);
    this.backend.onError?.(e);
  }

  private closeAll(copies: readonly number[][]): void {
    for (const c of copies) for (const fd of c) if (fd >= 0) this.platform.close(fd);
  }

  /**
   * A worker's device changed its config or needs a reset (2.1.2): the main thread's core keeps
   * the status the front-end reads, and its back-end channel carries the notification.
   */
  configChange(needsReset: string | null): void {
    if (this.closed) return;
    const core = this.backend.core;
    if (needsReset !== null) core.setNeedsReset(needsReset);
    else core.configChanged();
    // With DRIVER_OK on the main thread (STATUS protocol feature) its core has notified already.
    if (core.status & Status.DRIVER_OK) return;
    const proto = this.backend.protocolFeatures;
    if ((proto & (PF.BACKEND_REQ | PF.CONFIG)) !== (PF.BACKEND_REQ | PF.CONFIG)) return;
    this.backend.sendBackendRequest(BackendReq.CONFIG_CHANGE_MSG, undefined, undefined, { needReply: false }).catch((e: unknown) => {
      this.logger.debug(`config change message: ${isVirtioError(e) ? e.message : String(e)}`);
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.onClose();
    for (let i = 0; i < this.workers.channels.length; i++) {
      try {
        this.workers.channels[i]!.call({ kind: 'session-end', session: this.session });
      } catch (e) {
        this.logger.error(`ring thread ${i}: ending the session: ${(e as Error).message}`);
      }
    }
  }
}
