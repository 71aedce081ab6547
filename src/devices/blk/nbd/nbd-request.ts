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

/**
 * One pooled request slot of an {@link NbdClient}: the fields of the NBD request header
 * (proto.md "Transmission": command flags, type, cookie, offset, length) plus the caller's buffer
 * and the settle functions of the promise the caller awaits. A slot is reused once its reply is
 * complete, so the data path allocates no per-request object besides that promise.
 */
export class NbdRequest {
  /** Where the slot is: `SlotState.FREE` (in the pool), `QUEUED` or `IN_FLIGHT`. */
  state: number = SlotState.FREE;
  /** Bumped at each send: the high half of the cookie. */
  gen = 0;
  /**
   * The request type (`NbdCmd`: NBD_CMD_READ, NBD_CMD_WRITE, NBD_CMD_FLUSH, NBD_CMD_TRIM, NBD_CMD_WRITE_ZEROES).
   */
  cmd = 0;
  /** The command flags (`NbdCmdFlag`: NBD_CMD_FLAG_FUA, NBD_CMD_FLAG_NO_HOLE), 0 for none. */
  flags = 0;
  /** The request's offset into the export, in bytes (0 for NBD_CMD_FLUSH). */
  offset = 0;
  /** The request's length in bytes (0 for NBD_CMD_FLUSH); for a READ or WRITE, the bytes of `buf` used. */
  length = 0;
  /** READ: where the data goes; WRITE: where it comes from (guest memory). */
  buf: Uint8Array | null = null;
  /** Byte offset in `buf` where the READ's data goes or the WRITE's data starts. */
  bufOff = 0;
  /** The connection it was sent on (IN_FLIGHT). */
  conn: object | null = null;
  /** READ: bytes of the request the reply's content chunks covered so far. */
  covered = 0;
  /** First error value a reply reported (0: none). */
  errno = 0;
  /** The message of the reply's first NBD_REPLY_TYPE_ERROR(_OFFSET) chunk ('' when none or a simple reply). */
  errorMessage = '';
  /** The queue link (QUEUED). */
  next: NbdRequest | null = null;
  /** The request header, written at each send (the slot is reused only after its reply). */
  readonly header = Buffer.alloc(NBD_REQUEST_SIZE);
  /** Fulfils the caller's promise once the server acknowledged the request; null while the slot is free. */
  resolve: (() => void) | null = null;
  /** Rejects the caller's promise with an NbdError; null while the slot is free. */
  reject: ((e: unknown) => void) | null = null;
  /** `new Promise(slot.executor)`: no closure per request. */
  readonly executor = (resolve: () => void, reject: (e: unknown) => void): void => {
    this.resolve = resolve;
    this.reject = reject;
  };

  constructor(
    /**
     * The slot's position in the client's pool: the low half of the NBD cookie (the generation
     * `gen` is the high half), by which a reply finds its slot.
     */
    readonly index: number,
  ) {}
}
