/**
 * virtio-rpmb (5.12): requests of 512-byte RPMB frames (5.12.6.1, big-endian fields) on the
 * request queue: PROGRAM_KEY (with its RESULT_READ frame in the same chain or not),
 * GET_WRITE_COUNTER, DATA_WRITE of 1 to 3 data frames (+ RESULT_READ), DATA_READ, a lone
 * RESULT_READ, and any req_resp sometimes. block_count right mostly (0, one past, 0xffff or any
 * sometimes), address among the first blocks mostly (the last ones, past the end or any
 * sometimes), write counter the store's own mostly (any sometimes), the MAC of a data write
 * computed with the key the seeds program (HMAC-SHA256 over the data frames, carried in the
 * last: eMMC 6.6.22) mostly and wrong sometimes, the programmed key that key mostly and another
 * sometimes. Room for 0 to 4 response frames. max_wr_cnt 2 and max_rd_cnt 3 so the limits are
 * reached; the write counter starts 3 below its maximum so an input can expire it.
 *
 * The store (key, counter, data) outlives a device reset (device/rpmb/32, /35), so it is the
 * host side: reset to as built before each input and part of the reuse fingerprint.
 */
import { type ByteReader, ByteWriter } from '../engine/byte-reader.js';
import type { FuzzTarget } from '../engine/target.js';
import { deviceChainsSeed } from '../harness/device-chains-seeds.js';
import { deviceChainsOutcome, runDeviceChains, type DeviceChainsSpec } from '../harness/device-chains.js';
import { RpmbDevice } from '../../src/devices/rpmb/rpmb-device.js';
import { setFrameU16, setFrameU32, signFrames } from '../../src/devices/rpmb/rpmb-frame.js';
import { MemoryRpmbStore, type RpmbStore } from '../../src/devices/rpmb/rpmb-store.js';
import { RPMB_BLOCKS_PER_UNIT, RPMB_WRITE_COUNTER_MAX, RpmbFrame, RpmbRequest } from '../../src/spec/rpmb.js';

const FRAME = RpmbFrame.SIZE;
const BLOCKS = RPMB_BLOCKS_PER_UNIT;
/** The key the seeds program and the shaper signs data writes with. */
const KEY = Uint8Array.from({ length: 32 }, (_, i) => (i * 29 + 7) & 0xff);
const START_COUNTER = RPMB_WRITE_COUNTER_MAX - 3;

/**
 * A MemoryRpmbStore (one 128 KiB unit) put back as built before each input: a new one only when
 * the last input programmed a key or wrote (the device takes the store by reference, so this
 * forwards to the current one).
 */
class ResettableRpmbStore implements RpmbStore {
  readonly capacityUnits = 1;
  private inner = new MemoryRpmbStore(1, { writeCounter: START_COUNTER });
  private dirty = false;

  get key(): Uint8Array | null {
    return this.inner.key;
  }

  get writeCounter(): number {
    return this.inner.writeCounter;
  }

  programKey(key: Uint8Array): void {
    this.dirty = true;
    this.inner.programKey(key);
  }

  read(block: number, dst: Uint8Array): void {
    this.inner.read(block, dst);
  }

  write(block: number, src: Uint8Array, writeCounter: number): void {
    this.dirty = true;
    this.inner.write(block, src, writeCounter);
  }

  reset(): void {
    if (this.dirty) this.inner = new MemoryRpmbStore(1, { writeCounter: START_COUNTER });
    this.dirty = false;
  }

  state(): Uint8Array[] {
    const c = new Uint8Array(4);
    setFrameU32(c, 0, this.inner.writeCounter);
    return [this.inner.data, this.inner.key ?? new Uint8Array(0), c];
  }
}

/** The store of the device the current input runs on (set as its rig starts): the shaper reads its counter. */
let store: ResettableRpmbStore | null = null;

/** Request kinds the low 3 bits of the selector pick (writes twice: they have the most paths). */
const KINDS = [
  RpmbRequest.PROGRAM_KEY,
  RpmbRequest.GET_WRITE_COUNTER,
  RpmbRequest.DATA_WRITE,
  RpmbRequest.DATA_READ,
  RpmbRequest.RESULT_READ,
  RpmbRequest.DATA_WRITE,
  RpmbRequest.PROGRAM_KEY,
  RpmbRequest.DATA_WRITE,
] as const;

/** block_count: `right` mostly, a wrong one when `wrong`. */
function blockCount(r: ByteReader, right: number, wrong: boolean): number {
  return wrong ? r.pick([0, right + 1, 0xffff, r.u16()]) : right;
}

function address(r: ByteReader): number {
  return r.below(4) === 0 ? r.pick([BLOCKS - 1, BLOCKS - 2, BLOCKS, 0xffff, r.u16()]) : r.below(8);
}

/**
 * Selector bits: 0-2 the kind, 3 a RESULT_READ frame after a program key or data write, 4 a
 * wrong block_count, 5 a wrong write counter, 6 a wrong key or MAC, 7 any req_resp.
 */
function header(_queue: number, r: ByteReader): Uint8Array {
  const sel = r.u8();
  const kind: number = (sel & 0x80) !== 0 ? r.u16() : KINDS[sel & 7]!;
  const wrongCount = (sel & 0x10) !== 0;
  const wrongMac = (sel & 0x40) !== 0;
  const data = kind === RpmbRequest.DATA_WRITE ? 1 + r.below(3) : 1;
  const resultRead = (kind === RpmbRequest.DATA_WRITE || kind === RpmbRequest.PROGRAM_KEY) && (sel & 0x08) !== 0;
  const frames = new Uint8Array((data + (resultRead ? 1 : 0)) * FRAME);
  const count = kind === RpmbRequest.DATA_READ ? 1 + r.below(4) : kind === RpmbRequest.DATA_WRITE ? data : 1;
  const bc = blockCount(r, count, wrongCount);
  const addr = address(r);
  const counter = (sel & 0x20) !== 0 ? r.u32() : (store?.writeCounter ?? 0);
  const nonce = r.bytes(2);
  for (let i = 0; i < data; i++) {
    const f = frames.subarray(i * FRAME, (i + 1) * FRAME);
    f.fill(r.u8() + i, RpmbFrame.DATA, RpmbFrame.DATA + RpmbFrame.DATA_SIZE);
    f.set(nonce, RpmbFrame.NONCE);
    setFrameU32(f, RpmbFrame.WRITE_COUNTER, counter);
    setFrameU16(f, RpmbFrame.ADDRESS, addr);
    setFrameU16(f, RpmbFrame.BLOCK_COUNT, bc);
    setFrameU16(f, RpmbFrame.REQ_RESP, kind);
  }
  if (kind === RpmbRequest.PROGRAM_KEY) {
    if (wrongMac) frames.set(r.bytes(32), RpmbFrame.KEY_MAC);
    else frames.set(KEY, RpmbFrame.KEY_MAC);
  } else if (kind === RpmbRequest.DATA_WRITE) {
    if (wrongMac) frames.set(r.bytes(32), (data - 1) * FRAME + RpmbFrame.KEY_MAC);
    else signFrames(KEY, frames, data);
  }
  if (resultRead) {
    const f = frames.subarray(data * FRAME);
    setFrameU16(f, RpmbFrame.BLOCK_COUNT, blockCount(r, 1, r.below(4) === 0));
    setFrameU16(f, RpmbFrame.REQ_RESP, RpmbRequest.RESULT_READ);
  }
  return frames;
}

const spec: DeviceChainsSpec = {
  device: () => {
    const s = new ResettableRpmbStore();
    const resetHost = (): void => {
      s.reset();
      store = s;
    };
    return { device: new RpmbDevice(s, { queueSize: 16, maxWriteBlocks: 2, maxReadBlocks: 3 }), resetHost, hostState: () => s.state() };
  },
  queues: 1,
  heldQueues: [],
  header,
  queueSize: 16,
};

/** The shaper's input for a request: selector, the kind's reads, 2 nonce bytes, data fill bytes. */
function req(kind: number, opts: { data?: number; resultRead?: boolean; readBlocks?: number; addr?: number } = {}): number[] {
  const w = new ByteWriter().u8(KINDS.indexOf(kind as never) | (opts.resultRead ? 0x08 : 0));
  if (kind === RpmbRequest.DATA_WRITE) w.u8((opts.data ?? 1) - 1);
  if (kind === RpmbRequest.DATA_READ) w.u8((opts.readBlocks ?? 1) - 1);
  w.u8(1).u8(opts.addr ?? 0); // address: below(4) != 0, then below(8)
  w.u8(0x5a).u8(0xa5); // nonce
  for (let i = 0; i < (opts.data ?? 1); i++) w.u8(0x30 + i);
  if (opts.resultRead) w.u8(1); // the result read frame's block_count: right
  return [...w.finish()];
}

/**
 * Seeds: program the key and read its result; read the counter, write 2 blocks (signed), read
 * them back; a write of 1 block after the key with its result read; a read before any key.
 */
function seeds(): Uint8Array[] {
  const one = (n: number): number => 512 * n;
  return [
    deviceChainsSeed(false, [[{ queue: 0, header: req(RpmbRequest.PROGRAM_KEY, { resultRead: true }), writable: one(1) }], [{ queue: 0, header: req(RpmbRequest.GET_WRITE_COUNTER), writable: one(1) }], [{ queue: 0, header: req(RpmbRequest.DATA_WRITE, { data: 2, resultRead: true, addr: 2 }), writable: one(1) }], [{ queue: 0, header: req(RpmbRequest.DATA_READ, { readBlocks: 2, addr: 2 }), writable: 2048 }]], spec),
    deviceChainsSeed(true, [[{ queue: 0, header: req(RpmbRequest.PROGRAM_KEY), writable: 0 },
        { queue: 0, header: req(RpmbRequest.RESULT_READ), writable: one(1) },
        { queue: 0, header: req(RpmbRequest.DATA_WRITE, { data: 1, resultRead: true, addr: 5 }), writable: one(1) }], [{ queue: 0, header: req(RpmbRequest.DATA_READ, { readBlocks: 1, addr: 5 }), writable: one(1) }, { queue: 0, header: req(RpmbRequest.GET_WRITE_COUNTER), writable: one(1) }]], spec),
    deviceChainsSeed(false, [[{ queue: 0, header: req(RpmbRequest.DATA_READ, { readBlocks: 1 }), writable: one(1) }]], spec),
  ];
}

export const target: FuzzTarget = { name: 'rpmb-frames', maxLen: 1024, seeds, run: (d) => runDeviceChains(spec, d), outcome: () => deviceChainsOutcome(spec) };
