/**
 * Message framing over a Unix stream socket: exactly the 12-byte header, then exactly the
 * payload, never more. File descriptors travel in SCM_RIGHTS ancillary data attached to the
 * first byte of a sendmsg, so they arrive with the header; reading ahead into the next message
 * would attach its fds to the wrong one (QEMU-NOTES).
 *
 * Ownership: fds received belong to the framer until the message holding them is returned;
 * they then belong to the caller. `close()` closes fds of a partly read message.
 */
import type { Platform } from '../platform/types.js';
import { VhostUserError, VhostUserFault, decodeHeader, encodeMessage } from './codec.js';
import { HEADER_SIZE, HeaderFlag, MAX_FDS, MAX_PAYLOAD_SIZE, type VhostUserMessage } from './messages.js';

export const FramerResult = { EOF: 'eof' } as const;

/** Attempts of a sendmsg that would block before the connection is declared stuck. */
const SEND_ATTEMPTS = 100_000;

export class MessageFramer {
  private readonly hdr = new Uint8Array(HEADER_SIZE);
  private hdrGot = 0;
  private payload: Uint8Array | null = null;
  private payGot = 0;
  private request = 0;
  private flags = 0;
  private fds: number[] = [];
  private closed = false;

  constructor(
    private readonly platform: Platform,
    readonly fd: number,
    private readonly maxPayload = MAX_PAYLOAD_SIZE,
  ) {}

  /**
   * Reads until one message is complete and returns it; null when the socket has nothing more
   * for now; 'eof' when the peer closed. A malformed header throws VhostUserError (the stream
   * cannot be resynchronised: the caller drops the connection).
   */
  read(): VhostUserMessage | null | 'eof' {
    if (this.closed) return FramerResult.EOF;
    for (;;) {
      if (this.payload === null) {
        const r = this.platform.recvmsg(this.fd, this.hdr, this.hdrGot, HEADER_SIZE - this.hdrGot, MAX_FDS);
        this.takeFds(r.fds);
        if (r.bytes < 0) return null;
        if (r.bytes === 0) return FramerResult.EOF;
        this.hdrGot += r.bytes;
        if (this.hdrGot < HEADER_SIZE) continue;
        const h = decodeHeader(this.hdr);
        if ((h.flags & HeaderFlag.VERSION_MASK) !== HeaderFlag.VERSION) {
          this.dropFds();
          throw new VhostUserError(VhostUserFault.BAD_VERSION, `header version ${h.flags & 3}`, h.request);
        }
        if (h.size > this.maxPayload) {
          this.dropFds();
          throw new VhostUserError(VhostUserFault.TOO_LARGE, `payload of ${h.size} bytes`, h.request);
        }
        this.request = h.request;
        this.flags = h.flags;
        this.payload = new Uint8Array(h.size);
        this.payGot = 0;
      }
      if (this.payGot < this.payload.length) {
        const r = this.platform.recvmsg(this.fd, this.payload, this.payGot, this.payload.length - this.payGot, MAX_FDS);
        this.takeFds(r.fds);
        if (r.bytes < 0) return null;
        if (r.bytes === 0) return FramerResult.EOF;
        this.payGot += r.bytes;
        if (this.payGot < this.payload.length) continue;
      }
      const msg: VhostUserMessage = { request: this.request, flags: this.flags, payload: this.payload, fds: this.fds };
      this.fds = [];
      this.payload = null;
      this.hdrGot = 0;
      return msg;
    }
  }

  /** Sends one message (header, payload and fds in one sendmsg; the fds stay the caller's). */
  send(request: number, flags: number, payload?: Uint8Array, fds?: readonly number[]): void {
    const buf = encodeMessage(request, flags, payload);
    let off = 0;
    let attempts = 0;
    let first = true;
    while (off < buf.length) {
      const n = this.platform.sendmsg(this.fd, buf, off, buf.length - off, first ? fds : undefined);
      if (n < 0) {
        if (++attempts > SEND_ATTEMPTS) throw new VhostUserError(VhostUserFault.IO, 'socket send buffer stays full', request);
        continue;
      }
      first = false;
      off += n;
    }
  }

  /** Closes fds of a message not yet complete. The socket itself is not closed. Idempotent. */
  close(): void {
    this.closed = true;
    this.dropFds();
    this.payload = null;
    this.hdrGot = 0;
  }

  private takeFds(fds: number[]): void {
    for (const fd of fds) {
      if (this.closed) this.platform.close(fd);
      else this.fds.push(fd);
    }
  }

  private dropFds(): void {
    for (const fd of this.fds) this.platform.close(fd);
    this.fds = [];
  }
}
