/**
 * HostFs LOOKUP's two ways (fstatat first for objects the table holds, open + fstat first while
 * lookups keep finding new objects): whichever way it predicts, a known object is the same
 * inode with one lookup more and no descriptor left behind, a new one a new inode; a name that
 * does not exist is ENOENT either way. CREATE by a guest caller leaves the file owned by it;
 * LINK by a guest caller leaves the object's owner as it was.
 */
import assert from 'node:assert/strict';
import { chownSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { StatField } from '../../platform/fs-at.js';
import { Errno, HostFs } from './host-fs.js';

const dirs: string[] = [];
const openFds = (): number => readdirSync('/proc/self/fd').length;

describe('HostFs lookup prediction', () => {
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('known objects stay one inode and leak no descriptor in either way; new ones are new inodes; missing names ENOENT', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vts-fslookup-'));
    dirs.push(dir);
    for (let i = 0; i < 40; i++) writeFileSync(join(dir, `f${i}`), String(i));
    // Nothing retained after FORGET (retained-descriptors.test.ts proves that part): each
    // FORGET below closes its descriptor.
    const host = new HostFs(dir, { retainedDescriptors: 0 });
    try {
      const st = new Float64Array(StatField.COUNT);
      const enc = (s: string): Buffer => Buffer.from(s);
      // 30 new objects in a row: LOOKUP now opens first.
      const first = Array.from({ length: 30 }, (_, i) => host.lookupEntry(1, enc(`f${i}`), st));
      assert.equal(new Set(first.map((n) => n.nodeid)).size, 30);
      assert.equal(st[StatField.INO], statSync(join(dir, 'f29')).ino, 'attributes of the object looked up');
      const fds = openFds();
      // Known objects, looked up again while the prediction says "new": same inode, no new descriptor.
      for (let round = 0; round < 3; round++) {
        for (let i = 0; i < 30; i++) {
          const again = host.lookupEntry(1, enc(`f${i}`), st);
          assert.equal(again, first[i], `f${i} is the same inode`);
          assert.equal(st[StatField.INO], statSync(join(dir, `f${i}`)).ino);
        }
      }
      assert.equal(openFds(), fds, 'no descriptor left behind by the open-first guesses');
      for (const n of first) assert.equal(n.nlookup, 4, 'one lookup more each time');
      assert.equal(host.inodeCount, 31);
      // Missing names, and new objects after many known ones (the fstatat-first way).
      assert.throws(() => host.lookupEntry(1, enc('nope'), st), (e: { errno?: number }) => e.errno === Errno.ENOENT);
      const fresh = host.lookupEntry(1, enc('f35'), st);
      assert.equal(fresh.nlookup, 1);
      assert.equal(host.inodeCount, 32);
      for (let i = 0; i < 30; i++) host.forget(first[i]!.nodeid, 4);
      host.forget(fresh.nodeid, 1);
      assert.equal(host.inodeCount, 1);
      assert.equal(openFds(), fds - 30, 'FORGET closed every descriptor (30 counted in fds, f35 opened after)');
      // New objects again, the open-first way: still ENOENT for a missing name.
      for (let i = 0; i < 20; i++) host.lookupEntry(1, enc(`f${i}`), st);
      assert.throws(() => host.lookupEntry(1, enc('nope'), st), (e: { errno?: number }) => e.errno === Errno.ENOENT);
    } finally {
      host.close();
    }
  });

  it('CREATE by a guest caller: the file is the caller\'s when the back-end runs as root; the attributes returned are the file\'s', { skip: process.geteuid?.() !== 0 ? 'needs root' : false }, () => {
    const dir = mkdtempSync(join(tmpdir(), 'vts-fslookup-'));
    dirs.push(dir);
    const host = new HostFs(dir);
    try {
      const st = new Float64Array(StatField.COUNT);
      for (const [uid, gid] of [
        [0, 0],
        [1234, 4321],
      ] as const) {
        host.setCaller(uid, gid);
        const { fh } = host.createEntry(1, Buffer.from(`by-${uid}`), 2, 0o644, st);
        const real = statSync(join(dir, `by-${uid}`));
        assert.deepEqual([real.uid, real.gid], [uid, gid]);
        assert.deepEqual([st[StatField.UID], st[StatField.GID], st[StatField.INO]], [uid, gid, real.ino], 'the reply carries the owner after the change');
        host.release(fh);
      }
    } finally {
      host.close();
    }
  });

  it('LINK by a guest caller: a new name, not a new object; the owner stays', { skip: process.geteuid?.() !== 0 ? 'needs root' : false }, () => {
    const dir = mkdtempSync(join(tmpdir(), 'vts-fslookup-'));
    dirs.push(dir);
    writeFileSync(join(dir, 'theirs'), 'x');
    chownSync(join(dir, 'theirs'), 1234, 4321);
    const host = new HostFs(dir);
    try {
      const st = new Float64Array(StatField.COUNT);
      const theirs = host.lookupEntry(1, Buffer.from('theirs'), st);
      host.setCaller(0, 0);
      const linked = host.linkEntry(theirs.nodeid, 1, Buffer.from('again'), st);
      assert.equal(linked, theirs);
      const real = statSync(join(dir, 'again'));
      assert.equal(real.ino, statSync(join(dir, 'theirs')).ino);
      assert.deepEqual([real.uid, real.gid], [1234, 4321], 'the linked object keeps its owner');
      assert.deepEqual([st[StatField.UID], st[StatField.GID]], [1234, 4321], 'and the reply says so');
    } finally {
      host.close();
    }
  });
});
