/**
 * Test-only stand-in for the administration virtqueue: turns an AdminCommandSender call into the
 * handle() call of the handler that claims the opcode, with the result buffer the driver offered
 * (zero-filled), and records what went over the "wire" so tests can check the bytes. Member
 * resolution is the test's (the real dispatcher validates group and member before a handler runs).
 */
import {
  AdminStatus,
  AdminStatusQualifier,
  type AdminCommandHandler,
  type AdminCommandReply,
  type AdminCommandSender,
  type AdminMember,
} from '../../src/admin/admin-command-handler.js';

export interface LoopbackCommand {
  readonly opcode: number;
  readonly groupType: number;
  readonly memberId: bigint;
  readonly data: Uint8Array;
  readonly reply: AdminCommandReply;
}

export interface AdminLoopback {
  readonly send: AdminCommandSender;
  /** Every command sent, in order. */
  readonly sent: LoopbackCommand[];
}

export function adminLoopback(
  handlers: readonly AdminCommandHandler[],
  member: (groupType: number, memberId: bigint) => AdminMember | null,
): AdminLoopback {
  const sent: LoopbackCommand[] = [];
  const send: AdminCommandSender = async (opcode, groupType, memberId, data, resultCapacity) => {
    const m = member(groupType, memberId);
    const handler = handlers.find((h) => h.opcodes.includes(opcode) && h.groupTypes.includes(groupType));
    let reply: AdminCommandReply;
    if (!m) reply = { status: AdminStatus.EINVAL, qualifier: AdminStatusQualifier.INVALID_MEMBER, result: new Uint8Array(0) };
    else if (!handler) reply = { status: AdminStatus.EINVAL, qualifier: AdminStatusQualifier.INVALID_OPCODE, result: new Uint8Array(0) };
    else {
      const result = new Uint8Array(resultCapacity);
      const out = await handler.handle(opcode, m, data.slice(), result);
      reply = { status: out.status, qualifier: out.qualifier, result: result.slice(0, out.written) };
    }
    sent.push({ opcode, groupType, memberId, data: data.slice(), reply });
    return reply;
  };
  return { send, sent };
}
