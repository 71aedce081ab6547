import { ErrorCode, isVirtioError } from '../../errors.js';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DriverContext } from '../../driver/types.js';
import type { Segment } from '../../queue/types.js';
import { DeviceId } from '../../spec/device-id.js';
import { F } from '../../spec/features.js';
import { createTestPair } from '../blk/test-pair.js';
import { EntropyDevice, type EntropyDeviceOptions } from './entropy-device.js';

const T = { timeout: 10_000 };

/** A source giving 1, 2, 3, ... (mod 256) so tests see exactly which bytes were produced. */
function counter(): { source: (dst: Uint8Array) => void; produced: () => number } {
  let n = 0;
  return {
    source: (dst) => {
      for (let i = 0; i < dst.length; i++) dst[i] = ++n & 0xff;
    },
    produced: () => n,
  };
}

/** Sends hand-built chains and reports the used length and the buffers' bytes afterwards. */
class RawRng {
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
  async send(outLens: readonly number[], inLens: readonly number[], bogusIn = false): Promise<{ usedLen: number; outs: Uint8Array[]; ins: Uint8Array[] }> {
    const { ctx } = this;
    const mk = (len: number, v: number): Segment => {
      const addr = ctx.dma.alloc(len);
      ctx.memory.fill(addr, len, v);
      return { addr, len };
    };
    const outs = outLens.map((l) => mk(l, 0x55));
    const ins = inLens.map((l) => mk(l, 0xee));
    if (bogusIn) ins.push({ addr: 0x7000_0000_0000, len: 16 });
    const t = this.token++;
    const done = new Promise<number>((r) => this.waiting.set(t, r));
    assert.ok(ctx.queue(0).add(outs, ins, t));
    ctx.kick(0);
    const usedLen = await done;
    const back = (s: Segment): Uint8Array => {
      const b = new Uint8Array(s.len);
      ctx.memory.read(s.addr, b);
      return b;
    };
    const res = { usedLen, outs: outs.map(back), ins: ins.filter((s) => s.addr < 0x7000_0000_0000).map(back) };
    for (const s of [...outs, ...ins]) if (s.addr < 0x7000_0000_0000) ctx.dma.free(s.addr);
    return res;
  }
}

function setup(opts: EntropyDeviceOptions = {}, packed = false, queueSize = 64) {
  const device = new EntropyDevice(opts);
  const pair = createTestPair(device, { packed, queueSize });
  return { device, pair, raw: new RawRng(pair.ctx) };
}

describe('EntropyDevice', T, () => {
  it('5.4: device id 4, no feature bits of its own, no configuration space', () => {
    const d = new EntropyDevice();
    assert.equal(d.deviceId, DeviceId.ENTROPY);
    assert.equal(d.configSize, 0);
    assert.deepEqual(d.queueMaxSizes, [256]);
    assert.equal(d.offeredFeatures & ((1n << 24n) - 1n), 0n, 'no device-specific bits');
    assert.notEqual(d.offeredFeatures & F.VERSION_1, 0n);
    const b = new Uint8Array(4).fill(9);
    d.readConfig(0, b);
    assert.deepEqual(b, new Uint8Array(4));
    assert.throws(() => new EntropyDevice({ queueSize: 0 }), (e: unknown) => isVirtioError(e) && e.code === ErrorCode.INVALID_ARGUMENT);
    assert.throws(() => new EntropyDevice({ maxBytesPerBuffer: 0 }), (e: unknown) => isVirtioError(e) && e.code === ErrorCode.INVALID_ARGUMENT);
  });

  for (const packed of [false, true]) {
    it(`device/entropy/1: fills the writable buffer, used length = bytes written (${packed ? 'packed' : 'split'})`, async () => {
      const c = counter();
      const { raw, pair } = setup({ source: c.source }, packed);
      const r = await raw.send([], [64]);
      assert.equal(r.usedLen, 64);
      assert.deepEqual(r.ins[0], Uint8Array.from({ length: 64 }, (_, i) => i + 1));
      // Several writable segments are filled in order.
      const r2 = await raw.send([], [3, 5, 2]);
      assert.equal(r2.usedLen, 10);
      assert.deepEqual([...r2.ins[0]!, ...r2.ins[1]!, ...r2.ins[2]!], Array.from({ length: 10 }, (_, i) => 65 + i));
      assert.deepEqual(pair.resets, []);
    });
  }

  it('device/entropy/1: may use less than the buffer; the rest is left untouched and not counted', async () => {
    const c = counter();
    const { raw } = setup({ source: c.source, maxBytesPerBuffer: 10 });
    const r = await raw.send([], [100]);
    assert.equal(r.usedLen, 10);
    assert.deepEqual(r.ins[0]!.subarray(0, 10), Uint8Array.from({ length: 10 }, (_, i) => i + 1));
    assert.ok(r.ins[0]!.subarray(10).every((b) => b === 0xee));
    assert.equal(c.produced(), 10);
  });

  it('a driver placing readable buffers: they are never read or written; only writable bytes are filled and counted', async () => {
    const c = counter();
    const { raw, pair } = setup({ source: c.source });
    const mixed = await raw.send([32], [16]);
    assert.equal(mixed.usedLen, 16);
    assert.ok(mixed.outs[0]!.every((b) => b === 0x55), 'readable buffer untouched');
    assert.deepEqual(mixed.ins[0], Uint8Array.from({ length: 16 }, (_, i) => i + 1));
    // Readable-only: nothing can be placed; the buffer comes back with used length 0, the
    // device stays healthy (no DEVICE_NEEDS_RESET) and serves the next request.
    const ro = await raw.send([48], []);
    assert.equal(ro.usedLen, 0);
    assert.ok(ro.outs[0]!.every((b) => b === 0x55));
    assert.equal(c.produced(), 16);
    assert.deepEqual(pair.resets, []);
    assert.equal((await raw.send([], [4])).usedLen, 4);
  });

  it('an unmapped writable segment: used length 0, no throw, queue goes on', async () => {
    const { raw, pair } = setup();
    const r = await raw.send([], [8], true);
    assert.equal(r.usedLen, 0);
    assert.deepEqual(pair.resets, []);
    assert.equal((await raw.send([], [8])).usedLen, 8);
  });

  it('a chain as long as the queue (2.7.5.3.1) is served', async () => {
    const c = counter();
    const { raw, pair } = setup({ source: c.source, queueSize: 128 }, false, 128);
    const r = await raw.send([], Array.from({ length: 100 }, () => 1));
    assert.equal(r.usedLen, 100);
    assert.deepEqual(
      r.ins.map((b) => b[0]),
      Array.from({ length: 100 }, (_, i) => i + 1),
    );
    assert.deepEqual(pair.resets, []);
  });

  it('a broken ring sets DEVICE_NEEDS_RESET instead of throwing; after reset notifications are ignored', () => {
    const { pair, device } = setup();
    // Split ring at 0x1000, size 64: avail idx at driverAddr + 2.
    pair.memory.writeU16(0x1000 + 64 * 16 + 2, 500);
    assert.doesNotThrow(() => device.onQueueNotify(0));
    assert.equal(pair.resets.length, 1);
    device.reset();
    assert.doesNotThrow(() => device.onQueueNotify(0));
    assert.doesNotThrow(() => device.onQueueNotify(5));
    assert.equal(pair.resets.length, 1);
  });
});
