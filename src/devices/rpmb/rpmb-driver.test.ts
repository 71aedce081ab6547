import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DeviceContext, VirtioDevice } from '../../device/types.js';
import { ErrorCode, VirtioError } from '../../errors.js';
import { DescriptorChain } from '../../queue/chain.js';
import { DeviceId } from '../../spec/device-id.js';
import { F } from '../../spec/features.js';
import { RPMB_BLOCK_SIZE, RpmbFrame, RpmbRequest, RpmbResult } from '../../spec/rpmb.js';
import { createLoopback } from '../../testing/loopback.js';
import { createTestPair } from '../blk/test-pair.js';
import { RpmbDevice } from './rpmb-device.js';
import { RpmbDriver, RpmbResultError } from './rpmb-driver.js';
import { frameU16 } from './rpmb-frame.js';
import { MemoryRpmbStore } from './rpmb-store.js';

const T = { timeout: 10_000 };
const KEY = Uint8Array.from({ length: 32 }, (_, i) => i + 7);
const data = (n: number, seed: number): Uint8Array => Uint8Array.from({ length: n * RPMB_BLOCK_SIZE }, (_, i) => (i * 11 + seed) & 0xff);
const result = (r: number) => (e: unknown) => e instanceof RpmbResultError && e.result === r;

/** A real device in front of which every chain's segments are recorded, and responses may be altered. */
class Recording implements VirtioDevice {
  readonly deviceId = DeviceId.RPMB;
  readonly offeredFeatures = F.VERSION_1;
  readonly queueMaxSizes = [64];
  readonly configSize = 3;
  readonly chains: { readable: number[]; writable: number[]; types: number[] }[] = [];
  /** Changes the response bytes before the driver sees them. */
  tamper: ((resp: Uint8Array) => void) | null = null;
  private ctx: DeviceContext | null = null;
  constructor(private readonly inner: RpmbDevice) {}
  readConfig(o: number, d: Uint8Array, f: bigint, le: boolean): void {
    this.inner.readConfig(o, d, f, le);
  }
  writeConfig(): void {}
  activate(ctx: DeviceContext): void {
    this.ctx = ctx;
  }
  reset(): void {}
  onQueueNotify(i: number): void {
    const ctx = this.ctx!;
    const q = ctx.queue(i)!;
    const chain = new DescriptorChain(ctx.memory, 64);
    while (q.pop(chain)) {
      const c = { readable: [] as number[], writable: [] as number[], types: [] as number[] };
      for (let k = 0; k < chain.count; k++) (k < chain.readableCount ? c.readable : c.writable).push(chain.lens[k]!);
      for (let k = 0; k < chain.readableCount; k++) {
        const f = ctx.memory.slice(chain.addrs[k]!, chain.lens[k]!);
        c.types.push(frameU16(f, RpmbFrame.REQ_RESP));
      }
      this.chains.push(c);
      // Serve through a private pair: copy the request frames in, the responses back.
      const frames = new Uint8Array(chain.readableBytes);
      let at = 0;
      for (let k = 0; k < chain.readableCount; k++) {
        frames.set(ctx.memory.slice(chain.addrs[k]!, chain.lens[k]!), at);
        at += chain.lens[k]!;
      }
      this.pending.push({ chain, frames, q, i });
    }
    void this.flush();
  }
  private readonly pending: { chain: DescriptorChain; frames: Uint8Array; q: NonNullable<ReturnType<DeviceContext['queue']>>; i: number }[] = [];
  private serving: RpmbDriver | null = null;
  private async flush(): Promise<void> {
    this.serving ??= new RpmbDriver(createTestPair(this.inner).ctx);
    while (this.pending.length > 0) {
      const p = this.pending.shift()!;
      const resp = await this.serving.exchange(p.frames, p.chain.writableBytes / RpmbFrame.SIZE);
      this.tamper?.(resp);
      let at = 0;
      for (let k = p.chain.readableCount; k < p.chain.count && at < resp.length; k++) {
        this.ctx!.memory.write(p.chain.addrs[k]!, resp.subarray(at, at + p.chain.lens[k]!));
        at += p.chain.lens[k]!;
      }
      p.q.push(p.chain, resp.length);
      this.ctx!.notifyUsed(p.i);
    }
  }
}

describe('RpmbDriver', T, () => {
  it('driver/rpmb/1 driver/rpmb/2: every request frame is a whole 512-byte frame in its own descriptor, formatted for the request the caller made', async () => {
    const store = new MemoryRpmbStore(1);
    const rec = new Recording(new RpmbDevice(store, { maxWriteBlocks: 2, maxReadBlocks: 2 }));
    const drv = new RpmbDriver(createTestPair(rec).ctx);
    assert.deepEqual(drv.config, { capacity: 1, maxWrCnt: 2, maxRdCnt: 2 });
    await drv.programKey(KEY);
    const d = data(3, 1);
    assert.equal(await drv.write(4, d), 2);
    assert.deepEqual(await drv.read(4, 3), d);
    assert.deepEqual(store.data.subarray(4 * 256, 7 * 256), d);
    assert.ok(rec.chains.length >= 6);
    for (const c of rec.chains) {
      assert.ok(c.readable.every((l) => l === RpmbFrame.SIZE), `readable ${c.readable}`);
      assert.ok(c.writable.every((l) => l === RpmbFrame.SIZE), `writable ${c.writable}`);
    }
    const { PROGRAM_KEY: PK, RESULT_READ: RR, GET_WRITE_COUNTER: GC, DATA_WRITE: W, DATA_READ: R } = RpmbRequest;
    assert.deepEqual(
      rec.chains.map((c) => c.types),
      [[PK, RR], [GC], [W, W, RR], [W, RR], [R], [R]],
    );
    assert.deepEqual(rec.chains.map((c) => c.writable.length), [1, 1, 1, 1, 2, 1]);
  });

  it('driver/rpmb/2: a device answering with a wrong MAC or without the nonce is caught (REQUEST_FAILED), results are RpmbResultError', async () => {
    const store = new MemoryRpmbStore(1);
    const rec = new Recording(new RpmbDevice(store));
    const drv = new RpmbDriver(createTestPair(rec).ctx);
    await assert.rejects(drv.read(0, 1), (e: unknown) => e instanceof VirtioError && e.code === ErrorCode.INVALID_ARGUMENT, 'no key yet');
    await drv.programKey(KEY);
    await assert.rejects(drv.programKey(KEY), result(RpmbResult.WRITE_FAILURE));
    rec.tamper = (r) => void (r[RpmbFrame.KEY_MAC] = r[RpmbFrame.KEY_MAC]! ^ 1);
    await assert.rejects(drv.getWriteCounter(), (e: unknown) => e instanceof VirtioError && !(e instanceof RpmbResultError) && /MAC/.test(e.message));
    rec.tamper = (r) => void (r[RpmbFrame.NONCE] = r[RpmbFrame.NONCE]! ^ 1);
    await assert.rejects(drv.read(0, 1), (e: unknown) => e instanceof VirtioError && /nonce/.test(e.message));
    rec.tamper = null;
    await assert.rejects(drv.read(store.capacityUnits * 512 - 1, 2), result(RpmbResult.ADDR_FAILURE));
    await assert.rejects(drv.write(0, new Uint8Array(100)), (e: unknown) => e instanceof VirtioError && e.code === ErrorCode.INVALID_ARGUMENT);
    assert.equal(await drv.getWriteCounter(), 0);
  });

  it('a driver holding the wrong key gets AUTH_FAILURE from the device', async () => {
    const store = new MemoryRpmbStore(1, { key: KEY });
    const drv = new RpmbDriver(createTestPair(new RpmbDevice(store)).ctx, { key: new Uint8Array(32).fill(1) });
    await assert.rejects(drv.write(0, data(1, 2)), (e: unknown) => e instanceof VirtioError);
    const right = new RpmbDriver(createTestPair(new RpmbDevice(store)).ctx, { key: KEY });
    assert.equal(await right.write(0, data(1, 2)), 1);
  });

  for (const packed of [false, true]) {
    it(`full stack (createLoopback, ${packed ? 'packed' : 'split'}): unlimited max_wr_cnt/max_rd_cnt, 64 blocks in one request each way`, async () => {
      const store = new MemoryRpmbStore(4);
      const lb = await createLoopback(new RpmbDevice(store, { maxReadBlocks: 0, maxWriteBlocks: 0 }), { packed, queueSize: 256 });
      try {
        const drv = new RpmbDriver(lb.context);
        assert.deepEqual(drv.config, { capacity: 4, maxWrCnt: 0, maxRdCnt: 0 });
        await drv.programKey(KEY);
        const d = data(64, 3);
        assert.equal(await drv.write(100, d), 1);
        assert.deepEqual(await drv.read(100, 64), d);
        const r = await drv.resultRead();
        assert.equal(r.result, RpmbResult.OK);
        assert.equal(r.writeCounter, 1);
      } finally {
        await lb.close();
      }
    });
  }
});
