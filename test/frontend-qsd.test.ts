/**
 * The vhost-user front-end library with BlkDriver against QEMU's qemu-storage-daemon (a C
 * vhost-user-blk back-end on libvhost-user) exporting a raw image file: what the driver reads is
 * what the host file holds, what it writes lands in the file, flush succeeds, and discard punches
 * the range out (qsd's file node runs with discard=unmap, so the range reads back as zeros).
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { open, writeFile } from 'node:fs/promises';
import { BlkDriver } from '../src/devices/blk/blk-driver.js';
import { nativePlatformAvailable } from '../src/platform/native-platform.js';
import { BlkF } from '../src/spec/blk.js';
import { DeviceId } from '../src/spec/device-id.js';
import { F } from '../src/spec/features.js';
import { spawnBackend, type BackendProcess } from '../src/vhost-user/frontend-process.js';
import { VhostUserDriverTransport, startVhostUserDriver } from '../src/vhost-user/frontend-transport.js';
import { makeTempDir, type TempDir } from './support/guest.js';
import { ensureGuestDeps } from './support/guest-deps.js';
import { GuestError, GuestFailure } from './support/guest-errors.js';
import { inCI } from './support/guest-host.js';

function hasQsd(): boolean {
  try {
    execFileSync('qemu-storage-daemon', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

// ensureGuestDeps installs QEMU (qemu-storage-daemon is in qemu-system-common) and, under CI,
// throws when it cannot: this test fails there, never skips.
const deps = ensureGuestDeps();
if (inCI && !hasQsd()) throw new GuestError(GuestFailure.MISSING_DEPS, 'qemu-storage-daemon is not installed');
const skip = !nativePlatformAvailable() ? 'native addon not built' : !deps.ok ? deps.reason : hasQsd() ? false : 'qemu-storage-daemon is not installed';
const ALL = (1n << 64n) - 1n;
const IMAGE_BYTES = 8 << 20;

async function readFileRange(path: string, offset: number, len: number): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const b = Buffer.alloc(len);
    await fh.read(b, 0, len, offset);
    return b;
  } finally {
    await fh.close();
  }
}

describe('vhost-user front-end against qemu-storage-daemon (raw image file)', { skip, timeout: 120_000 }, () => {
  let dir: TempDir;
  let image: string;
  let initial: Buffer;
  const procs: BackendProcess[] = [];
  const transports: VhostUserDriverTransport[] = [];

  before(async () => {
    dir = await makeTempDir('vts-feq-');
    image = dir.file('disk.raw');
    initial = randomBytes(IMAGE_BYTES);
    await writeFile(image, initial);
  });
  after(async () => {
    for (const t of transports) t.close();
    for (const p of procs) await p.stop();
    await dir.remove();
  });

  async function start(name: string): Promise<{ t: VhostUserDriverTransport; b: BlkDriver; features: bigint; p: BackendProcess }> {
    const sock = dir.file(`${name}.sock`);
    const args = [
      '--blockdev',
      `driver=file,node-name=file0,filename=${image},discard=unmap`,
      '--blockdev',
      'driver=raw,node-name=disk0,file=file0,discard=unmap',
      '--export',
      `type=vhost-user-blk,id=e0,node-name=disk0,addr.type=unix,addr.path=${sock},writable=on,num-queues=1`,
    ];
    const p = await spawnBackend('qemu-storage-daemon', args, sock);
    procs.push(p);
    const t = await VhostUserDriverTransport.connect(sock, { deviceId: DeviceId.BLOCK, timeoutMs: 10_000 });
    transports.push(t);
    const d = await startVhostUserDriver(t, { wantedFeatures: ALL, queueSizes: [128] });
    return { t, b: new BlkDriver(d.context), features: d.features, p };
  }

  it('reads the image, writes into it, flushes, discards; every check against the host file', { timeout: 60_000 }, async () => {
    const { t, b, features, p } = await start('a');
    assert.equal(b.capacity, IMAGE_BYTES / 512);
    assert.equal(features & F.RING_PACKED, 0n, 'QEMU 7.2 libvhost-user has split rings only');
    // Reads: what the file held before the back-end started.
    for (const [sector, len] of [
      [0, 4096],
      [7, 512],
      [1000, 65536],
      [IMAGE_BYTES / 512 - 8, 4096],
    ] as const) {
      assert.deepEqual(Buffer.from(await b.read(sector, len)), initial.subarray(sector * 512, sector * 512 + len), `read at ${sector}`);
    }
    // Writes, many in flight, then a flush: the file holds them.
    const writes: { sector: number; data: Buffer }[] = [];
    for (let i = 0; i < 64; i++) writes.push({ sector: 2048 + i * 16, data: randomBytes(8192) });
    await Promise.all(writes.map((w) => b.write(w.sector, w.data)));
    assert.ok(features & BlkF.FLUSH, 'qsd offers FLUSH');
    await b.flush();
    for (const w of writes) assert.deepEqual(await readFileRange(image, w.sector * 512, w.data.length), w.data);
    // And reads of them come back through the ring.
    for (const w of writes.slice(0, 8)) assert.deepEqual(Buffer.from(await b.read(w.sector, w.data.length)), w.data);
    // Discard: the range reads back as zeros, in the driver and in the file.
    assert.ok(features & BlkF.DISCARD, 'qsd offers DISCARD');
    const dSector = 8192;
    const dLen = 1 << 20;
    assert.notDeepEqual(await readFileRange(image, dSector * 512, 4096), Buffer.alloc(4096));
    await b.discard(dSector, dLen / 512);
    await b.flush();
    assert.deepEqual(Buffer.from(await b.read(dSector, dLen)), Buffer.alloc(dLen));
    assert.deepEqual(await readFileRange(image, dSector * 512, dLen), Buffer.alloc(dLen));
    // Outside the discarded range nothing moved.
    assert.deepEqual(await readFileRange(image, (dSector - 8) * 512, 4096), initial.subarray((dSector - 8) * 512, dSector * 512));
    t.close();
    await p.stop(); // the image lock is released before the next test starts its own daemon
  });

  it('a request past the end fails with IOERR and the queue keeps working', { timeout: 60_000 }, async () => {
    const { t, b, p } = await start('b');
    await assert.rejects(b.read(IMAGE_BYTES / 512, 512));
    assert.equal((await b.read(0, 512)).length, 512);
    t.close();
    await p.stop(); // the image lock is released before the next test starts its own daemon
  });
});
