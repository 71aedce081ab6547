/**
 * 5.16 I2C Adapter Device, driver side: I2C transactions as groups of requests (one per
 * message, FAIL_NEXT on all but the last, queued in order: driver/i2c/8), each with its header
 * set (driver/i2c/2, reserved flag bits zero: driver/i2c/3), read messages with M_RD and a
 * device-writable buffer, write messages without it and a device-readable buffer (driver/i2c/6,
 * driver/i2c/7), zero-length messages without a buffer (driver/i2c/4).
 */
import { type DeviceDriver, type DeviceDriverType, checkDriverContext } from '../../driver/device-driver.js';
import { RequestQueue } from '../../driver/request-queue.js';
import type { DriverContext } from '../../driver/types.js';
import { ErrorCode, VirtioError } from '../../errors.js';
import type { Segment } from '../../queue/types.js';
import { DeviceId } from '../../spec/device-id.js';
import {
  I2C_FEATURES,
  I2C_MAX_10BIT_ADDRESS,
  I2C_MAX_7BIT_ADDRESS,
  I2C_OUT_HDR,
  I2C_OUT_HDR_SIZE,
  I2C_REQUESTQ,
  I2cF,
  I2cFlags,
  I2cStatus,
  encodeI2cAddress,
} from '../../spec/i2c.js';

/** One message of a transaction: `write` bytes, or `read` bytes (0 and an empty write: zero-length). */
export interface I2cMessage {
  /** The target's address (7-bit, or 10-bit with `tenBit`). */
  readonly address: number;
  /** A 10-bit address (5.16.6.1 encoding). Default false. */
  readonly tenBit?: boolean;
  /** Bytes to write to the target (a write message). */
  readonly write?: Uint8Array;
  /** Bytes to read from the target (a read message, VIRTIO_I2C_FLAGS_M_RD). */
  readonly read?: number;
}

/** What `transfer` achieved for a transaction. */
export interface I2cTransferResult {
  /** Messages that succeeded: those before the first failure (driver/i2c/9); all when `ok`. */
  readonly completed: number;
  /** Every message answered VIRTIO_I2C_MSG_OK. */
  readonly ok: boolean;
  /** Per message: the bytes read, for read messages that succeeded; null otherwise (driver/i2c/5). */
  readonly reads: readonly (Uint8Array | null)[];
}

/** A transaction failed (the target NACKed, is absent, or the device refused a request). */
export class I2cTransferError extends VirtioError {
  constructor(
    /** Messages that succeeded before the failure. */
    readonly completed: number,
    message: string,
  ) {
    super(ErrorCode.REQUEST_FAILED, message);
  }
}

/** Largest message buffer (the length field of Linux's struct i2c_msg is 16 bits). */
export const I2C_MAX_MESSAGE = 0xffff;

/**
 * The virtio-i2c driver (5.16): typed requests over the device's queues. Construct it on a
 * DriverContext, or start it with startDeviceDriver and its static `type`.
 */
export class I2cDriver implements DeviceDriver {
  /** driver/i2c/1: ZERO_LENGTH_REQUEST accepted, and negotiation aborted when it is not offered. */
  static readonly type: DeviceDriverType<I2cDriver, undefined> = {
    name: 'virtio-i2c',
    deviceId: DeviceId.I2C_ADAPTER,
    wantedFeatures: I2C_FEATURES,
    requiredFeatures: I2cF.ZERO_LENGTH_REQUEST,
    attach: (ctx) => new I2cDriver(ctx),
  };

  private readonly ctx: DriverContext;
  private readonly queue: RequestQueue;

  constructor(ctx: DriverContext) {
    checkDriverContext(I2cDriver.type, ctx);
    this.ctx = ctx;
    this.queue = new RequestQueue(ctx, I2C_REQUESTQ);
  }

  /**
   * One I2C transaction: every message a request, queued together in order. Resolves with what
   * succeeded; messages from the first failure on count as failed whatever their status
   * (driver/i2c/9), and their read bytes are not used (driver/i2c/5).
   */
  async transfer(messages: readonly I2cMessage[]): Promise<I2cTransferResult> {
    if (messages.length === 0) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'an I2C transaction needs at least one message');
    for (const m of messages) checkMessage(m);
    const { memory, dma, littleEndian: le } = this.ctx;
    const regions: { addr: number; bufLen: number; read: boolean }[] = [];
    try {
      const pending: Promise<number>[] = [];
      for (let i = 0; i < messages.length; i++) {
        const m = messages[i]!;
        const read = m.read !== undefined;
        const bufLen = read ? m.read! : m.write!.length;
        // One allocation: out_hdr, the buffer, in_hdr.
        const addr = dma.alloc(I2C_OUT_HDR_SIZE + bufLen + 1, 8);
        regions.push({ addr, bufLen, read });
        const hdr = new DataView(new ArrayBuffer(I2C_OUT_HDR_SIZE));
        hdr.setUint16(I2C_OUT_HDR.addr, encodeI2cAddress(m.address, m.tenBit === true), le);
        hdr.setUint16(I2C_OUT_HDR.padding, 0, le);
        // driver/i2c/3: only FAIL_NEXT and M_RD, every other bit zero.
        const flags = (i < messages.length - 1 ? I2cFlags.FAIL_NEXT : 0) | (read ? I2cFlags.M_RD : 0);
        hdr.setUint32(I2C_OUT_HDR.flags, flags, le);
        memory.write(addr, new Uint8Array(hdr.buffer));
        const bufAddr = addr + I2C_OUT_HDR_SIZE;
        const statusAddr = bufAddr + bufLen;
        // The status starts as ERR: a device that does not write it has not answered OK.
        memory.writeU8(statusAddr, I2cStatus.ERR);
        const out: Segment[] = [{ addr, len: I2C_OUT_HDR_SIZE }];
        const inn: Segment[] = [];
        if (bufLen > 0) {
          if (read) {
            memory.fill(bufAddr, bufLen, 0);
            inn.push({ addr: bufAddr, len: bufLen });
          } else {
            memory.write(bufAddr, m.write!);
            out.push({ addr: bufAddr, len: bufLen });
          }
        }
        inn.push({ addr: statusAddr, len: 1 });
        // driver/i2c/8: submitted in order; the queue keeps that order even when it waits for room.
        pending.push(this.queue.submit(out, inn));
      }
      await Promise.all(pending);
      const reads: (Uint8Array | null)[] = [];
      let completed = messages.length;
      for (let i = 0; i < regions.length; i++) {
        const r = regions[i]!;
        const status = memory.readU8(r.addr + I2C_OUT_HDR_SIZE + r.bufLen);
        if (completed === messages.length && status !== I2cStatus.OK) completed = i;
        if (i >= completed || !r.read) {
          reads.push(null);
          continue;
        }
        const b = new Uint8Array(r.bufLen);
        if (r.bufLen > 0) memory.read(r.addr + I2C_OUT_HDR_SIZE, b);
        reads.push(b);
      }
      return { completed, ok: completed === messages.length, reads };
    } finally {
      for (const r of regions) dma.free(r.addr);
    }
  }

  /** Writes `data` to the target (one message). Throws I2cTransferError on a NACK. */
  async write(address: number, data: Uint8Array, tenBit = false): Promise<void> {
    await this.run([{ address, tenBit, write: data }]);
  }

  /** Reads `length` bytes from the target (one message). */
  async read(address: number, length: number, tenBit = false): Promise<Uint8Array> {
    return (await this.run([{ address, tenBit, read: length }])).reads[0]!;
  }

  /** Writes `data` (a register number, say) then reads `length` bytes, with a repeated START. */
  async writeRead(address: number, data: Uint8Array, length: number, tenBit = false): Promise<Uint8Array> {
    return (
      await this.run([
        { address, tenBit, write: data },
        { address, tenBit, read: length },
      ])
    ).reads[1]!;
  }

  /** Whether a target answers at `address` (a zero-length write: the SMBus Quick command). */
  async probe(address: number, tenBit = false): Promise<boolean> {
    return (await this.transfer([{ address, tenBit, write: new Uint8Array(0) }])).ok;
  }

  /** Stops using the device: pending transfers fail with RequestAbortedError('detached'). */
  detach(): void {
    this.queue.detach();
  }

  private async run(messages: readonly I2cMessage[]): Promise<I2cTransferResult> {
    const r = await this.transfer(messages);
    if (!r.ok) {
      const m = messages[r.completed]!;
      throw new I2cTransferError(r.completed, `I2C message ${r.completed} to 0x${m.address.toString(16)} failed`);
    }
    return r;
  }
}

function checkMessage(m: I2cMessage): void {
  const max = m.tenBit === true ? I2C_MAX_10BIT_ADDRESS : I2C_MAX_7BIT_ADDRESS;
  if (!Number.isInteger(m.address) || m.address < 0 || m.address > max) {
    throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `I2C address ${m.address} is not a ${m.tenBit === true ? '10' : '7'}-bit address`);
  }
  if ((m.write === undefined) === (m.read === undefined)) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'an I2C message has either write or read');
  const len = m.read ?? m.write!.length;
  if (!Number.isInteger(len) || len < 0 || len > I2C_MAX_MESSAGE) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `I2C message length ${len} not in 0..${I2C_MAX_MESSAGE}`);
}
