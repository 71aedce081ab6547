import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DeviceContext, VirtioDevice } from '../../device/types.js';
import { createTestPair } from '../blk/test-pair.js';
import { EntropyDevice } from './entropy-device.js';
import { ErrorCode, VirtioError } from '../../errors.js';
import { DescriptorChain } from '../../queue/chain.js';
import { DeviceId } from '../../spec/device-id.js';
import { F } from '../../spec/features.js';
import { createLoopback } from '../../testing/loopback.js';
import { EntropyDriver } from './entropy-driver.js';

const T = { timeout: 10_000 };

function counter(): (dst: Uint8Array) => void {
  let n = 0;
  return (dst) => {
    for (let i = 0; i < dst.length; i++) dst[i] = ++n & 0xff;
  };
}

const seq = (from: number, len: number): Uint8Array => Uint8Array.from({ length: len }, (_, i) => (from + i) & 0xff);

/** An entropy device that records each chain's readable and writable bytes, and writes `give` bytes of 0xab. */
class StubRng implements VirtioDevice {
  readonly deviceId = DeviceId.ENTROPY;
  readonly offeredFeatures = F.VERSION_1 | F.EVENT_IDX;
  readonly queueMaxSizes = [16];
  readonly configSize = 0;
  readonly chains: { readable: number; writable: number }[] = [];
  give = 0;
  private ctx: DeviceContext | null = null;
  readConfig(): void {}
  writeConfig(): void {}
  activate(ctx: DeviceContext): void {
    this.ctx = ctx;
  }
  reset(): void {}
  onQueueNotify(i: number): void {
    const ctx = this.ctx!;
    const q = ctx.queue(i)!;
    const chain = new DescriptorChain(ctx.memory, 16);
    while (q.pop(chain)) {
      this.chains.push({ readable: chain.readableBytes, writable: chain.writableBytes });
      const n = Math.min(this.give, chain.writableBytes);
      if (n > 0) ctx.memory.fill(chain.addrs[chain.readableCount]!, n, 0xab);
      q.push(chain, n);
    }
    ctx.notifyUsed(i);
  }
}

describe('EntropyDriver', T, () => {
  for (const packed of [false, true]) {
    it(`driver/entropy/2: uses only the bytes the device reports; returns exactly n (${packed ? 'packed' : 'split'})`, async () => {
      // The device gives 10 bytes per buffer from a counter: the result must be the counter's
      // stream without gaps, so the driver used exactly the used length of each buffer.
      const device = new EntropyDevice({ source: counter(), maxBytesPerBuffer: 10 });
      const pair = createTestPair(device, { packed, queueSize: 8 });
      const drv = new EntropyDriver(pair.ctx, { chunk: 64 });
      const a = await drv.read(100);
      assert.equal(a.length, 100);
      // Buffers of one batch are answered in ring order, so the stream stays in order.
      assert.deepEqual(a, seq(1, 100));
      assert.deepEqual(await drv.read(0), new Uint8Array(0));
      assert.deepEqual(pair.resets, []);
    });
  }

  it('driver/entropy/1: only device-writable buffers are placed in the queue', async () => {
    const stub = new StubRng();
    stub.give = 1000;
    const pair = createTestPair(stub, { queueSize: 4 });
    const drv = new EntropyDriver(pair.ctx, { chunk: 100 });
    const b = await drv.read(1000); // 10 buffers on a 4-entry ring: waits for room
    assert.equal(b.length, 1000);
    assert.ok(b.every((x) => x === 0xab));
    assert.ok(stub.chains.length >= 10);
    assert.ok(stub.chains.every((c) => c.readable === 0 && c.writable > 0 && c.writable <= 100));
  });

  it('device/entropy/1 violated: a device that returns no bytes makes read() fail instead of looping', async () => {
    const stub = new StubRng();
    const pair = createTestPair(stub);
    const drv = new EntropyDriver(pair.ctx, { chunk: 16 });
    await assert.rejects(drv.read(32), (e: unknown) => e instanceof VirtioError && e.code === ErrorCode.REQUEST_FAILED);
    const bounded = stub.chains.length;
    assert.ok(bounded > 0 && bounded <= 16, `${bounded} buffers tried`);
    stub.give = 3;
    assert.deepEqual(await drv.read(7), new Uint8Array(7).fill(0xab));
  });

  it('bad arguments are typed errors', async () => {
    const pair = createTestPair(new EntropyDevice());
    assert.throws(() => new EntropyDriver(pair.ctx, { chunk: 0 }), (e: unknown) => e instanceof VirtioError && e.code === ErrorCode.INVALID_ARGUMENT);
    const drv = new EntropyDriver(pair.ctx);
    await assert.rejects(drv.read(-1), (e: unknown) => e instanceof VirtioError && e.code === ErrorCode.INVALID_ARGUMENT);
    await assert.rejects(drv.read(1.5), (e: unknown) => e instanceof VirtioError);
  });

  for (const packed of [false, true]) {
    it(`full stack (createLoopback, ${packed ? 'packed' : 'split'}): random bytes from crypto`, async () => {
      const lb = await createLoopback(new EntropyDevice(), { packed, queueSize: 16 });
      try {
        const drv = new EntropyDriver(lb.context, { chunk: 512 });
        const a = await drv.read(20_000);
        const b = await drv.read(20_000);
        assert.equal(a.length, 20_000);
        assert.notDeepEqual(a, b);
        // Crude sanity: every byte value appears in 20 kB of random data.
        assert.equal(new Set(a).size, 256);
      } finally {
        await lb.close();
      }
    });
  }
});
