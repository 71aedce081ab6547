/**
 * The SCMI Base protocol (0x10), version 1.0: the agent discovers the platform through it
 * (version, attributes, message attributes, vendor, sub-vendor, implementation version, the list
 * of the other protocols). BASE_DISCOVER_AGENT and BASE_NOTIFY_ERRORS are optional and not
 * implemented (PROTOCOL_MESSAGE_ATTRIBUTES says NOT_FOUND, calling them NOT_SUPPORTED).
 */
import { ErrorCode, VirtioError } from '../../errors.js';
import { SCMI_BASE_VERSION, SCMI_VENDOR_ID_SIZE, ScmiBaseMessage, ScmiProtocol, ScmiStatus } from '../../spec/scmi.js';
import type { ScmiCommand, ScmiProtocolHandler } from './scmi-command.js';

/** What the Base protocol answers about the platform's vendor and implementation. */
export interface ScmiBaseIdentity {
  /** BASE_DISCOVER_VENDOR: ASCII, at most 15 characters. Default "virtio-ts". */
  readonly vendor?: string;
  /** BASE_DISCOVER_SUB_VENDOR. Default "host". */
  readonly subVendor?: string;
  /** BASE_DISCOVER_IMPLEMENTATION_VERSION. Default 1. */
  readonly implementationVersion?: number;
}

function vendorBytes(s: string): Uint8Array {
  if (!/^[\x20-\x7e]{0,15}$/.test(s)) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `SCMI vendor id "${s}" is not ASCII of at most 15 characters`);
  const b = new Uint8Array(SCMI_VENDOR_ID_SIZE);
  b.set(new TextEncoder().encode(s));
  return b;
}

export class ScmiBaseProtocol implements ScmiProtocolHandler {
  /** ScmiProtocol.BASE (0x10). */
  readonly protocolId = ScmiProtocol.BASE;
  private readonly vendor: Uint8Array;
  private readonly subVendor: Uint8Array;
  private readonly implementationVersion: number;

  /** `protocols`: the identifiers of the other protocols served, in the order they are listed. */
  constructor(
    private readonly protocols: readonly number[],
    identity: ScmiBaseIdentity = {},
  ) {
    this.vendor = vendorBytes(identity.vendor ?? 'virtio-ts');
    this.subVendor = vendorBytes(identity.subVendor ?? 'host');
    this.implementationVersion = identity.implementationVersion ?? 1;
    if (!Number.isInteger(this.implementationVersion) || this.implementationVersion < 0 || this.implementationVersion > 0xffff_ffff) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'bad SCMI implementation version');
    }
  }

  implements(messageId: number): boolean {
    return messageId <= ScmiBaseMessage.DISCOVER_LIST_PROTOCOLS;
  }

  handle(cmd: ScmiCommand): number {
    switch (cmd.messageId) {
      case ScmiBaseMessage.PROTOCOL_VERSION:
        return cmd.success(SCMI_BASE_VERSION);
      case ScmiBaseMessage.PROTOCOL_ATTRIBUTES:
        // [15:8] agents in the system (this one), [7:0] protocols besides Base.
        return cmd.success((1 << 8) | this.protocols.length);
      case ScmiBaseMessage.PROTOCOL_MESSAGE_ATTRIBUTES:
        if (!cmd.has(4)) return cmd.status(ScmiStatus.PROTOCOL_ERROR);
        return this.implements(cmd.u32(0)) ? cmd.success(0) : cmd.status(ScmiStatus.NOT_FOUND);
      case ScmiBaseMessage.DISCOVER_VENDOR:
        return this.vendorReply(cmd, this.vendor);
      case ScmiBaseMessage.DISCOVER_SUB_VENDOR:
        return this.vendorReply(cmd, this.subVendor);
      case ScmiBaseMessage.DISCOVER_IMPLEMENTATION_VERSION:
        return cmd.success(this.implementationVersion);
      case ScmiBaseMessage.DISCOVER_LIST_PROTOCOLS:
        return this.listProtocols(cmd);
      default:
        return cmd.status(ScmiStatus.NOT_SUPPORTED);
    }
  }

  private vendorReply(cmd: ScmiCommand, id: Uint8Array): number {
    cmd.success();
    cmd.ret.set(id, 4);
    return 4 + SCMI_VENDOR_ID_SIZE;
  }

  /** skip, then as many protocol ids as the buffer takes, packed four to a word. */
  private listProtocols(cmd: ScmiCommand): number {
    if (!cmd.has(4)) return cmd.status(ScmiStatus.PROTOCOL_ERROR);
    const skip = cmd.u32(0);
    if (skip > this.protocols.length) return cmd.status(ScmiStatus.INVALID_PARAMETERS);
    const fit = Math.max(0, Math.floor((cmd.retRoom - 8) / 4) * 4);
    const n = Math.min(this.protocols.length - skip, fit);
    cmd.success(n);
    const words = Math.ceil(n / 4);
    cmd.ret.fill(0, 8, 8 + words * 4);
    for (let i = 0; i < n; i++) cmd.ret[8 + i] = this.protocols[skip + i]!;
    return 8 + words * 4;
  }
}
