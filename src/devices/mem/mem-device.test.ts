import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ErrorCode, isVirtioError } from '../../errors.js';
import { loadNativePlatform } from '../../platform/native-platform.js';
import { MemoryAdvice } from '../../platform/memory-advice.js';
import { decodeConfigField } from '../../spec/config-layout.js';
import { DeviceId } from '../../spec/device-id.js';
import { F } from '../../spec/features.js';
import { MEM_CONFIG_LAYOUT, MemBlockState, MemConfig, MemF, MemRequestType as Req, MemResponseType as Resp, type MemConfigField } from '../../spec/mem.js';
import { createLoopback } from '../../testing/loopback.js';
import { createTestPair } from '../blk/test-pair.js';
import { MemDevice, type MemDeviceOptions } from './mem-device.js';
import { MemDriver } from './mem-driver.js';
import { rawMem } from './mem-test-support.js';

const T = { timeout: 20_000 };
const BS = 4096;
const ADDR = 1 << 30;

function config(device: MemDevice, features = device.offeredFeatures): Record<MemConfigField, number> {
  const bytes = new Uint8Array(MemConfig.SIZE);
  device.readConfig(0, bytes, features, true);
  const out = {} as Record<MemConfigField, number>;
  for (const f of MEM_CONFIG_LAYOUT.fields) out[f.name] = decodeConfigField(f, bytes.subarray(f.offset, f.offset + f.width), true);
  return out;
}

function setup(opts: Partial<MemDeviceOptions> = {}, pairOpts: { accept?: bigint; littleEndian?: boolean; packed?: boolean } = {}) {
  const device = new MemDevice({ regionSize: 64 * BS, blockSize: BS, addr: ADDR, requestedSize: 16 * BS, usableExtent: 16 * BS, ...opts });
  const pair = createTestPair(device, pairOpts);
  return { device, pair, req: rawMem(pair.ctx) };
}

describe('MemDevice', T, () => {
  it('5.15.1-5.15.4 device/mem/5 device/mem/6 device/mem/7: id 24, one queue, block_size a power of two, sizes block multiples, checked options', () => {
    const d = new MemDevice({ regionSize: 32 * BS, blockSize: BS, addr: ADDR, requestedSize: 4 * BS, usableExtent: 8 * BS });
    assert.equal(d.deviceId, DeviceId.MEM);
    assert.equal(d.queueMaxSizes.length, 1);
    assert.equal(d.configSize, 56);
    const c = config(d);
    assert.deepEqual(c, { block_size: BS, node_id: 0, addr: ADDR, region_size: 32 * BS, usable_region_size: 12 * BS, plugged_size: 0, requested_size: 4 * BS });
    for (const k of ['addr', 'region_size', 'usable_region_size', 'plugged_size', 'requested_size'] as const) assert.equal(c[k] % BS, 0, k);
    const bad = (o: Partial<MemDeviceOptions>): void =>
      assert.throws(() => new MemDevice({ regionSize: 32 * BS, blockSize: BS, ...o }), (e: unknown) => isVirtioError(e) && e.code === ErrorCode.INVALID_ARGUMENT);
    bad({ blockSize: 3 * BS });
    bad({ blockSize: 1024 });
    bad({ addr: ADDR + 512 });
    bad({ regionSize: 32 * BS + 1 });
    bad({ requestedSize: 33 * BS });
    bad({ regionSize: -BS });
    bad({ nodeId: 0x10000 });
    // A region of 0 bytes is valid (device/mem/7): nothing usable, every request ERROR.
    assert.equal(config(new MemDevice({ regionSize: 0, blockSize: BS })).region_size, 0);
  });

  it('device/mem/2 device/mem/15 driver/mem/3: node_id exists only with ACPI_PXM; padding reads 0; offered bits follow the options', () => {
    const withNode = new MemDevice({ regionSize: 8 * BS, blockSize: BS, nodeId: 3 });
    assert.notEqual(withNode.offeredFeatures & MemF.ACPI_PXM, 0n);
    assert.equal(config(withNode).node_id, 3);
    assert.equal(config(withNode, withNode.offeredFeatures & ~MemF.ACPI_PXM).node_id, 0, 'absent without ACPI_PXM');
    const plain = new MemDevice({ regionSize: 8 * BS, blockSize: BS });
    assert.equal(plain.offeredFeatures & MemF.ACPI_PXM, 0n);
    assert.equal(plain.offeredFeatures & MemF.UNPLUGGED_INACCESSIBLE, 0n);
    assert.notEqual(plain.offeredFeatures & MemF.PERSISTENT_SUSPEND, 0n, 'device/mem/15');
    assert.notEqual(plain.offeredFeatures & F.VERSION_1, 0n);
    const bytes = new Uint8Array(MemConfig.SIZE);
    withNode.readConfig(0, bytes, withNode.offeredFeatures, true);
    assert.deepEqual(bytes.subarray(10, 16), new Uint8Array(6), 'padding is zero');
  });

  it('device/mem/1 device/mem/4 device/mem/8 device/mem/9 device/mem/11: a resize request grows the usable region to fit and notifies; shrinking requested_size never shrinks it', async () => {
    const { device, pair } = setup();
    assert.equal(device.usableRegionSize, 32 * BS);
    device.setRequestedSize(40 * BS);
    await Promise.resolve();
    assert.equal(pair.configChanges, 1);
    assert.equal(device.usableRegionSize, 56 * BS, 'requested + extent');
    device.setRequestedSize(60 * BS);
    assert.equal(device.usableRegionSize, 64 * BS, 'capped at the region');
    device.setRequestedSize(2 * BS);
    assert.equal(device.usableRegionSize, 64 * BS, 'device/mem/8: not shrunk by a smaller request');
    device.setRequestedSize(2 * BS); // device/mem/11: a notification even though nothing changed
    await Promise.resolve();
    assert.equal(pair.configChanges, 4);
    assert.ok(device.usableRegionSize >= device.requestedSize, 'device/mem/4');
    assert.throws(() => device.setRequestedSize(65 * BS), (e: unknown) => isVirtioError(e) && e.code === ErrorCode.INVALID_ARGUMENT);
    assert.throws(() => device.setRequestedSize(BS + 1), (e: unknown) => isVirtioError(e) && e.code === ErrorCode.INVALID_ARGUMENT);
    const c = config(device);
    assert.deepEqual([c.block_size, c.addr, c.region_size], [BS, ADDR, 64 * BS], 'device/mem/2: fixed fields unchanged');
  });

  for (const packed of [false, true]) {
    it(`device/mem/3 device/mem/10 device/mem/29 device/mem/30 device/mem/36 device/mem/37: PLUG and UNPLUG ACK, plugged_size follows without a notification (${packed ? 'packed' : 'split'})`, async () => {
      const { device, pair, req } = setup({}, { packed });
      const a = await req(Req.PLUG, ADDR + 2 * BS, 5);
      assert.deepEqual([a.usedLen, a.type], [10, Resp.ACK]);
      assert.equal(config(device).plugged_size, 5 * BS);
      for (let b = 0; b < 8; b++) assert.equal(device.isPlugged(b), b >= 2 && b < 7, `block ${b}`);
      assert.equal((await req(Req.UNPLUG, ADDR + 3 * BS, 2)).type, Resp.ACK);
      assert.equal(config(device).plugged_size, 3 * BS);
      assert.ok(device.isPlugged(2) && !device.isPlugged(3) && !device.isPlugged(4) && device.isPlugged(5));
      await Promise.resolve();
      assert.equal(pair.configChanges, 0, 'device/mem/10: no notification for plugged_size');
      assert.deepEqual(pair.resets, []);
    });
  }

  it('device/mem/26 device/mem/33 device/mem/46: unaligned addr, nb_blocks 0, blocks outside the usable region, below the region or past 2^53 get ERROR', async () => {
    const { device, req } = setup();
    for (const type of [Req.PLUG, Req.UNPLUG, Req.STATE]) {
      const cases: [number, number, string][] = [
        [ADDR + 100, 1, 'unaligned'],
        [ADDR, 0, 'no blocks'],
        [ADDR + 31 * BS, 2, 'last block outside the usable region'],
        [ADDR + 40 * BS, 1, 'inside the region, outside the usable part'],
        [ADDR - BS, 1, 'below the region'],
        [2 ** 60, 1, 'past 2^53'],
        [ADDR, 0xffff, 'more blocks than the region'],
      ];
      for (const [addr, nb, why] of cases) assert.equal((await req(type, addr, nb)).type, Resp.ERROR, `${type}: ${why}`);
    }
    assert.equal(device.pluggedSize, 0);
    assert.equal(device.responses[Resp.ERROR], 21);
  });

  it('device/mem/27 device/mem/34: PLUG of a block already plugged and UNPLUG of one already unplugged get ERROR and change nothing', async () => {
    const { device, req } = setup();
    assert.equal((await req(Req.PLUG, ADDR + 4 * BS, 2)).type, Resp.ACK);
    assert.equal((await req(Req.PLUG, ADDR + 3 * BS, 2)).type, Resp.ERROR, 'one of two plugged');
    assert.equal((await req(Req.UNPLUG, ADDR + 5 * BS, 2)).type, Resp.ERROR, 'one of two unplugged');
    assert.equal((await req(Req.UNPLUG, ADDR + 10 * BS, 1)).type, Resp.ERROR);
    assert.equal(device.pluggedSize, 2 * BS);
    assert.ok(!device.isPlugged(3) && device.isPlugged(4) && device.isPlugged(5) && !device.isPlugged(6));
  });

  it('5.15 (plug past requested_size is NACK): a PLUG that would make plugged_size exceed requested_size is rejected', async () => {
    const { device, req } = setup({ requestedSize: 4 * BS });
    assert.equal((await req(Req.PLUG, ADDR, 3)).type, Resp.ACK);
    assert.equal((await req(Req.PLUG, ADDR + 3 * BS, 2)).type, Resp.NACK);
    assert.equal((await req(Req.PLUG, ADDR + 3 * BS, 1)).type, Resp.ACK);
    assert.equal((await req(Req.PLUG, ADDR + 4 * BS, 1)).type, Resp.NACK, 'plugged_size = requested_size: every plug rejected');
    assert.equal(device.pluggedSize, 4 * BS);
  });

  it('device/mem/41 device/mem/42 device/mem/43 device/mem/9: UNPLUG ALL acknowledges, plugged_size 0, the usable region shrinks back to fit, no notification', async () => {
    const { device, pair, req } = setup();
    device.setRequestedSize(40 * BS);
    assert.equal((await req(Req.PLUG, ADDR + 50 * BS, 4)).type, Resp.ACK);
    await Promise.resolve();
    pair.configChanges = 0;
    device.setRequestedSize(0);
    await Promise.resolve();
    pair.configChanges = 0;
    assert.equal(device.usableRegionSize, 56 * BS);
    const a = await req(Req.UNPLUG_ALL, 0, 0);
    assert.equal(a.type, Resp.ACK);
    assert.equal(config(device).plugged_size, 0);
    assert.equal(config(device).usable_region_size, 16 * BS, 'requested 0 + extent 16 blocks');
    await Promise.resolve();
    assert.equal(pair.configChanges, 0);
    assert.equal((await req(Req.UNPLUG_ALL, 0, 0)).type, Resp.ACK, 'again, with nothing plugged');
  });

  it('device/mem/24 device/mem/25 device/mem/31 device/mem/32 device/mem/38 device/mem/39 device/mem/44 device/mem/45: padding and bytes past the 24 are ignored; UNPLUG ALL reads only the type', async () => {
    const { device, req } = setup();
    const o = { padding: 0xff, length: 40 };
    assert.equal((await req(Req.PLUG, ADDR, 3, o)).type, Resp.ACK);
    assert.deepEqual(await req(Req.STATE, ADDR, 3, o).then((a) => [a.type, a.state]), [Resp.ACK, MemBlockState.PLUGGED]);
    assert.equal((await req(Req.UNPLUG, ADDR + BS, 1, o)).type, Resp.ACK);
    // UNPLUG ALL with addr and nb_blocks garbage: only the type counts.
    assert.equal((await req(Req.UNPLUG_ALL, ADDR + 12345, 777, o)).type, Resp.ACK);
    assert.equal(device.pluggedSize, 0);
  });

  it('device/mem/47 device/mem/48 device/mem/49 device/mem/50: STATE answers PLUGGED, UNPLUGGED or MIXED with ACK', async () => {
    const { req } = setup();
    assert.equal((await req(Req.PLUG, ADDR + 8 * BS, 4)).type, Resp.ACK);
    const st = async (addr: number, nb: number): Promise<number[]> => {
      const a = await req(Req.STATE, addr, nb);
      return [a.type, a.state];
    };
    assert.deepEqual(await st(ADDR + 8 * BS, 4), [Resp.ACK, MemBlockState.PLUGGED]);
    assert.deepEqual(await st(ADDR, 8), [Resp.ACK, MemBlockState.UNPLUGGED]);
    assert.deepEqual(await st(ADDR + 7 * BS, 2), [Resp.ACK, MemBlockState.MIXED]);
    assert.deepEqual(await st(ADDR, 32), [Resp.ACK, MemBlockState.MIXED]);
  });

  it('device/mem/28 device/mem/35 device/mem/40: while the host holds the region busy, PLUG, UNPLUG and UNPLUG ALL get BUSY and change nothing', async () => {
    const { device, req } = setup();
    assert.equal((await req(Req.PLUG, ADDR, 2)).type, Resp.ACK);
    device.setBusy(true);
    assert.equal((await req(Req.PLUG, ADDR + 4 * BS, 1)).type, Resp.BUSY);
    assert.equal((await req(Req.UNPLUG, ADDR, 1)).type, Resp.BUSY);
    assert.equal((await req(Req.UNPLUG_ALL, 0, 0)).type, Resp.BUSY);
    assert.equal((await req(Req.STATE, ADDR, 2)).state, MemBlockState.PLUGGED, 'STATE still answers');
    assert.equal((await req(Req.PLUG, ADDR + 3, 1)).type, Resp.ERROR, 'an invalid request is still ERROR');
    assert.equal(device.pluggedSize, 2 * BS);
    device.setBusy(false);
    assert.equal((await req(Req.UNPLUG_ALL, 0, 0)).type, Resp.ACK);
  });

  it('the guest is untrusted: short requests, short or missing response room, unknown types and unmapped buffers get ERROR (or nothing) and change nothing', async () => {
    const { device, pair, req } = setup();
    assert.equal((await req(Req.PLUG, ADDR, 1, { length: 23 })).type, Resp.ERROR, 'a 23-byte request');
    assert.equal((await req(Req.PLUG, ADDR, 1, { length: 0 })).type, Resp.ERROR, 'no request at all');
    const short = await req(Req.PLUG, ADDR, 1, { respLength: 4 });
    assert.deepEqual([short.usedLen, short.type], [4, Resp.ERROR], 'only 4 bytes of room: ERROR, not acted on');
    assert.equal((await req(Req.PLUG, ADDR, 1, { respLength: 0 })).usedLen, 0, 'no room at all');
    assert.equal((await req(7, ADDR, 1)).type, Resp.ERROR, 'unknown type');
    assert.equal((await req(0xffff, ADDR, 1)).type, Resp.ERROR, 'unknown type');
    const unmapped = await req(Req.PLUG, ADDR, 1, { extraIn: [{ addr: 0x7000_0000_0000, len: 16 }] });
    assert.equal(unmapped.usedLen, 0);
    assert.equal(device.pluggedSize, 0, 'nothing was plugged by a malformed request');
    // Random requests: every one answered, nothing thrown, no reset needed.
    let seed = 7;
    const rnd = (n: number): number => ((seed = (seed * 1103515245 + 12345) >>> 0) % n);
    for (let i = 0; i < 300; i++) {
      const a = await req(rnd(6), ADDR + (rnd(80) - 8) * BS + (rnd(4) === 0 ? rnd(4096) : 0), rnd(40), { length: 16 + rnd(20), padding: rnd(256), respLength: rnd(14) });
      assert.ok(a.usedLen <= 10);
    }
    assert.deepEqual(pair.resets, []);
    assert.ok(device.pluggedSize <= device.requestedSize);
    assert.equal(device.pluggedSize / BS, [...Array(64).keys()].filter((b) => device.isPlugged(b)).length, 'the bitmap and plugged_size agree');
  });

  it('5.15 on a big-endian legacy interface: requests and responses in guest byte order', async () => {
    const { device, req } = setup({}, { accept: ~F.VERSION_1, littleEndian: false });
    assert.equal((await req(Req.PLUG, ADDR + BS, 2)).type, Resp.ACK);
    assert.ok(device.isPlugged(1) && device.isPlugged(2));
    assert.deepEqual(await req(Req.STATE, ADDR, 3).then((a) => [a.type, a.state]), [Resp.ACK, MemBlockState.MIXED]);
  });

  it('device/mem/12: with UNPLUGGED_INACCESSIBLE offered, FEATURES_OK without it is refused; with it the device works', async () => {
    const device = new MemDevice({ regionSize: 8 * BS, blockSize: BS, addr: ADDR, unpluggedInaccessible: true });
    assert.notEqual(device.offeredFeatures & MemF.UNPLUGGED_INACCESSIBLE, 0n);
    assert.match(device.validateFeatures(F.VERSION_1) ?? '', /device\/mem\/12/);
    assert.throws(() => createTestPair(device, { accept: ~MemF.UNPLUGGED_INACCESSIBLE }), (e: unknown) => isVirtioError(e) && e.code === ErrorCode.FEATURES_REJECTED);
    assert.equal(device.validateFeatures(F.VERSION_1 | MemF.UNPLUGGED_INACCESSIBLE), null);
  });

  it('device/mem/13 device/mem/14 device/mem/18 device/mem/19 device/mem/20 device/mem/23: device reset and suspend/resume keep block states and plugged memory; the driver reads and writes plugged memory and reads unplugged memory', async () => {
    const p = loadNativePlatform();
    const fd = p.memfd('vts-mem-test', 16 * BS);
    const region = p.mmap(fd, 0, 16 * BS);
    try {
      const device = new MemDevice({ regionSize: 16 * BS, blockSize: BS, addr: ADDR, requestedSize: 8 * BS, hostMemory: { bytes: region.bytes, advice: MemoryAdvice.REMOVE } });
      let lb = await createLoopback(device, { queueSize: 16 });
      const mem = new MemDriver(lb.context);
      await mem.start();
      assert.equal(device.pluggedSize, 8 * BS);
      // The driver (here through the mapping, as a guest CPU would) writes plugged memory.
      region.bytes.fill(0x5a, 0, 8 * BS);
      assert.ok(region.bytes.subarray(8 * BS).every((x) => x === 0), 'device/mem/20: unplugged memory is readable (zero)');
      await lb.driver.suspend();
      await lb.driver.resume();
      assert.equal(device.pluggedSize, 8 * BS, 'device/mem/23: suspend/resume changes no block');
      await lb.close(); // device reset
      assert.equal(device.pluggedSize, 8 * BS, 'device/mem/13: states kept over a device reset');
      assert.ok(region.bytes.subarray(0, 8 * BS).every((x) => x === 0x5a), 'device/mem/14, /18: plugged memory untouched');
      assert.equal(device.releasedBytes, 0);
      lb = await createLoopback(device, { queueSize: 16 });
      assert.equal(new MemDriver(lb.context).sizes().pluggedSize, 8 * BS, 'the next driver sees them plugged');
      await lb.close();
    } finally {
      region.unmap();
      p.close(fd);
    }
  });

  it('device/mem/17 device/mem/21 device/mem/22: unplugged blocks of host memory are released with madvise; a system reset unplugs and releases everything', async () => {
    const p = loadNativePlatform();
    const fd = p.memfd('vts-mem-test', 16 * BS);
    const region = p.mmap(fd, 0, 16 * BS);
    const other = p.mmap(fd, 0, 16 * BS); // the VMM's view of the same memory
    try {
      const device = new MemDevice({ regionSize: 16 * BS, blockSize: BS, addr: ADDR, requestedSize: 8 * BS, hostMemory: { bytes: region.bytes, advice: MemoryAdvice.REMOVE } });
      const pair = createTestPair(device);
      const req = rawMem(pair.ctx);
      assert.equal((await req(Req.PLUG, ADDR, 8)).type, Resp.ACK);
      region.bytes.fill(0x77, 0, 8 * BS);
      assert.equal((await req(Req.UNPLUG, ADDR + 2 * BS, 3)).type, Resp.ACK);
      assert.equal(device.releasedBytes, 3 * BS);
      assert.ok(other.bytes.subarray(2 * BS, 5 * BS).every((x) => x === 0), 'released: the memfd pages are gone');
      assert.ok(other.bytes.subarray(0, 2 * BS).every((x) => x === 0x77) && other.bytes.subarray(5 * BS, 8 * BS).every((x) => x === 0x77), 'plugged blocks kept');
      device.systemReset();
      assert.equal(device.pluggedSize, 0);
      assert.equal(device.releasedBytes, 8 * BS);
      assert.ok(other.bytes.every((x) => x === 0));
      assert.equal(device.releaseFailures, 0);
    } finally {
      region.unmap();
      other.unmap();
      p.close(fd);
    }
  });

  it('a release that fails (host memory that cannot take the advice) is counted; the blocks are unplugged all the same', async () => {
    const heap = new Uint8Array(8 * BS);
    const device = new MemDevice({ regionSize: 8 * BS, blockSize: BS, addr: ADDR, requestedSize: 8 * BS, hostMemory: { bytes: heap, advice: MemoryAdvice.REMOVE } });
    const { ctx } = createTestPair(device);
    const req = rawMem(ctx);
    assert.equal((await req(Req.PLUG, ADDR, 2)).type, Resp.ACK);
    assert.equal((await req(Req.UNPLUG, ADDR, 2)).type, Resp.ACK);
    assert.equal(device.releaseFailures, 1);
    assert.equal(device.pluggedSize, 0);
  });
});
