/**
 * One NBD request slot. The client keeps a pool of them (grown to the high-water mark, then
 * reused), so a request on the data path allocates only the promise its caller awaits. The
 * cookie on the wire is (generation, index): a reply names its slot directly, and a reply to an
 * earlier use of the slot (or to an attempt on a connection since lost) is recognised as stale.
 */
import { NBD_REQUEST_SIZE } from './nbd-protocol.js';

export const SlotState = {
  FREE: 0,
  /** In the client's queue, waiting for a connection or for room under the in-flight bound. */
  QUEUED: 1,
  /** Sent on a connection, its reply not complete. */
  IN_FLIGHT: 2,
} as const;

export class NbdRequest {
  state: number = SlotState.FREE;
  /** Bumped at each send: the high half of the cookie. */
  gen = 0;
  cmd = 0;
  flags = 0;
  offset = 0;
  length = 0;
  /** READ: where the data goes; WRITE: where it comes from (guest memory). */
  buf: Uint8Array | null = null;
  bufOff = 0;
  /** The connection it was sent on (IN_FLIGHT). */
  conn: object | null = null;
  /** READ: bytes of the request the reply's content chunks covered so far. */
  covered = 0;
  /** First error value a reply reported (0: none). */
  errno = 0;
  errorMessage = '';
  /** The queue link (QUEUED). */
  next: NbdRequest | null = null;
  /** The request header, written at each send (the slot is reused only after its reply). */
  readonly header = Buffer.alloc(NBD_REQUEST_SIZE);
  resolve: (() => void) | null = null;
  reject: ((e: unknown) => void) | null = null;
  /** `new Promise(slot.executor)`: no closure per request. */
  readonly executor = (resolve: () => void, reject: (e: unknown) => void): void => {
    this.resolve = resolve;
    this.reject = reject;
  };

  constructor(readonly index: number) {}
}
