/**
 * CREATE's and TMPFILE's O_PATH descriptor of the new file: taken with open_tree(2) from the
 * opened descriptor (FsAt.openPath), or, where the kernel or a seccomp filter refuses it
 * (ENOSYS, EPERM), by reopening /proc/self/fd/N. Either way the inode is the very object the
 * handle has open, no descriptor is left behind, and a failure of the call is the request's
 * errno.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { At, OpenFlag, StatField } from '../../platform/fs-at.js';
import { Errno, HostFs } from './host-fs.js';

const dirs: string[] = [];
const openFds = (): number => readdirSync('/proc/self/fd').length;
const enc = (s: string): Buffer => Buffer.from(s);
const { DEV, INO } = StatField;

/** A HostFs over a new directory whose FsAt.openPath is replaced by `openPath` (null: the real one); the calls it saw. */
function rig(openPath: ((fd: number) => number) | null): { host: HostFs; dir: string; calls: number[] } {
  const dir = mkdtempSync(join(tmpdir(), 'vts-fscreate-'));
  dirs.push(dir);
  const host = new HostFs(dir, { retainedDescriptors: 0 });
  const calls: number[] = [];
  const real = host.fsAt;
  // A copy of the shared FsAt with openPath swapped: the other calls stay the native ones.
  const fsAt = {
    ...real,
    openPath: (fd: number): number => {
      calls.push(fd);
      return openPath === null ? real.openPath(fd) : openPath(fd);
    },
  };
  Object.defineProperty(host, 'fsAt', { value: fsAt });
  return { host, dir, calls };
}

/** CREATE of `name`: the inode is the file the handle has open and the name refers to. */
function createAndCheck(host: HostFs, dir: string, name: string): void {
  const st = new Float64Array(StatField.COUNT);
  const { inode, fh } = host.createEntry(1, enc(name), OpenFlag.RDWR | OpenFlag.EXCL, 0o640, st);
  const onDisk = statSync(join(dir, name));
  assert.equal(st[INO], onDisk.ino, 'the reply describes the new file');
  const viaPath = new Float64Array(StatField.COUNT);
  assert.equal(host.fsAt.fstatat(inode.fd, '', At.EMPTY_PATH, viaPath), 0);
  assert.equal(viaPath[INO], onDisk.ino, 'the inode descriptor is on the new file');
  assert.equal(viaPath[DEV], inode.dev);
  const viaHandle = new Float64Array(StatField.COUNT);
  assert.equal(host.fsAt.fstatat(host.fileFd(fh), '', At.EMPTY_PATH, viaHandle), 0);
  assert.equal(viaHandle[INO], viaPath[INO], 'the handle and the inode are one object');
  // An O_PATH descriptor: reading through it fails EBADF.
  assert.equal(host.fsAt.pread(inode.fd, new Uint8Array(1), 0, 1, 0), -Errno.EBADF);
  host.release(fh);
  host.forget(inode.nodeid, 1);
}

describe('HostFs CREATE: the O_PATH descriptor of the new file', () => {
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('comes from open_tree where the kernel has it, one call per CREATE and TMPFILE, nothing left open', () => {
    const { host, dir, calls } = rig(null);
    try {
      const before = openFds();
      for (let i = 0; i < 5; i++) createAndCheck(host, dir, `f${i}`);
      const st = new Float64Array(StatField.COUNT);
      const t = host.tmpfileEntry(1, OpenFlag.RDWR, 0o600, st);
      host.release(t.fh);
      host.forget(t.inode.nodeid, 1);
      assert.equal(calls.length, 6, 'openPath asked once per new file');
      assert.equal(openFds(), before, 'no descriptor left behind');
    } finally {
      host.close();
    }
  });

  for (const errno of [Errno.ENOSYS, Errno.EPERM]) {
    it(`falls back to /proc/self/fd when open_tree fails ${errno === Errno.ENOSYS ? 'ENOSYS' : 'EPERM'}, and stops asking`, () => {
      const { host, dir, calls } = rig(() => -errno);
      try {
        const before = openFds();
        for (let i = 0; i < 3; i++) createAndCheck(host, dir, `g${i}`);
        assert.equal(calls.length, 1, 'asked once, then the fallback only');
        assert.equal(openFds(), before);
      } finally {
        host.close();
      }
    });
  }

  it('another failure of the call is the request error, the opened file closed (no fallback)', () => {
    const { host, calls } = rig(() => -Errno.ENFILE);
    try {
      const before = openFds();
      const st = new Float64Array(StatField.COUNT);
      assert.throws(() => host.createEntry(1, enc('h'), OpenFlag.RDWR, 0o600, st), (e: { errno?: number }) => e.errno === Errno.ENFILE);
      assert.throws(() => host.createEntry(1, enc('h2'), OpenFlag.RDWR, 0o600, st), (e: { errno?: number }) => e.errno === Errno.ENFILE);
      assert.equal(calls.length, 2, 'still asked: ENFILE says nothing about open_tree');
      assert.equal(openFds(), before, 'the descriptors opened by CREATE are closed');
      assert.equal(host.inodeCount, 1, 'no inode adopted');
      assert.equal(host.handleCount, 0);
    } finally {
      host.close();
    }
  });
});
