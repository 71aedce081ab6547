/**
 * The FUSE server on hand-built requests, in both byte orders: every operation it serves, and
 * the guest-is-untrusted cases (malformed lengths, names, ids, offsets; escapes through `..` and
 * symlinks; table bounds) answered with the errno the kernel expects, never a throw.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, beforeEach, describe, it } from 'node:test';
import { FuseOpcode as Op } from '../../spec/fs.js';
import { FuseServer } from './fuse-server.js';
import { Errno, HostFs, S_IFLNK } from './host-fs.js';

const enc = (s: string): Buffer => Buffer.from(`${s}\0`);

/** Builds fuse_in_header + args in byte order `le` and reads replies back. */
class Wire {
  unique = 100;
  constructor(
    readonly server: FuseServer,
    public le = true,
  ) {}

  u32(v: number): Buffer {
    const b = Buffer.alloc(4);
    if (this.le) b.writeUInt32LE(v >>> 0);
    else b.writeUInt32BE(v >>> 0);
    return b;
  }
  u64(v: number | bigint): Buffer {
    const b = Buffer.alloc(8);
    if (this.le) b.writeBigUInt64LE(BigInt(v));
    else b.writeBigUInt64BE(BigInt(v));
    return b;
  }

  request(opcode: number, nodeid: number | bigint, args: Buffer, opts: { len?: number; outCap?: number } = {}): Buffer {
    const hdr = Buffer.concat([this.u32(40 + args.length), this.u32(opcode), this.u64(this.unique++), this.u64(nodeid), this.u32(0), this.u32(0), this.u32(1), this.u32(0)]);
    const msg = Buffer.concat([hdr, args]);
    if (opts.len !== undefined) msg.set(this.u32(opts.len), 0);
    const inb = Buffer.alloc(msg.length + 64);
    msg.copy(inb);
    const out = Buffer.alloc(1 << 17);
    const n = this.server.handle(inb, msg.length, out, opts.outCap ?? out.length);
    return out.subarray(0, n);
  }

  /** The reply's errno (0 on success) after checking its header. */
  errno(reply: Buffer): number {
    assert.ok(reply.length >= 16, 'a reply header');
    const len = this.le ? reply.readUInt32LE(0) : reply.readUInt32BE(0);
    assert.equal(len, reply.length, 'out header len is the reply length');
    const error = this.le ? reply.readInt32LE(4) : reply.readInt32BE(4);
    return error === 0 ? 0 : -error;
  }
  ok(reply: Buffer): Buffer {
    assert.equal(this.errno(reply), 0, 'success');
    return reply.subarray(16);
  }
  r32(b: Buffer, at: number): number {
    return this.le ? b.readUInt32LE(at) : b.readUInt32BE(at);
  }
  r64(b: Buffer, at: number): number {
    return Number(this.le ? b.readBigUInt64LE(at) : b.readBigUInt64BE(at));
  }

  init(minor = 31): Buffer {
    return this.request(Op.INIT, 0, Buffer.concat([this.u32(7), this.u32(minor), this.u32(65536), this.u32(0xffffffff)]));
  }
  lookup(parent: number, name: string | Buffer): Buffer {
    return this.request(Op.LOOKUP, parent, typeof name === 'string' ? enc(name) : name);
  }
  nodeid(entry: Buffer): number {
    return this.r64(entry, 0);
  }
  open(nodeid: number, flags: number, op: number = Op.OPEN): number {
    return this.r64(this.ok(this.request(op, nodeid, Buffer.concat([this.u32(flags), this.u32(0)]))), 0);
  }
  rw(fh: number, offset: number | bigint, size: number): Buffer {
    return Buffer.concat([this.u64(fh), this.u64(offset), this.u32(size), this.u32(0), this.u64(0), this.u32(0), this.u32(0)]);
  }
  create(parent: number, name: string, mode = 0o644, flags = 2): Buffer {
    return this.request(Op.CREATE, parent, Buffer.concat([this.u32(flags | 0o100), this.u32(mode), this.u32(0), this.u32(0), enc(name)]));
  }
}

describe('FUSE server (virtio-fs 5.11) over a host directory', () => {
  let root: string;
  let dir: string;
  let host: HostFs;
  let w: Wire;
  const made: string[] = [];
  const hosts: HostFs[] = [];

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'vts-fuse-'));
    made.push(root);
    dir = join(root, 'share');
    mkdirSync(dir);
    writeFileSync(join(root, 'secret'), 'outside');
    writeFileSync(join(dir, 'hello.txt'), 'hello world');
    mkdirSync(join(dir, 'sub'));
    symlinkSync('/', join(dir, 'to-root'));
    symlinkSync('../secret', join(dir, 'to-secret'));
    host = new HostFs(dir, { maxInodes: 16, maxHandles: 4 });
    hosts.push(host);
    w = new Wire(new FuseServer(host, { maxWrite: 64 << 10 }));
  });
  after(() => {
    for (const h of hosts) h.close();
    for (const d of made) rmSync(d, { recursive: true, force: true });
  });

  for (const le of [true, false]) {
    const order = le ? 'little-endian' : 'big-endian';
    it(`FUSE_INIT in a ${order} driver's order sets the byte order, minor and max_write; every later reply uses it`, () => {
      w.le = le;
      const r = w.ok(w.init(31));
      assert.equal(w.server.littleEndian, le);
      assert.equal(w.r32(r, 0), 7);
      assert.equal(w.r32(r, 4), 31);
      assert.equal(w.r32(r, 20), 64 << 10, 'max_write');
      const e = w.ok(w.lookup(1, 'hello.txt'));
      assert.equal(w.r64(e, 40 + 8), 11, 'attr.size in the driver order');
      const fh = w.open(w.nodeid(e), 0);
      assert.equal(w.ok(w.request(Op.READ, w.nodeid(e), w.rw(fh, 6, 100))).toString(), 'world');
    });
  }

  it('answers a newer minor with its own (7.31), an old one with itself and the 24-byte reply', () => {
    assert.equal(w.r32(w.ok(w.init(40)), 4), 31);
    const w2 = new Wire(new FuseServer(host));
    const r = w2.ok(w2.init(22));
    assert.equal(r.length, 24);
    assert.equal(w2.r32(r, 4), 22);
  });

  it('refuses requests before INIT (EIO) and a major other than 7 (EPROTO)', () => {
    assert.equal(w.errno(w.lookup(1, 'hello.txt')), Errno.EIO);
    assert.equal(w.errno(w.request(Op.INIT, 0, Buffer.concat([w.u32(8), w.u32(0), w.u32(0), w.u32(0)]))), Errno.EPROTO);
  });

  describe('after INIT', () => {
    beforeEach(() => {
      w.ok(w.init());
    });

    it('unknown and unimplemented opcodes get ENOSYS', () => {
      assert.equal(w.errno(w.request(9999, 1, Buffer.alloc(0))), Errno.ENOSYS);
      assert.equal(w.errno(w.request(Op.IOCTL, 1, Buffer.alloc(32))), Errno.ENOSYS);
      assert.equal(w.errno(w.request(Op.SETUPMAPPING, 1, Buffer.alloc(40))), Errno.ENOSYS, 'no DAX window');
      assert.equal(w.errno(w.request(Op.BMAP, 1, Buffer.alloc(16))), Errno.ENOSYS);
    });

    it('a header length that disagrees with the request, or a header cut short, gets EINVAL', () => {
      assert.equal(w.errno(w.request(Op.GETATTR, 1, Buffer.alloc(16), { len: 41 })), Errno.EINVAL);
      assert.equal(w.errno(w.request(Op.GETATTR, 1, Buffer.alloc(16), { len: 1 << 30 })), Errno.EINVAL);
      const out = Buffer.alloc(64);
      assert.equal(w.server.handle(Buffer.alloc(8), 8, out, 64), 16);
      assert.equal(out.readInt32LE(4), -Errno.EINVAL);
    });

    it('arguments shorter than the operation needs get EINVAL (no read past the request)', () => {
      assert.equal(w.errno(w.request(Op.READ, 1, Buffer.alloc(8))), Errno.EINVAL);
      assert.equal(w.errno(w.request(Op.SETATTR, 1, Buffer.alloc(40))), Errno.EINVAL);
    });

    it('names: no terminator, a slash, empty, or over 255 bytes are refused', () => {
      assert.equal(w.errno(w.lookup(1, Buffer.from('hello.txt'))), Errno.EINVAL, 'no NUL');
      assert.equal(w.errno(w.lookup(1, 'sub/../../secret')), Errno.EINVAL, 'a slash');
      assert.equal(w.errno(w.lookup(1, '')), Errno.EINVAL, 'empty');
      assert.equal(w.errno(w.lookup(1, 'x'.repeat(256))), Errno.ENAMETOOLONG);
      assert.equal(w.errno(w.create(1, '..')), Errno.EINVAL, 'CREATE of ..');
    });

    it('.. of the shared folder is refused; . and .. below it stay inside', () => {
      assert.equal(w.errno(w.lookup(1, '..')), Errno.EACCES);
      const sub = w.nodeid(w.ok(w.lookup(1, 'sub')));
      assert.equal(w.nodeid(w.ok(w.lookup(sub, '.'))), sub);
      assert.equal(w.nodeid(w.ok(w.lookup(sub, '..'))), 1, '.. of sub is the root inode');
    });

    it('symlinks are never followed: a link to / is a symlink inode, not opened, not walked through', () => {
      const e = w.ok(w.lookup(1, 'to-root'));
      assert.equal(w.r32(e, 40 + 60) & 0o170000, S_IFLNK);
      const id = w.nodeid(e);
      assert.equal(w.errno(w.request(Op.OPEN, id, Buffer.concat([w.u32(0), w.u32(0)]))), Errno.ELOOP);
      assert.equal(w.errno(w.lookup(id, 'etc')), Errno.ENOTDIR);
      assert.equal(w.errno(w.request(Op.OPENDIR, id, Buffer.alloc(8))), Errno.ENOTDIR);
      const s = w.nodeid(w.ok(w.lookup(1, 'to-secret')));
      assert.equal(w.errno(w.request(Op.OPEN, s, Buffer.alloc(8))), Errno.ELOOP);
      assert.equal(w.errno(w.request(Op.SETATTR, s, Buffer.concat([w.u32(1), Buffer.alloc(84)]))), Errno.EPERM, 'no chmod through a symlink');
      assert.equal(w.errno(w.create(1, 'to-secret', 0o666, 1 | 0o1000)), Errno.ELOOP, 'CREATE does not follow a symlink (O_TRUNC would empty the target)');
      assert.equal(w.errno(w.request(Op.MKDIR, 1, Buffer.concat([w.u32(0o755), w.u32(0), enc('to-secret')]))), Errno.EEXIST);
      w.ok(w.request(Op.UNLINK, 1, enc('to-secret')));
      assert.equal(readFileSync(join(root, 'secret'), 'utf8'), 'outside', 'the target outside is untouched');
      assert.equal(existsSync(join(dir, 'to-secret')), false, 'the link itself was removed');
    });

    it('a directory swapped for a symlink after LOOKUP: the pinned directory is still used', () => {
      const sub = w.nodeid(w.ok(w.lookup(1, 'sub')));
      // The host (or a racer) renames sub away and plants a symlink to / in its place.
      rmSync(join(dir, 'sub'), { recursive: true });
      symlinkSync('/', join(dir, 'sub'));
      assert.equal(w.errno(w.lookup(sub, 'etc')), Errno.ENOENT, 'the lookup is in the removed directory, not /');
    });

    it('a nodeid never looked up, or an fh never opened, is refused (ENOENT, EBADF), huge ids too', () => {
      assert.equal(w.errno(w.request(Op.GETATTR, 777, Buffer.alloc(16))), Errno.ENOENT);
      assert.equal(w.errno(w.request(Op.GETATTR, 0xffff_ffff_ffff_ffffn, Buffer.alloc(16))), Errno.ENOENT);
      assert.equal(w.errno(w.request(Op.READ, 1, w.rw(42, 0, 10))), Errno.EBADF);
      assert.equal(w.errno(w.request(Op.RELEASE, 1, Buffer.alloc(24))), Errno.EBADF);
    });

    it('READ: offsets past 2^53 are refused, sizes bounded by max_write and by the reply buffer', () => {
      const e = w.ok(w.lookup(1, 'hello.txt'));
      const id = w.nodeid(e);
      const fh = w.open(id, 0);
      assert.equal(w.errno(w.request(Op.READ, id, w.rw(fh, 1n << 63n, 10))), Errno.EINVAL);
      writeFileSync(join(dir, 'big'), Buffer.alloc(200 << 10, 1));
      const big = w.nodeid(w.ok(w.lookup(1, 'big')));
      const bfh = w.open(big, 0);
      assert.equal(w.ok(w.request(Op.READ, big, w.rw(bfh, 0, 1 << 30))).length, 64 << 10, 'max_write bounds a READ');
      assert.equal(w.ok(w.request(Op.READ, big, w.rw(bfh, 0, 4096), { outCap: 16 + 100 })).length, 100, 'the driver buffer bounds it');
      assert.equal(w.request(Op.READ, big, w.rw(bfh, 0, 4096), { outCap: 15 }).length, 0, 'no room for a header: no reply');
    });

    it('CREATE, WRITE, FSYNC, FLUSH, GETATTR by fh, SETATTR size and mode, RELEASE reach the host file', () => {
      const r = w.ok(w.create(1, 'new.bin', 0o600));
      const id = w.nodeid(r);
      const fh = w.r64(r, 128);
      const data = Buffer.alloc(5000, 0xab);
      const wr = w.ok(w.request(Op.WRITE, id, Buffer.concat([w.rw(fh, 10, data.length), data])));
      assert.equal(w.r32(wr, 0), data.length);
      assert.equal(w.errno(w.request(Op.WRITE, id, Buffer.concat([w.rw(fh, 0, data.length + 1), data]))), Errno.EINVAL, 'size beyond the data');
      assert.equal(w.errno(w.request(Op.WRITE, id, Buffer.concat([w.rw(fh, 1n << 62n, 1), Buffer.alloc(1)]))), Errno.EFBIG);
      w.ok(w.request(Op.FSYNC, id, Buffer.concat([w.u64(fh), w.u32(1), w.u32(0)])));
      w.ok(w.request(Op.FLUSH, id, Buffer.concat([w.u64(fh), Buffer.alloc(16)])));
      const ga = w.ok(w.request(Op.GETATTR, id, Buffer.concat([w.u32(1), w.u32(0), w.u64(fh)])));
      assert.equal(w.r64(ga, 16 + 8), 5010);
      // SETATTR: FATTR_SIZE | FATTR_MODE.
      const set = Buffer.alloc(88);
      set.set(w.u32(1 | 8), 0);
      set.set(w.u64(100), 16);
      set.set(w.u32(0o640), 68);
      const sa = w.ok(w.request(Op.SETATTR, id, set));
      assert.equal(w.r64(sa, 16 + 8), 100);
      w.ok(w.request(Op.RELEASE, id, Buffer.concat([w.u64(fh), Buffer.alloc(16)])));
      const st = statSync(join(dir, 'new.bin'));
      assert.equal(st.size, 100);
      assert.equal(st.mode & 0o777, 0o640);
      assert.deepEqual(readFileSync(join(dir, 'new.bin')).subarray(10, 100), data.subarray(0, 90));
      assert.equal(w.errno(w.create(1, 'new.bin', 0o600, 2 | 0o200)), Errno.EEXIST, 'O_EXCL on an existing name');
      execFileSync('mkfifo', [join(dir, 'fifo')]);
      // A FIFO under the name: open(2) must not block the device (no reader: ENXIO), nor open it.
      assert.equal(w.errno(w.create(1, 'fifo', 0o600, 1)), 6, 'O_WRONLY: ENXIO, not a blocked open');
      assert.equal(w.errno(w.create(1, 'fifo', 0o600, 2)), Errno.EINVAL, 'O_RDWR: opened without blocking, then refused');
      assert.equal(host.handleCount, 0);
    });

    it('MKDIR, RENAME across directories, UNLINK, RMDIR, STATFS', () => {
      const d = w.nodeid(w.ok(w.request(Op.MKDIR, 1, Buffer.concat([w.u32(0o755), w.u32(0), enc('d')]))));
      assert.ok(statSync(join(dir, 'd')).isDirectory());
      w.ok(w.request(Op.RENAME, 1, Buffer.concat([w.u64(d), enc('hello.txt'), enc('moved.txt')])));
      assert.equal(readFileSync(join(dir, 'd/moved.txt'), 'utf8'), 'hello world');
      assert.equal(w.errno(w.request(Op.RENAME, 1, Buffer.concat([w.u64(d), enc('x'), Buffer.from('y')]))), Errno.EINVAL, 'second name unterminated');
      assert.equal(w.errno(w.request(Op.RMDIR, 1, enc('d'))) > 0, true, 'a non-empty directory stays');
      w.ok(w.request(Op.UNLINK, d, enc('moved.txt')));
      w.ok(w.request(Op.RMDIR, 1, enc('d')));
      assert.equal(existsSync(join(dir, 'd')), false);
      const s = w.ok(w.request(Op.STATFS, 1, Buffer.alloc(0)));
      assert.ok(w.r64(s, 0) > 0 && w.r32(s, 40) > 0, 'blocks and bsize');
    });

    it('READDIR and READDIRPLUS list the snapshot from an offset; PLUS looks each entry up', () => {
      const fh = w.open(1, 0, Op.OPENDIR);
      const names = (b: Buffer, plus: boolean): string[] => {
        const out: string[] = [];
        for (let p = 0; p < b.length; ) {
          const d = plus ? p + 128 : p;
          const n = w.r32(b, d + 16);
          out.push(b.subarray(d + 24, d + 24 + n).toString());
          p = d + ((24 + n + 7) & ~7);
        }
        return out;
      };
      const all = names(w.ok(w.request(Op.READDIR, 1, w.rw(fh, 0, 4096))), false);
      assert.deepEqual([...all].sort(), ['.', '..', 'hello.txt', 'sub', 'to-root', 'to-secret']);
      assert.deepEqual(names(w.ok(w.request(Op.READDIR, 1, w.rw(fh, 2, 4096))), false), all.slice(2), 'from offset 2');
      assert.equal(names(w.ok(w.request(Op.READDIR, 1, w.rw(fh, 0, 40))), false).length, 1, 'as many as fit');
      const before = host.inodeCount;
      const plus = w.ok(w.request(Op.READDIRPLUS, 1, w.rw(fh, 0, 4096)));
      assert.deepEqual(names(plus, true), all);
      assert.equal(host.inodeCount, before + 4, 'four entries looked up (not . and ..)');
      w.ok(w.request(Op.RELEASEDIR, 1, Buffer.concat([w.u64(fh), Buffer.alloc(16)])));
      assert.equal(host.handleCount, 0);
    });

    it('FORGET and BATCH_FORGET take lookups back, a forget for more than was looked up drops the inode, no reply', () => {
      const id = w.nodeid(w.ok(w.lookup(1, 'hello.txt')));
      w.ok(w.lookup(1, 'hello.txt'));
      assert.equal(host.inode(id).nlookup, 2);
      assert.equal(w.request(Op.FORGET, id, w.u64(1)).length, 0, 'FORGET has no reply');
      assert.equal(host.inode(id).nlookup, 1);
      const sub = w.nodeid(w.ok(w.lookup(1, 'sub')));
      const batch = Buffer.concat([w.u32(3), w.u32(0), w.u64(id), w.u64(1), w.u64(sub), w.u64(1n << 60n), w.u64(1), w.u64(5)]);
      assert.equal(w.request(Op.BATCH_FORGET, 0, batch).length, 0);
      assert.equal(host.inodeCount, 1, 'only the root remains (it is never forgotten)');
      assert.equal(w.request(Op.BATCH_FORGET, 0, Buffer.concat([w.u32(1000), w.u32(0)])).length, 0, 'a count beyond the request is ignored');
      assert.equal(w.errno(w.request(Op.GETATTR, id, Buffer.alloc(16))), Errno.ENOENT, 'a forgotten nodeid is unknown');
    });

    it('the inode and handle tables are bounded: ENFILE, not unbounded host descriptors', () => {
      for (let i = 0; i < 20; i++) writeFileSync(join(dir, `f${i}`), '');
      const errs = Array.from({ length: 20 }, (_, i) => w.errno(w.lookup(1, `f${i}`)));
      assert.equal(host.inodeCount, 16);
      assert.equal(errs.filter((e) => e === Errno.ENFILE).length, 5);
      const id = w.nodeid(w.ok(w.lookup(1, 'f0')));
      for (let i = 0; i < 4; i++) w.open(id, 0);
      assert.equal(w.errno(w.request(Op.OPEN, id, Buffer.alloc(8))), Errno.ENFILE);
    });

    it('random requests (valid headers, random opcodes and arguments, both orders) never throw and always answer in bounds', () => {
      let seed = 12345;
      const rnd = (n: number): number => {
        seed = (Math.imul(seed, 1103515245) + 12345) & 0x7fffffff;
        return Math.floor((seed / 0x8000_0000) * n); // the high bits: an LCG's low bits cycle
      };
      // DESTROY left out: after it every request is EIO until INIT, which would hide the rest.
      const ops = [...Object.values(Op).filter((o) => o !== Op.DESTROY), 0, 7, 99, 0xffffffff];
      const names = ['hello.txt', 'sub', 'to-root', '..', '.', 'x', 'sub/..', ''];
      const out = Buffer.alloc(4096);
      let served = 0;
      const errs = new Map<number, number>();
      for (let i = 0; i < 3000; i++) {
        const args = Buffer.alloc(rnd(200));
        for (let k = 0; k < args.length; k++) args[k] = rnd(4) === 0 ? rnd(256) : rnd(3);
        if (rnd(2) === 0) {
          const n = Buffer.from(`${names[rnd(names.length)]}\0`);
          n.copy(args, Math.min(args.length, rnd(48)));
        }
        const op = ops[rnd(ops.length)]!;
        const nodeid = rnd(6);
        const hdr = Buffer.alloc(40);
        const le = w.server.littleEndian;
        const len = 40 + args.length + (rnd(10) === 0 ? rnd(5) - 2 : 0);
        if (le) {
          hdr.writeUInt32LE(len >>> 0, 0);
          hdr.writeUInt32LE(op >>> 0, 4);
          hdr.writeBigUInt64LE(BigInt(nodeid), 16);
        } else {
          hdr.writeUInt32BE(len >>> 0, 0);
          hdr.writeUInt32BE(op >>> 0, 4);
          hdr.writeBigUInt64BE(BigInt(nodeid), 16);
        }
        const msg = Buffer.concat([hdr, args]);
        const cap = rnd(8) === 0 ? rnd(40) : out.length;
        const n = w.server.handle(msg, msg.length, out, cap);
        assert.ok(n === 0 || (n >= 16 && n <= cap), `reply of ${n} bytes within ${cap}`);
        if (n > 0) assert.equal(w.server.littleEndian ? out.readUInt32LE(0) : out.readUInt32BE(0), n, 'out header len');
        if (n > 0 && out.readInt32LE(4) === 0) served++;
        errs.set(n > 0 ? out.readInt32LE(4) : 1, (errs.get(n > 0 ? out.readInt32LE(4) : 1) ?? 0) + 1);
      }
      assert.ok(served >= 20, `some random requests succeeded (${served}), so the operations were reached ${JSON.stringify([...errs])}`);
      assert.ok(host.inodeCount <= 16 && host.handleCount <= 4);
      assert.equal(readFileSync(join(root, 'secret'), 'utf8'), 'outside', 'nothing outside the share changed');
    });

    it('DESTROY closes every handle and forgets every inode; INIT is needed again', () => {
      const id = w.nodeid(w.ok(w.lookup(1, 'hello.txt')));
      w.open(id, 0);
      w.ok(w.request(Op.DESTROY, 0, Buffer.alloc(0)));
      assert.equal(host.inodeCount, 1);
      assert.equal(host.handleCount, 0);
      assert.equal(w.errno(w.lookup(1, 'hello.txt')), Errno.EIO);
    });
  });
});
