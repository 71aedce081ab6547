/**
 * P9Device through rings with the P9Driver: the configuration (tag_len in the driver's byte
 * order, the tag), every operation of the client over split and packed rings checked on the
 * host, chains the device cannot answer, and device reset.
 */
import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { F } from '../../spec/features.js';
import { P9_AT_REMOVEDIR, P9_F_MOUNT_TAG, P9Errno, P9LockStatus, P9LockType, P9QidType, P9SetattrValid } from '../../spec/9p.js';
import { createTestPair } from '../blk/test-pair.js';
import { P9Device, type P9DeviceOptions } from './p9-device.js';
import { P9Driver, P9RemoteError } from './p9-driver.js';

const T = { timeout: 20_000 };
const dirs: string[] = [];
const devices: P9Device[] = [];
after(() => {
  for (const d of devices) d.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function setup(opts: Partial<P9DeviceOptions> = {}, packed = false, littleEndian = true) {
  const dir = mkdtempSync(join(tmpdir(), 'vts-9pdev-'));
  dirs.push(dir);
  writeFileSync(join(dir, 'a.txt'), 'alpha');
  const device = new P9Device({ sharedDir: dir, tag: 'share9', queueSize: 64, maxMsize: 16384, ...opts });
  devices.push(device);
  const pair = createTestPair(device, { packed, littleEndian, ...(littleEndian ? {} : { accept: ~F.VERSION_1 }) });
  return { dir, device, pair, p9: new P9Driver(pair.ctx, { msize: 16384 }) };
}

function errno(n: number): (e: unknown) => boolean {
  return (e) => e instanceof P9RemoteError && e.errno === n;
}

describe('P9Device: configuration', () => {
  it('MOUNT_TAG offered; tag_len then the tag, in the driver\'s byte order (legacy big-endian too)', () => {
    for (const le of [true, false]) {
      const { device, pair, p9 } = setup({}, false, le);
      assert.ok((device.offeredFeatures & P9_F_MOUNT_TAG) !== 0n);
      assert.ok((pair.features & P9_F_MOUNT_TAG) !== 0n);
      assert.equal(device.configSize, 2 + 6);
      assert.equal(p9.mountTag, 'share9');
      const raw = pair.ctx.readConfig(0, 2);
      assert.deepEqual([...raw], le ? [6, 0] : [0, 6]);
    }
  });

  it('a tag that is empty or over 32 bytes is refused', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vts-9pdev-'));
    dirs.push(dir);
    assert.throws(() => new P9Device({ sharedDir: dir, tag: '' }), /tag/);
    assert.throws(() => new P9Device({ sharedDir: dir, tag: 'x'.repeat(33) }), /tag/);
  });
});

for (const packed of [false, true]) {
  describe(`P9Device with the P9Driver over ${packed ? 'packed' : 'split'} rings`, () => {
    it('every operation of the client, checked on the host', T, async () => {
      const { dir, device, p9 } = setup({}, packed);
      await p9.version();
      const root = p9.newFid();
      await p9.attach(root);
      // create, write, read, fsync, getattr, setattr
      const f = p9.newFid();
      await p9.walk(root, f, []);
      const created = await p9.lcreate(f, 'n.txt', 2, 0o640);
      assert.equal(created.qid.type, P9QidType.FILE);
      assert.equal(await p9.write(f, 0, Buffer.from('hello 9p')), 8);
      assert.equal((await p9.read(f, 6, 100)).toString(), '9p');
      await p9.fsync(f, true);
      await p9.setattr(f, { valid: P9SetattrValid.SIZE | P9SetattrValid.MODE, size: 5, mode: 0o600 });
      const at = await p9.getattr(f);
      assert.equal(at.size, 5);
      assert.equal(at.mode & 0o777, 0o600);
      await p9.setattr(f, { valid: P9SetattrValid.MTIME | P9SetattrValid.MTIME_SET, mtimeSec: 1_000_000_000, mtimeNsec: 0 });
      assert.equal(statSync(join(dir, 'n.txt')).mtimeMs, 1_000_000_000_000);
      assert.equal(readFileSync(join(dir, 'n.txt'), 'utf8'), 'hello');
      // rename by fid: the fid follows its object
      await p9.rename(f, root, 'm.txt');
      assert.equal((await p9.read(f, 0, 10)).toString(), 'hello');
      await p9.clunk(f);
      // mkdir, renameat, symlink, readlink, link
      await p9.mkdir(root, 'd', 0o755);
      const d = p9.newFid();
      await p9.walk(root, d, ['d']);
      await p9.renameat(root, 'm.txt', d, 'moved.txt');
      assert.equal((await p9.symlink(d, 'ln', 'moved.txt')).type, P9QidType.SYMLINK);
      const l = p9.newFid();
      await p9.walk(d, l, ['ln']);
      assert.equal(await p9.readlink(l), 'moved.txt');
      const mv = p9.newFid();
      await p9.walk(d, mv, ['moved.txt']);
      await p9.link(root, mv, 'hard.txt');
      assert.equal(statSync(join(dir, 'hard.txt')).ino, statSync(join(dir, 'd', 'moved.txt')).ino);
      assert.equal(readlinkSync(join(dir, 'd', 'ln')), 'moved.txt');
      // readdir in pages of a small count, offsets continuing
      const o = p9.newFid();
      await p9.walk(root, o, ['d']);
      await p9.lopen(o, 0);
      const names: string[] = [];
      let off = 0n;
      for (;;) {
        const page = await p9.readdir(o, off, 40);
        if (page.length === 0) break;
        names.push(...page.map((e) => e.name));
        off = page[page.length - 1]!.offset;
      }
      assert.deepEqual(names.sort(), ['.', '..', 'ln', 'moved.txt']);
      await p9.fsync(o);
      await p9.clunk(o);
      // statfs
      const st = await p9.statfs(root);
      assert.ok(st.bsize > 0 && st.namelen === 255);
      // locks between two owners
      assert.equal(await p9.lock(mv, { type: P9LockType.WRLCK, start: 0, length: 0, procId: 1, clientId: 'x' }), P9LockStatus.SUCCESS);
      assert.equal(await p9.lock(mv, { type: P9LockType.RDLCK, start: 5, length: 1, procId: 2, clientId: 'x' }), P9LockStatus.BLOCKED);
      assert.equal((await p9.getlock(mv, { type: P9LockType.RDLCK, start: 0, length: 1, procId: 2, clientId: 'x' })).procId, 1);
      // flush (the request is already answered)
      await p9.flush(3);
      // xattrs: create (value through write, set at clunk), walk + read, list, remove (size 0)
      const xc = p9.newFid();
      await p9.walk(mv, xc, []);
      await p9.xattrcreate(xc, 'user.colour', 4);
      assert.equal(await p9.write(xc, 0, Buffer.from('blue')), 4);
      await p9.clunk(xc);
      const xw = p9.newFid();
      assert.equal(await p9.xattrwalk(mv, xw, 'user.colour'), 4);
      assert.equal((await p9.read(xw, 0, 100)).toString(), 'blue');
      await p9.clunk(xw);
      const xl = p9.newFid();
      const listLen = await p9.xattrwalk(mv, xl, '');
      assert.ok((await p9.read(xl, 0, listLen)).toString('latin1').split('\0').includes('user.colour'));
      await p9.clunk(xl);
      await assert.rejects(p9.xattrwalk(mv, p9.newFid(), 'user.none'), errno(P9Errno.ENODATA));
      await assert.rejects(p9.xattrwalk(l, p9.newFid(), 'user.colour'), errno(P9Errno.ENODATA), 'no xattrs through a symlink');
      const xr = p9.newFid();
      await p9.walk(mv, xr, []);
      await p9.xattrcreate(xr, 'user.colour', 0);
      await p9.clunk(xr);
      await assert.rejects(p9.xattrwalk(mv, p9.newFid(), 'user.colour'), errno(P9Errno.ENODATA), 'removed by a size-0 create');
      const xp = p9.newFid();
      await p9.walk(mv, xp, []);
      await p9.xattrcreate(xp, 'user.partial', 10);
      await p9.write(xp, 0, Buffer.from('abc'));
      await assert.rejects(p9.clunk(xp), errno(P9Errno.EINVAL), 'clunked before the whole value was written');
      await assert.rejects(p9.xattrcreate(mv, 'user.big', 70_000), errno(P9Errno.E2BIG));
      assert.equal(device.server9p.xattr.heldBytes, 0);
      // unlinkat, remove
      await p9.unlinkat(root, 'hard.txt');
      await p9.remove(l);
      assert.equal(existsSync(join(dir, 'd', 'ln')), false);
      await assert.rejects(p9.unlinkat(root, 'd', P9_AT_REMOVEDIR), errno(P9Errno.ENOTEMPTY));
      await p9.remove(mv);
      await p9.unlinkat(root, 'd', P9_AT_REMOVEDIR);
      assert.deepEqual(readdirSync(dir), ['a.txt']);
      await assert.rejects(p9.clunk(mv), errno(P9Errno.EBADF), 'remove clunked the fid');
      await p9.clunk(d);
      await p9.clunk(root);
      assert.equal(device.server9p.fids.size, 0);
      assert.equal(device.host.inodeCount, 1);
      assert.equal(lstatSync(dir).isDirectory(), true);
      p9.detach();
    });
  });
}

describe('P9Device: chains it cannot answer, and reset', () => {
  it('a chain without room for Rlerror is returned with nothing written; the device goes on', T, async () => {
    const { device, pair } = setup();
    const q = pair.ctx.queue(0);
    const msg = Buffer.from([11, 0, 0, 0, 100, 0xff, 0xff, 0, 0x10, 0, 0]);
    const out = pair.ctx.dma.alloc(64);
    const inn = pair.ctx.dma.alloc(8);
    pair.ctx.memory.write(out, msg);
    const used = new Promise<number>((resolve) => pair.ctx.onUsed(0, () => {
      const t = q.takeUsed();
      if (t !== undefined) resolve(q.lastUsedLen);
    }));
    assert.ok(q.add([{ addr: out, len: msg.length }], [{ addr: inn, len: 8 }], 77));
    pair.ctx.kick(0);
    assert.equal(await used, 0);
    assert.equal(device.malformed, 1);
    assert.deepEqual(pair.resets, []);
    // A fresh driver on the same queue works.
    const again = new P9Driver(pair.ctx, { msize: 8192 });
    assert.equal((await again.version()).msize, 8192);
  });

  it('device reset drops every fid and inode; the driver must Tversion again', T, async () => {
    const { device, p9 } = setup();
    await p9.version();
    const root = p9.newFid();
    await p9.attach(root);
    await p9.walk(root, p9.newFid(), ['a.txt']);
    assert.equal(device.host.inodeCount, 2);
    device.reset();
    assert.equal(device.server9p.fids.size, 0);
    assert.equal(device.host.inodeCount, 1);
    assert.equal(device.server9p.versioned, false);
  });
});

describe('P9Device: xattrs through HostFs (the same name policy as virtio-fs)', () => {
  async function session(opts: Partial<P9DeviceOptions>) {
    const s = setup(opts);
    await s.p9.version();
    const root = s.p9.newFid();
    await s.p9.attach(root);
    const file = s.p9.newFid();
    await s.p9.walk(root, file, ['a.txt']);
    const setX = async (name: string, value: string): Promise<void> => {
      const x = s.p9.newFid();
      await s.p9.walk(file, x, []);
      await s.p9.xattrcreate(x, name, value.length);
      if (value.length > 0) await s.p9.write(x, 0, Buffer.from(value));
      await s.p9.clunk(x);
    };
    const list = async (): Promise<string[]> => {
      const x = s.p9.newFid();
      const n = await s.p9.xattrwalk(file, x, '');
      const names = (await s.p9.read(x, 0, n)).toString('latin1').split('\0').filter((t) => t !== '');
      await s.p9.clunk(x);
      return names;
    };
    /** The host's value of `hostName` on a.txt (native getxattr), null when absent. */
    const hostValue = (hostName: string): string | null => {
      const buf = Buffer.alloc(256);
      const n = s.device.host.fsAt.getxattr(join(s.dir, 'a.txt'), hostName, buf);
      return n < 0 ? null : buf.subarray(0, n).toString();
    };
    return { ...s, file, setX, list, hostValue };
  }

  it('default: user.* passes through; trusted.* and security.* are refused (EPERM to set, ENODATA to read) and hidden', T, async () => {
    const { p9, file, setX, list, hostValue } = await session({});
    await setX('user.kept', 'yes');
    assert.equal(hostValue('user.kept'), 'yes');
    await assert.rejects(setX('trusted.evil', 'x'), errno(P9Errno.EPERM));
    await assert.rejects(setX('security.capability', 'x'), errno(P9Errno.EPERM));
    await assert.rejects(p9.xattrwalk(file, p9.newFid(), 'security.selinux'), errno(P9Errno.ENODATA));
    assert.deepEqual(await list(), ['user.kept']);
  });

  it('--xattr-prefix user.9p.: every guest name N lives as host name user.9p.N; host names outside it are invisible', T, async () => {
    const { dir, device, p9, file, setX, list, hostValue } = await session({ xattrPrefix: 'user.9p.' });
    // A host attribute outside the prefix, set before: the guest never sees it.
    assert.equal(device.host.fsAt.setxattr(join(dir, 'a.txt'), 'user.host-only', Buffer.from('h'), 0), 0);
    await setX('security.selinux', 'label');
    assert.equal(hostValue('user.9p.security.selinux'), 'label');
    assert.equal(hostValue('security.selinux'), null);
    assert.deepEqual(await list(), ['security.selinux']);
    await assert.rejects(p9.xattrwalk(file, p9.newFid(), 'user.host-only'), errno(P9Errno.ENODATA));
    await setX('security.selinux', '');
    assert.equal(hostValue('user.9p.security.selinux'), null, 'removed by a size-0 create');
  });
});
