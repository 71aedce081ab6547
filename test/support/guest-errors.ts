/**
 * Errors of the real-guest kit (test/support/guest-*.ts): one `GuestError` with a stable
 * `failure` value, carrying the whole console of the run that failed.
 */
import { ErrorCode, VirtioError } from '../../src/errors.js';

/** Why a guest run failed; stable values for assertions. */
export const GuestFailure = {
  /** The run did not end within `timeoutMs`: QEMU was killed. */
  TIMEOUT: 'TIMEOUT',
  /** QEMU could not be started or exited without the guest reporting its exit status. */
  QEMU_FAILED: 'QEMU_FAILED',
  /** A kernel module failed to load in the guest. */
  INSMOD_FAILED: 'INSMOD_FAILED',
  /** The guest script exited non-zero (and `allowFailure` was not set). */
  SCRIPT_FAILED: 'SCRIPT_FAILED',
  /** Host prerequisites (QEMU, kernels, busybox, the guest kit) are missing and cannot be installed. */
  MISSING_DEPS: 'MISSING_DEPS',
  /** A module, kernel or path asked for does not exist. */
  NOT_FOUND: 'NOT_FOUND',
  /** Building something for the guest (an out-of-tree module, a static program) failed. */
  BUILD_FAILED: 'BUILD_FAILED',
  /** The run ended but a check on its results or console did not hold. */
  CHECK_FAILED: 'CHECK_FAILED',
  /** An option given to the harness is invalid. */
  BAD_OPTION: 'BAD_OPTION',
} as const;
export type GuestFailure = (typeof GuestFailure)[keyof typeof GuestFailure];

/** A failed guest run. `output` holds the whole serial console (and QEMU's stderr). */
export class GuestError extends VirtioError {
  constructor(
    readonly failure: GuestFailure,
    message: string,
    readonly output = '',
    options?: { cause?: unknown },
  ) {
    super(
      failure === GuestFailure.TIMEOUT
        ? ErrorCode.TIMEOUT
        : failure === GuestFailure.BAD_OPTION
          ? ErrorCode.INVALID_ARGUMENT
          : ErrorCode.PLATFORM,
      output ? `${failure}: ${message}\n----- console -----\n${output}\n----- end console -----` : `${failure}: ${message}`,
      options,
    );
  }
}
