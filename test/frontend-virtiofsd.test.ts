/**
 * The vhost-user front-end library with a minimal virtio-fs driver (FsClient) against QEMU 7.2's
 * C virtiofsd sharing a scratch folder: FUSE INIT, LOOKUP, GETATTR, OPEN, READ, CREATE, WRITE,
 * READDIR and FORGET over the hiprio and request queues, every answer checked against the host
 * files, and what the driver wrote is on the host.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { nativePlatformAvailable } from '../src/platform/native-platform.js';
import { DeviceId } from '../src/spec/device-id.js';
import { FUSE_ROOT_ID } from '../src/spec/fs.js';
import { spawnBackend, type BackendProcess } from '../src/vhost-user/frontend-process.js';
import { VhostUserDriverTransport, startVhostUserDriver } from '../src/vhost-user/frontend-transport.js';
import { FsClient, FuseError } from '../src/vhost-user/peers/fs-client.js';
import { makeTempDir, type TempDir } from './support/guest.js';

const VIRTIOFSD = '/usr/lib/qemu/virtiofsd';
const skip = !nativePlatformAvailable() ? 'native addon not built' : existsSync(VIRTIOFSD) ? false : `${VIRTIOFSD} is not installed`;
const ROOT = BigInt(FUSE_ROOT_ID);
const O_RDONLY = 0;
const O_RDWR = 2;

describe('vhost-user front-end against virtiofsd', { skip, timeout: 120_000 }, () => {
  let dir: TempDir;
  let share: string;
  let p: BackendProcess | undefined;
  let t: VhostUserDriverTransport | undefined;
  let fs: FsClient;
  const big = randomBytes(300_000);

  before(async () => {
    dir = await makeTempDir('vts-fs-');
    share = dir.file('share');
    mkdirSync(`${share}/sub`, { recursive: true });
    writeFileSync(`${share}/hello.txt`, 'hello, virtio-fs\n');
    writeFileSync(`${share}/big.bin`, big);
    writeFileSync(`${share}/sub/inner.txt`, 'inner');
    const sock = dir.file('fs.sock');
    p = await spawnBackend(VIRTIOFSD, [`--socket-path=${sock}`, '-o', `source=${share}`, '-o', 'cache=auto'], sock);
    t = await VhostUserDriverTransport.connect(sock, { deviceId: DeviceId.FS, timeoutMs: 10_000, memorySize: 8 << 20 });
    const d = await startVhostUserDriver(t, { wantedFeatures: (1n << 64n) - 1n, queueSizes: [64] });
    fs = new FsClient(d.context);
  });
  after(async () => {
    t?.close();
    await p?.stop();
    await dir.remove();
  });

  it('FUSE_INIT is answered with protocol 7.x', { timeout: 20_000 }, async () => {
    await fs.init();
    assert.ok(fs.minor >= 31, `minor ${fs.minor}`);
    assert.ok(fs.maxWrite >= 4096);
  });

  it('LOOKUP and GETATTR match the host files; a missing name is ENOENT', { timeout: 20_000 }, async () => {
    const e = await fs.lookup(ROOT, 'hello.txt');
    const st = statSync(`${share}/hello.txt`);
    assert.equal(e.attr.size, st.size);
    assert.equal(e.attr.ino, BigInt(st.ino));
    assert.equal(e.attr.mode, st.mode);
    assert.equal((await fs.getattr(e.nodeid)).size, st.size);
    const sub = await fs.lookup(ROOT, 'sub');
    assert.equal(sub.attr.mode & 0o170000, 0o040000, 'a directory');
    await assert.rejects(fs.lookup(ROOT, 'nope'), (err: unknown) => err instanceof FuseError && err.errno === 2);
  });

  it('OPEN and READ return the host bytes (small file, and a large one in chunks)', { timeout: 30_000 }, async () => {
    const e = await fs.lookup(ROOT, 'hello.txt');
    const fh = await fs.open(e.nodeid, O_RDONLY);
    assert.equal(Buffer.from(await fs.read(e.nodeid, fh, 0, 4096)).toString(), 'hello, virtio-fs\n');
    assert.equal(Buffer.from(await fs.read(e.nodeid, fh, 7, 9)).toString(), 'virtio-fs');
    await fs.release(e.nodeid, fh);
    const b = await fs.lookup(ROOT, 'big.bin');
    const bfh = await fs.open(b.nodeid, O_RDONLY);
    const chunk = 64 << 10;
    const parts = await Promise.all(Array.from({ length: Math.ceil(big.length / chunk) }, (_, i) => fs.read(b.nodeid, bfh, i * chunk, chunk)));
    assert.deepEqual(Buffer.concat(parts), big);
    await fs.release(b.nodeid, bfh);
  });

  it('CREATE and WRITE land in the host file; WRITE into an existing file too', { timeout: 30_000 }, async () => {
    const data = randomBytes(100_000);
    const { entry, fh } = await fs.create(ROOT, 'new.bin', 0o100644, O_RDWR);
    let off = 0;
    while (off < data.length) {
      const n = await fs.write(entry.nodeid, fh, off, data.subarray(off, off + 32768));
      assert.ok(n > 0);
      off += n;
    }
    assert.deepEqual(Buffer.from(await fs.read(entry.nodeid, fh, 0, data.length)), data);
    await fs.release(entry.nodeid, fh);
    assert.deepEqual(readFileSync(`${share}/new.bin`), data);
    const sub = await fs.lookup(ROOT, 'sub');
    const inner = await fs.lookup(sub.nodeid, 'inner.txt');
    const ifh = await fs.open(inner.nodeid, O_RDWR);
    assert.equal(await fs.write(inner.nodeid, ifh, 0, Buffer.from('INNER')), 5);
    await fs.release(inner.nodeid, ifh);
    assert.equal(readFileSync(`${share}/sub/inner.txt`, 'utf8'), 'INNER');
  });

  it('READDIR lists what the host folder holds; FORGET on hiprio is consumed', { timeout: 20_000 }, async () => {
    const names = (await fs.readdir(ROOT)).map((e) => e.name).filter((n) => n !== '.' && n !== '..');
    assert.deepEqual(names.sort(), readdirSync(share).sort());
    const sub = await fs.lookup(ROOT, 'sub');
    const inner = (await fs.readdir(sub.nodeid)).find((e) => e.name === 'inner.txt');
    assert.ok(inner);
    assert.equal(inner.ino, BigInt(statSync(`${share}/sub/inner.txt`).ino));
    await fs.forget(sub.nodeid, 1);
    // The session still answers after the hiprio request.
    assert.equal((await fs.lookup(ROOT, 'hello.txt')).attr.size, 17);
  });
});
