import { ErrorCode, VirtioError } from '../errors.js';

/**
 * An OS-level failure of the platform layer: VirtioError code PLATFORM, with the errno name
 * (`EBADF`, `ECONNREFUSED`, `EINVAL` for a bad argument, `ENOENT` for a missing addon) kept
 * in `errno` so callers can branch on it without parsing the message.
 */
export class PlatformError extends VirtioError {
  constructor(
    /** The errno name (`EBADF`, `ENOENT`, ...), to branch on. */
    readonly errno: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(ErrorCode.PLATFORM, message.includes(errno) ? message : `${message} (${errno})`, options);
  }
}

/** Turns whatever the addon threw (an Error whose `code` is the errno name) into a PlatformError. */
export function toPlatformError(op: string, e: unknown): PlatformError {
  if (e instanceof PlatformError) return e;
  const code = (e as { code?: unknown } | null)?.code;
  const errno = typeof code === 'string' && /^E[A-Z0-9]+$/.test(code) ? code : 'EUNKNOWN';
  const msg = e instanceof Error ? e.message : String(e);
  return new PlatformError(errno, `${op}: ${msg}`, { cause: e });
}
