/**
 * The FUSE operations of fuse-ops.ts and the HostFs options (read-only, id maps, xattr prefix,
 * cache policies), on hand-built requests: results checked on the host, and the bad-input cases
 * of issue 12 each answered with the errno the kernel expects.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, beforeEach, describe, it } from 'node:test';
import { At, loadFsAt } from '../../platform/fs-at.js';
import { FuseOpcode as Op } from '../../spec/fs.js';
import { FUSE_REPLY_DEFERRED, FuseServer, type FuseServerOptions } from './fuse-server.js';
import { Errno, HostFs, type HostFsOptions } from './host-fs.js';
import { IdMap } from './id-map.js';

const enc = (s: string): Buffer => Buffer.from(`${s}\0`);
const u32 = (v: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return b;
};
const u64 = (v: number | bigint): Buffer => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(v));
  return b;
};

class Wire {
  unique = 1000;
  constructor(readonly server: FuseServer) {}
  last = 0n;
  request(opcode: number, nodeid: number | bigint, args: Buffer, opts: { outCap?: number; uid?: number } = {}): Buffer {
    this.last = BigInt(this.unique);
    const msg = Buffer.concat([u32(40 + args.length), u32(opcode), u64(this.unique++), u64(nodeid), u32(opts.uid ?? 0), u32(0), u32(1), u32(0), args]);
    const out = Buffer.alloc(1 << 17);
    const n = this.server.handle(msg, msg.length, out, opts.outCap ?? out.length);
    if (n === FUSE_REPLY_DEFERRED) return Buffer.from('deferred');
    return out.subarray(0, n);
  }
  errno(r: Buffer): number {
    assert.ok(r.length >= 16, 'a reply header');
    assert.equal(r.readUInt32LE(0), r.length);
    return r.readInt32LE(4) === 0 ? 0 : -r.readInt32LE(4);
  }
  ok(r: Buffer): Buffer {
    assert.equal(this.errno(r), 0, 'success');
    return r.subarray(16);
  }
  init(): void {
    this.ok(this.request(Op.INIT, 0, Buffer.concat([u32(7), u32(31), u32(65536), u32(0xffffffff)])));
  }
  lookup(parent: number, name: string): number {
    return Number(this.ok(this.request(Op.LOOKUP, parent, enc(name))).readBigUInt64LE(0));
  }
  open(nodeid: number, flags: number): number {
    return Number(this.ok(this.request(Op.OPEN, nodeid, Buffer.concat([u32(flags), u32(0)]))).readBigUInt64LE(0));
  }
  create(parent: number, name: string, flags = 2): { nodeid: number; fh: number; reply: Buffer } {
    const r = this.ok(this.request(Op.CREATE, parent, Buffer.concat([u32(flags | 0o100), u32(0o644), u32(0), u32(0), enc(name)])));
    return { nodeid: Number(r.readBigUInt64LE(0)), fh: Number(r.readBigUInt64LE(128)), reply: r };
  }
  lk(fh: number, owner: number, type: number, start: number, end: bigint | number, flags = 0): Buffer {
    return Buffer.concat([u64(fh), u64(owner), u64(start), u64(end), u32(type), u32(0), u32(flags), u32(0)]);
  }
}

describe('FUSE operations beyond the core set, and the HostFs options', () => {
  let dir: string;
  let outside: string;
  const made: string[] = [];
  const hosts: HostFs[] = [];
  const fsAt = loadFsAt();

  function serve(hopts: HostFsOptions = {}, fopts: FuseServerOptions = {}): { w: Wire; host: HostFs } {
    const host = new HostFs(dir, { maxInodes: 64, maxHandles: 16, ...hopts });
    hosts.push(host);
    const w = new Wire(new FuseServer(host, fopts));
    w.init();
    return { w, host };
  }

  beforeEach(() => {
    const root = mkdtempSync(join(tmpdir(), 'vts-fuse-ops-'));
    made.push(root);
    dir = join(root, 'share');
    outside = join(root, 'outside');
    mkdirSync(dir);
    mkdirSync(outside);
    writeFileSync(join(outside, 'secret'), 'host secret');
    writeFileSync(join(dir, 'hello.txt'), 'hello');
  });
  after(() => {
    for (const h of hosts) h.close();
    for (const d of made) rmSync(d, { recursive: true, force: true });
  });

  it('SYMLINK and READLINK: the target is stored as given and never followed', () => {
    const { w } = serve();
    const e = w.ok(w.request(Op.SYMLINK, 1, Buffer.concat([enc('to-secret'), enc(join(outside, 'secret'))])));
    const id = Number(e.readBigUInt64LE(0));
    assert.equal(readlinkSync(join(dir, 'to-secret')), join(outside, 'secret'));
    assert.equal(w.ok(w.request(Op.READLINK, id, Buffer.alloc(0))).toString(), join(outside, 'secret'));
    assert.equal(w.errno(w.request(Op.OPEN, id, Buffer.alloc(8))), Errno.ELOOP);
    assert.equal(w.errno(w.request(Op.READLINK, 1, Buffer.alloc(0))), Errno.EINVAL, 'READLINK of a directory');
    assert.equal(w.errno(w.request(Op.SYMLINK, 1, Buffer.concat([enc('x'), Buffer.from('no-terminator')]))), Errno.EINVAL, 'target without its NUL');
    assert.equal(w.errno(w.request(Op.READLINK, id, Buffer.alloc(0), { outCap: 20 })), Errno.ENAMETOOLONG, 'a target longer than the reply');
  });

  it('MKNOD makes FIFOs and regular files, never device nodes (EPERM)', () => {
    const { w } = serve();
    w.ok(w.request(Op.MKNOD, 1, Buffer.concat([u32(0o010644), u32(0), u32(0o022), u32(0), enc('fifo')])));
    assert.ok(lstatSync(join(dir, 'fifo')).isFIFO());
    assert.equal(lstatSync(join(dir, 'fifo')).mode & 0o777, 0o644);
    assert.equal(w.errno(w.request(Op.MKNOD, 1, Buffer.concat([u32(0o060600), u32(0x0801), u32(0), u32(0), enc('sda1')]))), Errno.EPERM);
    assert.equal(w.errno(w.request(Op.MKNOD, 1, Buffer.concat([u32(0o020600), u32(0x0103), u32(0), u32(0), enc('null')]))), Errno.EPERM);
    assert.ok(!existsSync(join(dir, 'sda1')) && !existsSync(join(dir, 'null')));
  });

  it('LINK: a second name for an inode the guest holds; directories and unknown nodeids refused', () => {
    const { w } = serve();
    const id = w.lookup(1, 'hello.txt');
    const r = w.ok(w.request(Op.LINK, 1, Buffer.concat([u64(id), enc('again.txt')])));
    assert.equal(Number(r.readBigUInt64LE(0)), id, 'the same inode');
    assert.equal(statSync(join(dir, 'again.txt')).ino, statSync(join(dir, 'hello.txt')).ino);
    assert.equal(r.readUInt32LE(40 + 64), 2, 'nlink 2');
    mkdirSync(join(dir, 'd'));
    assert.equal(w.errno(w.request(Op.LINK, 1, Buffer.concat([u64(w.lookup(1, 'd')), enc('d2')]))), Errno.EPERM);
    assert.equal(w.errno(w.request(Op.LINK, 1, Buffer.concat([u64(777), enc('x')]))), Errno.ENOENT, 'a nodeid never looked up');
  });

  it('RENAME2: NOREPLACE, EXCHANGE; WHITEOUT and unknown flags refused', () => {
    const { w } = serve();
    writeFileSync(join(dir, 'b'), 'b');
    const r2 = (flags: number, a: string, b: string): Buffer => w.request(Op.RENAME2, 1, Buffer.concat([u64(1), u32(flags), u32(0), enc(a), enc(b)]));
    assert.equal(w.errno(r2(1, 'hello.txt', 'b')), Errno.EEXIST);
    w.ok(r2(2, 'hello.txt', 'b'));
    assert.equal(readFileSync(join(dir, 'b'), 'utf8'), 'hello');
    assert.equal(readFileSync(join(dir, 'hello.txt'), 'utf8'), 'b');
    assert.equal(w.errno(r2(4, 'hello.txt', 'c')), Errno.EINVAL);
    assert.equal(w.errno(r2(8, 'hello.txt', 'c')), Errno.EINVAL);
    w.ok(r2(0, 'b', 'c'));
    assert.ok(existsSync(join(dir, 'c')));
  });

  it('xattrs pass through the user. namespace only; security./trusted. refused; size query and ERANGE', () => {
    const { w } = serve();
    const id = w.lookup(1, 'hello.txt');
    const set = (name: string, value: string, flags = 0): Buffer => w.request(Op.SETXATTR, id, Buffer.concat([u32(Buffer.byteLength(value)), u32(flags), enc(name), Buffer.from(value)]));
    w.ok(set('user.color', 'blue'));
    assert.equal(w.errno(set('user.color', 'red', 1)), Errno.EEXIST, 'XATTR_CREATE of an existing name');
    assert.equal(w.errno(set('security.capability', 'x')), Errno.EPERM);
    assert.equal(w.errno(set('trusted.x', 'x')), Errno.EPERM);
    assert.equal(w.ok(w.request(Op.GETXATTR, id, Buffer.concat([u32(0), u32(0), enc('user.color')]))).readUInt32LE(0), 4, 'size query');
    assert.equal(w.ok(w.request(Op.GETXATTR, id, Buffer.concat([u32(64), u32(0), enc('user.color')]))).toString(), 'blue');
    assert.equal(w.errno(w.request(Op.GETXATTR, id, Buffer.concat([u32(2), u32(0), enc('user.color')]))), Errno.ERANGE);
    assert.equal(w.errno(w.request(Op.GETXATTR, id, Buffer.concat([u32(64), u32(0), enc('user.none')]))), Errno.ENODATA);
    assert.equal(w.ok(w.request(Op.LISTXATTR, id, Buffer.concat([u32(256), u32(0)]))).toString(), 'user.color\0');
    assert.equal(w.errno(w.request(Op.SETXATTR, id, Buffer.concat([u32(10), u32(0), enc('user.x'), Buffer.from('abc')]))), Errno.EINVAL, 'value size disagrees with the request');
    w.ok(w.request(Op.REMOVEXATTR, id, enc('user.color')));
    assert.equal(w.ok(w.request(Op.LISTXATTR, id, Buffer.concat([u32(0), u32(0)]))).readUInt32LE(0), 0);
  });

  it('xattr prefix mapping: every guest name lives under the prefix on the host, other host names are invisible', () => {
    const { w } = serve({ xattrPrefix: 'user.virtiofs.' });
    const id = w.lookup(1, 'hello.txt');
    const path = join(dir, 'hello.txt');
    assert.equal(fsAt.setxattr(path, 'user.host-only', Buffer.from('h'), 0), 0);
    w.ok(w.request(Op.SETXATTR, id, Buffer.concat([u32(3), u32(0), enc('security.selinux'), Buffer.from('ctx')])));
    const buf = Buffer.alloc(16);
    assert.equal(fsAt.getxattr(path, 'user.virtiofs.security.selinux', buf), 3);
    assert.equal(fsAt.getxattr(path, 'security.selinux', buf) < 0 || buf.subarray(0, 3).toString() !== 'ctx', true);
    assert.equal(w.ok(w.request(Op.LISTXATTR, id, Buffer.concat([u32(256), u32(0)]))).toString(), 'security.selinux\0');
    assert.equal(w.errno(w.request(Op.GETXATTR, id, Buffer.concat([u32(16), u32(0), enc('user.host-only')]))), Errno.ENODATA);
  });

  it('POSIX locks: owners conflict, SETLKW waits without blocking and completes when the lock is freed, INTERRUPT ends a wait, FLUSH drops an owner', async () => {
    const { w, host } = serve();
    const id = w.lookup(1, 'hello.txt');
    const fh = w.open(id, 2);
    const WR = 1;
    const UN = 2;
    w.ok(w.request(Op.SETLK, id, w.lk(fh, 1, WR, 0, 99)));
    assert.equal(w.errno(w.request(Op.SETLK, id, w.lk(fh, 2, WR, 50, 60))), Errno.EAGAIN);
    const got = w.ok(w.request(Op.GETLK, id, w.lk(fh, 2, WR, 0, 0x7fffffffffffffffn)));
    assert.equal(got.readUInt32LE(16), WR, 'the conflicting lock');
    assert.deepEqual([Number(got.readBigUInt64LE(0)), Number(got.readBigUInt64LE(8))], [0, 99]);
    assert.equal(w.ok(w.request(Op.GETLK, id, w.lk(fh, 1, WR, 0, 10))).readUInt32LE(16), UN, 'an owner never conflicts with itself');
    // SETLKW by owner 2: deferred; owner 1 unlocks; the wait completes with 0.
    assert.equal(w.request(Op.SETLKW, id, w.lk(fh, 2, WR, 0, 10)).toString(), 'deferred');
    const waited = w.server.takeDeferred();
    w.ok(w.request(Op.SETLK, id, w.lk(fh, 1, UN, 0, 0x7fffffffffffffffn)));
    const reply = await waited;
    assert.equal(reply.readInt32LE(4), 0);
    // Owner 3 waits on owner 2's lock; INTERRUPT ends it with EINTR.
    assert.equal(w.request(Op.SETLKW, id, w.lk(fh, 3, WR, 5, 6)).toString(), 'deferred');
    const unique = w.last;
    const interrupted = w.server.takeDeferred();
    assert.equal(w.request(Op.INTERRUPT, 1, u64(unique)).length, 0, 'INTERRUPT has no reply of its own');
    assert.equal(-(await interrupted).readInt32LE(4), Errno.EINTR);
    // FLUSH by owner 2 (close): its lock goes, owner 3 can take it.
    w.ok(w.request(Op.FLUSH, id, Buffer.concat([u64(fh), u32(0), u32(0), u64(2)])));
    w.ok(w.request(Op.SETLK, id, w.lk(fh, 3, WR, 0, 10)));
    assert.equal(w.errno(w.request(Op.SETLK, id, w.lk(fh, 4, WR, 0, 10, 1))), Errno.ENOSYS, 'flock-style locks are not offered');
    assert.equal(w.errno(w.request(Op.SETLK, id, w.lk(fh, 4, WR, 10, 5))), Errno.EINVAL, 'a lock ending before it starts');
    assert.equal(w.errno(w.request(Op.SETLK, id, w.lk(fh, 4, 7, 0, 5))), Errno.EINVAL, 'an unknown lock type');
    assert.equal(w.errno(w.request(Op.SETLK, id, w.lk(999, 4, WR, 0, 5))), Errno.EBADF, 'an fh never opened');
    assert.ok(host.locks.ownerCount > 0);
    w.ok(w.request(Op.DESTROY, 0, Buffer.alloc(0)));
    assert.equal(host.locks.ownerCount, 0, 'DESTROY drops every lock');
  });

  it('FALLOCATE, LSEEK SEEK_DATA/SEEK_HOLE on a sparse file, COPY_FILE_RANGE, FSYNCDIR, SYNCFS, ACCESS', () => {
    const { w } = serve();
    const c = w.create(1, 'sparse.bin');
    const data = Buffer.alloc(4096, 7);
    w.ok(w.request(Op.WRITE, c.nodeid, Buffer.concat([u64(c.fh), u64(1 << 20), u32(4096), u32(0), u64(0), u32(0), u32(0), data])));
    const seek = (off: number | bigint, whence: number): Buffer => w.request(Op.LSEEK, c.nodeid, Buffer.concat([u64(c.fh), u64(off), u32(whence), u32(0)]));
    const dataAt = Number(w.ok(seek(0, 3)).readBigUInt64LE(0));
    assert.ok(dataAt > 0 && dataAt <= 1 << 20, `SEEK_DATA skips the hole (${dataAt})`);
    assert.equal(Number(w.ok(seek(1 << 20, 4)).readBigUInt64LE(0)), (1 << 20) + 4096, 'SEEK_HOLE at the end');
    assert.equal(w.errno(seek(2 << 20, 3)), Errno.ENXIO, 'SEEK_DATA past the end');
    assert.equal(w.errno(seek(1n << 63n, 3)), Errno.ENXIO, 'an offset past 2^63');
    w.ok(w.request(Op.FALLOCATE, c.nodeid, Buffer.concat([u64(c.fh), u64(0), u64(8192), u32(0), u32(0)])));
    assert.ok(statSync(join(dir, 'sparse.bin')).blocks >= 16 + 8);
    const d = w.create(1, 'copy.bin');
    const n = w.ok(w.request(Op.COPY_FILE_RANGE, c.nodeid, Buffer.concat([u64(c.fh), u64(1 << 20), u64(d.nodeid), u64(d.fh), u64(0), u64(4096), u64(0)])));
    assert.equal(n.readUInt32LE(0), 4096);
    assert.deepEqual(readFileSync(join(dir, 'copy.bin')), data);
    const dh = Number(w.ok(w.request(Op.OPENDIR, 1, Buffer.alloc(8))).readBigUInt64LE(0));
    w.ok(w.request(Op.FSYNCDIR, 1, Buffer.concat([u64(dh), u32(0), u32(0)])));
    w.ok(w.request(Op.SYNCFS, 1, Buffer.alloc(8)));
    w.ok(w.request(Op.ACCESS, c.nodeid, Buffer.concat([u32(4 | 2), u32(0)])));
  });

  it('TMPFILE: an unnamed open file, named later with LINK', () => {
    const { w } = serve();
    const r = w.ok(w.request(Op.TMPFILE, 1, Buffer.concat([u32(2), u32(0o600), u32(0), u32(0), enc('/')])));
    const id = Number(r.readBigUInt64LE(0));
    const fh = Number(r.readBigUInt64LE(128));
    w.ok(w.request(Op.WRITE, id, Buffer.concat([u64(fh), u64(0), u32(3), u32(0), u64(0), u32(0), u32(0), Buffer.from('tmp')])));
    w.ok(w.request(Op.LINK, 1, Buffer.concat([u64(id), enc('named')])));
    assert.equal(readFileSync(join(dir, 'named'), 'utf8'), 'tmp');
  });

  it('read-only mode: every change is EROFS, reads still work', () => {
    const { w } = serve({ readOnly: true });
    const id = w.lookup(1, 'hello.txt');
    assert.equal(w.errno(w.request(Op.OPEN, id, Buffer.concat([u32(2), u32(0)]))), Errno.EROFS);
    assert.equal(w.errno(w.request(Op.OPEN, id, Buffer.concat([u32(0o1000), u32(0)]))), Errno.EROFS, 'O_TRUNC');
    assert.equal(w.errno(w.request(Op.CREATE, 1, Buffer.concat([u32(0o102), u32(0o644), u32(0), u32(0), enc('n')]))), Errno.EROFS);
    assert.equal(w.errno(w.request(Op.MKDIR, 1, Buffer.concat([u32(0o755), u32(0), enc('d')]))), Errno.EROFS);
    assert.equal(w.errno(w.request(Op.UNLINK, 1, enc('hello.txt'))), Errno.EROFS);
    assert.equal(w.errno(w.request(Op.RENAME, 1, Buffer.concat([u64(1), enc('hello.txt'), enc('x')]))), Errno.EROFS);
    assert.equal(w.errno(w.request(Op.SETATTR, id, Buffer.concat([u32(1), Buffer.alloc(84)]))), Errno.EROFS);
    assert.equal(w.errno(w.request(Op.SYMLINK, 1, Buffer.concat([enc('l'), enc('t')]))), Errno.EROFS);
    assert.equal(w.errno(w.request(Op.SETXATTR, id, Buffer.concat([u32(1), u32(0), enc('user.a'), Buffer.from('b')]))), Errno.EROFS);
    const fh = w.open(id, 0);
    assert.equal(w.ok(w.request(Op.READ, id, Buffer.concat([u64(fh), u64(0), u32(100), u32(0), u64(0), u32(0), u32(0)]))).toString(), 'hello');
    assert.equal(readFileSync(join(dir, 'hello.txt'), 'utf8'), 'hello');
  });

  it('uid/gid maps: attributes in guest ids, SETATTR and new files in host ids', () => {
    const host0 = statSync(join(dir, 'hello.txt'));
    const { w } = serve({ uidMap: new IdMap([{ guest: 1000, host: host0.uid, count: 1 }]), gidMap: new IdMap([{ guest: 2000, host: host0.gid, count: 1 }]) });
    const r = w.ok(w.request(Op.LOOKUP, 1, enc('hello.txt')));
    assert.equal(r.readUInt32LE(40 + 68), 1000, 'uid as the guest sees it');
    assert.equal(r.readUInt32LE(40 + 72), 2000, 'gid as the guest sees it');
    assert.equal(IdMap.parse('0:100000:65536').toHost(5), 100005);
    assert.equal(IdMap.parse('0:100000:65536').toGuest(100005), 5);
    assert.equal(IdMap.parse('0:100000:1', true).toHost(7), 65534, 'strict: unmapped ids are nobody');
    assert.throws(() => IdMap.parse('1:2'), /guest:host:count/);
  });

  for (const [cache, valid, flags] of [
    ['never', 0, 1],
    ['auto', 1, 0],
    ['always', 86400, 2],
  ] as const) {
    it(`cache=${cache}: entry/attr validity ${valid} s, open flags ${flags}`, () => {
      const { w } = serve({}, { cache });
      const e = w.ok(w.request(Op.LOOKUP, 1, enc('hello.txt')));
      assert.equal(Number(e.readBigUInt64LE(16)), valid);
      assert.equal(Number(e.readBigUInt64LE(24)), valid);
      const o = w.ok(w.request(Op.OPEN, Number(e.readBigUInt64LE(0)), Buffer.alloc(8)));
      assert.equal(o.readUInt32LE(8), flags);
    });
  }

  it('escape: a host-side racer swapping a directory for a symlink to outside while the guest walks finds nothing outside', async () => {
    const { w, host } = serve({ maxInodes: 4096, maxHandles: 64 });
    mkdirSync(join(dir, 'a'));
    writeFileSync(join(dir, 'a', 'secret'), 'inside');
    symlinkSync(outside, join(dir, 'evil'));
    // The racer: renames a ↔ evil (a symlink to the outside directory) as fast as it can.
    const script = `const fs=require('fs');const d=${JSON.stringify(dir)};const end=Date.now()+1500;let i=0;while(Date.now()<end){try{fs.renameSync(d+'/a',d+'/t');fs.renameSync(d+'/evil',d+'/a');fs.renameSync(d+'/a',d+'/evil');fs.renameSync(d+'/t',d+'/a');i++}catch{}}`;
    const racer = spawn(process.execPath, ['-e', script], { stdio: 'ignore' });
    const exited = new Promise<void>((resolve) => racer.on('exit', () => resolve()));
    const killer = setTimeout(() => racer.kill('SIGKILL'), 10_000);
    let reads = 0;
    try {
      const deadline = Date.now() + 1200;
      while (Date.now() < deadline) {
        const r = w.request(Op.LOOKUP, 1, enc('a'));
        if (w.errno(r) !== 0) continue;
        const a = Number(r.subarray(16).readBigUInt64LE(0));
        const s = w.request(Op.LOOKUP, a, enc('secret'));
        if (w.errno(s) === 0) {
          const sid = Number(s.subarray(16).readBigUInt64LE(0));
          const o = w.request(Op.OPEN, sid, Buffer.alloc(8));
          if (w.errno(o) === 0) {
            const fh = Number(o.subarray(16).readBigUInt64LE(0));
            const data = w.ok(w.request(Op.READ, sid, Buffer.concat([u64(fh), u64(0), u32(100), u32(0), u64(0), u32(0), u32(0)])));
            assert.notEqual(data.toString(), 'host secret', 'the outside file was read');
            reads++;
            w.ok(w.request(Op.RELEASE, sid, Buffer.concat([u64(fh), Buffer.alloc(16)])));
          }
          host.forget(sid, 1);
        }
        host.forget(a, 1);
      }
    } finally {
      await exited;
      clearTimeout(killer);
    }
    assert.ok(reads > 0, 'the walk reached the inside file at least once');
    // The host's own view: the outside file is untouched.
    assert.equal(readFileSync(join(outside, 'secret'), 'utf8'), 'host secret');
    if (existsSync(join(dir, 't'))) renameSync(join(dir, 't'), join(dir, 'a2'));
  });

  it('READDIR gives . and .. non-zero inode numbers (glibc skips d_ino 0); .. of the root is the root itself', () => {
    const { w } = serve();
    mkdirSync(join(dir, 'sub'));
    for (const [nodeid, parentIno] of [
      [1, statSync(dir).ino],
      [w.lookup(1, 'sub'), statSync(dir).ino],
    ] as const) {
      const fh = Number(w.ok(w.request(Op.OPENDIR, nodeid, Buffer.alloc(8))).readBigUInt64LE(0));
      const r = w.ok(w.request(Op.READDIR, nodeid, Buffer.concat([u64(fh), u64(0), u32(4096), u32(0), u64(0), u32(0), u32(0)])));
      // Entry 0 is ".", entry 1 "..": each 24 bytes of header + the name padded to 8.
      assert.equal(r.subarray(24, 25).toString(), '.');
      assert.equal(r.subarray(32 + 24, 32 + 26).toString(), '..');
      assert.equal(Number(r.readBigUInt64LE(32)), parentIno, `.. of nodeid ${nodeid}`);
      assert.notEqual(Number(r.readBigUInt64LE(0)), 0);
    }
  });

  it('bad input: name without terminator in RENAME2/LINK/MKNOD, arguments too short, huge offsets and ids', () => {
    const { w } = serve();
    assert.equal(w.errno(w.request(Op.LINK, 1, Buffer.concat([u64(1), Buffer.from('x')]))), Errno.EINVAL);
    assert.equal(w.errno(w.request(Op.MKNOD, 1, Buffer.alloc(8))), Errno.EINVAL);
    assert.equal(w.errno(w.request(Op.RENAME2, 1, Buffer.concat([u64(1), u32(0), u32(0), enc('a'), Buffer.from('b')]))), Errno.EINVAL);
    assert.equal(w.errno(w.request(Op.FALLOCATE, 1, Buffer.alloc(31))), Errno.EINVAL);
    assert.equal(w.errno(w.request(Op.LSEEK, 1, Buffer.concat([u64(1n << 63n), u64(0), u32(3), u32(0)]))), Errno.EBADF, 'an fh above 2^53');
    assert.equal(w.errno(w.request(Op.COPY_FILE_RANGE, 1, Buffer.alloc(56))), Errno.EBADF);
    assert.equal(w.errno(w.request(Op.GETXATTR, 1, Buffer.concat([u32(10), u32(0), Buffer.from('user.x')]))), Errno.EINVAL);
    assert.equal(w.request(Op.INTERRUPT, 1, u64(424242)).length, 0, 'INTERRUPT of nothing: ignored');
    assert.equal(fsAt.openat(At.FDCWD, 'a\0b', 0), -Errno.EINVAL, 'a name with an embedded NUL never reaches the kernel');
  });
});
