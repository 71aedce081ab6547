/**
 * QEMU's own device models, driven through x-remote by the unchanged virtio-ts drivers over the
 * unchanged PCI driver transport: virtio-blk-pci on a raw host image (what the driver writes is
 * what the host file holds afterwards, byte for byte) and virtio-rng-pci, with split and packed
 * rings. Interrupts arrive as INTx through the irqfd; ISR is read on each one (4.1.4.5).
 *
 * Needs qemu-system-x86_64 with the x-remote machine and the native addon; under CI=true a
 * missing dependency fails the suite instead of skipping it.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BlkDriver, EntropyDriver, VirtioDriver } from '../src/driver/index.js';
import { ErrorCode, VirtioError } from '../src/errors.js';
import { BlkF } from '../src/spec/blk.js';
import { DeviceId } from '../src/spec/device-id.js';
import { F } from '../src/spec/features.js';
import { loadNativePlatform } from '../src/platform/native-platform.js';
import {
  type XRemoteDevice,
  type XRemoteDeviceOptions,
  XRemoteError,
  XRemoteFault,
  startXRemoteDevice,
  xRemoteUnavailableReason,
} from '../src/transport/x-remote/index.js';

const missing = xRemoteUnavailableReason();
if (missing && process.env.CI === 'true') throw new Error(`x-remote tests need QEMU's x-remote machine under CI: ${missing}`);
const skip = missing ?? false;

/**
 * QEMU 7.2 writes the used length into every used packed descriptor but never sets
 * VIRTQ_DESC_F_WRITE in it (2.8.4 calls that length reserved); virtio-ts's packed driver queue
 * reads it anyway, as Linux does, clamped to the buffer's writable part, so entropy (and net
 * receive) work over packed rings too.
 */

const ALL = (1n << 64n) - 1n;
const IMAGE_BYTES = 4 << 20;
const SECTOR = 512;

interface Started {
  dev: XRemoteDevice;
  driver: VirtioDriver;
}

describe('x-remote: QEMU device models driven by virtio-ts drivers', { skip, timeout: 120_000 }, () => {
  let dir: string;
  const devices: XRemoteDevice[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vts-xremote-'));
  });
  after(async () => {
    for (const d of devices) await d.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function start(opts: XRemoteDeviceOptions, wanted = ALL): Promise<Started> {
    const dev = await startXRemoteDevice(opts);
    devices.push(dev);
    const driver = await VirtioDriver.init(dev.transport, { wantedFeatures: wanted, dma: dev.dma, queueSizes: [64] });
    return { dev, driver };
  }

  async function stop(s: Started): Promise<void> {
    const r = await s.dev.close();
    // Closing the link ends QEMU's message loop: it shuts down by itself, without a signal.
    assert.deepEqual(r, { code: 0, signal: null }, s.dev.output());
    assert.equal(s.dev.pci.badAccesses, 0, 'the PCI driver made no access outside config space or the BARs');
  }

  for (const packed of [false, true]) {
    const ring = packed ? 'packed' : 'split';

    it(`virtio-blk-pci (${ring} ring) on a raw image: patterns at several offsets land in the host file, config and flush`, async () => {
      const image = join(dir, `disk-${ring}.raw`);
      const initial = randomBytes(IMAGE_BYTES);
      await writeFile(image, initial);
      const s = await start({
        device: 'virtio-blk-pci',
        deviceProps: `drive=d0,packed=${packed ? 'on' : 'off'}`,
        qemuArgs: ['-blockdev', `driver=file,node-name=f0,filename=${image}`, '-blockdev', 'driver=raw,node-name=d0,file=f0'],
      });
      assert.equal(s.dev.transport.deviceId, DeviceId.BLOCK);
      assert.equal(s.driver.features & F.RING_PACKED, packed ? F.RING_PACKED : 0n);
      assert.equal(s.driver.features & F.VERSION_1, F.VERSION_1);
      assert.ok((s.driver.features & BlkF.FLUSH) !== 0n, 'QEMU offers FLUSH');
      const blk = new BlkDriver(s.driver.context);
      assert.equal(blk.capacity, IMAGE_BYTES / SECTOR, 'capacity from the device config is the image size');
      assert.equal(blk.readOnly, false);

      // The driver reads what the host file holds.
      assert.deepEqual(Buffer.from(await blk.read(0, 4096)), initial.subarray(0, 4096));
      assert.deepEqual(Buffer.from(await blk.read(IMAGE_BYTES / SECTOR - 8, 4096)), initial.subarray(IMAGE_BYTES - 4096));

      // Patterns at the start, unaligned to 4 KiB, across 64 KiB, and in the last sector.
      const writes: [sector: number, bytes: Buffer][] = [
        [0, randomBytes(SECTOR)],
        [7, randomBytes(3 * SECTOR)],
        [125, randomBytes(64 << 10)],
        [IMAGE_BYTES / SECTOR - 1, randomBytes(SECTOR)],
      ];
      await Promise.all(writes.map(([sector, bytes]) => blk.write(sector, bytes)));
      for (const [sector, bytes] of writes) assert.deepEqual(Buffer.from(await blk.read(sector, bytes.length)), bytes, `read back at sector ${sector}`);
      await blk.flush();
      assert.ok(s.dev.intx.interrupts > 0, 'completions came as INTx interrupts');
      assert.ok(s.dev.intx.failure === null);
      await stop(s);

      const expected = Buffer.from(initial);
      for (const [sector, bytes] of writes) bytes.copy(expected, sector * SECTOR);
      const host = await readFile(image);
      assert.equal(host.length, IMAGE_BYTES);
      assert.ok(host.equals(expected), 'the host image holds exactly the initial bytes plus the writes');
    });

    it(`virtio-rng-pci (${ring} ring): 4 x 64 random bytes, not all equal`, async () => {
      const s = await start({ device: 'virtio-rng-pci', deviceProps: `packed=${packed ? 'on' : 'off'}` });
      assert.equal(s.dev.transport.deviceId, DeviceId.ENTROPY);
      assert.equal(s.driver.features & F.RING_PACKED, packed ? F.RING_PACKED : 0n);
      const rng = new EntropyDriver(s.driver.context);
      const draws: Buffer[] = [];
      for (let i = 0; i < 4; i++) draws.push(Buffer.from(await rng.read(64)));
      for (const d of draws) assert.equal(d.length, 64);
      assert.ok(new Set(draws.map((d) => d.toString('hex'))).size === 4, 'four different draws');
      assert.ok(draws.some((d) => d.some((b) => b !== d[0])), 'not a constant byte');
      await stop(s);
    });
  }

  it('virtio-rng-pci through the legacy interface of the transitional device (I/O BAR0, 4.1.4.8)', async (t) => {
    const s = await start({ device: 'virtio-rng-pci', legacy: true });
    assert.equal(s.dev.transport.legacy, true);
    assert.equal(s.dev.pci.bars[0]?.io, true, 'BAR0 is an I/O BAR');
    assert.equal(s.driver.features & F.VERSION_1, 0n, 'no VERSION_1 through the legacy interface');
    const a = await new EntropyDriver(s.driver.context).read(64);
    const b = await new EntropyDriver(s.driver.context).read(64);
    assert.notDeepEqual(a, b);
    // One socket round trip per register access: report the rate (no assertion on speed).
    const n = 2000;
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) s.dev.transport.getStatus();
    const perSecond = Math.round(n / (Number(process.hrtime.bigint() - t0) / 1e9));
    t.diagnostic(`x-remote register accesses: ${perSecond}/s (I/O BAR reads)`);
    await stop(s);
  });

  it('QEMU killed under the driver: the next access fails with a typed error at once, close() still cleans up every fd', async () => {
    const platform = loadNativePlatform();
    const fdsBefore = platform.openFdCount();
    const s = await start({ device: 'virtio-rng-pci' });
    await new EntropyDriver(s.driver.context).read(16);
    process.kill(s.dev.pid, 'SIGKILL');
    const t0 = Date.now();
    assert.throws(
      () => {
        // Bounded: each access fails or times out; the kill lands within a few of them.
        for (let i = 0; i < 1000; i++) s.dev.transport.getStatus();
      },
      (e: unknown) => e instanceof XRemoteError && e.fault === XRemoteFault.PEER_CLOSED,
    );
    assert.ok(Date.now() - t0 < 5000, 'no access waited for its full time bound');
    assert.equal(s.dev.link.isOpen, false);
    const r = await s.dev.close();
    assert.equal(r.signal, 'SIGKILL');
    assert.equal(platform.openFdCount(), fdsBefore, 'every fd of the device (socket, memfd, eventfds, pipes) is closed');
  });

  it('QEMU refusing its command line: start fails with QEMU\'s own message, bounded, leaving no fd behind', async () => {
    const platform = loadNativePlatform();
    const fdsBefore = platform.openFdCount();
    const t0 = Date.now();
    await assert.rejects(startXRemoteDevice({ device: 'virtio-no-such-device-pci' }), (e: unknown) => {
      assert.ok(e instanceof VirtioError && e.code === ErrorCode.BACKEND_IO, String(e));
      assert.match(e.message, /virtio-no-such-device-pci' is not a valid device model name/);
      return true;
    });
    assert.ok(Date.now() - t0 < 20_000);
    assert.equal(platform.openFdCount(), fdsBefore);
  });

  it('the host file is read and written only through the device: a sector changed on the host reads back changed', async () => {
    const image = join(dir, 'disk-host.raw');
    await writeFile(image, Buffer.alloc(1 << 20));
    const s = await start({
      device: 'virtio-blk-pci',
      deviceProps: 'drive=d0',
      qemuArgs: ['-blockdev', `driver=file,node-name=f0,filename=${image},cache.direct=off`, '-blockdev', 'driver=raw,node-name=d0,file=f0'],
    });
    const blk = new BlkDriver(s.driver.context);
    const mark = randomBytes(SECTOR);
    const fh = await open(image, 'r+');
    try {
      await fh.write(mark, 0, SECTOR, 9 * SECTOR);
    } finally {
      await fh.close();
    }
    assert.deepEqual(Buffer.from(await blk.read(9, SECTOR)), mark);
    await stop(s);
  });
});

