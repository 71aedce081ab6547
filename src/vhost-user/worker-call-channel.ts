/**
 * A synchronous call from the main thread to a worker thread: the vhost-user control socket is
 * served on the main thread, whose request handlers are synchronous (a reply is written before
 * the next message is read), while the rings a worker serves live in that worker's event loop.
 *
 * Why Atomics.wait plus receiveMessageOnPort, not an async round trip: the protocol's ordering
 * must hold across threads (vhost-user.rst: a SET_MEM_TABLE is applied before its REPLY_ACK,
 * GET_VRING_BASE answers with the position of a ring that has stopped). Blocking the control
 * thread for the worker's answer keeps the dispatcher synchronous, so every message handler and
 * its reply stay in order without queuing. The request goes through a MessagePort (structured
 * clone: payloads, fd numbers), the worker answers on the same port and then bumps a counter in
 * a SharedArrayBuffer and notifies; the main thread sleeps in Atomics.wait on that counter and
 * takes the answer with receiveMessageOnPort. A worker busy in a ring pass answers when the pass
 * ends (passes are bounded: POLL_BUDGET_US); a worker that never answers makes the call fail
 * after `timeoutMs`, which ends the session instead of hanging the control thread.
 */
import { type MessagePort, receiveMessageOnPort } from 'node:worker_threads';
import { VhostUserError, VhostUserFault } from './codec.js';

/** Default bound on one call (a ring pass, a memory map, a device reset). */
export const WORKER_CALL_TIMEOUT_MS = 10_000;

/** Main side: one outstanding call at a time (the control thread is single-threaded). */
export class WorkerCallChannel<Req, Res> {
  private readonly counter: Int32Array;
  /** Why the peer can no longer answer (it exited), or null: calls then fail at once. */
  private gone: string | null = null;

  constructor(
    private readonly port: MessagePort,
    signal: SharedArrayBuffer,
    private readonly name: string,
    private readonly timeoutMs = WORKER_CALL_TIMEOUT_MS,
  ) {
    this.counter = new Int32Array(signal);
    // The port is read only synchronously: it must not keep the process alive.
    port.unref();
  }

  /** Sends `req` and blocks until the worker answers (or throws after the timeout). */
  call(req: Req): Res {
    if (this.gone !== null) throw new VhostUserError(VhostUserFault.IO, `${this.name} is gone: ${this.gone}`);
    let seen = Atomics.load(this.counter, 0);
    this.port.postMessage(req);
    const end = Date.now() + this.timeoutMs;
    for (;;) {
      const m = receiveMessageOnPort(this.port) as { message: Res } | undefined;
      if (m) return m.message;
      const left = end - Date.now();
      if (left <= 0) throw new VhostUserError(VhostUserFault.IO, `${this.name} did not answer within ${this.timeoutMs} ms`);
      // The worker posts its answer before bumping the counter: a bumped counter means the
      // answer is queued (look again); otherwise sleep until it is bumped.
      const now = Atomics.load(this.counter, 0);
      if (now === seen) Atomics.wait(this.counter, 0, seen, Math.min(left, 1000));
      else seen = now;
    }
  }

  /** The peer ended (its thread exited): every later call fails at once instead of timing out. */
  peerGone(why: string): void {
    this.gone ??= why;
  }

  /** Closes the main side's port: no more calls can be made (the worker sees its port close). */
  close(): void {
    this.port.close();
  }
}

/** Worker side: answers each call with `handler`'s result, then wakes the caller. */
export function serveWorkerCalls<Req, Res>(port: MessagePort, signal: SharedArrayBuffer, handler: (req: Req) => Res): void {
  const counter = new Int32Array(signal);
  port.on('message', (req: Req) => {
    const res = handler(req);
    port.postMessage(res);
    Atomics.add(counter, 0, 1);
    Atomics.notify(counter, 0);
  });
}
