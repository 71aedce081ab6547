/**
 * The vhost-user front-end library (VhostUserDriverTransport) drives virtio-ts's own back-ends,
 * spawned as processes (`virtio-ts blk --memory`, `virtio-ts rng`), with the library's drivers
 * unchanged: BlkDriver and EntropyDriver round-trip over split and packed rings, with and
 * without REPLY_ACK / memory slots / inflight, and the session survives a reconnect.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { BlkDriver } from '../src/devices/blk/blk-driver.js';
import { EntropyDriver } from '../src/devices/entropy/entropy-driver.js';
import { loadNativePlatform, nativePlatformAvailable } from '../src/platform/native-platform.js';
import { DeviceId } from '../src/spec/device-id.js';
import { F } from '../src/spec/features.js';
import { PF } from '../src/vhost-user/messages.js';
import { spawnBackend, type BackendProcess } from '../src/vhost-user/frontend-process.js';
import { VhostUserDriverTransport, startVhostUserDriver, type VhostUserTransportOptions } from '../src/vhost-user/frontend-transport.js';
import { makeTempDir, repoRoot, type TempDir } from './support/guest.js';

const CLI = join(repoRoot, 'dist', 'src', 'cli', 'main.js');
const skip = nativePlatformAvailable() ? false : 'native addon not built';
const ALL = (1n << 64n) - 1n;

describe('vhost-user front-end against virtio-ts back-ends', { skip, timeout: 120_000 }, () => {
  let dir: TempDir;
  let blk: BackendProcess;
  let rng: BackendProcess;
  let blkSock: string;
  let rngSock: string;
  const transports: VhostUserDriverTransport[] = [];

  before(async () => {
    dir = await makeTempDir('vts-fe-');
    blkSock = dir.file('blk.sock');
    rngSock = dir.file('rng.sock');
    [blk, rng] = await Promise.all([
      spawnBackend(process.execPath, [CLI, 'blk', '--socket-path', blkSock, '--memory', '64M'], blkSock),
      spawnBackend(process.execPath, [CLI, 'rng', '--socket-path', rngSock], rngSock),
    ]);
  });
  after(async () => {
    for (const t of transports) t.close();
    await Promise.all([blk?.stop(), rng?.stop()]);
    await dir.remove();
  });

  async function connect(path: string, opts: VhostUserTransportOptions): Promise<VhostUserDriverTransport> {
    // The back-ends serve one front-end at a time: a test that failed before closing its
    // transport must not hold the next one up (close() is idempotent).
    for (const old of transports) old.close();
    const t = await VhostUserDriverTransport.connect(path, { timeoutMs: 10_000, ...opts });
    transports.push(t);
    return t;
  }

  const variants: { name: string; packed: boolean; opts: Partial<VhostUserTransportOptions> }[] = [
    { name: 'split, all protocol features', packed: false, opts: {} },
    { name: 'packed, all protocol features', packed: true, opts: {} },
    { name: 'split, SET_MEM_TABLE, no REPLY_ACK, no inflight', packed: false, opts: { useMemSlots: false, useInflight: false, protocolFeatures: PF.CONFIG | PF.MQ } },
    { name: 'packed, no protocol features beyond CONFIG', packed: true, opts: { protocolFeatures: PF.CONFIG } },
  ];

  for (const v of variants) {
    it(`blk round-trips: ${v.name}`, { timeout: 30_000 }, async () => {
      const t = await connect(blkSock, { deviceId: DeviceId.BLOCK, ...v.opts });
      const want = v.packed ? ALL : ALL & ~F.RING_PACKED;
      const d = await startVhostUserDriver(t, { wantedFeatures: want, queueSizes: [128] });
      assert.equal((d.features & F.RING_PACKED) !== 0n, v.packed);
      const b = new BlkDriver(d.context);
      assert.equal(b.capacity, (64 << 20) / 512);
      const data = randomBytes(64 << 10);
      await b.write(2048, data);
      await b.flush();
      assert.deepEqual(Buffer.from(await b.read(2048, data.length)), data);
      // Many requests at once: the ring wraps more than once.
      const jobs: Promise<void>[] = [];
      for (let i = 0; i < 300; i++) {
        const block = Buffer.alloc(4096, i & 0xff);
        jobs.push(b.write(8192 + i * 8, block).then(async () => assert.equal((await b.read(8192 + i * 8, 4096))[100], i & 0xff)));
      }
      await Promise.all(jobs);
      d.reset();
      await t.settle();
      t.close();
    });
  }

  it('negotiates the protocol features both sides have', { timeout: 30_000 }, async () => {
    const t = await connect(blkSock, { deviceId: DeviceId.BLOCK });
    for (const m of [PF.REPLY_ACK, PF.CONFIG, PF.MQ, PF.STATUS, PF.CONFIGURE_MEM_SLOTS, PF.INFLIGHT_SHMFD, PF.BACKEND_REQ]) {
      assert.notEqual(t.protocolFeatures & m, 0n, `protocol feature 0x${m.toString(16)}`);
    }
    const d = await startVhostUserDriver(t, { wantedFeatures: ALL });
    assert.ok(t.inflight !== null, 'inflight area set up');
    const b = new BlkDriver(d.context);
    await b.write(0, Buffer.alloc(512, 7));
    assert.equal((await b.read(0, 512))[511], 7);
    t.close();
  });

  for (const packed of [false, true]) {
    it(`rng round-trips (${packed ? 'packed' : 'split'})`, { timeout: 30_000 }, async () => {
      const t = await connect(rngSock, { deviceId: DeviceId.ENTROPY });
      const d = await startVhostUserDriver(t, { wantedFeatures: packed ? ALL : ALL & ~F.RING_PACKED });
      assert.equal((d.features & F.RING_PACKED) !== 0n, packed);
      const e = new EntropyDriver(d.context);
      const a = await e.read(4096);
      const b2 = await e.read(4096);
      assert.equal(a.length, 4096);
      assert.notDeepEqual(a, b2);
      assert.ok(new Set(a).size > 200, 'looks random');
      t.close();
    });
  }

  it('pollMode: no call eventfd (SET_VRING_CALL with the no-fd flag); completions found by poll()', { timeout: 30_000 }, async () => {
    const t = await connect(blkSock, { deviceId: DeviceId.BLOCK, pollMode: true });
    const d = await startVhostUserDriver(t, { wantedFeatures: ALL & ~F.RING_PACKED });
    const b = new BlkDriver(d.context);
    let done = false;
    const io = (async () => {
      await b.write(64, Buffer.alloc(4096, 0x5a));
      const r = await b.read(64, 4096);
      done = true;
      return r;
    })();
    // Bounded: each turn yields to the event loop so the back-end's reply can arrive.
    for (let i = 0; i < 200_000 && !done; i++) {
      t.poll();
      await new Promise((r) => setImmediate(r));
    }
    assert.ok(done, 'completed through polling');
    assert.equal((await io)[4095], 0x5a);
    t.close();
  });

  it('leaves no fd open: connect, I/O, disconnect, reconnect, close', { timeout: 30_000 }, async () => {
    for (const old of transports) old.close();
    const platform = loadNativePlatform();
    const before = platform.openFdCount();
    const t = await VhostUserDriverTransport.connect(blkSock, { deviceId: DeviceId.BLOCK, timeoutMs: 10_000 });
    const d = await startVhostUserDriver(t, { wantedFeatures: ALL });
    const b = new BlkDriver(d.context);
    await b.write(1, Buffer.alloc(512, 3));
    await t.disconnect();
    await t.reconnect();
    assert.equal((await b.read(1, 512))[0], 3);
    t.close();
    t.close();
    assert.equal(platform.openFdCount(), before);
  });

  for (const packed of [false, true]) {
    it(`blk survives disconnect and reconnect, rings resumed from GET_VRING_BASE (${packed ? 'packed' : 'split'})`, { timeout: 30_000 }, async () => {
      const t = await connect(blkSock, { deviceId: DeviceId.BLOCK });
      const d = await startVhostUserDriver(t, { wantedFeatures: packed ? ALL : ALL & ~F.RING_PACKED, queueSizes: [16] });
      const b = new BlkDriver(d.context);
      for (let i = 0; i < 20; i++) await b.write(100 + i, Buffer.alloc(512, i + 1));
      await t.disconnect();
      await t.reconnect();
      // The ring continues where it stopped (20 requests into a 16-entry ring: wrapped).
      for (let i = 0; i < 20; i++) assert.equal((await b.read(100 + i, 512))[0], i + 1);
      await b.write(5000, Buffer.alloc(512, 0xaa));
      assert.equal((await b.read(5000, 512))[1], 0xaa);
      t.close();
    });
  }
});
