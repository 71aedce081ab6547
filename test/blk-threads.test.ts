/**
 * Ring worker threads (src/vhost-user/worker-*.ts, `virtio-ts blk --threads T`): a vhost-user
 * front-end (the library's, on this thread) drives virtio-blk whose two queues are served by two
 * worker threads, each mapping guest memory itself and watching its own kick eventfds. Checked:
 * data written through either queue reads back through the other; both rings carried requests
 * (the shared per-queue counters, written by the workers, read here); GET_VRING_BASE answers
 * with the worker's position (disconnect, then reconnect and go on from it); a refused ring
 * request still gets its error reply; the CLI refuses more threads than queues.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { BlkDriver } from '../src/devices/blk/blk-driver.js';
import { BlkDevice } from '../src/devices/blk/blk-device.js';
import { MemoryBackend, sparseMapBytes } from '../src/devices/blk/memory-backend.js';
import { blkDeviceOptions, blkWorkerSpec, sharedMemoryBackend, type BlkWorkerArgs } from '../src/devices/blk/blk-worker.js';
import { ErrorCode, VirtioError } from '../src/errors.js';
import { silentLogger } from '../src/log.js';
import { loadNativePlatform, nativePlatformAvailable } from '../src/platform/native-platform.js';
import { DeviceId } from '../src/spec/device-id.js';
import { F } from '../src/spec/features.js';
import { Status } from '../src/spec/status.js';
import { PF } from '../src/vhost-user/messages.js';
import { serveVhostUser, type VhostUserServer } from '../src/vhost-user/server.js';
import { VhostUserDriverTransport, startVhostUserDriver } from '../src/vhost-user/frontend-transport.js';
import { WORKER_PROTOCOL_FEATURES, WorkerPool } from '../src/vhost-user/worker-pool.js';
import { expectCliFault } from '../src/cli/cli-test-helpers.js';
import { CliFault } from '../src/cli/options.js';
import { parseCommandLine } from '../src/cli/args.js';
import type { BlkOptions } from '../src/devices/blk/cli.js';
import { makeTempDir, type TempDir } from './support/guest.js';

const ALL = (1n << 64n) - 1n;
const DISK = 16 << 20;
const skip = nativePlatformAvailable() ? false : 'native addon not built';

describe('virtio-blk with its queues on worker threads', { skip, timeout: 120_000 }, () => {
  let dir: TempDir;
  let pool: WorkerPool;
  let server: VhostUserServer;
  let sock: string;
  let disk: SharedArrayBuffer;
  const transports: VhostUserDriverTransport[] = [];

  before(async () => {
    dir = await makeTempDir('vts-threads-');
    sock = dir.file('blk.sock');
    disk = new SharedArrayBuffer(DISK);
    const written = new SharedArrayBuffer(sparseMapBytes(DISK));
    const args: BlkWorkerArgs = { image: null, disk, written, readOnly: false, numQueues: 2, queueSize: 256, serial: 'threads' };
    const platform = loadNativePlatform();
    pool = await WorkerPool.start({ threads: 2, numQueues: 2, device: blkWorkerSpec(args), platform, logger: silentLogger });
    const backend = sharedMemoryBackend(disk, written);
    server = await serveVhostUser({
      device: () => new BlkDevice(backend, blkDeviceOptions(args, silentLogger)),
      platform,
      socketPath: sock,
      backend: pool.backendOptions(),
    });
  });
  after(async () => {
    for (const t of transports) t.close();
    await server?.close();
    await pool?.close();
    await dir?.remove();
  });

  async function connect(protocolFeatures?: bigint): Promise<VhostUserDriverTransport> {
    for (const old of transports) old.close();
    const t = await VhostUserDriverTransport.connect(sock, { deviceId: DeviceId.BLOCK, timeoutMs: 10_000, numQueues: 2, ...(protocolFeatures !== undefined ? { protocolFeatures } : {}) });
    transports.push(t);
    return t;
  }

  for (const packed of [false, true]) {
    it(`both queues carry requests, each on its own thread (${packed ? 'packed' : 'split'} rings)`, { timeout: 60_000 }, async () => {
      const before = [0, 1].map((q) => pool.stats.value(q, 'completed'));
      const t = await connect();
      // Sessions with workers offer no inflight area and no dirty log (docs/worker-threads.md).
      assert.equal(t.protocolFeatures & (PF.INFLIGHT_SHMFD | PF.LOG_SHMFD), 0n);
      assert.equal(t.protocolFeatures & ~WORKER_PROTOCOL_FEATURES, 0n);
      const d = await startVhostUserDriver(t, { wantedFeatures: packed ? ALL : ALL & ~F.RING_PACKED, queueSizes: [128, 128] });
      assert.equal((d.features & F.RING_PACKED) !== 0n, packed);
      const b = new BlkDriver(d.context);
      assert.equal(b.capacity, DISK / 512);
      assert.equal(await b.getId(), 'threads');
      // The driver spreads requests over the queues in turn: odd ones on queue 1, even on 0.
      const blocks = Array.from({ length: 64 }, () => randomBytes(4096));
      await Promise.all(blocks.map((data, i) => b.write(i * 8, data)));
      await b.flush();
      for (let i = 0; i < blocks.length; i++) assert.deepEqual(Buffer.from(await b.read(i * 8, 4096)), blocks[i], `block ${i}`);
      // The disk is one SharedArrayBuffer: the main thread sees what both workers wrote.
      assert.deepEqual(Buffer.from(new Uint8Array(disk, 5 * 8 * 512, 4096)), blocks[5]);
      for (const q of [0, 1]) {
        const done = pool.stats.value(q, 'completed') - before[q]!;
        assert.ok(done >= 64, `queue ${q} completed ${done} requests on its thread`);
        assert.ok(pool.stats.value(q, 'kicks') > 0, `queue ${q} was kicked`);
      }
      t.close();
    });
  }

  it('GET_VRING_BASE answers with the worker ring position; the session resumes from it', { timeout: 60_000 }, async () => {
    const t = await connect();
    const d = await startVhostUserDriver(t, { wantedFeatures: ALL & ~F.RING_PACKED, queueSizes: [64, 64] });
    const b = new BlkDriver(d.context);
    const first = randomBytes(8192);
    // More requests than the ring size: the indices wrap in the workers before the stop.
    for (let i = 0; i < 80; i++) await b.write(100 + (i % 4) * 16, first);
    await t.disconnect();
    await t.reconnect();
    const again = randomBytes(8192);
    await b.write(4096, again);
    assert.deepEqual(Buffer.from(await b.read(4096, 8192)), again);
    assert.deepEqual(Buffer.from(await b.read(100, 8192)), first);
    t.close();
  });

  it('a refused ring request gets its error reply from the worker; the session goes on', { timeout: 60_000 }, async () => {
    const t = await connect();
    const d = await startVhostUserDriver(t, { wantedFeatures: ALL & ~F.RING_PACKED, queueSizes: [64, 64] });
    const errors = server.backend!.errorCount;
    // SET_VRING_NUM on a started ring (ring 1, on thread 1) is refused (vhost-user.rst): the
    // worker's back-end refuses it, its REPLY_ACK carries the failure, the main thread counts it.
    const fe = (t as unknown as { fe: { setVringNum(index: number, num: number): Promise<number> } }).fe;
    assert.notEqual(await fe.setVringNum(1, 32), 0);
    assert.equal(server.backend!.errorCount, errors + 1);
    const b = new BlkDriver(d.context);
    const data = randomBytes(4096);
    await b.write(0, data);
    assert.deepEqual(Buffer.from(await b.read(0, 4096)), data);
    assert.equal(server.backend!.errorCount, errors + 1);
    t.close();
  });

  it('a driver breaking a ring served by a worker: the worker stops that ring, the main thread reports DEVICE_NEEDS_RESET', { timeout: 60_000 }, async () => {
    const t = await connect();
    const d = await startVhostUserDriver(t, { wantedFeatures: ALL & ~F.RING_PACKED & ~F.EVENT_IDX, queueSizes: [64, 64] });
    const b = new BlkDriver(d.context);
    await b.write(0, randomBytes(4096));
    await b.write(8, randomBytes(4096));
    assert.equal(server.backend!.status & Status.DEVICE_NEEDS_RESET, 0);
    // 2.7.13 / driver/split-ring: avail idx moved on by more than the ring size (the ring's
    // worker refuses it as a driver error).
    const q1 = d.context.queue(1) as unknown as { avail: { view: DataView; offset: number } };
    const at = q1.avail.offset + 2;
    q1.avail.view.setUint16(at, (q1.avail.view.getUint16(at, true) + 200) & 0xffff, true);
    t.notify(1);
    const deadline = Date.now() + 10_000;
    while ((server.backend!.status & Status.DEVICE_NEEDS_RESET) === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    assert.notEqual(server.backend!.status & Status.DEVICE_NEEDS_RESET, 0, 'the main thread core knows the device needs a reset');
    assert.match(server.backend!.core.needsResetReason ?? '', /ring 1/);
    t.close();
    // The next front-end gets a working device again (fresh sessions on every thread).
    const t2 = await connect();
    const d2 = await startVhostUserDriver(t2, { wantedFeatures: ALL & ~F.RING_PACKED, queueSizes: [64, 64] });
    const b2 = new BlkDriver(d2.context);
    const data = randomBytes(8192);
    await b2.write(64, data);
    assert.deepEqual(Buffer.from(await b2.read(64, 8192)), data);
    t2.close();
  });

  it('`virtio-ts blk` refuses more threads than queues', () => {
    expectCliFault('blk', ['--memory', '1M', '--num-queues', '2', '--threads', '3'], CliFault.BAD_NUMBER);
    expectCliFault('blk', ['--memory', '1M', '--threads', '0'], CliFault.BAD_NUMBER);
    const p = parseCommandLine(['blk', '--socket-path', 's', '--memory', '1M', '--num-queues', '4', '--threads', '2']);
    assert.equal(p.kind === 'device' ? (p.options as BlkOptions).threads : -1, 2);
    const d = parseCommandLine(['blk', '--socket-path', 's', '--memory', '1M']);
    assert.equal(d.kind === 'device' ? (d.options as BlkOptions).threads : -1, 0, 'default: the main thread');
  });
});

describe('a sparse RAM disk shared between threads (MemoryBackend `written`)', () => {
  it('two backends over the same data and map see each other: written pages, zeroes elsewhere', () => {
    const size = 64 * 1024;
    const disk = new SharedArrayBuffer(size);
    const written = new SharedArrayBuffer(sparseMapBytes(size));
    const a = sharedMemoryBackend(disk, written);
    const b = sharedMemoryBackend(disk, written);
    const data = randomBytes(6000);
    a.write(5000, data);
    const back = new Uint8Array(6000);
    b.read(5000, back);
    assert.deepEqual(Buffer.from(back), data);
    // Pages never written read as zeroes without a copy (the map says so), whatever the bytes.
    new Uint8Array(disk).fill(0xee, 32 * 1024, 36 * 1024);
    const z = new Uint8Array(4096).fill(1);
    b.read(32 * 1024, z);
    assert.ok(z.every((x) => x === 0));
    assert.throws(() => new MemoryBackend(size, { data: new Uint8Array(disk), written: new Uint8Array(3) }), /sparse map of 3 bytes/);
  });
});

describe('WorkerPool start-up', { skip }, () => {
  it('a device module that does not load fails the start with the thread named (every thread is ended)', async () => {
    const platform = loadNativePlatform();
    const device = { module: new URL('./no-such-module.js', import.meta.url).href, export: 'open', args: null };
    await assert.rejects(WorkerPool.start({ threads: 2, numQueues: 2, device, platform, logger: silentLogger }), (e: unknown) => e instanceof VirtioError && e.code === ErrorCode.PLATFORM && /ring thread \d/.test(e.message));
    const noExport = { ...blkWorkerSpec({ image: null, disk: new SharedArrayBuffer(4096), written: null, readOnly: false, numQueues: 1, queueSize: 64, serial: null }), export: 'nothing' };
    await assert.rejects(WorkerPool.start({ threads: 1, numQueues: 1, device: noExport, platform, logger: silentLogger }), /has no function nothing/);
  });

  it('more threads than queues, or none, are refused', async () => {
    const platform = loadNativePlatform();
    const device = blkWorkerSpec({ image: null, disk: new SharedArrayBuffer(4096), written: null, readOnly: false, numQueues: 1, queueSize: 64, serial: null });
    await assert.rejects(WorkerPool.start({ threads: 2, numQueues: 1, device, platform, logger: silentLogger }), /threads 2 not in 1\.\.1/);
    await assert.rejects(WorkerPool.start({ threads: 0, numQueues: 1, device, platform, logger: silentLogger }), /threads 0 not in 1\.\.1/);
  });
});

describe('virtio-blk on an image file with its queues on worker threads', { skip, timeout: 120_000 }, () => {
  it('each thread opens the image itself: writes through both queues reach the file, FLUSH included', async () => {
    const dir = await makeTempDir('vts-threads-img-');
    const img = dir.file('disk.img');
    await writeFile(img, Buffer.alloc(4 << 20));
    const platform = loadNativePlatform();
    const args: BlkWorkerArgs = { image: img, disk: null, written: null, readOnly: false, numQueues: 2, queueSize: 128, serial: null };
    const pool = await WorkerPool.start({ threads: 2, numQueues: 2, device: blkWorkerSpec(args), platform, logger: silentLogger });
    const main = new MemoryBackend(4 << 20); // the main thread's device: features and config only
    const sock = dir.file('img.sock');
    const server = await serveVhostUser({ device: () => new BlkDevice(main, blkDeviceOptions(args, silentLogger)), platform, socketPath: sock, backend: pool.backendOptions() });
    let t: VhostUserDriverTransport | null = null;
    try {
      t = await VhostUserDriverTransport.connect(sock, { deviceId: DeviceId.BLOCK, timeoutMs: 10_000, numQueues: 2 });
      const d = await startVhostUserDriver(t, { wantedFeatures: ALL & ~F.RING_PACKED, queueSizes: [64, 64] });
      const b = new BlkDriver(d.context);
      const blocks = Array.from({ length: 16 }, () => randomBytes(4096));
      await Promise.all(blocks.map((data, i) => b.write(i * 8, data)));
      await b.flush();
      const file = await readFile(img);
      for (let i = 0; i < blocks.length; i++) assert.deepEqual(file.subarray(i * 4096, (i + 1) * 4096), blocks[i], `block ${i} in the file`);
      for (const q of [0, 1]) assert.ok(pool.stats.value(q, 'completed') >= 8, `queue ${q} served on its thread`);
    } finally {
      t?.close();
      await server.close();
      await pool.close();
      await dir.remove();
    }
  });
});
