/**
 * virtio-ts's P9Driver against QEMU's own virtio-9p-pci (fsdev local, security_model=none, on a
 * temporary directory) through x-remote (no guest): version, attach, walk, create, write, read,
 * xattrs, readdir, mkdir, rename, symlink, readlink, link, setattr, getattr, statfs, fsync, locks,
 * unlink, compared with the host directory. Split and packed rings.
 *
 * Needs qemu-system-x86_64 with the x-remote machine and the native addon; under CI=true a
 * missing dependency fails the suite instead of skipping it.
 */
import assert from 'node:assert/strict';
import { lstatSync, readFileSync, readdirSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { P9Driver, P9RemoteError } from '../src/devices/9p/p9-driver.js';
import { VirtioDriver } from '../src/driver/index.js';
import { P9_AT_REMOVEDIR, P9Errno, P9LockStatus, P9LockType, P9QidType, P9SetattrValid } from '../src/spec/9p.js';
import { F } from '../src/spec/features.js';
import { startXRemoteDevice, xRemoteUnavailableReason } from '../src/transport/x-remote/index.js';

const missing = xRemoteUnavailableReason();
if (missing && process.env.CI === 'true') throw new Error(`x-remote tests need QEMU's x-remote machine under CI: ${missing}`);
const skip = missing ?? false;
const ALL = (1n << 64n) - 1n;
const TAG = 'xr9p';
const O_RDONLY = 0;
const O_RDWR = 2;

async function runCase(packed: boolean): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'vts-xremote-9p-'));
  writeFileSync(join(dir, 'from-host.txt'), 'written on the host\n');
  const dev = await startXRemoteDevice({
    device: 'virtio-9p-pci',
    deviceProps: `fsdev=f0,mount_tag=${TAG}${packed ? ',packed=on' : ''}`,
    qemuArgs: ['-fsdev', `local,id=f0,path=${dir},security_model=none`],
  });
  try {
    const wanted = packed ? ALL : ALL & ~F.RING_PACKED;
    const driver = await VirtioDriver.init(dev.transport, { wantedFeatures: wanted, dma: dev.dma, queueSizes: [64] });
    assert.equal((driver.context.features & F.RING_PACKED) !== 0n, packed);
    const p9 = new P9Driver(driver.context, { msize: 64 << 10 });
    assert.equal(p9.mountTag, TAG, 'the tag from QEMU\'s configuration');
    assert.deepEqual(await p9.version(), { msize: 64 << 10, version: '9P2000.L' });
    const root = p9.newFid();
    assert.equal((await p9.attach(root, 'root', '')).type, P9QidType.DIR);

    // A host file read through QEMU.
    const h = p9.newFid();
    assert.equal((await p9.walk(root, h, ['from-host.txt'])).length, 1);
    assert.equal((await p9.getattr(h)).size, 20);
    await p9.lopen(h, O_RDONLY);
    assert.equal((await p9.read(h, 0, 100)).toString(), 'written on the host\n');
    await p9.clunk(h);

    // Create, write (several messages), read back.
    const c = p9.newFid();
    await p9.walk(root, c, []);
    await p9.lcreate(c, 'from-driver.bin', O_RDWR, 0o644);
    const data = Buffer.alloc(150_000);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7 + (i >> 11)) & 0xff;
    for (let off = 0; off < data.length; ) off += await p9.write(c, off, data.subarray(off));
    const back: Buffer[] = [];
    for (let off = 0; off < data.length; ) {
      const part = await p9.read(c, off, data.length - off);
      assert.ok(part.length > 0);
      back.push(part);
      off += part.length;
    }
    assert.deepEqual(Buffer.concat(back), data);
    await p9.fsync(c);
    assert.equal(await p9.lock(c, { type: P9LockType.WRLCK, start: 0, length: 10, procId: 1, clientId: 'a' }), P9LockStatus.SUCCESS);
    const held = await p9.getlock(c, { type: P9LockType.WRLCK, start: 0, length: 10, procId: 2, clientId: 'b' });
    assert.ok(held.type === P9LockType.UNLCK || held.type === P9LockType.WRLCK, `getlock type ${held.type}`);
    await p9.clunk(c);
    assert.deepEqual(readFileSync(join(dir, 'from-driver.bin')), data);
    // An xattr set through QEMU (security_model=none passes user.* through), read back.
    const xc = p9.newFid();
    await p9.walk(root, xc, ['from-driver.bin']);
    await p9.xattrcreate(xc, 'user.vts', 3);
    assert.equal(await p9.write(xc, 0, Buffer.from('abc')), 3);
    await p9.clunk(xc);
    const xr = p9.newFid();
    await p9.walk(root, xr, ['from-driver.bin']);
    const xl = p9.newFid();
    const listLen = await p9.xattrwalk(xr, xl, '');
    assert.ok((await p9.read(xl, 0, listLen)).toString('latin1').split('\0').includes('user.vts'), 'listed');
    await p9.clunk(xl);
    const xv = p9.newFid();
    assert.equal(await p9.xattrwalk(xr, xv, 'user.vts'), 3);
    assert.equal((await p9.read(xv, 0, 3)).toString(), 'abc');
    await p9.clunk(xv);
    await p9.clunk(xr);

    // Directories, rename, links, attributes.
    await p9.mkdir(root, 'd', 0o755);
    await p9.renameat(root, 'from-driver.bin', root, 'moved.bin');
    await p9.symlink(root, 'sym', 'moved.bin');
    const s = p9.newFid();
    await p9.walk(root, s, ['sym']);
    assert.equal(await p9.readlink(s), 'moved.bin');
    await p9.clunk(s);
    const m = p9.newFid();
    await p9.walk(root, m, ['moved.bin']);
    await p9.link(root, m, 'hard.bin');
    await p9.setattr(m, { valid: P9SetattrValid.MODE | P9SetattrValid.SIZE, mode: 0o600, size: 1000 });
    const attr = await p9.getattr(m);
    assert.equal(attr.size, 1000);
    assert.equal(attr.mode & 0o777, 0o600);
    assert.equal(attr.nlink, 2);
    await p9.clunk(m);
    const st = await p9.statfs(root);
    assert.ok(st.bsize > 0 && st.blocks > 0, 'statfs answers');

    // readdir of the root, compared with the host.
    const d = p9.newFid();
    await p9.walk(root, d, []);
    await p9.lopen(d, O_RDONLY);
    const names = (await p9.readdirAll(d)).map((e) => e.name).filter((n) => n !== '.' && n !== '..').sort();
    await p9.clunk(d);
    assert.deepEqual(names, readdirSync(dir).sort());
    assert.deepEqual(names, ['d', 'from-host.txt', 'hard.bin', 'moved.bin', 'sym']);
    assert.equal(readlinkSync(join(dir, 'sym')), 'moved.bin');
    assert.equal(statSync(join(dir, 'hard.bin')).ino, statSync(join(dir, 'moved.bin')).ino);
    assert.equal(lstatSync(join(dir, 'moved.bin')).size, 1000);

    // Errors come back as Rlerror with the errno.
    await assert.rejects(p9.walk(root, p9.newFid(), ['nope']), (e: unknown) => e instanceof P9RemoteError && e.errno === P9Errno.ENOENT);
    await p9.unlinkat(root, 'd', P9_AT_REMOVEDIR);
    await p9.unlinkat(root, 'hard.bin');
    assert.deepEqual(readdirSync(dir).sort(), ['from-host.txt', 'moved.bin', 'sym']);
    await p9.clunk(root);
    p9.detach();
    driver.reset();
  } finally {
    await dev.close();
    await rm(dir, { recursive: true, force: true });
  }
}

describe('x-remote: QEMU virtio-9p-pci driven by the virtio-ts P9Driver', { skip, timeout: 180_000 }, () => {
  it('split rings: attach, walk, create, write, read, readdir, mkdir, rename, links, setattr, locks against QEMU, compared with the host', async () => {
    await runCase(false);
  });
  it('packed rings: the same session', async () => {
    await runCase(true);
  });
});
