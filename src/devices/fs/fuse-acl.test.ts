/**
 * POSIX ACLs (`posixAcl`, `virtiofs-ts fs --posix-acl`), FsDevice and FsDriver in process: INIT
 * offers FUSE_POSIX_ACL with DONT_MASK and SETXATTR_EXT only when enabled; system.posix_acl_*
 * reach the host file system, which stores them and enforces them (a process of another uid is
 * refused by a named-user entry); FUSE_SETXATTR_ACL_KILL_SGID clears S_ISGID; a default ACL
 * replaces the umask for new objects, which otherwise get the request's umask.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { FUSE_SETXATTR_ACL_KILL_SGID, FuseInitFlag } from '../../spec/fs.js';
import { createTestPair } from '../blk/test-pair.js';
import { FsDevice } from './fs-device.js';
import { FsDriver } from './fs-driver.js';
import { FuseReplyError } from './fs-driver-types.js';

const T = { timeout: 20_000 };
const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const isRoot = process.geteuid?.() === 0;
const NOBODY = 65534;

function share(): string {
  const d = mkdtempSync(join(tmpdir(), 'vts-fsacl-'));
  dirs.push(d);
  chmodSync(d, 0o755);
  writeFileSync(join(d, 'hello.txt'), 'hello');
  chmodSync(join(d, 'hello.txt'), 0o644);
  return d;
}

/** ACL tags and the xattr form (always little-endian: Linux's posix_acl_xattr, version 2). */
const Tag = { USER_OBJ: 0x01, USER: 0x02, GROUP_OBJ: 0x04, GROUP: 0x08, MASK: 0x10, OTHER: 0x20 } as const;
function acl(entries: readonly [tag: number, perm: number, id?: number][]): Buffer {
  const b = Buffer.alloc(4 + 8 * entries.length);
  b.writeUInt32LE(2, 0);
  entries.forEach(([tag, perm, id], i) => {
    b.writeUInt16LE(tag, 4 + 8 * i);
    b.writeUInt16LE(perm, 6 + 8 * i);
    b.writeUInt32LE(id ?? 0xffff_ffff, 8 + 8 * i);
  });
  return b;
}

const WANT = FuseInitFlag.POSIX_ACL | FuseInitFlag.DONT_MASK | FuseInitFlag.SETXATTR_EXT;

async function session(posixAcl: boolean) {
  const dir = share();
  const device = new FsDevice({ sharedDir: dir, tag: 'acl', queueSize: 16, posixAcl });
  const pair = createTestPair(device);
  const fs = new FsDriver(pair.ctx);
  await fs.init(WANT);
  return { dir, device, fs };
}

/** Whether `uid` can read `path` on the host (a child process that drops to it). */
function canRead(uid: number, path: string): boolean {
  const r = spawnSync(process.execPath, ['-e', `process.setgid(${uid});process.setuid(${uid});require('fs').readFileSync(${JSON.stringify(path)})`], { timeout: 10_000 });
  return r.status === 0;
}

describe('virtio-fs POSIX ACLs (FUSE_POSIX_ACL), device and driver in process', () => {
  it('not offered by default: INIT leaves the flags out and system.posix_acl_access is refused (EPERM)', T, async () => {
    const { device, fs } = await session(false);
    try {
      assert.equal(fs.initFlags & WANT, 0);
      const e = await fs.lookup(1n, 'hello.txt');
      await assert.rejects(fs.setxattr(e.nodeid, 'system.posix_acl_access', acl([[Tag.USER_OBJ, 6], [Tag.GROUP_OBJ, 4], [Tag.OTHER, 4]])), (err: unknown) => err instanceof FuseReplyError && err.errno === 1);
      fs.detach();
    } finally {
      device.close();
    }
  });

  it('--posix-acl: INIT negotiates POSIX_ACL, DONT_MASK, SETXATTR_EXT; the ACL is stored on the host, read back, and the host enforces it', T, async () => {
    const { dir, device, fs } = await session(true);
    try {
      assert.equal(fs.initFlags & WANT, WANT);
      const e = await fs.lookup(1n, 'hello.txt');
      // hello.txt is 0644: anyone may read it, except nobody by the named-user entry.
      const value = acl([[Tag.USER_OBJ, 6], [Tag.USER, 0, NOBODY], [Tag.GROUP_OBJ, 4], [Tag.MASK, 4], [Tag.OTHER, 4]]);
      await fs.setxattr(e.nodeid, 'system.posix_acl_access', value);
      assert.deepEqual(Buffer.from(await fs.getxattr(e.nodeid, 'system.posix_acl_access')), value, 'read back through FUSE');
      const host = Buffer.alloc(256);
      const n = device.host.fsAt.getxattr(join(dir, 'hello.txt'), 'system.posix_acl_access', host);
      assert.deepEqual(host.subarray(0, n), value, 'stored by the host file system as a real ACL');
      assert.ok((await fs.listxattr(e.nodeid)).includes('system.posix_acl_access'));
      if (isRoot) {
        assert.equal(canRead(NOBODY - 1, join(dir, 'hello.txt')), true, 'another uid reads by the other entry');
        assert.equal(canRead(NOBODY, join(dir, 'hello.txt')), false, 'the named-user entry refuses nobody on the host');
      }
      await fs.removexattr(e.nodeid, 'system.posix_acl_access');
      if (isRoot) assert.equal(canRead(NOBODY, join(dir, 'hello.txt')), true, 'the ACL is gone');
      fs.detach();
    } finally {
      device.close();
    }
  });

  it('FUSE_SETXATTR_ACL_KILL_SGID clears S_ISGID when the guest says so, and only then', T, async () => {
    const { dir, device, fs } = await session(true);
    try {
      const path = join(dir, 'hello.txt');
      chmodSync(path, 0o2775);
      const e = await fs.lookup(1n, 'hello.txt');
      const value = acl([[Tag.USER_OBJ, 7], [Tag.GROUP_OBJ, 5], [Tag.OTHER, 5]]);
      await fs.setxattr(e.nodeid, 'system.posix_acl_access', value);
      // The host derives the mode's permission bits from the ACL (group r-x): 0775 -> 0755.
      assert.equal(statSync(path).mode & 0o7777, 0o2755, 'no flag: S_ISGID stays');
      await fs.setxattr(e.nodeid, 'system.posix_acl_access', value, 0, FUSE_SETXATTR_ACL_KILL_SGID);
      assert.equal(statSync(path).mode & 0o7777, 0o755, 'KILL_SGID: cleared');
      fs.detach();
    } finally {
      device.close();
    }
  });

  it('new objects: the request umask applies where the directory has no default ACL; a default ACL replaces it', T, async () => {
    const { dir, device, fs } = await session(true);
    const umaskBefore = process.umask(0o022);
    process.umask(umaskBefore);
    try {
      const plain = await fs.create(1n, 'plain.txt', 0o666, 0o101, 0o022);
      assert.equal(statSync(join(dir, 'plain.txt')).mode & 0o777, 0o644, 'umask 022 applied by the host');
      const d = await fs.mkdir(1n, 'd', 0o777, 0o022);
      assert.equal(statSync(join(dir, 'd')).mode & 0o777, 0o755);
      await fs.setxattr(d.nodeid, 'system.posix_acl_default', acl([[Tag.USER_OBJ, 7], [Tag.GROUP_OBJ, 7], [Tag.OTHER, 7]]));
      await fs.create(d.nodeid, 'inherits.txt', 0o666, 0o101, 0o022);
      assert.equal(statSync(join(dir, 'd', 'inherits.txt')).mode & 0o777, 0o666, 'the default ACL, not the umask');
      const sub = await fs.mkdir(d.nodeid, 'sub', 0o777, 0o077);
      assert.equal(statSync(join(dir, 'd', 'sub')).mode & 0o777, 0o777);
      assert.ok((await fs.getxattr(sub.nodeid, 'system.posix_acl_default')).length > 0, 'a subdirectory inherits the default ACL');
      assert.ok(plain.fh > 0n);
      const umaskAfter = process.umask(0o022);
      process.umask(umaskAfter);
      assert.equal(umaskAfter, umaskBefore, 'the process umask is restored after each creation');
      fs.detach();
    } finally {
      device.close();
    }
  });

  it('a posixAcl device with uid/gid translation is refused (ACL ids would not be translated)', async () => {
    const { IdMap } = await import('./id-map.js');
    assert.throws(() => new FsDevice({ sharedDir: share(), tag: 'x', posixAcl: true, uidMap: IdMap.parse('0:1000:1') }), /POSIX ACLs with uid\/gid translation/);
  });
});
