/**
 * What the driver-side helpers of the command modules throw when the device completed a command
 * with a status other than VIRTIO_ADMIN_STATUS_OK (2.12.1): the status and qualifier as the
 * device wrote them, to branch on (a reserved status is handled like EINVAL by the caller).
 */
import { ErrorCode, VirtioError } from '../errors.js';
import type { AdminCommandReply } from './admin-command-handler.js';

/** A command the device failed (code REQUEST_FAILED) with its `status` and `qualifier`. */
export class AdminCommandStatusError extends VirtioError {
  /** status as the device wrote it (AdminStatus). */
  readonly status: number;
  /** status_qualifier as the device wrote it (AdminStatusQualifier). */
  readonly qualifier: number;
  constructor(command: string, status: number, qualifier: number) {
    super(ErrorCode.REQUEST_FAILED, `${command} failed: status ${status}, qualifier ${qualifier}`);
    this.status = status;
    this.qualifier = qualifier;
  }
}

/** Returns the reply's result when its status is OK, else throws AdminCommandStatusError. */
export function expectAdminOk(command: string, reply: AdminCommandReply): Uint8Array {
  if (reply.status !== 0) throw new AdminCommandStatusError(command, reply.status, reply.qualifier);
  return reply.result;
}
