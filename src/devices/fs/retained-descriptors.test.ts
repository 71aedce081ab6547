/**
 * HostFs's retained descriptors (retained-descriptors.ts): after FORGET an inode's O_PATH
 * descriptor stays open, bounded; a LOOKUP of the same object takes it back instead of opening
 * again, a LOOKUP of a name that now names another object never gets it, and the ring closes
 * its oldest when full, and everything at DESTROY / close.
 */
import assert from 'node:assert/strict';
import { linkSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ErrorCode, VirtioError } from '../../errors.js';
import { StatField } from '../../platform/fs-at.js';
import { Errno, HostFs, type HostFsOptions } from './host-fs.js';

const dirs: string[] = [];
const openFds = (): number => readdirSync('/proc/self/fd').length;
const enc = (s: string): Buffer => Buffer.from(s);

/** Runs `body` on a HostFs over `dir` with a scratch stat buffer; the HostFs is closed after, whatever happens. */
function withHost(dir: string, opts: HostFsOptions, body: (host: HostFs, st: Float64Array) => void): void {
  const host = new HostFs(dir, opts);
  try {
    body(host, new Float64Array(StatField.COUNT));
  } finally {
    host.close();
  }
}

function tree(files: number): string {
  const dir = mkdtempSync(join(tmpdir(), 'vts-fsretain-'));
  dirs.push(dir);
  for (let i = 0; i < files; i++) writeFileSync(join(dir, `f${i}`), String(i));
  mkdirSync(join(dir, 'sub'));
  return dir;
}

describe('HostFs retained descriptors', () => {
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('LOOKUP after FORGET takes the retained descriptor back: no open, a new nodeid, the object\'s attributes', () => {
    const dir = tree(4);
    withHost(dir, { retainedDescriptors: 8 }, (host, st) => {
      const base = openFds();
      const a = host.lookupEntry(1, enc('f1'), st);
      const sub = host.lookupEntry(1, enc('sub'), st);
      assert.equal(openFds(), base + 2);
      host.forget(a.nodeid, 1);
      host.forget(sub.nodeid, 1);
      assert.equal(host.inodeCount, 1, 'forgotten: out of the table');
      assert.equal(openFds(), base + 2, 'their descriptors retained');
      const again = host.lookupEntry(1, enc('f1'), st);
      assert.equal(again.fd, a.fd, 'the retained descriptor');
      assert.notEqual(again.nodeid, a.nodeid, 'a new nodeid: the old one was forgotten');
      assert.equal(again.nlookup, 1);
      assert.equal(st[StatField.INO], statSync(join(dir, 'f1')).ino);
      assert.equal(openFds(), base + 2, 'no descriptor opened');
      // A directory comes back the same way, and works as a parent.
      const sub2 = host.lookupEntry(1, enc('sub'), st);
      assert.equal(sub2.fd, sub.fd);
      writeFileSync(join(dir, 'sub', 'inner'), 'x');
      assert.equal(host.lookupEntry(sub2.nodeid, enc('inner'), st).nlookup, 1);
    });
  });

  it('a name that now names another object (renamed over, unlinked) never gets the retained descriptor', () => {
    const dir = tree(3);
    withHost(dir, { retainedDescriptors: 8 }, (host, st) => {
      const a = host.lookupEntry(1, enc('f0'), st);
      const oldIno = st[StatField.INO];
      host.forget(a.nodeid, 1);
      renameSync(join(dir, 'f2'), join(dir, 'f0'));
      const b = host.lookupEntry(1, enc('f0'), st);
      assert.notEqual(b.fd, a.fd, 'a new descriptor for the new object');
      assert.equal(st[StatField.INO], statSync(join(dir, 'f0')).ino);
      assert.notEqual(st[StatField.INO], oldIno);
      // Unlinked after FORGET (on the host): the name is gone, LOOKUP never finds the object.
      const c = host.lookupEntry(1, enc('f1'), st);
      host.forget(c.nodeid, 1);
      unlinkSync(join(dir, 'f1'));
      assert.throws(() => host.lookupEntry(1, enc('f1'), st), (e: { errno?: number }) => e.errno === Errno.ENOENT);
      // The guest removes the last name (UNLINK, RMDIR, RENAME over it) before FORGET: not
      // retained, closed at FORGET. A file with another name left is retained.
      writeFileSync(join(dir, 'gone'), 'x');
      mkdirSync(join(dir, 'gonedir'));
      writeFileSync(join(dir, 'over'), 'x');
      writeFileSync(join(dir, 'src'), 'y');
      writeFileSync(join(dir, 'two'), 'x');
      linkSync(join(dir, 'two'), join(dir, 'two-b'));
      const g = host.lookupEntry(1, enc('gone'), st);
      const gd = host.lookupEntry(1, enc('gonedir'), st);
      const ov = host.lookupEntry(1, enc('over'), st);
      const tw = host.lookupEntry(1, enc('two'), st);
      const fdsHeld = openFds();
      host.unlink(1, enc('gone'));
      host.rmdir(1, enc('gonedir'));
      host.rename(1, enc('src'), 1, enc('over'));
      host.unlink(1, enc('two'));
      for (const n of [g, gd, ov, tw]) host.forget(n.nodeid, 1);
      assert.equal(openFds(), fdsHeld - 3, 'the three removed objects closed at FORGET, the linked one retained');
      assert.equal(host.lookupEntry(1, enc('two-b'), st).fd, tw.fd, 'the object under its remaining name');
      // Another name of a retained object (a hard link made on the host) finds it.
      const d = host.lookupEntry(1, enc('f0'), st);
      host.forget(d.nodeid, 1);
      host.forget(b.nodeid, 1);
      linkSync(join(dir, 'f0'), join(dir, 'hard'));
      const e = host.lookupEntry(1, enc('hard'), st);
      assert.equal(e.fd, b.fd, 'the object under its other name: the retained descriptor');
    });
  });

  it('the guest removing a retained object by name closes its descriptor; a host-side removal leaves it until it leaves the ring', () => {
    const dir = tree(3);
    withHost(dir, { retainedDescriptors: 8 }, (host, st) => {
      const withRoot = openFds();
      for (const name of ['f0', 'f1', 'sub']) host.forget(host.lookupEntry(1, enc(name), st).nodeid, 1);
      assert.equal(openFds(), withRoot + 3);
      host.unlink(1, enc('f0'));
      host.rmdir(1, enc('sub'));
      assert.equal(openFds(), withRoot + 1, 'f0 and sub closed as the guest removed them');
      unlinkSync(join(dir, 'f1'));
      assert.equal(openFds(), withRoot + 1, 'removed on the host: still held (bounded by the ring)');
      // Removals that fail change nothing.
      assert.throws(() => host.unlink(1, enc('nope')), (e: { errno?: number }) => e.errno === Errno.ENOENT);
      host.clear();
      assert.equal(openFds(), withRoot);
    });
  });

  it('an O_TMPFILE file is closed at FORGET while unnamed, retained once a LINK names it', () => {
    const dir = tree(1);
    withHost(dir, { retainedDescriptors: 8 }, (host, st) => {
      const withRoot = openFds();
      const unnamed = host.tmpfileEntry(1, 2, 0o644, st);
      host.release(unnamed.fh);
      host.forget(unnamed.inode.nodeid, 1);
      assert.equal(openFds(), withRoot, 'unnamed: closed at FORGET');
      const named = host.tmpfileEntry(1, 2, 0o644, st);
      const linked = host.linkEntry(named.inode.nodeid, 1, enc('named'), st);
      assert.equal(linked, named.inode, 'LINK: the same inode, one lookup more');
      host.release(named.fh);
      host.forget(named.inode.nodeid, 2);
      assert.equal(openFds(), withRoot + 1, 'named: retained');
      assert.equal(host.lookupEntry(1, enc('named'), st).fd, named.inode.fd);
    });
  });

  it('bounded: the oldest is closed when full; an object back through a new open drops its retained twin; close() closes all', () => {
    const dir = tree(12);
    const base = openFds();
    withHost(dir, { retainedDescriptors: 4 }, (host, st) => {
      const withRoot = openFds();
      const nodes = Array.from({ length: 10 }, (_, i) => host.lookupEntry(1, enc(`f${i}`), st));
      assert.equal(openFds(), withRoot + 10);
      for (const n of nodes) host.forget(n.nodeid, 1);
      assert.equal(openFds(), withRoot + 4, 'four kept, six closed');
      // The newest four (f6..f9) come back with one descriptor each. Ten new objects in a row
      // made LOOKUP open first (host-fs-lookup.test.ts): f6 comes back through a new descriptor
      // and its retained one is closed; that counts as a known object, so LOOKUP goes back to
      // fstatat first and f7..f9 get their retained descriptors, no open.
      const back = [6, 7, 8, 9].map((i) => host.lookupEntry(1, enc(`f${i}`), st));
      assert.equal(st[StatField.INO], statSync(join(dir, 'f9')).ino);
      assert.notEqual(back[0]!.fd, nodes[6]!.fd, 'f6: opened first, the retained twin closed');
      assert.deepEqual(back.slice(1).map((n) => n.fd), [nodes[7]!.fd, nodes[8]!.fd, nodes[9]!.fd]);
      assert.equal(openFds(), withRoot + 4, 'one descriptor per object either way');
      // f0 was closed when the ring filled: opened anew.
      host.lookupEntry(1, enc('f0'), st);
      assert.equal(openFds(), withRoot + 5);
    });
    assert.equal(openFds(), base, 'close() closed the table and the retained descriptors');
  });

  it('DESTROY (clear) closes the retained descriptors; 0 retains nothing; a bad count is refused', () => {
    const dir = tree(4);
    withHost(dir, { retainedDescriptors: 16 }, (host, st) => {
      const withRoot = openFds();
      for (let i = 0; i < 4; i++) host.forget(host.lookupEntry(1, enc(`f${i}`), st).nodeid, 1);
      assert.equal(openFds(), withRoot + 4);
      host.clear();
      assert.equal(openFds(), withRoot);
    });
    withHost(dir, { retainedDescriptors: 0 }, (none, st) => {
      const withRoot = openFds();
      for (let i = 0; i < 4; i++) none.forget(none.lookupEntry(1, enc(`f${i}`), st).nodeid, 1);
      assert.equal(openFds(), withRoot, 'closed at FORGET');
    });
    // The default keeps descriptors (proven through a FORGET), at most a quarter of the open-file limit.
    withHost(dir, {}, (byDefault, st) => {
      const withRoot = openFds();
      byDefault.forget(byDefault.lookupEntry(1, enc('f0'), st).nodeid, 1);
      assert.equal(openFds(), withRoot + 1, 'retained by default');
    });
    for (const bad of [-1, 1.5, 2 ** 21]) {
      assert.throws(() => new HostFs(dir, { retainedDescriptors: bad }), (e: unknown) => e instanceof VirtioError && e.code === ErrorCode.INVALID_ARGUMENT);
    }
  });
});
