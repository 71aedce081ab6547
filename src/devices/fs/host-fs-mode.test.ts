/**
 * New objects get exactly the permission bits the driver asked for (the driver applied the
 * guest's umask; FUSE without POSIX ACLs, 9P2000.L), not those bits less the back-end process's
 * umask: HostFsCore.exactMode. virtiofsd runs with umask 0 for this; QEMU's 9p passthrough chmods.
 */
import assert from 'node:assert/strict';
import { chmodSync, lstatSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { OpenFlag, StatField } from '../../platform/fs-at.js';
import { HostFs } from './host-fs.js';

const dirs: string[] = [];
const enc = (s: string): Buffer => Buffer.from(s);
const S_IFIFO = 0o010000;

/** A HostFs over a new directory, made while the process umask is `umask` (restored after). */
function rig(umask: number, opts: ConstructorParameters<typeof HostFs>[1] = {}): { host: HostFs; dir: string; out: Float64Array } {
  const dir = mkdtempSync(join(tmpdir(), 'vts-fsmode-'));
  dirs.push(dir);
  const old = process.umask(umask);
  try {
    return { host: new HostFs(dir, opts), dir, out: new Float64Array(StatField.COUNT) };
  } finally {
    process.umask(old);
  }
}

/** Runs `fn` with the process umask `umask` (as the back-end's process would have it). */
function underUmask<T>(umask: number, fn: () => T): T {
  const old = process.umask(umask);
  try {
    return fn();
  } finally {
    process.umask(old);
  }
}

const perm = (p: string): number => lstatSync(p).mode & 0o7777;

after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('HostFs: the permission bits of new objects are the driver\'s, whatever the process umask', () => {
  it('CREATE, MKDIR, MKNOD (FIFO) and TMPFILE with bits the process umask (022) would take away: exactly the asked bits, on the host and in the reply', () => {
    const { host, dir, out } = rig(0o022);
    underUmask(0o022, () => {
      const f = host.createEntry(1, enc('f'), OpenFlag.RDWR, 0o666, out);
      assert.equal(perm(join(dir, 'f')), 0o666);
      assert.equal(out[StatField.MODE]! & 0o7777, 0o666, 'the reply carries the bits the object has');
      host.release(f.fh);
      host.mkdirEntry(1, enc('d'), 0o775, out);
      assert.equal(perm(join(dir, 'd')), 0o775);
      assert.equal(out[StatField.MODE]! & 0o7777, 0o775);
      host.mknodEntry(1, enc('p'), S_IFIFO | 0o662, 0, out);
      assert.ok(lstatSync(join(dir, 'p')).isFIFO());
      assert.equal(perm(join(dir, 'p')), 0o662);
      const t = host.tmpfileEntry(1, OpenFlag.RDWR, 0o620, out);
      assert.equal(out[StatField.MODE]! & 0o7777, 0o620);
      host.release(t.fh);
    });
    host.close();
  });

  it('bits the umask does not touch are left as made (no chmod), and a setgid parent\'s S_ISGID stays on a new directory', () => {
    const { host, dir, out } = rig(0o022);
    underUmask(0o022, () => {
      host.mkdirEntry(1, enc('plain'), 0o700, out);
      assert.equal(perm(join(dir, 'plain')), 0o700);
      chmodSync(dir, 0o2775);
      host.mkdirEntry(1, enc('sub'), 0o770, out);
      assert.equal(perm(join(dir, 'sub')), 0o2770, 'S_ISGID inherited from the parent, the asked bits exact');
    });
    host.close();
  });

  it('existing files opened by CREATE without O_EXCL keep their bits', () => {
    const { host, dir, out } = rig(0o022);
    underUmask(0o022, () => {
      const a = host.createEntry(1, enc('e'), OpenFlag.RDWR, 0o600, out);
      host.release(a.fh);
      const b = host.createEntry(1, enc('e'), OpenFlag.RDWR, 0o666, out);
      host.release(b.fh);
      assert.equal(perm(join(dir, 'e')), 0o600);
    });
    host.close();
  });

  it('with POSIX ACLs passed through the host applies the request\'s umask: nothing is changed afterwards', () => {
    const { host, dir, out } = rig(0o022, { posixAcl: true });
    underUmask(0o022, () => {
      host.setCreateUmask(0o027);
      host.mkdirEntry(1, enc('acl'), 0o777, out);
      host.setCreateUmask(-1);
      assert.equal(perm(join(dir, 'acl')), 0o750);
    });
    host.close();
  });
});
