/**
 * One SCMI command being served (5.17.6.1): its header, its parameters copied out of the guest
 * buffer, and room for its return values. One per QueueServer pool slot, with fixed buffers made
 * when the slot is made: serving a command allocates nothing, and a command answered later (an
 * asynchronous sensor source) keeps its own buffers.
 */
import { QueueRequest } from '../../device/queue-server.js';
import type { DescriptorChain } from '../../queue/chain.js';
import { ScmiStatus, scmiHeaderMessageId, scmiHeaderProtocol, scmiHeaderToken, scmiHeaderType } from '../../spec/scmi.js';

/** Parameter bytes kept (every command of the protocols served takes 16 at most). */
export const SCMI_MAX_PARAMS = 64;
/** Return value bytes at most (status included): 8 sensor descriptors fit. */
export const SCMI_MAX_RETURN = 256;

/** A command on the cmdq: its header, parameters and the return values being built. */
export class ScmiCommand {
  /** The SCMI message header (le32: message id, type, protocol id, token). */
  header = 0;
  /** Whether VIRTIO_SCMI_F_P2A_CHANNELS was negotiated (notifications and delayed responses exist). */
  p2a = false;
  /** The parameter bytes after the header (the first `paramsLength` count). */
  readonly params = new Uint8Array(SCMI_MAX_PARAMS);
  /** A DataView of `params`. */
  readonly paramsView = new DataView(this.params.buffer);
  /** Parameter bytes the driver sent (beyond SCMI_MAX_PARAMS are dropped). */
  paramsLength = 0;
  /** The return values being written, status word first. */
  readonly ret = new Uint8Array(SCMI_MAX_RETURN);
  /** A DataView of `ret`. */
  readonly retView = new DataView(this.ret.buffer);
  /** Return value bytes the driver's buffer can take (at most SCMI_MAX_RETURN). */
  retRoom = 0;

  /** Message id from the header (bits 0..7). */
  get messageId(): number {
    return scmiHeaderMessageId(this.header);
  }
  /** Protocol id from the header (bits 10..17). */
  get protocolId(): number {
    return scmiHeaderProtocol(this.header);
  }
  /** Message type from the header (bits 8..9): 0 for a command. */
  get type(): number {
    return scmiHeaderType(this.header);
  }
  /** Token from the header (bits 18..27), echoed in the response. */
  get token(): number {
    return scmiHeaderToken(this.header);
  }

  /** Whether the command has at least `n` parameter bytes. */
  has(n: number): boolean {
    return this.paramsLength >= n;
  }

  /** Parameter word `i` (le32); check `has` first. */
  u32(i: number): number {
    return this.paramsView.getUint32(i * 4, true);
  }

  /**
   * Writes only `status` (device/scmi/5: a status other than SUCCESS is the whole ret_values)
   * and returns the return value length, 4.
   */
  status(status: number): number {
    this.retView.setInt32(0, status, true);
    return 4;
  }

  /** Writes return word `i` (word 0 is the status). */
  setU32(i: number, v: number): void {
    this.retView.setUint32(i * 4, v >>> 0, true);
  }

  /** SUCCESS followed by up to four words (le32, fixed arguments: no array per reply), returning the length. */
  success(w0?: number, w1?: number, w2?: number, w3?: number): number {
    const v = this.retView;
    v.setInt32(0, ScmiStatus.SUCCESS, true);
    if (w0 === undefined) return 4;
    v.setUint32(4, w0 >>> 0, true);
    if (w1 === undefined) return 8;
    v.setUint32(8, w1 >>> 0, true);
    if (w2 === undefined) return 12;
    v.setUint32(12, w2 >>> 0, true);
    if (w3 === undefined) return 16;
    v.setUint32(16, w3 >>> 0, true);
    return 20;
  }
}

/** A cmdq pool slot: the chain and its command buffers. */
export class ScmiRequest extends QueueRequest {
  readonly command = new ScmiCommand();
  constructor(chain: DescriptorChain, queueIndex: number) {
    super(chain, queueIndex);
  }
}

/** What serves the commands of one SCMI protocol. */
export interface ScmiProtocolHandler {
  /** The SCMI protocol id served (0x10 base, 0x15 sensor...). */
  readonly protocolId: number;
  /** Whether `messageId` is implemented (PROTOCOL_MESSAGE_ATTRIBUTES; device/scmi/8 with p2a false). */
  implements(messageId: number, p2a: boolean): boolean;
  /**
   * Serves `cmd` (its type is COMMAND, its protocol this one): writes the return values into
   * `cmd.ret` (status first) and returns their length, or a Promise of it.
   */
  handle(cmd: ScmiCommand): number | Promise<number>;
}

/** A 64-bit signed value as (low, high) le32 words; values are safe integers. */
export function splitS64(v: number): [number, number] {
  const high = Math.floor(v / 0x1_0000_0000);
  return [(v - high * 0x1_0000_0000) >>> 0, high | 0];
}

export function joinS64(low: number, high: number): number {
  return (high | 0) * 0x1_0000_0000 + (low >>> 0);
}
