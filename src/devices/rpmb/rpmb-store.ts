/**
 * Where an RPMB device keeps what 5.12.7 says it maintains: the one-time programmable key
 * (device/rpmb/31), the monotonic write counter (device/rpmb/33) and the data (device/rpmb/36).
 * A store outlives the device object, so key and counter survive a device reset (device/rpmb/32,
 * device/rpmb/35); the file store survives a restart of the process as well.
 */
import { closeSync, fstatSync, fsyncSync, ftruncateSync, openSync, readSync, writeSync } from 'node:fs';
import { ErrorCode, VirtioError } from '../../errors.js';
import { RPMB_BLOCKS_PER_UNIT, RPMB_BLOCK_SIZE, RPMB_CAPACITY_UNIT, RPMB_MAX_CAPACITY_UNITS } from '../../spec/rpmb.js';

/** Bytes of the RPMB authentication key (HMAC-SHA256, 5.12.6.1). */
export const RPMB_KEY_SIZE = 32;

/** The device's persistent state (5.12): key, write counter, data blocks; MemoryRpmbStore or FileRpmbStore. */
export interface RpmbStore {
  /** 5.12.4 capacity in 128 KiB units (1..0x80). */
  readonly capacityUnits: number;
  /** The authentication key, or null until programmed. Never shown to the driver. */
  readonly key: Uint8Array | null;
  /** The write counter (5.12.6): authenticated writes done so far; at 2^32 - 1 it has expired (no more writes). */
  readonly writeCounter: number;
  /** Programs the key once; throws when it cannot be stored. */
  programKey(key: Uint8Array): void;
  /** Reads `dst.length / 256` blocks from `block`; throws when the data cannot be fetched. */
  read(block: number, dst: Uint8Array): void;
  /** Writes whole blocks at `block` and the new write counter together; throws on failure. */
  write(block: number, src: Uint8Array, writeCounter: number): void;
}

/** What a new store starts with (instead of an unprogrammed key and counter 0). */
export interface RpmbInitialState {
  /** A key already programmed (for tests and provisioning). */
  readonly key?: Uint8Array;
  /** The write counter to start at. Default 0. */
  readonly writeCounter?: number;
}

function checkUnits(units: number): void {
  // device/rpmb/1: a multiple of 128 KiB up to 16 MiB (0 units would be no storage at all).
  if (!Number.isInteger(units) || units < 1 || units > RPMB_MAX_CAPACITY_UNITS) {
    throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `RPMB capacity ${units} not in 1..${RPMB_MAX_CAPACITY_UNITS} units of 128 KiB`);
  }
}

function checkState(state: RpmbInitialState): void {
  if (state.key !== undefined && state.key.length !== RPMB_KEY_SIZE) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'RPMB key must be 32 bytes');
  const c = state.writeCounter;
  if (c !== undefined && (!Number.isInteger(c) || c < 0 || c > 0xffff_ffff)) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `bad write counter ${c}`);
}

/** A store in memory: survives device resets (it is not the device), not the process. */
export class MemoryRpmbStore implements RpmbStore {
  /** The contents: capacityUnits x 128 KiB, in 256-byte RPMB blocks (5.21). */
  readonly data: Uint8Array;
  private storedKey: Uint8Array | null;
  private counter: number;

  constructor(
    readonly capacityUnits: number,
    state: RpmbInitialState = {},
  ) {
    checkUnits(capacityUnits);
    checkState(state);
    this.data = new Uint8Array(capacityUnits * RPMB_CAPACITY_UNIT);
    this.storedKey = state.key ? Uint8Array.from(state.key) : null;
    this.counter = state.writeCounter ?? 0;
  }

  get key(): Uint8Array | null {
    return this.storedKey;
  }

  /** The RPMB write counter: authenticated writes so far (a write must carry it, 5.21.6). */
  get writeCounter(): number {
    return this.counter;
  }

  programKey(key: Uint8Array): void {
    if (this.storedKey !== null) throw new VirtioError(ErrorCode.BACKEND_IO, 'RPMB key already programmed');
    this.storedKey = Uint8Array.from(key);
  }

  read(block: number, dst: Uint8Array): void {
    dst.set(this.data.subarray(block * RPMB_BLOCK_SIZE, block * RPMB_BLOCK_SIZE + dst.length));
  }

  write(block: number, src: Uint8Array, writeCounter: number): void {
    this.data.set(src, block * RPMB_BLOCK_SIZE);
    this.counter = writeCounter;
  }
}

/** File layout: the data (capacity bytes), then a 48-byte trailer. */
const TRAILER = { SIZE: 48, MAGIC: 0, FLAGS: 8, COUNTER: 12, KEY: 16 } as const;
const MAGIC = new TextEncoder().encode('VTSRPMB1');
const FLAG_KEY = 1;

/**
 * A store in one file: `capacity` bytes of data followed by a trailer holding the key, whether it
 * is programmed and the write counter. Every change is written and fsynced before the device
 * answers, so an acknowledged write survives a crash.
 */
export class FileRpmbStore implements RpmbStore {
  private fd: number;
  private storedKey: Uint8Array | null = null;
  private counter = 0;
  private readonly trailer = new Uint8Array(TRAILER.SIZE);
  private readonly dataBytes: number;

  /** Opens `path` (created when absent, or empty) with `capacityUnits` of 128 KiB. */
  constructor(
    /** The image file: the data, then the 48-byte trailer. */
    readonly path: string,
    readonly capacityUnits: number,
  ) {
    checkUnits(capacityUnits);
    this.dataBytes = capacityUnits * RPMB_CAPACITY_UNIT;
    this.fd = openSync(path, 'a+');
    closeSync(this.fd);
    this.fd = openSync(path, 'r+');
    try {
      const size = fstatSync(this.fd).size;
      if (size === 0) {
        ftruncateSync(this.fd, this.dataBytes);
        this.trailer.set(MAGIC, TRAILER.MAGIC);
        this.flushTrailer();
      } else {
        if (size !== this.dataBytes + TRAILER.SIZE) {
          throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `${path}: ${size} bytes is not an RPMB image of ${capacityUnits} units`);
        }
        readSync(this.fd, this.trailer, 0, TRAILER.SIZE, this.dataBytes);
        for (let i = 0; i < MAGIC.length; i++) {
          if (this.trailer[i] !== MAGIC[i]) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `${path}: not an RPMB image (bad magic)`);
        }
        const view = new DataView(this.trailer.buffer);
        this.counter = view.getUint32(TRAILER.COUNTER, false);
        if ((view.getUint32(TRAILER.FLAGS, false) & FLAG_KEY) !== 0) this.storedKey = this.trailer.slice(TRAILER.KEY, TRAILER.KEY + RPMB_KEY_SIZE);
      }
    } catch (e) {
      closeSync(this.fd);
      throw e;
    }
  }

  get key(): Uint8Array | null {
    return this.storedKey;
  }

  /** The write counter, as the trailer holds it. */
  get writeCounter(): number {
    return this.counter;
  }

  /** Blocks of data (256 bytes each). */
  get blocks(): number {
    return this.capacityUnits * RPMB_BLOCKS_PER_UNIT;
  }

  programKey(key: Uint8Array): void {
    if (this.storedKey !== null) throw new VirtioError(ErrorCode.BACKEND_IO, 'RPMB key already programmed');
    const view = new DataView(this.trailer.buffer);
    this.trailer.set(key, TRAILER.KEY);
    view.setUint32(TRAILER.FLAGS, FLAG_KEY, false);
    try {
      this.flushTrailer();
    } catch (e) {
      // Not stored: the trailer in memory goes back, so a later counter update cannot persist it.
      this.trailer.fill(0, TRAILER.KEY, TRAILER.KEY + RPMB_KEY_SIZE);
      view.setUint32(TRAILER.FLAGS, 0, false);
      throw e;
    }
    this.storedKey = Uint8Array.from(key);
  }

  read(block: number, dst: Uint8Array): void {
    const n = readSync(this.fd, dst, 0, dst.length, block * RPMB_BLOCK_SIZE);
    if (n !== dst.length) throw new VirtioError(ErrorCode.BACKEND_IO, `${this.path}: short read`);
  }

  write(block: number, src: Uint8Array, writeCounter: number): void {
    const n = writeSync(this.fd, src, 0, src.length, block * RPMB_BLOCK_SIZE);
    if (n !== src.length) throw new VirtioError(ErrorCode.BACKEND_IO, `${this.path}: short write`);
    const view = new DataView(this.trailer.buffer);
    view.setUint32(TRAILER.COUNTER, writeCounter, false);
    try {
      this.flushTrailer();
    } catch (e) {
      view.setUint32(TRAILER.COUNTER, this.counter, false);
      throw e;
    }
    this.counter = writeCounter;
  }

  /** Closes the file (idempotent); the store is unusable after. */
  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }

  private flushTrailer(): void {
    writeSync(this.fd, this.trailer, 0, TRAILER.SIZE, this.dataBytes);
    fsyncSync(this.fd);
  }
}
