/**
 * The virtio-ts PmemDriver against QEMU's own virtio-pmem-pci through x-remote, its range a
 * shared memory-backend-file: the driver reads start (QEMU's memaddr) and size from the
 * configuration (driver/pmem/2) and sends flush requests, which QEMU answers with ret 0 after
 * fsync of the backing file. The range itself lives in QEMU's remote machine address space, which
 * no BAR exposes: the test cannot reach it through the device, only through the shared file.
 *
 * Needs qemu-system-x86_64 with the x-remote machine and the native addon; under CI=true a
 * missing dependency fails the suite instead of skipping it.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VirtioDriver } from '../src/driver/index.js';
import { PmemDriver } from '../src/devices/pmem/pmem-driver.js';
import { F } from '../src/spec/features.js';
import { PmemF } from '../src/spec/pmem.js';
import { startXRemoteDevice, xRemoteUnavailableReason, type XRemoteDevice } from '../src/transport/x-remote/index.js';

const missing = xRemoteUnavailableReason();
if (missing && process.env.CI === 'true') throw new Error(`x-remote tests need QEMU's x-remote machine under CI: ${missing}`);
const skip = missing ?? false;

const ALL = (1n << 64n) - 1n;
const SIZE = 4 << 20;
const MEMADDR = 0x1_0000_0000;

describe('x-remote: QEMU virtio-pmem-pci (shared memory-backend-file) driven by the virtio-ts PmemDriver', { skip, timeout: 120_000 }, () => {
  let dir: string;
  let dev: XRemoteDevice | null = null;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vts-xremote-pmem-'));
  });
  after(async () => {
    await dev?.close();
    await rm(dir, { recursive: true, force: true });
  });

  for (const packed of [false, true]) it(`${packed ? 'packed' : 'split'} ring: start and size from the configuration, flush requests answered 0`, async () => {
    await dev?.close();
    const file = join(dir, `${packed ? 'packed' : 'split'}.img`);
    const fh = await open(file, 'w');
    await fh.truncate(SIZE);
    await fh.close();
    dev = await startXRemoteDevice({
      device: 'virtio-pmem-pci',
      deviceProps: `memdev=m0,memaddr=${MEMADDR}${packed ? ',packed=on' : ''}`,
      qemuArgs: ['-object', `memory-backend-file,id=m0,share=on,mem-path=${file},size=${SIZE}`],
    });
    const driver = await VirtioDriver.init(dev.transport, { wantedFeatures: packed ? ALL : ALL & ~F.RING_PACKED, dma: dev.dma, queueSizes: [64] });
    assert.equal((driver.features & F.RING_PACKED) !== 0n, packed);
    assert.equal(driver.features & PmemF.SHMEM_REGION, 0n, 'QEMU 7.2 does not offer SHMEM_REGION');
    const pmem = new PmemDriver(driver.context);
    assert.deepEqual(pmem.range, { base: MEMADDR, length: SIZE });
    await pmem.flush();
    await Promise.all([pmem.flush(), pmem.flush(), pmem.flush()]);
    const mem = await dev.qmp.execute('query-memory-devices');
    assert.ok(JSON.stringify(mem).includes('virtio-pmem'), JSON.stringify(mem));
    pmem.detach();
    driver.reset();
    await dev.close();
    dev = null;
  });
});
