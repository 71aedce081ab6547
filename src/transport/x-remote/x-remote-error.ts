import { ErrorCode, VirtioError } from '../../errors.js';

/** Why an x-remote conversation failed; stable values for callers and tests. */
export const XRemoteFault = {
  /** The reply's command is not RET. */
  BAD_COMMAND: 'BAD_COMMAND',
  /** The reply's payload size is not one a reply can have (0 or 8 bytes). */
  BAD_SIZE: 'BAD_SIZE',
  /** The reply carried file descriptors (closed on receipt). */
  UNEXPECTED_FDS: 'UNEXPECTED_FDS',
  /** The peer closed the socket (QEMU exited), possibly in the middle of a reply. */
  PEER_CLOSED: 'PEER_CLOSED',
  /** The device answered UINT64_MAX for an access it refused (QEMU then shuts down). */
  DEVICE_ERROR: 'DEVICE_ERROR',
  /** A request message that cannot be encoded or decoded (bad field, too many fds). */
  BAD_REQUEST: 'BAD_REQUEST',
  /** No reply within the time bound. */
  TIMEOUT: 'TIMEOUT',
  /** The connection was closed by this side. */
  CLOSED: 'CLOSED',
} as const;
export type XRemoteFault = (typeof XRemoteFault)[keyof typeof XRemoteFault];

/**
 * A failure of the x-remote (multi-process QEMU) link: VirtioError code TIMEOUT for a missing
 * reply, INVALID_ARGUMENT for a request that cannot be encoded, BACKEND_IO otherwise, with the
 * precise `fault`.
 */
export class XRemoteError extends VirtioError {
  constructor(
    /** Which failure it was, finer than the VirtioError `code`. */
    readonly fault: XRemoteFault,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(codeOf(fault), `x-remote ${fault}: ${message}`, options);
  }
}

function codeOf(fault: XRemoteFault): ErrorCode {
  if (fault === XRemoteFault.TIMEOUT) return ErrorCode.TIMEOUT;
  if (fault === XRemoteFault.BAD_REQUEST) return ErrorCode.INVALID_ARGUMENT;
  return ErrorCode.BACKEND_IO;
}
