import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DeviceContext, VirtioDevice } from '../../device/types.js';
import type { DriverContext } from '../../driver/types.js';
import { ErrorCode, isVirtioError } from '../../errors.js';
import type { GuestMemory } from '../../memory/guest-memory.js';
import { ChainCursor, DescriptorChain } from '../../queue/chain.js';
import { encodeConfig } from '../../spec/config-layout.js';
import { DeviceId } from '../../spec/device-id.js';
import { F } from '../../spec/features.js';
import { MEM_CONFIG_LAYOUT, MemBlockState, MemConfig, MemF, MemRequest, MemRequestType as Req, MemResponseType as Resp } from '../../spec/mem.js';
import { createLoopback } from '../../testing/loopback.js';
import { waitFor } from '../balloon/balloon-test-helpers.js';
import { createTestPair } from '../blk/test-pair.js';
import { MemDevice, type MemDeviceOptions } from './mem-device.js';
import { MemDeviceBusyError, MemDriver } from './mem-driver.js';

const T = { timeout: 20_000 };
const BS = 4096;

function device(o: Partial<MemDeviceOptions> = {}): MemDevice {
  return new MemDevice({ regionSize: 64 * BS, blockSize: BS, addr: 1 << 30, requestedSize: 0, usableExtent: 16 * BS, ...o });
}

/** A device answering every request with fixed response bytes, recording the requests. */
class ScriptedMem implements VirtioDevice {
  readonly deviceId = DeviceId.MEM;
  readonly offeredFeatures = F.VERSION_1 | MemF.PERSISTENT_SUSPEND;
  readonly queueMaxSizes = [16];
  readonly configSize = MemConfig.SIZE;
  readonly requests: Uint8Array[] = [];
  configWrites = 0;
  answer = new Uint8Array(10);
  private ctx: DeviceContext | null = null;
  readConfig(offset: number, dst: Uint8Array, features: bigint, le: boolean): void {
    encodeConfig(MEM_CONFIG_LAYOUT, { block_size: BS, node_id: 9, addr: 0x4000_0000, region_size: 8 * BS, usable_region_size: 8 * BS, requested_size: 0 }, features, offset, dst, le);
  }
  writeConfig(): void {
    this.configWrites++;
  }
  activate(ctx: DeviceContext): void {
    this.ctx = ctx;
  }
  reset(): void {}
  onQueueNotify(i: number): void {
    const ctx = this.ctx!;
    const q = ctx.queue(i)!;
    const chain = new DescriptorChain(ctx.memory, 16);
    while (q.pop(chain)) {
      const r = new Uint8Array(chain.readableBytes);
      new ChainCursor(false).reset(chain).read(r);
      this.requests.push(r);
      q.push(chain, new ChainCursor(true).reset(chain).write(this.answer));
    }
    ctx.notifyUsed(i);
  }
}

/** A context whose memory records every access inside [lo, hi). */
function watchRegion(ctx: DriverContext, lo: number, hi: number): { ctx: DriverContext; touched: string[] } {
  const touched: string[] = [];
  const memory = new Proxy(ctx.memory, {
    get(target, prop) {
      const v: unknown = Reflect.get(target, prop);
      if (typeof v !== 'function') return v;
      return (...args: unknown[]) => {
        const addr = args[0];
        if (typeof addr === 'number' && ['read', 'write', 'fill', 'slice', 'view', 'readU8', 'writeU8'].includes(String(prop)) && addr >= lo && addr < hi) touched.push(`${String(prop)} 0x${addr.toString(16)}`);
        return (v as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  }) as GuestMemory;
  return { ctx: new Proxy(ctx, { get: (t, p) => (p === 'memory' ? memory : (Reflect.get(t, p) as unknown)) }), touched };
}

describe('MemDriver', T, () => {
  it('driver/mem/1 driver/mem/2 driver/mem/3: never writes the configuration; node_id read only with ACPI_PXM', async () => {
    const scripted = new ScriptedMem();
    const pair = createTestPair(scripted);
    const mem = new MemDriver(pair.ctx);
    assert.deepEqual(mem.region, { blockSize: BS, nodeId: null, addr: 0x4000_0000, regionSize: 8 * BS });
    await mem.start();
    assert.equal(scripted.configWrites, 0);
    const withPxm = device({ nodeId: 5 });
    assert.equal(new MemDriver(createTestPair(withPxm).ctx).region.nodeId, 5);
    assert.equal(new MemDriver(createTestPair(device({ nodeId: 5 }), { accept: ~MemF.ACPI_PXM }).ctx).region.nodeId, null, 'without ACPI_PXM: ignored');
  });

  it('driver/mem/4 driver/mem/16: UNPLUGGED_INACCESSIBLE and PERSISTENT_SUSPEND are accepted when offered; suspend is allowed only with PERSISTENT_SUSPEND', async () => {
    const d = device({ unpluggedInaccessible: true });
    const lb = await createLoopback(d, { queueSize: 16 });
    const mem = new MemDriver(lb.context);
    assert.notEqual(lb.context.features & MemF.UNPLUGGED_INACCESSIBLE, 0n);
    assert.ok(mem.unpluggedInaccessible);
    assert.ok(mem.allowsSuspend);
    await lb.close();
    const lb2 = await createLoopback(device({ persistentSuspend: false }), { queueSize: 16 });
    assert.equal(new MemDriver(lb2.context).allowsSuspend, false);
    await lb2.close();
  });

  it('driver/mem/5: memory a previous driver left plugged is unplugged with UNPLUG ALL at start, retried while the device is BUSY', async () => {
    const d = device({ requestedSize: 6 * BS });
    let lb = await createLoopback(d, { queueSize: 16 });
    await new MemDriver(lb.context).start();
    assert.equal(d.pluggedSize, 6 * BS);
    await lb.close();
    d.setRequestedSize(2 * BS);
    d.setBusy(true);
    lb = await createLoopback(d, { queueSize: 16 });
    const mem = new MemDriver(lb.context, { busyRetryMs: 1 });
    const started = mem.start();
    await waitFor(() => d.responses[Resp.BUSY]! >= 2, 5000, 'two BUSY answers');
    d.setBusy(false);
    const r = await started;
    assert.deepEqual(r, { requestedSize: 2 * BS, pluggedSize: 2 * BS, reached: true });
    assert.ok(d.responses[Resp.ACK]! >= 2, 'UNPLUG ALL, then a PLUG');
    assert.ok(d.isPlugged(0) && d.isPlugged(1) && !d.isPlugged(2), 'after UNPLUG ALL the lowest blocks were plugged again');
    await lb.close();
  });

  it('driver/mem/5: a device that stays BUSY makes start fail after the bounded retries', async () => {
    const d = device({ requestedSize: 2 * BS });
    let lb = await createLoopback(d, { queueSize: 16 });
    await new MemDriver(lb.context).start();
    await lb.close();
    d.setBusy(true);
    lb = await createLoopback(d, { queueSize: 16 });
    await assert.rejects(new MemDriver(lb.context, { busyRetryMs: 1, maxBusyRetries: 3 }).start(), (e: unknown) => e instanceof MemDeviceBusyError && e.code === ErrorCode.TIMEOUT);
    assert.equal(d.responses[Resp.BUSY], 4);
    await lb.close();
  });

  it('driver/mem/12 driver/mem/13 driver/mem/14: a resize request is followed by plugging exactly the requested blocks, each range handed to onPlugged', async () => {
    const d = device();
    const lb = await createLoopback(d, { queueSize: 16 });
    const ranges: [number, number][] = [];
    const mem = new MemDriver(lb.context, { onPlugged: (a, s) => ranges.push([a, s]) });
    assert.deepEqual(await mem.start(), { requestedSize: 0, pluggedSize: 0, reached: true });
    const reached = mem.whenReached(10 * BS);
    d.setRequestedSize(10 * BS);
    await reached;
    assert.equal(d.pluggedSize, 10 * BS, 'driver/mem/14: not more than requested');
    assert.deepEqual(ranges, [[1 << 30, 10 * BS]]);
    const more = mem.whenReached(14 * BS);
    d.setRequestedSize(14 * BS);
    await more;
    assert.equal(d.pluggedSize, 14 * BS);
    assert.equal(mem.pluggedByDriver, 14 * BS);
    await lb.close();
  });

  it('driver/mem/11 driver/mem/15: blocks still in use are not unplugged; the driver stops short of requested_size', async () => {
    const d = device({ requestedSize: 8 * BS });
    const lb = await createLoopback(d, { queueSize: 16 });
    const base = 1 << 30;
    const inUse = new Set([base + 6 * BS, base + 2 * BS]);
    const unplugged: [number, number][] = [];
    const mem = new MemDriver(lb.context, { canUnplug: (a) => !inUse.has(a), onUnplugged: (a, s) => unplugged.push([a, s]) });
    await mem.start();
    d.setRequestedSize(0);
    const r = await mem.resize();
    assert.equal(r.reached, false, 'driver/mem/15: two blocks stay');
    assert.equal(d.pluggedSize, 2 * BS);
    assert.ok(d.isPlugged(2) && d.isPlugged(6) && !d.isPlugged(7) && !d.isPlugged(0));
    assert.deepEqual(unplugged, [[base + 7 * BS, BS], [base + 3 * BS, 3 * BS], [base, 2 * BS]], 'highest first, around the blocks in use');
    await lb.close();
  });

  it('driver/mem/6 driver/mem/7 driver/mem/8 driver/mem/9 driver/mem/10: the driver never reads or writes the region itself, plugged or not', async () => {
    // The region inside the driver's guest memory, so any access would be seen.
    const region = 0x40_0000;
    const d = new MemDevice({ regionSize: 32 * BS, blockSize: BS, addr: region, requestedSize: 8 * BS });
    const lb = await createLoopback(d, { queueSize: 16, memorySize: 8 << 20 });
    const { ctx, touched } = watchRegion(lb.context, region, region + 32 * BS);
    const mem = new MemDriver(ctx);
    await mem.start();
    d.setRequestedSize(20 * BS);
    await mem.resize();
    d.setRequestedSize(4 * BS);
    await mem.resize();
    await mem.state(region, 32);
    await mem.unplugAll();
    assert.deepEqual(touched, []);
    assert.equal(d.pluggedSize, 0);
    await lb.close();
  });

  it('driver/mem/17 driver/mem/18 driver/mem/19 driver/mem/20 driver/mem/21: only the response type counts, and the state only when acknowledged', async () => {
    const scripted = new ScriptedMem();
    const mem = new MemDriver(createTestPair(scripted).ctx);
    // ACK with every other byte 0xff.
    scripted.answer = Uint8Array.from([0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    assert.deepEqual(await mem.plug(0x4000_0000, 1), { type: Resp.ACK, state: null });
    assert.deepEqual(await mem.unplug(0x4000_0000, 1), { type: Resp.ACK, state: null });
    await mem.unplugAll();
    assert.deepEqual(await mem.state(0x4000_0000, 2), { type: Resp.ACK, state: 0xffff });
    scripted.answer = Uint8Array.from([0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, MemBlockState.MIXED, 0]);
    assert.deepEqual(await mem.state(0x4000_0000, 2), { type: Resp.ACK, state: MemBlockState.MIXED });
    // NACK/ERROR carrying state bytes: the state is ignored.
    scripted.answer = Uint8Array.from([Resp.ERROR, 0, 0, 0, 0, 0, 0, 0, MemBlockState.PLUGGED, 0]);
    assert.deepEqual(await mem.state(0x4000_0000, 2), { type: Resp.ERROR, state: null });
    // The requests are 24 bytes: type, addr, nb_blocks, zero padding.
    const last = scripted.requests.at(-1)!;
    assert.equal(last.length, MemRequest.SIZE);
    const v = new DataView(last.buffer);
    assert.deepEqual([v.getUint16(0, true), v.getUint32(8, true), v.getUint16(16, true)], [Req.STATE, 0x4000_0000, 2]);
    assert.deepEqual([...last.subarray(2, 8), ...last.subarray(18)], new Array(12).fill(0));
    // A response type the spec does not define is an error, not a guess.
    scripted.answer = Uint8Array.from([9, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    await assert.rejects(mem.plug(0x4000_0000, 1), (e: unknown) => isVirtioError(e) && e.code === ErrorCode.REQUEST_FAILED);
  });

  it('detach: a waiting whenReached is rejected and later requests fail', async () => {
    const d = device();
    const lb = await createLoopback(d, { queueSize: 16 });
    const mem = new MemDriver(lb.context);
    await mem.start();
    const waiting = mem.whenReached(4 * BS);
    mem.detach();
    await assert.rejects(waiting, (e: unknown) => isVirtioError(e));
    await assert.rejects(mem.plug(1 << 30, 1));
    await lb.close();
  });
});
