/**
 * 5.16 I2C Adapter Device, device side: an adapter whose bus holds simulated targets
 * (`I2cTarget`: an EEPROM, a register file, or the application's own). Each request of the
 * request queue is one segment of an I2C transaction; a group chained with FAIL_NEXT is one
 * transaction (repeated STARTs), ended by a STOP after its last request.
 *
 * The guest is untrusted: a request the device cannot parse (header short or unmapped, reserved
 * flag bits, a read carrying write data, a write with writable data, a segment over the device's
 * limit, an address no table row of 5.16.6.1 produces, no target there) is answered
 * VIRTIO_I2C_MSG_ERR, never thrown; only a chain without a writable byte comes back with used
 * length 0. The data path allocates nothing: one scratch buffer per device.
 */
import { ErrorCode, VirtioError } from '../../errors.js';
import { QueueServer, type QueueRequest } from '../../device/queue-server.js';
import type { DeviceContext, VirtioDevice } from '../../device/types.js';
import type { Logger } from '../../log.js';
import { ChainCursor, type DescriptorChain, writeWritableByteAt } from '../../queue/chain.js';
import { DeviceId } from '../../spec/device-id.js';
import { F } from '../../spec/features.js';
import {
  I2C_CONFIG_SIZE,
  I2C_FLAGS_RESERVED,
  I2C_MAX_10BIT_ADDRESS,
  I2C_MAX_7BIT_ADDRESS,
  I2C_OUT_HDR,
  I2C_OUT_HDR_SIZE,
  I2C_REQUESTQ,
  I2cF,
  I2cFlags,
  I2cStatus,
  decodeI2cAddressKey,
  i2cAddressKey,
} from '../../spec/i2c.js';
import type { I2cTarget } from './i2c-target.js';

/** Options of I2cDevice. */
export interface I2cDeviceOptions {
  /** Maximum queue size. Default 256. */
  queueSize?: number;
  /** The longest segment (buffer of one request) served, in bytes; longer ones get ERR. Default 8192 (Linux I2C_RDWR's limit). */
  maxSegment?: number;
  /** Where the device logs; silent by default. */
  logger?: Logger;
}

/** Counters for tests and logs. */
export interface I2cDeviceStats {
  /** Requests answered VIRTIO_I2C_MSG_OK. */
  ok: number;
  /** Requests answered VIRTIO_I2C_MSG_ERR (failed, malformed, or failed because of FAIL_NEXT). */
  err: number;
  /** Of those, failed without being attempted because an earlier request of the group failed. */
  skipped: number;
  /** Chains with no writable byte for the status: returned with used length 0. */
  unanswerable: number;
}

/**
 * The virtio-i2c device (5.16): an I2C adapter with simulated targets (EEPROM, register files).
 * What it implements and its normative coverage: docs/devices/i2c.md.
 */
export class I2cDevice implements VirtioDevice {
  readonly deviceId = DeviceId.I2C_ADAPTER;
  /**
   * device/i2c/1: ZERO_LENGTH_REQUEST is offered (and required, see validateFeatures).
   * Requests complete synchronously in ring order, so IN_ORDER holds.
   */
  readonly offeredFeatures =
    I2cF.ZERO_LENGTH_REQUEST | F.VERSION_1 | F.INDIRECT_DESC | F.EVENT_IDX | F.RING_PACKED | F.IN_ORDER | F.RING_RESET;
  readonly queueMaxSizes: readonly number[];
  readonly configSize = I2C_CONFIG_SIZE;
  /** Requests answered OK and ERR, skipped after a failure, and chains too malformed to answer. */
  readonly stats: I2cDeviceStats = { ok: 0, err: 0, skipped: 0, unanswerable: 0 };

  private readonly targets = new Map<number, I2cTarget>();
  private readonly maxSegment: number;
  private readonly scratch: Uint8Array;
  private readonly header = new Uint8Array(I2C_OUT_HDR_SIZE);
  private readonly headerView = new DataView(this.header.buffer);
  private readonly reader = new ChainCursor(false);
  private readonly writer = new ChainCursor(true);
  private readonly server: QueueServer;
  private littleEndian = true;
  /** The driver did not negotiate ZERO_LENGTH_REQUEST (a legacy interface has no FEATURES_OK to refuse). */
  private refused = false;
  /** A request of the current group failed: the rest of the group fails (FAIL_NEXT). */
  private failNext = false;
  /** The target addressed last in the current transaction (it gets the STOP). */
  private active: I2cTarget | null = null;

  constructor(opts: I2cDeviceOptions = {}) {
    const qs = opts.queueSize ?? 256;
    if (!Number.isInteger(qs) || qs < 1 || qs > 32768) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `queueSize ${qs} not in 1..32768`);
    this.queueMaxSizes = [qs];
    this.maxSegment = opts.maxSegment ?? 8192;
    if (!Number.isInteger(this.maxSegment) || this.maxSegment < 1 || this.maxSegment > 1 << 20) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `maxSegment ${this.maxSegment} not in 1..${1 << 20}`);
    }
    this.scratch = new Uint8Array(this.maxSegment);
    const serve = (req: QueueRequest): number => this.serve(req);
    this.server = new QueueServer({ name: 'virtio-i2c', numQueues: 1, logger: opts.logger, handler: (i) => (i === I2C_REQUESTQ ? serve : null) });
  }

  /** Puts `target` on the bus at `address` (7-bit 0..0x77, or 10-bit 0..0x3ff with `tenBit`). */
  attach(address: number, target: I2cTarget, tenBit = false): void {
    const max = tenBit ? I2C_MAX_10BIT_ADDRESS : I2C_MAX_7BIT_ADDRESS;
    // 7-bit 0x78..0x7f are reserved (the 10-bit prefix and future use): no row of 5.16.6.1 names them.
    if (!Number.isInteger(address) || address < 0 || address > max || (!tenBit && address >= 0x78)) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `I2C address 0x${address.toString(16)} is not a ${tenBit ? '10' : '7'}-bit target address`);
    }
    const key = i2cAddressKey(address, tenBit);
    if (this.targets.has(key)) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `I2C address 0x${address.toString(16)} is taken`);
    this.targets.set(key, target);
  }

  /** Takes the target at `address` off the bus; returns whether there was one. */
  detach(address: number, tenBit = false): boolean {
    const key = i2cAddressKey(address, tenBit);
    const t = this.targets.get(key);
    if (t === undefined) return false;
    if (this.active === t) this.active = null;
    return this.targets.delete(key);
  }

  /** The target at `address`, if any. */
  target(address: number, tenBit = false): I2cTarget | undefined {
    return this.targets.get(i2cAddressKey(address, tenBit));
  }

  /** One request: its status byte last in the writable part; returns the bytes written. */
  private serve({ chain }: QueueRequest): number {
    const writable = chain.writableBytes;
    if (writable === 0) {
      // No room for virtio_i2c_in_hdr: nothing can be answered. The group it belonged to is
      // unknown, so the transaction ends here (a STOP) and nothing more fails because of it.
      this.stats.unanswerable++;
      this.endTransaction();
      return 0;
    }
    let flags = 0;
    let ok = false;
    const headerOk = chain.fault === null && chain.readableBytes >= I2C_OUT_HDR_SIZE && this.reader.reset(chain).read(this.header, 0, I2C_OUT_HDR_SIZE) === I2C_OUT_HDR_SIZE;
    if (headerOk) {
      const le = this.littleEndian;
      flags = this.headerView.getUint32(I2C_OUT_HDR.flags, le);
      if (this.failNext) this.stats.skipped++;
      else ok = this.execute(chain, chain.readableBytes - I2C_OUT_HDR_SIZE, writable - 1, this.headerView.getUint16(I2C_OUT_HDR.addr, le), flags);
    }
    // 5.16.6.1: FAIL_NEXT groups requests; a failure fails the rest of the group
    // (device/i2c/7). A request without it ends the transaction: STOP.
    if ((flags & I2cFlags.FAIL_NEXT) !== 0) this.failNext = this.failNext || !ok;
    else this.endTransaction();
    if (ok) {
      this.stats.ok++;
    } else {
      this.stats.err++;
      // The read buffer is zeroed, so every byte the used length counts was written (2.7.8);
      // the driver must not use it (driver/i2c/5).
      if (writable > 1) this.writer.reset(chain).fill(writable - 1, 0);
    }
    if (!writeWritableByteAt(chain, writable - 1, ok ? I2cStatus.OK : I2cStatus.ERR)) return 0;
    return writable;
  }

  /** Runs one segment on the bus; false for any failure (NACK or a request the device refuses). */
  private execute(chain: DescriptorChain, writeLen: number, readLen: number, addr: number, flags: number): boolean {
    // device/i2c/1: without ZERO_LENGTH_REQUEST negotiated the driver is refused.
    if (this.refused) return false;
    if ((flags & I2C_FLAGS_RESERVED) !== 0) return false;
    const key = decodeI2cAddressKey(addr);
    const target = key < 0 ? undefined : this.targets.get(key);
    if (target === undefined) return false; // nobody ACKs the address
    // A repeated START to another target: the previous one sees the bus released.
    if (this.active !== null && this.active !== target) this.active.stop();
    this.active = target;
    if ((flags & I2cFlags.M_RD) !== 0) {
      // A read request: its buffer is device-writable; readable bytes past the header are a
      // driver error (driver/i2c/6).
      if (writeLen !== 0 || readLen > this.maxSegment) return false;
      if (!target.read(this.scratch, readLen)) return false;
      // device/i2c/5: one segment of exactly the buffer's length.
      return this.writer.reset(chain).write(this.scratch, 0, readLen) === readLen;
    }
    // A write request: its buffer is device-readable (driver/i2c/7); device/i2c/4: never written.
    if (readLen !== 0 || writeLen > this.maxSegment) return false;
    if (this.reader.read(this.scratch, 0, writeLen) !== writeLen) return false;
    return target.write(this.scratch, writeLen);
  }

  private endTransaction(): void {
    this.failNext = false;
    const t = this.active;
    this.active = null;
    t?.stop();
  }

  readConfig(_offset: number, dst: Uint8Array): void {
    dst.fill(0); // 5.16.4: no configuration space
  }

  writeConfig(): void {}

  /** device/i2c/1: a driver that does not accept ZERO_LENGTH_REQUEST is refused at FEATURES_OK. */
  validateFeatures(accepted: bigint): string | null {
    if ((accepted & I2cF.ZERO_LENGTH_REQUEST) === 0n) return 'VIRTIO_I2C_F_ZERO_LENGTH_REQUEST is mandatory (device/i2c/1)';
    return null;
  }

  activate(ctx: DeviceContext): void {
    this.littleEndian = ctx.littleEndian;
    this.refused = (ctx.features & I2cF.ZERO_LENGTH_REQUEST) === 0n;
    this.failNext = false;
    this.active = null;
    this.server.activate(ctx);
  }

  onQueueNotify(index: number): void {
    this.server.onQueueNotify(index);
  }

  suspend(): Promise<void> | void {
    return this.server.suspend();
  }

  resume(): void {
    this.server.resume();
  }

  reset(): void {
    this.server.reset();
    this.endTransaction();
  }

  resetQueue(index: number): void {
    this.server.resetQueue(index);
    this.endTransaction();
  }
}
