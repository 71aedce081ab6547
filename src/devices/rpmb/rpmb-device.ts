/**
 * 5.12 RPMB Device, device side. One request is one descriptor chain: the device-readable part
 * holds the request frames (512 bytes each, in order), the device-writable part room for the
 * response frames. As the virtio-rpmb back-ends of rust-vmm and QEMU's proposal do, a program key
 * or data write request is followed in the same chain by its VIRTIO_RPMB_REQ_RESULT_READ frame
 * when the driver wants the result (5.12.6); a data read has one request frame and room for
 * block_count response frames; a get write counter one frame each way.
 *
 * The guest is untrusted: a chain with a partial frame, unmapped memory, too many frames or no
 * room for the response never throws; the device answers VIRTIO_RPMB_RES_GENERAL_FAILURE where
 * it can write a frame, and otherwise uses the buffer with length 0. Frames are read one at a
 * time through a ChainCursor into fixed buffers; data written is staged in a buffer sized by
 * max_wr_cnt (or the capacity when unlimited), allocated once.
 */
import { type Hmac, createHmac, timingSafeEqual } from 'node:crypto';
import { QueueServer, type QueueRequest } from '../../device/queue-server.js';
import type { DeviceContext, VirtioDevice } from '../../device/types.js';
import { ErrorCode, VirtioError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { ChainCursor } from '../../queue/chain.js';
import { encodeConfig } from '../../spec/config-layout.js';
import { DeviceId } from '../../spec/device-id.js';
import { F } from '../../spec/features.js';
import {
  RPMB_BLOCKS_PER_UNIT,
  RPMB_BLOCK_SIZE,
  RPMB_CONFIG_LAYOUT,
  RPMB_FEATURES,
  RPMB_REQUESTQ,
  RPMB_WRITE_COUNTER_MAX,
  RpmbConfig,
  RpmbFrame,
  RpmbRequest,
  RpmbResponse,
  RpmbResult,
} from '../../spec/rpmb.js';
import { frameU16, frameU32, macInput, setFrameU16, setFrameU32 } from './rpmb-frame.js';
import type { RpmbStore } from './rpmb-store.js';

/** Options of RpmbDevice. */
export interface RpmbDeviceOptions {
  /** 5.12.4 max_wr_cnt: blocks per data write at most, 1..255, or 0 for no limit. Default 16. */
  maxWriteBlocks?: number;
  /** 5.12.4 max_rd_cnt: blocks per data read at most, 1..255, or 0 for no limit. Default 16. */
  maxReadBlocks?: number;
  /** Maximum queue size. Default 128. */
  queueSize?: number;
  /** Where the device logs; silent by default. */
  logger?: Logger;
}

const FRAME = RpmbFrame.SIZE;

function checkCount(name: string, v: number): number {
  if (!Number.isInteger(v) || v < 0 || v > 0xff) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `${name} ${v} not in 0..255`);
  return v;
}

/**
 * The virtio-rpmb device (5.12): an authenticated replay-protected memory block on a store (RAM or
 * a file). What it implements and its normative coverage: docs/devices/rpmb.md.
 */
export class RpmbDevice implements VirtioDevice {
  readonly deviceId = DeviceId.RPMB;
  /** Requests complete in order, synchronously: IN_ORDER holds. */
  readonly offeredFeatures = RPMB_FEATURES | F.VERSION_1 | F.INDIRECT_DESC | F.EVENT_IDX | F.RING_PACKED | F.IN_ORDER | F.RING_RESET;
  readonly queueMaxSizes: readonly number[];
  readonly configSize = RpmbConfig.SIZE;

  /** max_wr_cnt of the configuration: blocks per data write at most, 0 for no limit. */
  readonly maxWriteBlocks: number;
  /** max_rd_cnt of the configuration: blocks per data read at most, 0 for no limit. */
  readonly maxReadBlocks: number;
  /** Data blocks (256 bytes) of the store. */
  readonly blocks: number;
  private readonly server: QueueServer;
  private readonly reader = new ChainCursor(false);
  private readonly writer = new ChainCursor(true);
  /** The request frame being looked at. */
  private readonly frame = new Uint8Array(FRAME);
  /** The response frame being built. */
  private readonly resp = new Uint8Array(FRAME);
  /** The result of the last program key or data write (what a lone RESULT_READ returns). */
  private readonly lastResult = new Uint8Array(FRAME);
  private readonly requestMac = new Uint8Array(RpmbFrame.KEY_MAC_SIZE);
  private readonly nonce = new Uint8Array(RpmbFrame.NONCE_SIZE);
  /** Data of a write, staged until its MAC and counter are checked; data of a read. */
  private readonly staging: Uint8Array;

  constructor(
    /** Where the key, the write counter and the blocks persist. */
    readonly store: RpmbStore,
    opts: RpmbDeviceOptions = {},
  ) {
    const qs = opts.queueSize ?? 128;
    if (!Number.isInteger(qs) || qs < 1 || qs > 32768) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `queueSize ${qs} not in 1..32768`);
    this.queueMaxSizes = [qs];
    this.maxWriteBlocks = checkCount('maxWriteBlocks', opts.maxWriteBlocks ?? 16);
    this.maxReadBlocks = checkCount('maxReadBlocks', opts.maxReadBlocks ?? 16);
    this.blocks = store.capacityUnits * RPMB_BLOCKS_PER_UNIT;
    const stagedBlocks = Math.min(this.blocks, Math.max(this.maxWriteBlocks || this.blocks, this.maxReadBlocks || this.blocks));
    this.staging = new Uint8Array(stagedBlocks * RPMB_BLOCK_SIZE);
    this.resetLastResult();
    const serve = (req: QueueRequest): number => this.serve(req);
    this.server = new QueueServer({ name: 'virtio-rpmb', numQueues: 1, logger: opts.logger, handler: (i) => (i === RPMB_REQUESTQ ? serve : null) });
  }

  private get writeLimit(): number {
    return Math.min(this.maxWriteBlocks || this.blocks, this.blocks);
  }

  private get readLimit(): number {
    return Math.min(this.maxReadBlocks || this.blocks, this.blocks);
  }

  /** One request chain; returns the bytes of response frames written. */
  private serve({ chain }: QueueRequest): number {
    this.writer.reset(chain);
    // An unmapped segment: nothing in the chain can be trusted to be read or written.
    if (chain.fault !== null) return 0;
    const frames = Math.floor(chain.readableBytes / FRAME);
    const room = Math.floor(chain.writableBytes / FRAME);
    if (frames === 0 || chain.readableBytes % FRAME !== 0 || this.reader.reset(chain).read(this.frame) !== FRAME) {
      return this.replyFailure(room, 0);
    }
    switch (frameU16(this.frame, RpmbFrame.REQ_RESP)) {
      case RpmbRequest.PROGRAM_KEY:
        return this.programKey(frames, room);
      case RpmbRequest.GET_WRITE_COUNTER:
        return this.getWriteCounter(frames, room);
      case RpmbRequest.DATA_WRITE:
        return this.dataWrite(frames, room);
      case RpmbRequest.DATA_READ:
        return this.dataRead(frames, room);
      case RpmbRequest.RESULT_READ:
        return this.resultRead(frames, room);
      default:
        return this.replyFailure(room, 0);
    }
  }

  /** device/rpmb/2..6. */
  private programKey(frames: number, room: number): number {
    const blockCount = frameU16(this.frame, RpmbFrame.BLOCK_COUNT);
    // The key is in the first frame; keep it before the result read frame replaces it.
    const key = this.requestMac;
    key.set(this.frame.subarray(RpmbFrame.KEY_MAC, RpmbFrame.KEY_MAC + RpmbFrame.KEY_MAC_SIZE));
    const rr = frames === 2 ? this.readResultReadFrame() : frames === 1 ? 'absent' : 'bad';
    let result: number;
    // device/rpmb/29, device/rpmb/5: a bad result read frame or extra frames: nothing is programmed.
    if (rr === 'bad') result = RpmbResult.GENERAL_FAILURE;
    else if (blockCount !== 1) result = RpmbResult.GENERAL_FAILURE; // device/rpmb/3
    else if (this.store.key !== null) result = RpmbResult.WRITE_FAILURE; // device/rpmb/4, device/rpmb/31: one-time programmable
    else {
      try {
        this.store.programKey(key);
        result = RpmbResult.OK;
      } catch {
        result = RpmbResult.WRITE_FAILURE; // device/rpmb/4
      }
    }
    key.fill(0);
    this.startResponse(RpmbResponse.PROGRAM_KEY, result); // device/rpmb/6
    this.signResponse(); // device/rpmb/2: the calculated MAC
    this.lastResult.set(this.resp);
    return rr === 'absent' ? 0 : this.reply(room);
  }

  /** device/rpmb/7..9. */
  private getWriteCounter(frames: number, room: number): number {
    this.nonce.set(this.frame.subarray(RpmbFrame.NONCE, RpmbFrame.NONCE + RpmbFrame.NONCE_SIZE));
    let result: number;
    if (frames !== 1) result = RpmbResult.GENERAL_FAILURE;
    else if (this.store.key === null) result = RpmbResult.NO_AUTH_KEY; // device/rpmb/7
    else if (frameU16(this.frame, RpmbFrame.BLOCK_COUNT) !== 1) result = RpmbResult.GENERAL_FAILURE; // device/rpmb/8
    else result = RpmbResult.OK;
    this.startResponse(RpmbResponse.GET_COUNTER, result); // device/rpmb/9
    if (result === RpmbResult.OK) setFrameU32(this.resp, RpmbFrame.WRITE_COUNTER, this.store.writeCounter);
    this.resp.set(this.nonce, RpmbFrame.NONCE);
    this.signResponse();
    return this.reply(room);
  }

  /** device/rpmb/10..22. */
  private dataWrite(frames: number, room: number): number {
    const f = this.frame;
    const blockCount = frameU16(f, RpmbFrame.BLOCK_COUNT);
    const address = frameU16(f, RpmbFrame.ADDRESS);
    const counter = frameU32(f, RpmbFrame.WRITE_COUNTER);
    const key = this.store.key;
    const stageable = this.staging.length / RPMB_BLOCK_SIZE;
    // eMMC 6.6.22: the MAC covers every data frame and is carried in the last one.
    const mac: Hmac | null = key !== null ? createHmac('sha256', key) : null;
    let dataFrames = 0;
    let wellFormed = true;
    let rr: 'absent' | 'ok' | 'bad' = 'absent';
    for (let i = 0; i < frames; i++) {
      if (i > 0) {
        // Frames past what could ever be written are skipped unread (the chain is bounded by the
        // queue, and the request fails anyway), except the last: it may be the result read.
        if (i >= stageable && i < frames - 1) {
          this.reader.skip((frames - 1 - i) * FRAME);
          wellFormed = false;
          dataFrames += frames - 1 - i;
          i = frames - 1;
        }
        if (this.reader.read(f) !== FRAME) {
          wellFormed = false;
          break;
        }
        if (i === frames - 1 && frameU16(f, RpmbFrame.REQ_RESP) === RpmbRequest.RESULT_READ) {
          rr = frameU16(f, RpmbFrame.BLOCK_COUNT) === 1 ? 'ok' : 'bad';
          break;
        }
      }
      if (frameU16(f, RpmbFrame.REQ_RESP) !== RpmbRequest.DATA_WRITE) wellFormed = false;
      if (dataFrames < stageable) this.staging.set(f.subarray(RpmbFrame.DATA, RpmbFrame.DATA + RpmbFrame.DATA_SIZE), dataFrames * RPMB_BLOCK_SIZE);
      mac?.update(macInput(f));
      this.requestMac.set(f.subarray(RpmbFrame.KEY_MAC, RpmbFrame.KEY_MAC + RpmbFrame.KEY_MAC_SIZE));
      dataFrames++;
    }
    const stored = this.store.writeCounter;
    let result: number;
    if (rr === 'bad') result = RpmbResult.GENERAL_FAILURE; // device/rpmb/29
    else if (key === null) result = RpmbResult.NO_AUTH_KEY; // device/rpmb/11
    else if (blockCount === 0 || blockCount > this.writeLimit) result = RpmbResult.GENERAL_FAILURE; // device/rpmb/12
    else if (!wellFormed || dataFrames !== blockCount) result = RpmbResult.GENERAL_FAILURE; // device/rpmb/21: a malformed request
    else if (stored >= RPMB_WRITE_COUNTER_MAX) result = RpmbResult.WRITE_COUNTER_EXPIRED; // device/rpmb/13, device/rpmb/14
    else if (address + blockCount > this.blocks) result = RpmbResult.ADDR_FAILURE; // device/rpmb/15
    else if (!timingSafeEqual(mac!.digest(), this.requestMac)) result = RpmbResult.AUTH_FAILURE; // device/rpmb/16, device/rpmb/17
    else if (counter !== stored) result = RpmbResult.COUNT_FAILURE; // device/rpmb/18
    else {
      // device/rpmb/19: authenticated; the data and the incremented counter are stored together.
      try {
        this.store.write(address, this.staging.subarray(0, blockCount * RPMB_BLOCK_SIZE), stored + 1);
        result = RpmbResult.OK;
      } catch {
        result = RpmbResult.WRITE_FAILURE; // device/rpmb/20
      }
    }
    this.startResponse(RpmbResponse.DATA_WRITE, result); // device/rpmb/22
    setFrameU32(this.resp, RpmbFrame.WRITE_COUNTER, this.store.writeCounter);
    setFrameU16(this.resp, RpmbFrame.ADDRESS, address);
    this.signResponse(); // device/rpmb/10
    this.lastResult.set(this.resp);
    return rr === 'ok' || rr === 'bad' ? this.reply(room) : 0;
  }

  /** device/rpmb/23..28. */
  private dataRead(frames: number, room: number): number {
    const f = this.frame;
    const blockCount = frameU16(f, RpmbFrame.BLOCK_COUNT);
    const address = frameU16(f, RpmbFrame.ADDRESS);
    this.nonce.set(f.subarray(RpmbFrame.NONCE, RpmbFrame.NONCE + RpmbFrame.NONCE_SIZE));
    const key = this.store.key;
    let result: number;
    if (frames !== 1) result = RpmbResult.GENERAL_FAILURE; // device/rpmb/27: a malformed request
    else if (key === null) result = RpmbResult.NO_AUTH_KEY; // device/rpmb/23
    else if (blockCount === 0 || blockCount > this.readLimit) result = RpmbResult.GENERAL_FAILURE; // device/rpmb/24
    else if (address + blockCount > this.blocks) result = RpmbResult.ADDR_FAILURE; // device/rpmb/25
    else if (room < blockCount) result = RpmbResult.GENERAL_FAILURE; // device/rpmb/27: no room for the data
    else {
      try {
        this.store.read(address, this.staging.subarray(0, blockCount * RPMB_BLOCK_SIZE));
        result = RpmbResult.OK;
      } catch {
        result = RpmbResult.READ_FAILURE; // device/rpmb/26
      }
    }
    if (result !== RpmbResult.OK) {
      this.startReadFrame(result, address, blockCount);
      this.signResponse();
      return this.reply(room);
    }
    // device/rpmb/28: block_count frames with the data, the MAC over all of them in the last.
    const mac = createHmac('sha256', key!);
    for (let i = 0; i < blockCount; i++) {
      this.startReadFrame(result, address, blockCount);
      this.resp.set(this.staging.subarray(i * RPMB_BLOCK_SIZE, (i + 1) * RPMB_BLOCK_SIZE), RpmbFrame.DATA);
      mac.update(macInput(this.resp));
      if (i === blockCount - 1) this.resp.set(mac.digest(), RpmbFrame.KEY_MAC);
      this.writer.write(this.resp);
    }
    return this.writer.moved;
  }

  /** A lone VIRTIO_RPMB_REQ_RESULT_READ: the result of the last program key or data write. */
  private resultRead(frames: number, room: number): number {
    if (frames !== 1 || frameU16(this.frame, RpmbFrame.BLOCK_COUNT) !== 1) return this.replyFailure(room, 0); // device/rpmb/29
    this.resp.set(this.lastResult);
    return this.reply(room);
  }

  /** Reads the frame after a program key: 'ok' for a good result read, 'bad' for anything else. */
  private readResultReadFrame(): 'ok' | 'bad' {
    const f = this.frame;
    if (this.reader.read(f) !== FRAME || frameU16(f, RpmbFrame.REQ_RESP) !== RpmbRequest.RESULT_READ) return 'bad';
    return frameU16(f, RpmbFrame.BLOCK_COUNT) === 1 ? 'ok' : 'bad';
  }

  private startResponse(type: number, result: number): void {
    this.resp.fill(0);
    setFrameU16(this.resp, RpmbFrame.REQ_RESP, type);
    // eMMC 6.6.22: once the counter is at its maximum, every result carries the expired flag.
    const expired = this.store.writeCounter >= RPMB_WRITE_COUNTER_MAX ? RpmbResult.WRITE_COUNTER_EXPIRED : 0;
    setFrameU16(this.resp, RpmbFrame.RESULT, result | expired);
  }

  private startReadFrame(result: number, address: number, blockCount: number): void {
    this.startResponse(RpmbResponse.DATA_READ, result);
    this.resp.set(this.nonce, RpmbFrame.NONCE);
    setFrameU16(this.resp, RpmbFrame.ADDRESS, address);
    setFrameU16(this.resp, RpmbFrame.BLOCK_COUNT, blockCount);
  }

  /** The MAC of the response with the device's key; left zero while no key is programmed. */
  private signResponse(): void {
    const key = this.store.key;
    if (key === null) return;
    this.resp.set(createHmac('sha256', key).update(macInput(this.resp)).digest(), RpmbFrame.KEY_MAC);
  }

  private replyFailure(room: number, type: number): number {
    this.startResponse(type, RpmbResult.GENERAL_FAILURE);
    return this.reply(room);
  }

  /** Writes the response frame when the driver gave room for one. */
  private reply(room: number): number {
    if (room < 1) return 0;
    return this.writer.write(this.resp);
  }

  private resetLastResult(): void {
    this.lastResult.fill(0);
    setFrameU16(this.lastResult, RpmbFrame.RESULT, RpmbResult.GENERAL_FAILURE);
  }

  readConfig(offset: number, dst: Uint8Array, _features: bigint, littleEndian: boolean): void {
    // 5.12.4, device/rpmb/1: the capacity in 128 KiB units, at most 0x80 (the store checks it).
    encodeConfig(
      RPMB_CONFIG_LAYOUT,
      { capacity: this.store.capacityUnits, maxWrCnt: this.maxWriteBlocks, maxRdCnt: this.maxReadBlocks },
      0n,
      offset,
      dst,
      littleEndian,
    );
  }

  /** 5.12.4: read-only for the driver; writes are ignored. */
  writeConfig(): void {}

  activate(ctx: DeviceContext): void {
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

  /** Device reset: the queue stops; key, counter and data stay in the store (device/rpmb/32, /35). */
  reset(): void {
    this.server.reset();
    this.resetLastResult();
  }

  resetQueue(index: number): void {
    this.server.resetQueue(index);
  }
}
