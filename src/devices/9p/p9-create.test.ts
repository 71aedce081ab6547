/**
 * P9Server's creating requests on hand-built messages: Tmknod (FIFOs, sockets and regular files
 * on the host, a file's qid; device nodes refused EPERM, directories and symlinks EINVAL; bad
 * names, fids and messages answered with Rlerror, nothing made outside the share), and whose new
 * objects are: as root, Tlcreate, Tmkdir, Tsymlink and Tmknod give them to the uid the fid was
 * attached with and the request's gid (through the uid/gid maps when set); an attach without a
 * uid (~0) changes no owner.
 */
import assert from 'node:assert/strict';
import { type Stats, chownSync, lstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { P9_NONUNAME, P9Errno, P9QidType, P9Type } from '../../spec/9p.js';
import { IdMap } from '../fs/id-map.js';
import { Rig, message, removeRigDirs, s } from './p9-test-support.js';

after(removeRigDirs);

const S_IFIFO = 0o010000;
const S_IFCHR = 0o020000;
const S_IFDIR = 0o040000;
const S_IFBLK = 0o060000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFSOCK = 0o140000;
const O_RDWR = 2;
const O_CREAT = 0o100;
const O_EXCL = 0o200;
const asRoot = { skip: process.geteuid?.() !== 0 ? 'changing an owner needs root' : false };

/** Tmknod of `name` in `dfid`: dfid[4] name[s] mode[4] major[4] minor[4] gid[4]. */
function mknod(r: Rig, dfid: number, name: string | Buffer, mode: number, gid = 0, major = 0, minor = 0): ReturnType<Rig['send']> {
  return r.send(P9Type.TMKNOD, (w) => {
    w.u32(dfid);
    w.str(typeof name === 'string' ? s(name) : name);
    w.u32(mode);
    w.u32(major);
    w.u32(minor);
    w.u32(gid);
  });
}

/** A qid's type and path (ino: the share's own file system is qid device 0). */
function qidOf(body: Buffer): { type: number; path: number } {
  return { type: body[0]!, path: Number(body.readBigUInt64LE(5)) };
}

/** Tgetattr's uid and gid of `fid`. */
function idsOf(r: Rig, fid: number): [number, number] {
  const a = r.ok(P9Type.TGETATTR, (w) => {
    w.u32(fid);
    w.u64(0x7ff);
  });
  return [a.readUInt32LE(25), a.readUInt32LE(29)];
}

describe('P9Server: Tmknod', () => {
  it('makes a FIFO, a socket and regular files (with and without S_IFREG) on the host; each answers a file qid of its inode', () => {
    const r = new Rig().session();
    for (const [name, mode, isType] of [
      ['fifo', S_IFIFO | 0o640, (st: Stats) => st.isFIFO()],
      ['sock', S_IFSOCK | 0o600, (st: Stats) => st.isSocket()],
      ['reg', S_IFREG | 0o644, (st: Stats) => st.isFile()],
      ['plain', 0o644, (st: Stats) => st.isFile()],
    ] as const) {
      const reply = mknod(r, 1, name, mode);
      assert.equal(reply.errno, null, `${name}: errno ${reply.errno}`);
      assert.equal(reply.type, P9Type.RMKNOD);
      assert.equal(reply.body.length, 13, 'Rmknod is qid[13]');
      const st = lstatSync(join(r.dir, name));
      assert.ok(isType(st), `${name} has the asked type on the host`);
      assert.deepEqual(qidOf(reply.body), { type: P9QidType.FILE, path: st.ino }, `${name}: a file's qid (not a directory's or symlink's), path from its inode`);
    }
    // The client walks to the new node and reads its attributes (Linux v9fs_vfs_mknod_dotl does).
    assert.equal(r.walk(1, 2, ['fifo']).errno, null);
    const a = r.ok(P9Type.TGETATTR, (w) => {
      w.u32(2);
      w.u64(0x7ff);
    });
    assert.equal(a.readUInt32LE(21) & 0o170000, S_IFIFO, 'Rgetattr mode is a FIFO');
    // A FIFO is opened by the guest's kernel, never by the device (a host open could block).
    assert.equal(r.err(P9Type.TLOPEN, (w) => {
      w.u32(2);
      w.u32(0);
    }), P9Errno.ELOOP);
    // In a subdirectory fid too.
    assert.equal(r.walk(1, 3, ['sub']).errno, null);
    assert.equal(mknod(r, 3, 'inner', S_IFIFO | 0o600).errno, null);
    assert.ok(lstatSync(join(r.dir, 'sub', 'inner')).isFIFO());
  });

  it('device nodes are refused with EPERM, directories and symlinks with EINVAL: nothing is made', () => {
    const r = new Rig().session();
    // /dev/null's and /dev/sda's numbers: no host device is ever reachable through the share.
    assert.equal(mknod(r, 1, 'null', S_IFCHR | 0o666, 0, 1, 3).errno, P9Errno.EPERM);
    assert.equal(mknod(r, 1, 'disk', S_IFBLK | 0o660, 0, 8, 0).errno, P9Errno.EPERM);
    assert.equal(mknod(r, 1, 'dir', S_IFDIR | 0o755).errno, P9Errno.EINVAL);
    assert.equal(mknod(r, 1, 'lnk', S_IFLNK | 0o777).errno, P9Errno.EINVAL);
    assert.deepEqual(readdirSync(r.dir).sort(), ['a.txt', 'sub']);
  });

  it('bad names, fids and messages: Rlerror with the errno, never a throw, nothing made outside the share', () => {
    const r = new Rig().session();
    const fifo = S_IFIFO | 0o600;
    for (const bad of ['..', '.', 'a/b', '../escape', '', 'nul\0x']) assert.equal(mknod(r, 1, bad, fifo).errno, P9Errno.EINVAL, `name ${JSON.stringify(bad)}`);
    assert.equal(mknod(r, 1, 'n'.repeat(256), fifo).errno, P9Errno.ENAMETOOLONG);
    assert.equal(mknod(r, 1, 'a.txt', fifo).errno, P9Errno.EEXIST, 'an existing name');
    assert.equal(mknod(r, 99, 'x', fifo).errno, P9Errno.EBADF, 'an unknown dfid');
    assert.equal(r.walk(1, 2, ['a.txt']).errno, null);
    assert.equal(mknod(r, 2, 'x', fifo).errno, P9Errno.ENOTDIR, 'a dfid that is a file');
    // The name's length field runs past the message (a string without its end), and a message without its gid.
    const pastEnd = message(P9Type.TMKNOD, 7, (w) => {
      w.u32(1);
      w.u16(200);
      w.u8(0x78);
    });
    assert.equal(r.raw(pastEnd)!.errno, P9Errno.EINVAL, 'a name past the end');
    const noGid = message(P9Type.TMKNOD, 8, (w) => {
      w.u32(1);
      w.str(s('nogid'));
      w.u32(fifo);
      w.u32(0);
      w.u32(0);
    });
    assert.equal(r.raw(noGid)!.errno, P9Errno.EINVAL, 'a message without its gid');
    assert.deepEqual(readdirSync(r.dir).sort(), ['a.txt', 'sub']);
    assert.deepEqual(readdirSync(r.outside).sort(), ['secret', 'share']);
    const ro = new Rig({ readOnly: true }).session();
    assert.equal(mknod(ro, 1, 'fifo', fifo).errno, P9Errno.EROFS);
    assert.deepEqual(readdirSync(ro.dir).sort(), ['a.txt', 'sub']);
  });
});

/** Tlcreate, Tmkdir, Tsymlink and Tmknod of `<prefix>-file`, `-dir`, `-link`, `-fifo` in `dfid` (Tlcreate turns a walked clone `clone` into the file). */
function createAll(r: Rig, dfid: number, clone: number, prefix: string, gid: number): string[] {
  assert.equal(r.walk(dfid, clone, []).errno, null);
  r.ok(P9Type.TLCREATE, (w) => {
    w.u32(clone);
    w.str(s(`${prefix}-file`));
    w.u32(O_RDWR | O_CREAT | O_EXCL);
    w.u32(0o644);
    w.u32(gid);
  });
  r.ok(P9Type.TMKDIR, (w) => {
    w.u32(dfid);
    w.str(s(`${prefix}-dir`));
    w.u32(0o755);
    w.u32(gid);
  });
  r.ok(P9Type.TSYMLINK, (w) => {
    w.u32(dfid);
    w.str(s(`${prefix}-link`));
    w.str(s(`${prefix}-file`));
    w.u32(gid);
  });
  assert.equal(mknod(r, dfid, `${prefix}-fifo`, S_IFIFO | 0o600, gid).errno, null);
  return ['file', 'dir', 'link', 'fifo'].map((k) => `${prefix}-${k}`);
}

function hostIds(path: string): [number, number] {
  const st = lstatSync(path);
  return [st.uid, st.gid];
}

describe('P9Server: whose new objects are', () => {
  it('as root: Tlcreate, Tmkdir, Tsymlink and Tmknod give the object to the attach uid (n_uname) and the request gid; each fid keeps its attach\'s uid through walks', asRoot, () => {
    const r = new Rig().session();
    r.attach(10, 1234);
    r.attach(20, 4321);
    for (const name of createAll(r, 10, 11, 'u1234', 5678)) assert.deepEqual(hostIds(join(r.dir, name)), [1234, 5678], name);
    for (const name of createAll(r, 20, 21, 'u4321', 8765)) assert.deepEqual(hostIds(join(r.dir, name)), [4321, 8765], name);
    // A fid walked from the attach carries its uid.
    assert.equal(r.walk(10, 12, ['sub']).errno, null);
    for (const name of createAll(r, 12, 13, 'walked', 42)) assert.deepEqual(hostIds(join(r.dir, 'sub', name)), [1234, 42], `sub/${name}`);
    // The guest sees the owner in Rgetattr.
    assert.equal(r.walk(10, 14, ['u1234-fifo']).errno, null);
    assert.deepEqual(idsOf(r, 14), [1234, 5678]);
  });

  it('as root: the attach without a uid (n_uname ~0) changes no owner: objects stay the server\'s user\'s', asRoot, () => {
    const r = new Rig().session();
    const self: [number, number] = [process.geteuid!(), process.getegid!()];
    // Fid 1 is the Rig's attach with n_uname ~0.
    for (const name of createAll(r, 1, 2, 'anon', 5678)) assert.deepEqual(hostIds(join(r.dir, name)), self, name);
  });

  it('as root: a gid of ~0 keeps the group (even through a strict map, where an unmapped id is nobody); an existing file opened by Tlcreate without O_EXCL keeps its owner', asRoot, () => {
    const r = new Rig({}, { uidMap: new IdMap([{ guest: 1234, host: 1234, count: 1 }], true), gidMap: new IdMap([{ guest: 5678, host: 5678, count: 1 }], true) }).session();
    r.attach(10, 1234);
    const gid = process.getegid!();
    for (const name of createAll(r, 10, 11, 'nogroup', P9_NONUNAME)) assert.deepEqual(hostIds(join(r.dir, name)), [1234, gid], name);
    chownSync(join(r.dir, 'a.txt'), 777, 888);
    assert.equal(r.walk(10, 12, []).errno, null);
    r.ok(P9Type.TLCREATE, (w) => {
      w.u32(12);
      w.str(s('a.txt'));
      w.u32(O_RDWR | O_CREAT);
      w.u32(0o644);
      w.u32(5678);
    });
    assert.deepEqual(hostIds(join(r.dir, 'a.txt')), [777, 888], 'opened, not made: its owner stays');
  });

  it('as root, with uid/gid maps: the owner is the attach uid and request gid translated to the host\'s; Rgetattr gives the guest\'s back', asRoot, () => {
    const r = new Rig({}, { uidMap: new IdMap([{ guest: 1000, host: 4321, count: 10 }]), gidMap: new IdMap([{ guest: 2000, host: 8765, count: 10 }]) }).session();
    r.attach(10, 1003);
    for (const name of createAll(r, 10, 11, 'mapped', 2005)) assert.deepEqual(hostIds(join(r.dir, name)), [4324, 8770], name);
    assert.equal(r.walk(10, 12, ['mapped-dir']).errno, null);
    assert.deepEqual(idsOf(r, 12), [1003, 2005]);
  });
});
