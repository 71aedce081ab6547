/**
 * The native *at calls (native/fs-at.c): results as values (-errno), names as bytes, stat
 * slots, positioned I/O into a view's range, OFD locks, getdents64; bad arguments throw.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { At, Lock, LockField, OpenFlag, StatField, isErr, loadFsAt } from './fs-at.js';
import { PlatformError } from './platform-error.js';

const ENOENT = 2;
const EEXIST = 17;
const ELOOP = 40;
const EAGAIN = 11;

describe('fs-at (native *at system calls)', () => {
  const f = loadFsAt();
  const dir = mkdtempSync(join(tmpdir(), 'vts-fs-at-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const dfd = f.openat(At.FDCWD, dir, OpenFlag.PATH | OpenFlag.DIRECTORY);

  it('openat/fstatat/mkdirat/unlinkat/renameat2 relative to a pinned directory, failures as -errno', () => {
    assert.ok(dfd >= 0);
    const st = new Float64Array(StatField.COUNT);
    assert.equal(f.fstatat(dfd, 'none', 0, st), -ENOENT);
    assert.ok(isErr(f.fstatat(dfd, 'none', 0, st)));
    assert.equal(f.mkdirat(dfd, Buffer.from('sub'), 0o750), 0);
    assert.equal(f.mkdirat(dfd, 'sub', 0o750), -EEXIST);
    assert.equal(f.fstatat(dfd, 'sub', At.SYMLINK_NOFOLLOW, st), 0);
    assert.equal(st[StatField.MODE]! & 0o170777, 0o040750);
    assert.equal(f.renameat2(dfd, 'sub', dfd, 'sub2', 0), 0);
    assert.equal(f.unlinkat(dfd, 'sub2', At.REMOVEDIR), 0);
    const sx = new Float64Array(StatField.COUNT + 2);
    assert.equal(f.statx(dfd, '', At.EMPTY_PATH, sx), 0);
    assert.ok(sx[StatField.INO]! > 0);
  });

  it('symlinks are not followed with O_NOFOLLOW; readlinkat and linkat with AT_EMPTY_PATH', () => {
    assert.equal(f.symlinkat('/etc/passwd', dfd, 'l'), 0);
    assert.equal(f.openat(dfd, 'l', OpenFlag.RDONLY | OpenFlag.NOFOLLOW), -ELOOP);
    const lfd = f.openat(dfd, 'l', OpenFlag.PATH | OpenFlag.NOFOLLOW);
    const buf = Buffer.alloc(64);
    assert.equal(buf.subarray(0, f.readlinkat(lfd, '', buf)).toString(), '/etc/passwd');
    f.close(lfd);
  });

  it('pread/pwrite straight into a range of a view; fallocate, lseek SEEK_HOLE, copy_file_range, fsync, fstatfs', () => {
    const fd = f.openat(dfd, 'data', OpenFlag.RDWR | OpenFlag.CREAT, 0o600);
    const src = Buffer.from('0123456789');
    assert.equal(f.pwrite(fd, src, 2, 5, 100), 5);
    const dst = Buffer.alloc(10, 0x2e);
    assert.equal(f.pread(fd, dst, 3, 5, 100), 5);
    assert.equal(dst.toString(), '...23456..');
    assert.equal(f.fallocate(fd, 0, 0, 4096), 0);
    assert.equal(f.lseek(fd, 0, 4), 4096, 'SEEK_HOLE after the allocated block');
    const out = f.openat(dfd, 'copy', OpenFlag.RDWR | OpenFlag.CREAT, 0o600);
    assert.equal(f.copyFileRange(fd, 100, out, 0, 5, 0), 5);
    assert.equal(readFileSync(join(dir, 'copy'), 'utf8'), '23456');
    assert.equal(f.fsync(fd, true), 0);
    const sfs = new Float64Array(10);
    assert.equal(f.fstatfs(dfd, sfs), 0);
    assert.ok(sfs[1]! > 0, 'bsize');
    assert.throws(() => f.pread(fd, dst, 8, 5, 0), (e: unknown) => e instanceof PlatformError && e.errno === 'EINVAL', 'a range past the view throws');
    f.close(out);
    f.close(fd);
  });

  it('OFD locks: two descriptions conflict, GETLK reports the holder; getdents64 lists names', () => {
    writeFileSync(join(dir, 'lk'), 'x');
    const a = f.openat(dfd, 'lk', OpenFlag.RDWR);
    const b = f.openat(dfd, 'lk', OpenFlag.RDWR);
    assert.equal(f.ofdLock(a, Lock.F_OFD_SETLK, Lock.WRLCK, 0, 10), 0);
    assert.equal(f.ofdLock(b, Lock.F_OFD_SETLK, Lock.WRLCK, 5, 1), -EAGAIN);
    const o = new Float64Array(LockField.COUNT);
    assert.equal(f.ofdLock(b, Lock.F_OFD_GETLK, Lock.RDLCK, 0, 0, o), 0);
    assert.equal(o[LockField.TYPE], Lock.WRLCK);
    assert.equal(f.ofdLock(a, 7, Lock.WRLCK, 0, 10), -22, 'F_SETLKW-like commands are refused');
    f.close(a);
    f.close(b);
    const d = f.openat(dfd, '.', OpenFlag.RDONLY | OpenFlag.DIRECTORY);
    const buf = Buffer.alloc(4096);
    const n = f.getdents64(d, buf);
    assert.ok(n > 0);
    assert.ok(buf.subarray(0, n).includes(Buffer.from('lk\0')));
    f.close(d);
  });
});
