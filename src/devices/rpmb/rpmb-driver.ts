/**
 * 5.12 RPMB Device, driver side: builds RPMB frames for its caller (driver/rpmb/2), one request
 * per descriptor chain: the request frames device-readable, each a whole 512-byte frame in its
 * own descriptor (driver/rpmb/1: frames are never packed together or shortened), then room for
 * the response frames. Program key and data write carry a VIRTIO_RPMB_REQ_RESULT_READ frame, so
 * the device answers with the result. The driver holds the key (the RPMB user's secret): it signs
 * writes and checks the MAC and nonce of every response, so a device that lies is caught.
 */
import { randomFillSync } from 'node:crypto';
import { type DeviceDriver, type DeviceDriverType, checkDriverContext } from '../../driver/device-driver.js';
import { RequestQueue } from '../../driver/request-queue.js';
import type { DriverContext } from '../../driver/types.js';
import { ErrorCode, VirtioError } from '../../errors.js';
import type { Segment } from '../../queue/types.js';
import { readConfigFields } from '../../spec/config-layout.js';
import { DeviceId } from '../../spec/device-id.js';
import {
  RPMB_BLOCKS_PER_UNIT,
  RPMB_BLOCK_SIZE,
  RPMB_CONFIG_LAYOUT,
  RPMB_FEATURES,
  RPMB_REQUESTQ,
  RpmbFrame,
  RpmbRequest,
  RpmbResponse,
  RpmbResult,
} from '../../spec/rpmb.js';
import { framesSigned, frameU16, frameU32, setFrameU16, setFrameU32, signFrames } from './rpmb-frame.js';
import { RPMB_KEY_SIZE } from './rpmb-store.js';

const FRAME = RpmbFrame.SIZE;

/** The device answered with a result other than OK (`result` is the frame's result field). */
export class RpmbResultError extends VirtioError {
  constructor(
    /** What was asked ('program key', 'data write'...), for the message. */
    readonly operation: string,
    /** The response frame's result field (VIRTIO_RPMB_RES_*, possibly with WRITE_COUNTER_EXPIRED 0x80). */
    readonly result: number,
  ) {
    super(ErrorCode.REQUEST_FAILED, `RPMB ${operation}: result 0x${result.toString(16).padStart(4, '0')}`);
  }
}

/** 5.12.4 configuration. */
export interface RpmbDriverConfig {
  /** In 128 KiB units. */
  readonly capacity: number;
  /** `max_wr_cnt` of struct virtio_rpmb_config. */
  readonly maxWrCnt: number;
  /** `max_rd_cnt` of struct virtio_rpmb_config. */
  readonly maxRdCnt: number;
}

/** A response frame, decoded. */
export interface RpmbResponseFrame {
  /** req_resp: the VIRTIO_RPMB_RESP_* type (5.12.6.1). */
  readonly type: number;
  /** VIRTIO_RPMB_RES_* result, ORed with WRITE_COUNTER_EXPIRED (0x80) once the counter is spent. */
  readonly result: number;
  /** The device's write counter (0 in responses that do not carry it). */
  readonly writeCounter: number;
  /** First block (256 bytes) of a data read or write. */
  readonly address: number;
  /** Blocks of a data read or write. */
  readonly blockCount: number;
  /** The 16-byte nonce echoed from the request (reads and counter reads). */
  readonly nonce: Uint8Array;
}

/** Options of RpmbDriver. */
export interface RpmbDriverOptions {
  /** The authentication key, when it is programmed already (or will be with programKey). */
  key?: Uint8Array;
}

/** A frame with the given type and fields (the rest zero). */
export function rpmbFrame(type: number, fields: { blockCount?: number; address?: number; writeCounter?: number; nonce?: Uint8Array; keyMac?: Uint8Array; data?: Uint8Array } = {}): Uint8Array {
  const f = new Uint8Array(FRAME);
  setFrameU16(f, RpmbFrame.REQ_RESP, type);
  setFrameU16(f, RpmbFrame.BLOCK_COUNT, fields.blockCount ?? 0);
  setFrameU16(f, RpmbFrame.ADDRESS, fields.address ?? 0);
  setFrameU32(f, RpmbFrame.WRITE_COUNTER, fields.writeCounter ?? 0);
  if (fields.nonce) f.set(fields.nonce, RpmbFrame.NONCE);
  if (fields.keyMac) f.set(fields.keyMac, RpmbFrame.KEY_MAC);
  if (fields.data) f.set(fields.data, RpmbFrame.DATA);
  return f;
}

/** The header fields of a 512-byte RPMB frame (big-endian, 5.12.6.1); key/MAC and data are not copied. */
export function decodeRpmbFrame(f: Uint8Array): RpmbResponseFrame {
  return {
    type: frameU16(f, RpmbFrame.REQ_RESP),
    result: frameU16(f, RpmbFrame.RESULT),
    writeCounter: frameU32(f, RpmbFrame.WRITE_COUNTER),
    address: frameU16(f, RpmbFrame.ADDRESS),
    blockCount: frameU16(f, RpmbFrame.BLOCK_COUNT),
    nonce: f.slice(RpmbFrame.NONCE, RpmbFrame.NONCE + RpmbFrame.NONCE_SIZE),
  };
}

/**
 * The virtio-rpmb driver (5.12): typed requests over the device's queues. Construct it on a
 * DriverContext, or start it with startDeviceDriver and its static `type`.
 */
export class RpmbDriver implements DeviceDriver {
  /** The DeviceDriver contract: RPMB devices, no feature bits (5.12.3). */
  static readonly type: DeviceDriverType<RpmbDriver, RpmbDriverOptions> = {
    name: 'virtio-rpmb',
    deviceId: DeviceId.RPMB,
    wantedFeatures: RPMB_FEATURES,
    requiredFeatures: 0n,
    attach: (ctx, opts) => new RpmbDriver(ctx, opts),
  };

  /** The configuration as read at attach (capacity, block limits). */
  readonly config: RpmbDriverConfig;
  private readonly ctx: DriverContext;
  private readonly queue: RequestQueue;
  private key: Uint8Array | null;

  constructor(ctx: DriverContext, opts: RpmbDriverOptions = {}) {
    checkDriverContext(RpmbDriver.type, ctx);
    this.ctx = ctx;
    this.queue = new RequestQueue(ctx, RPMB_REQUESTQ);
    this.key = opts.key ? checkKey(opts.key) : null;
    const c = readConfigFields(RPMB_CONFIG_LAYOUT, ['capacity', 'maxWrCnt', 'maxRdCnt'], (o, l) => ctx.readConfig(o, l), ctx.littleEndian);
    this.config = { capacity: c.capacity, maxWrCnt: c.maxWrCnt, maxRdCnt: c.maxRdCnt };
  }

  /** Data blocks (256 bytes) the device holds. */
  get blocks(): number {
    return this.config.capacity * RPMB_BLOCKS_PER_UNIT;
  }

  /**
   * Sends `frames` (whole 512-byte frames, each in its own descriptor) with room for
   * `responseFrames` frames; resolves with the response bytes the device wrote.
   */
  async exchange(frames: Uint8Array, responseFrames: number): Promise<Uint8Array> {
    if (frames.length === 0 || frames.length % FRAME !== 0) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'RPMB requests are whole 512-byte frames');
    if (!Number.isInteger(responseFrames) || responseFrames < 0) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `bad response frame count ${responseFrames}`);
    const nIn = frames.length / FRAME;
    const addr = this.ctx.dma.alloc((nIn + responseFrames) * FRAME, 8);
    try {
      this.ctx.memory.write(addr, frames);
      this.ctx.memory.fill(addr + frames.length, responseFrames * FRAME, 0);
      const out: Segment[] = [];
      const inn: Segment[] = [];
      for (let i = 0; i < nIn; i++) out.push({ addr: addr + i * FRAME, len: FRAME });
      for (let i = 0; i < responseFrames; i++) inn.push({ addr: addr + (nIn + i) * FRAME, len: FRAME });
      const used = await this.queue.submit(out, inn);
      const got = new Uint8Array(Math.min(used, responseFrames * FRAME));
      if (got.length > 0) this.ctx.memory.read(addr + frames.length, got);
      return got;
    } finally {
      this.ctx.dma.free(addr);
    }
  }

  /** VIRTIO_RPMB_REQ_PROGRAM_KEY with a result read; on OK the driver keeps the key. */
  async programKey(key: Uint8Array): Promise<RpmbResponseFrame> {
    checkKey(key);
    const req = concat(rpmbFrame(RpmbRequest.PROGRAM_KEY, { blockCount: 1, keyMac: key }), rpmbFrame(RpmbRequest.RESULT_READ, { blockCount: 1 }));
    const resp = await this.single('program key', req, RpmbResponse.PROGRAM_KEY);
    const r = decodeRpmbFrame(resp);
    if (r.result !== RpmbResult.OK) throw new RpmbResultError('program key', r.result);
    this.key = Uint8Array.from(key);
    this.checkMac('program key', resp, 1);
    return r;
  }

  /** VIRTIO_RPMB_REQ_GET_WRITE_COUNTER with a fresh nonce; checks the nonce echo and the MAC. */
  async getWriteCounter(): Promise<number> {
    const nonce = randomFillSync(new Uint8Array(RpmbFrame.NONCE_SIZE));
    const resp = await this.single('get write counter', rpmbFrame(RpmbRequest.GET_WRITE_COUNTER, { blockCount: 1, nonce }), RpmbResponse.GET_COUNTER);
    const r = decodeRpmbFrame(resp);
    if ((r.result & ~RpmbResult.WRITE_COUNTER_EXPIRED) !== RpmbResult.OK) throw new RpmbResultError('get write counter', r.result);
    checkNonce('get write counter', r.nonce, nonce);
    this.checkMac('get write counter', resp, 1);
    return r.writeCounter;
  }

  /**
   * Authenticated data write of whole 256-byte blocks from `address` (split in requests of
   * max_wr_cnt blocks); resolves with the write counter after the last one.
   */
  async write(address: number, data: Uint8Array): Promise<number> {
    const key = this.requireKey();
    const blocks = checkBlocks(address, data.length / RPMB_BLOCK_SIZE, data.length % RPMB_BLOCK_SIZE === 0);
    const per = this.config.maxWrCnt || blocks;
    let counter = await this.getWriteCounter();
    for (let done = 0; done < blocks; done += per) {
      const n = Math.min(per, blocks - done);
      const frames = new Uint8Array((n + 1) * FRAME);
      for (let i = 0; i < n; i++) {
        const at = (done + i) * RPMB_BLOCK_SIZE;
        frames.set(rpmbFrame(RpmbRequest.DATA_WRITE, { blockCount: n, address: address + done, writeCounter: counter, data: data.subarray(at, at + RPMB_BLOCK_SIZE) }), i * FRAME);
      }
      signFrames(key, frames, n);
      frames.set(rpmbFrame(RpmbRequest.RESULT_READ, { blockCount: 1 }), n * FRAME);
      const resp = await this.single('data write', frames, RpmbResponse.DATA_WRITE);
      const r = decodeRpmbFrame(resp);
      if (r.result !== RpmbResult.OK) throw new RpmbResultError('data write', r.result);
      this.checkMac('data write', resp, 1);
      if (r.writeCounter !== counter + 1 || r.address !== address + done) {
        throw new VirtioError(ErrorCode.REQUEST_FAILED, `RPMB data write: response counter ${r.writeCounter} / address ${r.address} do not match the request`);
      }
      counter = r.writeCounter;
    }
    return counter;
  }

  /** Authenticated data read of `blocks` 256-byte blocks from `address` (split by max_rd_cnt). */
  async read(address: number, blocks: number): Promise<Uint8Array> {
    this.requireKey();
    checkBlocks(address, blocks, true);
    const per = this.config.maxRdCnt || blocks;
    const out = new Uint8Array(blocks * RPMB_BLOCK_SIZE);
    for (let done = 0; done < blocks; done += per) {
      const n = Math.min(per, blocks - done);
      const nonce = randomFillSync(new Uint8Array(RpmbFrame.NONCE_SIZE));
      const resp = await this.exchange(rpmbFrame(RpmbRequest.DATA_READ, { blockCount: n, address: address + done, nonce }), n);
      if (resp.length < FRAME) throw new VirtioError(ErrorCode.REQUEST_FAILED, 'RPMB data read: no response frame');
      const first = decodeRpmbFrame(resp);
      if (first.result !== RpmbResult.OK) throw new RpmbResultError('data read', first.result);
      if (resp.length !== n * FRAME) throw new VirtioError(ErrorCode.REQUEST_FAILED, `RPMB data read: ${resp.length / FRAME} frames for ${n} blocks`);
      for (let i = 0; i < n; i++) {
        const f = decodeRpmbFrame(resp.subarray(i * FRAME, (i + 1) * FRAME));
        if (f.type !== RpmbResponse.DATA_READ || f.address !== address + done || f.blockCount !== n) {
          throw new VirtioError(ErrorCode.REQUEST_FAILED, `RPMB data read: frame ${i} does not answer the request`);
        }
        checkNonce('data read', f.nonce, nonce);
        out.set(resp.subarray(i * FRAME + RpmbFrame.DATA, i * FRAME + RpmbFrame.DATA + RPMB_BLOCK_SIZE), (done + i) * RPMB_BLOCK_SIZE);
      }
      this.checkMac('data read', resp, n);
    }
    return out;
  }

  /** A lone VIRTIO_RPMB_REQ_RESULT_READ: the device's result of the last program key or write. */
  async resultRead(): Promise<RpmbResponseFrame> {
    const resp = await this.exchange(rpmbFrame(RpmbRequest.RESULT_READ, { blockCount: 1 }), 1);
    if (resp.length !== FRAME) throw new VirtioError(ErrorCode.REQUEST_FAILED, 'RPMB result read: no response frame');
    return decodeRpmbFrame(resp);
  }

  /** Stops using the device: pending requests fail with RequestAbortedError('detached'). */
  detach(): void {
    this.queue.detach();
  }

  private async single(op: string, req: Uint8Array, type: number): Promise<Uint8Array> {
    const resp = await this.exchange(req, 1);
    if (resp.length !== FRAME) throw new VirtioError(ErrorCode.REQUEST_FAILED, `RPMB ${op}: no response frame`);
    const got = frameU16(resp, RpmbFrame.REQ_RESP);
    if (got !== type) throw new VirtioError(ErrorCode.REQUEST_FAILED, `RPMB ${op}: response type 0x${got.toString(16)}`);
    return resp;
  }

  private checkMac(op: string, frames: Uint8Array, count: number): void {
    if (this.key !== null && !framesSigned(this.key, frames, count)) throw new VirtioError(ErrorCode.REQUEST_FAILED, `RPMB ${op}: the response MAC is wrong`);
  }

  private requireKey(): Uint8Array {
    if (this.key === null) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'RPMB: the driver has no key (programKey or the key option)');
    return this.key;
  }

}

function checkKey(key: Uint8Array): Uint8Array {
  if (key.length !== RPMB_KEY_SIZE) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'RPMB key must be 32 bytes');
  return key;
}

function checkBlocks(address: number, blocks: number, whole: boolean): number {
  if (!whole || !Number.isInteger(blocks) || blocks < 1 || !Number.isInteger(address) || address < 0 || address + blocks > 0x10000) {
    throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `RPMB: bad block range ${address}+${blocks}`);
  }
  return blocks;
}

function checkNonce(op: string, got: Uint8Array, sent: Uint8Array): void {
  for (let i = 0; i < sent.length; i++) if (got[i] !== sent[i]) throw new VirtioError(ErrorCode.REQUEST_FAILED, `RPMB ${op}: the nonce was not echoed (replay?)`);
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const r = new Uint8Array(a.length + b.length);
  r.set(a);
  r.set(b, a.length);
  return r;
}
