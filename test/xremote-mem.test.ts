/**
 * The virtio-ts MemDriver against QEMU's own virtio-mem-pci (a 64 MiB memory-backend-ram in
 * 2 MiB blocks) through x-remote. The host side is QMP: `qom-set requested-size` is a resize
 * request QEMU announces with a configuration change; the driver follows it by plugging blocks,
 * and QEMU's `query-memory-devices` (size) and `qom-get size` (plugged size) agree with the
 * driver; then back to zero by unplugging, STATE, the NACK past requested_size, the ERROR for a
 * block outside the usable region, and UNPLUG ALL.
 *
 * Needs qemu-system-x86_64 with the x-remote machine and the native addon; under CI=true a
 * missing dependency fails the suite instead of skipping it.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { MemDriver } from '../src/devices/mem/mem-driver.js';
import { VirtioDriver } from '../src/driver/index.js';
import { MemBlockState, MemResponseType } from '../src/spec/mem.js';
import { startXRemoteDevice, xRemoteUnavailableReason, type XRemoteDevice } from '../src/transport/x-remote/index.js';

const missing = xRemoteUnavailableReason();
if (missing && process.env.CI === 'true') throw new Error(`x-remote tests need QEMU's x-remote machine under CI: ${missing}`);
const skip = missing ?? false;

const ALL = (1n << 64n) - 1n;
const MiB = 1 << 20;
const BLOCK = 2 * MiB;
const REGION = 64 * MiB;

/** `p`, or a failure naming `what` after 20 s (a lost configuration change must not hang the test). */
async function within<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new assert.AssertionError({ message: `timed out waiting for ${what}` })), 20_000)));
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

interface MemoryDeviceInfo {
  type: string;
  data: { memaddr: number; 'block-size': number; size: number; 'max-size': number; 'requested-size': number; id: string };
}

describe('x-remote: QEMU virtio-mem-pci driven by the virtio-ts MemDriver', { skip, timeout: 120_000 }, () => {
  let dev: XRemoteDevice | null = null;
  after(async () => {
    await dev?.close();
  });

  for (const packed of [false, true]) {
    it(`${packed ? 'packed' : 'split'} ring: qom-set requested-size is followed (plug, then unplug back to 0), QEMU's plugged size agrees`, async () => {
      await dev?.close(); // a previous case that failed half-way
      dev = await startXRemoteDevice({
        device: 'virtio-mem-pci',
        deviceProps: `memdev=m0,block-size=${BLOCK},requested-size=0${packed ? ',packed=on' : ''}`,
        qemuArgs: ['-object', `memory-backend-ram,id=m0,size=${REGION}`],
      });
      const qmp = dev.qmp;
      const info = async (): Promise<MemoryDeviceInfo['data']> => {
        const list = (await qmp.execute('query-memory-devices')) as MemoryDeviceInfo[];
        const d = list.find((x) => x.type === 'virtio-mem' && x.data.id === 'xr0');
        assert.ok(d, 'QEMU lists the virtio-mem device');
        return d.data;
      };
      const pluggedInQemu = async (): Promise<number> => (await qmp.execute('qom-get', { path: '/machine/peripheral/xr0', property: 'size' })) as number;
      const resize = (bytes: number): Promise<unknown> => qmp.execute('qom-set', { path: '/machine/peripheral/xr0', property: 'requested-size', value: bytes });

      const driver = await VirtioDriver.init(dev.transport, { wantedFeatures: ALL, dma: dev.dma });
      const mem = new MemDriver(driver.context);
      const q = await info();
      assert.deepEqual(mem.region, { blockSize: BLOCK, nodeId: null, addr: q.memaddr, regionSize: REGION });
      assert.equal(q['block-size'], BLOCK);
      assert.deepEqual(await mem.start(), { requestedSize: 0, pluggedSize: 0, reached: true });

      // Host asks for 10 MiB: QEMU's config change reaches the driver, which plugs 5 blocks.
      const grown = mem.whenReached(10 * MiB);
      await resize(10 * MiB);
      assert.equal((await within(grown, 'the driver plugging 10 MiB')).pluggedSize, 10 * MiB);
      assert.equal((await info()).size, 10 * MiB, 'query-memory-devices: size');
      assert.equal(await pluggedInQemu(), 10 * MiB, 'qom-get size');
      assert.equal(mem.sizes().pluggedSize, 10 * MiB, 'plugged_size in the configuration');
      assert.ok(mem.sizes().usableRegionSize >= 10 * MiB);
      const base = mem.region.addr;
      assert.deepEqual(await mem.state(base, 5), { type: MemResponseType.ACK, state: MemBlockState.PLUGGED });
      assert.deepEqual(await mem.state(base + 4 * BLOCK, 2), { type: MemResponseType.ACK, state: MemBlockState.MIXED });
      // plugged_size = requested_size: QEMU rejects one more block with NACK (5.15 intro).
      assert.equal((await mem.plug(base + 5 * BLOCK, 1)).type, MemResponseType.NACK);
      // Already unplugged, unaligned, outside: ERROR (device/mem/26, /34, /46 as QEMU applies them).
      const twelve = mem.whenReached(12 * MiB);
      await resize(12 * MiB);
      await within(twelve, 'the driver plugging 12 MiB');
      assert.equal((await mem.unplug(base + 10 * BLOCK, 1)).type, MemResponseType.ERROR, 'already unplugged');
      assert.equal((await mem.unplug(base + BLOCK / 2, 1)).type, MemResponseType.ERROR, 'unaligned');
      assert.equal((await mem.state(base + REGION, 1)).type, MemResponseType.ERROR, 'outside the region');
      assert.equal(await pluggedInQemu(), 12 * MiB);

      // Back to zero: the driver unplugs every block.
      const shrunk = mem.whenReached(0);
      await resize(0);
      assert.equal((await within(shrunk, 'the driver unplugging everything')).pluggedSize, 0);
      assert.equal(await pluggedInQemu(), 0);
      assert.equal((await info()).size, 0);
      assert.deepEqual(await mem.state(base, 6), { type: MemResponseType.ACK, state: MemBlockState.UNPLUGGED });
      await mem.unplugAll();
      assert.equal(await pluggedInQemu(), 0);
      mem.detach();
      await dev.close();
      dev = null;
    });
  }
});
