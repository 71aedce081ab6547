import { ErrorCode, VirtioError } from '../../../errors.js';

/** Why an NBD operation failed; stable values for tests, logs and the CLI. */
export const NbdFault = {
  /** The NBD URI cannot be parsed or names something unsupported. */
  BAD_URI: 'BAD_URI',
  /** No server answered at the address (connection refused, no such socket, timeout). */
  UNREACHABLE: 'UNREACHABLE',
  /** The server has no export of that name (NBD_REP_ERR_UNKNOWN, or it closed on EXPORT_NAME). */
  NO_EXPORT: 'NO_EXPORT',
  /** The server requires TLS (NBD_REP_ERR_TLS_REQD) and the URI did not ask for it (nbd:// rather than nbds://). */
  TLS_REQUIRED: 'TLS_REQUIRED',
  /** TLS was asked for and the server refused NBD_OPT_STARTTLS (it offers no TLS): never a fallback to plaintext. */
  TLS_UNAVAILABLE: 'TLS_UNAVAILABLE',
  /** The server's X.509 certificate was not accepted: not signed by a trusted CA, expired, or not for the expected host name. */
  TLS_CERTIFICATE: 'TLS_CERTIFICATE',
  /** The TLS handshake failed otherwise: a wrong pre-shared key, our certificate refused, no common version or cipher, the connection closed. */
  TLS_HANDSHAKE: 'TLS_HANDSHAKE',
  /** The client's TLS settings are unusable: an unreadable or malformed file, PSK mixed with certificates, TLS settings without an nbds URI. */
  TLS_CONFIG: 'TLS_CONFIG',
  /** The handshake failed otherwise (bad magic, oldstyle server, refused option, bad reply). */
  HANDSHAKE: 'HANDSHAKE',
  /** The server broke the transmission protocol (bad magic, unknown cookie, oversized chunk). */
  PROTOCOL: 'PROTOCOL',
  /** The server answered a request with an error. */
  SERVER_ERROR: 'SERVER_ERROR',
  /** The export does not allow the operation (read-only, no TRIM, ...). */
  UNSUPPORTED: 'UNSUPPORTED',
  /** The server stayed unreachable for longer than the retry time: the request failed. */
  RETRY_EXPIRED: 'RETRY_EXPIRED',
  /** The client was closed. */
  CLOSED: 'CLOSED',
} as const;
export type NbdFault = (typeof NbdFault)[keyof typeof NbdFault];

/**
 * The error NBD operations reject with: its `fault` (NbdFault) saying why, the message (prefixed
 * `nbd:`), and for SERVER_ERROR the server's error value. BAD_URI and TLS_CONFIG map to the
 * INVALID_ARGUMENT error code, every other fault to BACKEND_IO (the device's VIRTIO_BLK_S_IOERR).
 */
export class NbdError extends VirtioError {
  constructor(
    /** Why the operation failed. */
    readonly fault: NbdFault,
    message: string,
    options?: { cause?: unknown; errno?: number },
  ) {
    super(fault === NbdFault.BAD_URI || fault === NbdFault.TLS_CONFIG ? ErrorCode.INVALID_ARGUMENT : ErrorCode.BACKEND_IO, `nbd: ${message}`, options);
    this.errno = options?.errno ?? 0;
  }
  /** The server's error value for SERVER_ERROR (EIO, ENOSPC, ...), else 0. */
  readonly errno: number;
}
