import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { DriverContext } from '../../driver/types.js';
import { ErrorCode, isVirtioError } from '../../errors.js';
import type { Segment } from '../../queue/types.js';
import { DeviceId } from '../../spec/device-id.js';
import { RPMB_BLOCK_SIZE, RPMB_WRITE_COUNTER_MAX, RpmbFrame, RpmbRequest, RpmbResponse, RpmbResult } from '../../spec/rpmb.js';
import { createTestPair } from '../blk/test-pair.js';
import { RpmbDevice, type RpmbDeviceOptions } from './rpmb-device.js';
import { decodeRpmbFrame, rpmbFrame } from './rpmb-driver.js';
import { framesSigned, signFrames } from './rpmb-frame.js';
import { FileRpmbStore, MemoryRpmbStore } from './rpmb-store.js';

const T = { timeout: 10_000 };
const FRAME = RpmbFrame.SIZE;
const KEY = Uint8Array.from({ length: 32 }, (_, i) => i * 3 + 1);
const OTHER_KEY = Uint8Array.from({ length: 32 }, (_, i) => 255 - i);

const block = (seed: number, n = 1): Uint8Array => Uint8Array.from({ length: n * RPMB_BLOCK_SIZE }, (_, i) => (i * 5 + seed) & 0xff);

/** Sends hand-built chains: readable buffers as given, writable buffers of the given lengths. */
class RawRpmb {
  private token = 1;
  private readonly waiting = new Map<number, (len: number) => void>();
  constructor(private readonly ctx: DriverContext) {
    ctx.onUsed(0, () => {
      const q = ctx.queue(0);
      do {
        for (let t = q.takeUsed(); t !== undefined; t = q.takeUsed()) this.waiting.get(t)?.(q.lastUsedLen);
      } while (q.enableInterrupts());
    });
  }
  async send(outs: readonly Uint8Array[], inLens: readonly number[], bogusIn = false): Promise<{ usedLen: number; ins: Uint8Array[] }> {
    const { ctx } = this;
    const outSegs: Segment[] = outs.map((b) => {
      const addr = ctx.dma.alloc(Math.max(b.length, 1));
      ctx.memory.write(addr, b);
      return { addr, len: b.length };
    });
    const inSegs: Segment[] = inLens.map((len) => {
      const addr = ctx.dma.alloc(len);
      ctx.memory.fill(addr, len, 0xee);
      return { addr, len };
    });
    if (bogusIn) inSegs.push({ addr: 0x7000_0000_0000, len: FRAME });
    const t = this.token++;
    const done = new Promise<number>((r) => this.waiting.set(t, r));
    assert.ok(ctx.queue(0).add(outSegs, inSegs, t));
    ctx.kick(0);
    const usedLen = await done;
    const ins = inSegs
      .filter((s) => s.addr < 0x7000_0000_0000)
      .map((s) => {
        const b = new Uint8Array(s.len);
        ctx.memory.read(s.addr, b);
        return b;
      });
    for (const s of [...outSegs, ...inSegs]) if (s.addr < 0x7000_0000_0000) ctx.dma.free(s.addr);
    return { usedLen, ins };
  }
  /** Frames one per descriptor, `room` response frames; the response bytes the device wrote. */
  async frames(frames: readonly Uint8Array[], room = 1): Promise<Uint8Array> {
    const r = await this.send(frames, Array.from({ length: room }, () => FRAME));
    const all = new Uint8Array(room * FRAME);
    r.ins.forEach((b, i) => all.set(b, i * FRAME));
    return all.subarray(0, r.usedLen);
  }
}

const resultRead = (blockCount = 1): Uint8Array => rpmbFrame(RpmbRequest.RESULT_READ, { blockCount });

/** Data write frames for `data` (whole blocks), signed with `key`. */
function writeFrames(key: Uint8Array, address: number, counter: number, data: Uint8Array, opts: { blockCount?: number; type?: number } = {}): Uint8Array[] {
  const n = data.length / RPMB_BLOCK_SIZE;
  const all = new Uint8Array(n * FRAME);
  for (let i = 0; i < n; i++) {
    all.set(
      rpmbFrame(opts.type ?? RpmbRequest.DATA_WRITE, {
        blockCount: opts.blockCount ?? n,
        address,
        writeCounter: counter,
        data: data.subarray(i * RPMB_BLOCK_SIZE, (i + 1) * RPMB_BLOCK_SIZE),
      }),
      i * FRAME,
    );
  }
  signFrames(key, all, n);
  return Array.from({ length: n }, (_, i) => all.slice(i * FRAME, (i + 1) * FRAME));
}

function setup(store: MemoryRpmbStore = new MemoryRpmbStore(1), opts: RpmbDeviceOptions = {}, packed = false) {
  const device = new RpmbDevice(store, opts);
  const pair = createTestPair(device, { packed });
  return { device, pair, store, raw: new RawRpmb(pair.ctx) };
}

async function programmed(opts: RpmbDeviceOptions = {}, store = new MemoryRpmbStore(1)) {
  const s = setup(store, opts);
  const r = decodeRpmbFrame(await s.raw.frames([rpmbFrame(RpmbRequest.PROGRAM_KEY, { blockCount: 1, keyMac: KEY }), resultRead()]));
  assert.equal(r.result, RpmbResult.OK);
  return s;
}

describe('RpmbDevice', T, () => {
  it('device/rpmb/1: 5.12 device id 28, no feature bits, config capacity (128 KiB units, 1..0x80), max_wr_cnt, max_rd_cnt, read-only', () => {
    const d = new RpmbDevice(new MemoryRpmbStore(0x80), { maxWriteBlocks: 2, maxReadBlocks: 0 });
    assert.equal(d.deviceId, DeviceId.RPMB);
    assert.equal(d.offeredFeatures & ((1n << 24n) - 1n), 0n);
    assert.equal(d.configSize, 3);
    const b = new Uint8Array(3);
    d.readConfig(0, b, 0n, true);
    assert.deepEqual([...b], [0x80, 2, 0]);
    d.writeConfig();
    d.readConfig(0, b, 0n, false);
    assert.deepEqual([...b], [0x80, 2, 0]);
    assert.equal(d.blocks, 16 * 1024 * 1024 / 256);
    for (const bad of [0, 0x81, 1.5, -1]) {
      assert.throws(() => new MemoryRpmbStore(bad), (e: unknown) => isVirtioError(e) && e.code === ErrorCode.INVALID_ARGUMENT);
    }
    assert.throws(() => new RpmbDevice(new MemoryRpmbStore(1), { maxWriteBlocks: 256 }), (e: unknown) => isVirtioError(e) && e.code === ErrorCode.INVALID_ARGUMENT);
  });

  for (const packed of [false, true]) {
    it(`device/rpmb/2 device/rpmb/6 device/rpmb/31: program key with result read: RESP_PROGRAM_KEY, OK, the MAC with the new key (${packed ? 'packed' : 'split'})`, async () => {
      const { raw, store, pair } = setup(new MemoryRpmbStore(1), {}, packed);
      const resp = await raw.frames([rpmbFrame(RpmbRequest.PROGRAM_KEY, { blockCount: 1, keyMac: KEY }), resultRead()]);
      assert.equal(resp.length, FRAME);
      const r = decodeRpmbFrame(resp);
      assert.equal(r.type, RpmbResponse.PROGRAM_KEY);
      assert.equal(r.result, RpmbResult.OK);
      assert.ok(framesSigned(KEY, resp, 1), 'the calculated MAC');
      // The key is never shown: the response's key_mac is the MAC, not the key.
      assert.notDeepEqual(resp.subarray(RpmbFrame.KEY_MAC, RpmbFrame.KEY_MAC + 32), KEY);
      assert.deepEqual(store.key, KEY);
      assert.deepEqual(pair.resets, []);
    });
  }

  it('device/rpmb/3: program key with block_count other than 1: GENERAL_FAILURE, nothing programmed', async () => {
    const { raw, store } = setup();
    for (const bc of [0, 2]) {
      const r = decodeRpmbFrame(await raw.frames([rpmbFrame(RpmbRequest.PROGRAM_KEY, { blockCount: bc, keyMac: KEY }), resultRead()]));
      assert.equal(r.result, RpmbResult.GENERAL_FAILURE);
      assert.equal(r.type, RpmbResponse.PROGRAM_KEY);
    }
    assert.equal(store.key, null);
  });

  it('device/rpmb/4 device/rpmb/31: a second program key fails with WRITE_FAILURE and the key stays; a store that cannot keep it: WRITE_FAILURE', async () => {
    const { raw, store } = await programmed();
    const again = await raw.frames([rpmbFrame(RpmbRequest.PROGRAM_KEY, { blockCount: 1, keyMac: OTHER_KEY }), resultRead()]);
    assert.equal(decodeRpmbFrame(again).result, RpmbResult.WRITE_FAILURE);
    assert.deepEqual(store.key, KEY);
    assert.ok(framesSigned(KEY, again, 1), 'signed with the key that stays');
    const failing = new MemoryRpmbStore(1);
    failing.programKey = () => {
      throw new Error('disk full');
    };
    const s2 = setup(failing);
    const r = decodeRpmbFrame(await s2.raw.frames([rpmbFrame(RpmbRequest.PROGRAM_KEY, { blockCount: 1, keyMac: KEY }), resultRead()]));
    assert.equal(r.result, RpmbResult.WRITE_FAILURE);
    assert.deepEqual(s2.pair.resets, []);
  });

  it('device/rpmb/5: other errors in a program key request (extra frames, a second frame that is not a result read): GENERAL_FAILURE', async () => {
    const { raw, store } = setup();
    const pk = rpmbFrame(RpmbRequest.PROGRAM_KEY, { blockCount: 1, keyMac: KEY });
    assert.equal(decodeRpmbFrame(await raw.frames([pk, resultRead(), resultRead()])).result, RpmbResult.GENERAL_FAILURE);
    assert.equal(decodeRpmbFrame(await raw.frames([pk, rpmbFrame(RpmbRequest.DATA_READ, { blockCount: 1 })])).result, RpmbResult.GENERAL_FAILURE);
    assert.equal(store.key, null);
  });

  it('5.12.6 result read not requested: no response frame (used length 0); a later lone RESULT_READ returns that result', async () => {
    const { raw, store } = setup();
    const r = await raw.send([rpmbFrame(RpmbRequest.PROGRAM_KEY, { blockCount: 1, keyMac: KEY })], [FRAME]);
    assert.equal(r.usedLen, 0);
    assert.ok(r.ins[0]!.every((b) => b === 0xee), 'the buffer is untouched');
    assert.deepEqual(store.key, KEY);
    const last = await raw.frames([resultRead()]);
    assert.equal(decodeRpmbFrame(last).type, RpmbResponse.PROGRAM_KEY);
    assert.equal(decodeRpmbFrame(last).result, RpmbResult.OK);
  });

  it('device/rpmb/7: get write counter before the key is programmed: NO_AUTH_KEY', async () => {
    const { raw } = setup();
    const r = decodeRpmbFrame(await raw.frames([rpmbFrame(RpmbRequest.GET_WRITE_COUNTER, { blockCount: 1 })]));
    assert.equal(r.result, RpmbResult.NO_AUTH_KEY);
    assert.equal(r.type, RpmbResponse.GET_COUNTER);
  });

  it('device/rpmb/8: get write counter with block_count other than 1: GENERAL_FAILURE', async () => {
    const { raw } = await programmed();
    for (const bc of [0, 3]) {
      const r = decodeRpmbFrame(await raw.frames([rpmbFrame(RpmbRequest.GET_WRITE_COUNTER, { blockCount: bc })]));
      assert.equal(r.result, RpmbResult.GENERAL_FAILURE);
    }
  });

  it('device/rpmb/9 device/rpmb/33: get write counter: RESP_GET_COUNTER, the counter (0 at first), the nonce echoed, the MAC', async () => {
    const { raw } = await programmed();
    const nonce = Uint8Array.from({ length: 16 }, (_, i) => 200 - i);
    const resp = await raw.frames([rpmbFrame(RpmbRequest.GET_WRITE_COUNTER, { blockCount: 1, nonce })]);
    const r = decodeRpmbFrame(resp);
    assert.equal(r.type, RpmbResponse.GET_COUNTER);
    assert.equal(r.result, RpmbResult.OK);
    assert.equal(r.writeCounter, 0);
    assert.deepEqual(r.nonce, nonce);
    assert.ok(framesSigned(KEY, resp, 1));
  });

  it('device/rpmb/10 device/rpmb/19 device/rpmb/22 device/rpmb/34 device/rpmb/36: authenticated write: data stored, counter +1, response with counter, address, MAC, OK', async () => {
    const { raw, store } = await programmed();
    const data = block(7, 2);
    const resp = await raw.frames([...writeFrames(KEY, 10, 0, data), resultRead()]);
    const r = decodeRpmbFrame(resp);
    assert.equal(r.type, RpmbResponse.DATA_WRITE);
    assert.equal(r.result, RpmbResult.OK);
    assert.equal(r.writeCounter, 1);
    assert.equal(r.address, 10);
    assert.ok(framesSigned(KEY, resp, 1));
    assert.deepEqual(store.data.subarray(10 * 256, 12 * 256), data);
    assert.equal(store.writeCounter, 1);
    // Without the result read: no frame, and the write still happens.
    const quiet = await raw.send(writeFrames(KEY, 0, 1, block(1)), [FRAME]);
    assert.equal(quiet.usedLen, 0);
    assert.equal(store.writeCounter, 2);
    assert.deepEqual(store.data.subarray(0, 256), block(1));
  });

  it('device/rpmb/11: write before the key is programmed: NO_AUTH_KEY, nothing written', async () => {
    const { raw, store } = setup();
    const r = decodeRpmbFrame(await raw.frames([...writeFrames(KEY, 0, 0, block(1)), resultRead()]));
    assert.equal(r.result, RpmbResult.NO_AUTH_KEY);
    assert.equal(store.writeCounter, 0);
    assert.ok(store.data.every((b) => b === 0));
  });

  it('device/rpmb/12: write with block_count 0 or above max_wr_cnt: GENERAL_FAILURE', async () => {
    const { raw, store } = await programmed({ maxWriteBlocks: 2 });
    assert.equal(decodeRpmbFrame(await raw.frames([...writeFrames(KEY, 0, 0, block(1), { blockCount: 0 }), resultRead()])).result, RpmbResult.GENERAL_FAILURE);
    assert.equal(decodeRpmbFrame(await raw.frames([...writeFrames(KEY, 0, 0, block(1, 3)), resultRead()])).result, RpmbResult.GENERAL_FAILURE);
    assert.equal(store.writeCounter, 0);
    assert.equal(decodeRpmbFrame(await raw.frames([...writeFrames(KEY, 0, 0, block(1, 2)), resultRead()])).result, RpmbResult.OK);
  });

  it('device/rpmb/13 device/rpmb/14 device/rpmb/33: the counter at 0xFFFFFFFF has expired: writes fail with WRITE_COUNTER_EXPIRED and it stays there', async () => {
    const store = new MemoryRpmbStore(1, { key: KEY, writeCounter: RPMB_WRITE_COUNTER_MAX });
    const { raw } = setup(store);
    const r = decodeRpmbFrame(await raw.frames([...writeFrames(KEY, 0, RPMB_WRITE_COUNTER_MAX, block(1)), resultRead()]));
    assert.equal(r.result, RpmbResult.WRITE_COUNTER_EXPIRED);
    assert.equal(store.writeCounter, RPMB_WRITE_COUNTER_MAX);
    assert.ok(store.data.every((b) => b === 0));
    // eMMC 6.6.22: the expired flag rides on every later result.
    const c = decodeRpmbFrame(await raw.frames([rpmbFrame(RpmbRequest.GET_WRITE_COUNTER, { blockCount: 1 })]));
    assert.equal(c.result, RpmbResult.OK | RpmbResult.WRITE_COUNTER_EXPIRED);
    assert.equal(c.writeCounter, RPMB_WRITE_COUNTER_MAX);
    // One below the maximum: the last write succeeds and the counter stops at the maximum.
    const s2 = setup(new MemoryRpmbStore(1, { key: KEY, writeCounter: RPMB_WRITE_COUNTER_MAX - 1 }));
    const last = decodeRpmbFrame(await s2.raw.frames([...writeFrames(KEY, 0, RPMB_WRITE_COUNTER_MAX - 1, block(2)), resultRead()]));
    assert.equal(last.writeCounter, RPMB_WRITE_COUNTER_MAX);
    assert.equal(last.result & ~RpmbResult.WRITE_COUNTER_EXPIRED, RpmbResult.OK);
  });

  it('device/rpmb/15: write beyond the capacity: ADDR_FAILURE', async () => {
    const { raw, store, device } = await programmed();
    const r = decodeRpmbFrame(await raw.frames([...writeFrames(KEY, device.blocks - 1, 0, block(1, 2)), resultRead()]));
    assert.equal(r.result, RpmbResult.ADDR_FAILURE);
    assert.equal(store.writeCounter, 0);
    assert.equal(decodeRpmbFrame(await raw.frames([...writeFrames(KEY, 0xffff, 0, block(1)), resultRead()])).result, RpmbResult.ADDR_FAILURE);
    assert.equal(decodeRpmbFrame(await raw.frames([...writeFrames(KEY, device.blocks - 1, 0, block(1)), resultRead()])).result, RpmbResult.OK);
  });

  it('device/rpmb/16 device/rpmb/17: a MAC made with another key, or over changed data: AUTH_FAILURE, nothing written', async () => {
    const { raw, store } = await programmed();
    assert.equal(decodeRpmbFrame(await raw.frames([...writeFrames(OTHER_KEY, 0, 0, block(1)), resultRead()])).result, RpmbResult.AUTH_FAILURE);
    const tampered = writeFrames(KEY, 0, 0, block(1, 2));
    tampered[0]![RpmbFrame.DATA + 3]! ^= 1; // a byte of the first frame: the MAC covers every frame
    assert.equal(decodeRpmbFrame(await raw.frames([...tampered, resultRead()])).result, RpmbResult.AUTH_FAILURE);
    assert.equal(store.writeCounter, 0);
    assert.ok(store.data.every((b) => b === 0));
  });

  it('device/rpmb/18: a write counter other than the device\'s: COUNT_FAILURE (replay refused)', async () => {
    const { raw, store } = await programmed();
    const first = writeFrames(KEY, 0, 0, block(1));
    assert.equal(decodeRpmbFrame(await raw.frames([...first, resultRead()])).result, RpmbResult.OK);
    const replay = decodeRpmbFrame(await raw.frames([...first, resultRead()]));
    assert.equal(replay.result, RpmbResult.COUNT_FAILURE);
    assert.equal(replay.writeCounter, 1);
    assert.equal(decodeRpmbFrame(await raw.frames([...writeFrames(KEY, 0, 5, block(1)), resultRead()])).result, RpmbResult.COUNT_FAILURE);
    assert.equal(store.writeCounter, 1);
  });

  it('device/rpmb/20: the store fails the write: WRITE_FAILURE, counter unchanged', async () => {
    const store = new MemoryRpmbStore(1, { key: KEY });
    store.write = () => {
      throw new Error('EIO');
    };
    const { raw, pair } = setup(store);
    const r = decodeRpmbFrame(await raw.frames([...writeFrames(KEY, 0, 0, block(1)), resultRead()]));
    assert.equal(r.result, RpmbResult.WRITE_FAILURE);
    assert.equal(r.writeCounter, 0);
    assert.deepEqual(pair.resets, []);
  });

  it('device/rpmb/21: a malformed write (fewer frames than block_count, a frame of another type): GENERAL_FAILURE', async () => {
    const { raw, store } = await programmed();
    const two = writeFrames(KEY, 0, 0, block(1, 2));
    assert.equal(decodeRpmbFrame(await raw.frames([...writeFrames(KEY, 0, 0, block(1), { blockCount: 2 }), resultRead()])).result, RpmbResult.GENERAL_FAILURE);
    const mixed = writeFrames(KEY, 0, 0, block(1, 2));
    mixed[0]![RpmbFrame.REQ_RESP + 1] = RpmbRequest.DATA_READ;
    assert.equal(decodeRpmbFrame(await raw.frames([...mixed, resultRead()])).result, RpmbResult.GENERAL_FAILURE);
    assert.equal(store.writeCounter, 0);
    assert.equal(decodeRpmbFrame(await raw.frames([...two, resultRead()])).result, RpmbResult.OK);
  });

  it('device/rpmb/23: read before the key is programmed: NO_AUTH_KEY', async () => {
    const { raw } = setup();
    const r = decodeRpmbFrame(await raw.frames([rpmbFrame(RpmbRequest.DATA_READ, { blockCount: 1 })]));
    assert.equal(r.result, RpmbResult.NO_AUTH_KEY);
    assert.equal(r.type, RpmbResponse.DATA_READ);
  });

  it('device/rpmb/24: read with block_count 0 or above max_rd_cnt: GENERAL_FAILURE', async () => {
    const { raw } = await programmed({ maxReadBlocks: 2 });
    assert.equal(decodeRpmbFrame(await raw.frames([rpmbFrame(RpmbRequest.DATA_READ, { blockCount: 0 })])).result, RpmbResult.GENERAL_FAILURE);
    assert.equal(decodeRpmbFrame(await raw.frames([rpmbFrame(RpmbRequest.DATA_READ, { blockCount: 3 })], 3)).result, RpmbResult.GENERAL_FAILURE);
    assert.equal((await raw.frames([rpmbFrame(RpmbRequest.DATA_READ, { blockCount: 2 })], 2)).length, 2 * FRAME);
  });

  it('device/rpmb/25: read beyond the capacity: ADDR_FAILURE', async () => {
    const { raw, device } = await programmed();
    const r = decodeRpmbFrame(await raw.frames([rpmbFrame(RpmbRequest.DATA_READ, { blockCount: 2, address: device.blocks - 1 })], 2));
    assert.equal(r.result, RpmbResult.ADDR_FAILURE);
  });

  it('device/rpmb/26: the store fails the read: READ_FAILURE', async () => {
    const store = new MemoryRpmbStore(1, { key: KEY });
    store.read = () => {
      throw new Error('EIO');
    };
    const { raw } = setup(store);
    assert.equal(decodeRpmbFrame(await raw.frames([rpmbFrame(RpmbRequest.DATA_READ, { blockCount: 1 })])).result, RpmbResult.READ_FAILURE);
  });

  it('device/rpmb/27: a malformed read (two request frames, room for fewer frames than block_count): GENERAL_FAILURE', async () => {
    const { raw } = await programmed();
    const rd = rpmbFrame(RpmbRequest.DATA_READ, { blockCount: 2 });
    assert.equal(decodeRpmbFrame(await raw.frames([rd, rd], 2)).result, RpmbResult.GENERAL_FAILURE);
    const short = await raw.frames([rd], 1);
    assert.equal(short.length, FRAME);
    assert.equal(decodeRpmbFrame(short).result, RpmbResult.GENERAL_FAILURE);
  });

  it('device/rpmb/28 device/rpmb/30 device/rpmb/36: read answers block_count frames of RESP_DATA_READ with the data, nonce, address; the MAC over all frames in the last (eMMC)', async () => {
    const { raw } = await programmed();
    const data = block(9, 3);
    assert.equal(decodeRpmbFrame(await raw.frames([...writeFrames(KEY, 20, 0, data), resultRead()])).result, RpmbResult.OK);
    const nonce = Uint8Array.from({ length: 16 }, (_, i) => i + 100);
    const resp = await raw.frames([rpmbFrame(RpmbRequest.DATA_READ, { blockCount: 3, address: 20, nonce })], 3);
    assert.equal(resp.length, 3 * FRAME);
    for (let i = 0; i < 3; i++) {
      const f = resp.subarray(i * FRAME, (i + 1) * FRAME);
      const r = decodeRpmbFrame(f);
      assert.equal(r.type, RpmbResponse.DATA_READ);
      assert.equal(r.result, RpmbResult.OK);
      assert.equal(r.address, 20);
      assert.equal(r.blockCount, 3);
      assert.deepEqual(r.nonce, nonce);
      assert.deepEqual(f.subarray(RpmbFrame.DATA, RpmbFrame.DATA + 256), data.subarray(i * 256, (i + 1) * 256));
    }
    assert.ok(framesSigned(KEY, resp, 3));
    assert.ok(!framesSigned(KEY, resp.subarray(2 * FRAME), 1), 'the MAC is not of the last frame alone');
  });

  it('device/rpmb/29: a result read with block_count other than 1 (alone, or after a write or program key): GENERAL_FAILURE, nothing done', async () => {
    const { raw, store } = await programmed();
    assert.equal(decodeRpmbFrame(await raw.frames([resultRead(2)])).result, RpmbResult.GENERAL_FAILURE);
    assert.equal(decodeRpmbFrame(await raw.frames([...writeFrames(KEY, 0, 0, block(1)), resultRead(0)])).result, RpmbResult.GENERAL_FAILURE);
    assert.equal(store.writeCounter, 0);
    const fresh = setup();
    assert.equal(decodeRpmbFrame(await fresh.raw.frames([rpmbFrame(RpmbRequest.PROGRAM_KEY, { blockCount: 1, keyMac: KEY }), resultRead(2)])).result, RpmbResult.GENERAL_FAILURE);
    assert.equal(fresh.store.key, null);
  });

  it('device/rpmb/32 device/rpmb/35: key, counter and data survive a device reset', async () => {
    const { raw, device, store } = await programmed();
    assert.equal(decodeRpmbFrame(await raw.frames([...writeFrames(KEY, 3, 0, block(4)), resultRead()])).result, RpmbResult.OK);
    device.reset();
    const again = new RawRpmb(createTestPair(device).ctx);
    const c = decodeRpmbFrame(await again.frames([rpmbFrame(RpmbRequest.GET_WRITE_COUNTER, { blockCount: 1 })]));
    assert.equal(c.result, RpmbResult.OK);
    assert.equal(c.writeCounter, 1);
    assert.deepEqual(store.key, KEY);
    const rd = await again.frames([rpmbFrame(RpmbRequest.DATA_READ, { blockCount: 1, address: 3 })]);
    assert.deepEqual(rd.subarray(RpmbFrame.DATA, RpmbFrame.DATA + 256), block(4));
  });

  it('device/rpmb/32 device/rpmb/35 device/rpmb/36: FileRpmbStore keeps key, counter and data across a restart (a new process opening the file)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vts-rpmb-'));
    try {
      const path = join(dir, 'rpmb.img');
      const first = new FileRpmbStore(path, 1);
      const { raw } = await programmed({}, first as unknown as MemoryRpmbStore);
      assert.equal(decodeRpmbFrame(await raw.frames([...writeFrames(KEY, 7, 0, block(3, 2)), resultRead()])).result, RpmbResult.OK);
      first.close();
      const reopened = new FileRpmbStore(path, 1);
      try {
        assert.deepEqual(reopened.key, KEY);
        assert.equal(reopened.writeCounter, 1);
        const got = new Uint8Array(512);
        reopened.read(7, got);
        assert.deepEqual(got, block(3, 2));
        assert.throws(() => reopened.programKey(OTHER_KEY), (e: unknown) => isVirtioError(e));
      } finally {
        reopened.close();
      }
      assert.throws(() => new FileRpmbStore(path, 2), (e: unknown) => isVirtioError(e) && e.code === ErrorCode.INVALID_ARGUMENT);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('untrusted driver: partial frames, unknown types, unmapped or missing room, a queue-long chain: an error frame or length 0, never a throw or DEVICE_NEEDS_RESET', async () => {
    const { raw, pair, store } = await programmed();
    // A partial frame (300 bytes): GENERAL_FAILURE frame.
    const partial = await raw.send([new Uint8Array(300)], [FRAME]);
    assert.equal(partial.usedLen, FRAME);
    assert.equal(decodeRpmbFrame(partial.ins[0]!).result, RpmbResult.GENERAL_FAILURE);
    // A frame split over two descriptors is a whole frame: served.
    const gc = rpmbFrame(RpmbRequest.GET_WRITE_COUNTER, { blockCount: 1 });
    const split = await raw.send([gc.subarray(0, 100), gc.subarray(100)], [FRAME]);
    assert.equal(decodeRpmbFrame(split.ins[0]!).result, RpmbResult.OK);
    // Unknown request type.
    assert.equal(decodeRpmbFrame(await raw.frames([rpmbFrame(0x0042, { blockCount: 1 })])).result, RpmbResult.GENERAL_FAILURE);
    // No readable part at all.
    assert.equal(decodeRpmbFrame((await raw.send([], [FRAME])).ins[0]!).result, RpmbResult.GENERAL_FAILURE);
    // No room for a response: used length 0.
    assert.equal((await raw.send([gc], [])).usedLen, 0);
    assert.equal((await raw.send([gc], [100])).usedLen, 0);
    // An unmapped writable segment: used length 0, nothing done.
    assert.equal((await raw.send([...writeFrames(KEY, 0, 0, block(1)), resultRead()], [FRAME], true)).usedLen, 0);
    assert.equal(store.writeCounter, 0);
    // 60 write frames (more than the staging of 16 blocks) with block_count 60: GENERAL_FAILURE.
    const many = writeFrames(KEY, 0, 0, block(1, 60));
    assert.equal(decodeRpmbFrame(await raw.frames([...many, resultRead()])).result, RpmbResult.GENERAL_FAILURE);
    assert.equal(store.writeCounter, 0);
    assert.deepEqual(pair.resets, []);
    assert.equal(decodeRpmbFrame(await raw.frames([...writeFrames(KEY, 0, 0, block(1)), resultRead()])).result, RpmbResult.OK);
  });
});
