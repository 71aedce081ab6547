/**
 * P9Server on hand-built messages: version and msize negotiation, malformed input (sizes that
 * disagree with the chain, strings past the end, unknown fids and types, long walks, bad
 * names), escapes (`..` at the root, planted symlinks), bounds (fids, reply room), read-only
 * shares, locks, and random messages that must never throw or reach outside the share.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { P9_NOTAG, P9Errno, P9LockStatus, P9LockType, P9QidType, P9Type } from '../../spec/9p.js';
import { Rig, message, removeRigDirs, s } from './p9-test-support.js';

after(removeRigDirs);

describe('P9Server: version and msize', () => {
  it('msize is the smaller of the two; an unknown version answers "unknown"; below 4096 is refused', () => {
    const r = new Rig();
    const body = r.ok(P9Type.TVERSION, (w) => {
      w.u32(1 << 20);
      w.str(s('9P2000.L'));
    });
    assert.equal(body.readUInt32LE(0), 8192);
    assert.equal(body.subarray(6).toString(), '9P2000.L');
    assert.equal(r.server.msize, 8192);
    const u = r.ok(P9Type.TVERSION, (w) => {
      w.u32(4096);
      w.str(s('9P2000.u'));
    });
    assert.equal(u.subarray(6).toString(), 'unknown');
    assert.equal(r.err(P9Type.TATTACH, (w) => w.u32(1)), P9Errno.EPROTO, 'no session after an unknown version');
    assert.equal(r.err(P9Type.TVERSION, (w) => {
      w.u32(1024);
      w.str(s('9P2000.L'));
    }), P9Errno.EINVAL);
  });

  it('requests before Tversion are refused (EPROTO); Tversion ends the session (fids gone)', () => {
    const r = new Rig();
    assert.equal(r.err(P9Type.TCLUNK, (w) => w.u32(1)), P9Errno.EPROTO);
    r.session();
    assert.equal(r.server.fids.size, 1);
    r.version();
    assert.equal(r.server.fids.size, 0);
    assert.equal(r.err(P9Type.TCLUNK, (w) => w.u32(1)), P9Errno.EBADF);
  });
});

describe('P9Server: malformed messages are answered with Rlerror, never a throw', () => {
  it('a size field that disagrees with the chain, a message shorter than its header, fields past the end', () => {
    const r = new Rig().session();
    const m = message(P9Type.TCLUNK, 7, (w) => w.u32(1));
    const longer = r.raw(m, m.length + 3)!;
    assert.equal(longer.errno, P9Errno.EINVAL);
    assert.equal(longer.tag, 7, 'answered with the request tag');
    assert.equal(r.raw(m.subarray(0, 5), 5)!.errno, P9Errno.EINVAL);
    assert.equal(r.raw(m.subarray(0, 5), 5)!.tag, P9_NOTAG, 'no tag to answer: NOTAG');
    // The string claims 200 bytes, the message holds 3.
    const bad = message(P9Type.TWALK, 8, (w) => {
      w.u32(1);
      w.u32(2);
      w.u16(1);
      w.u16(200);
      w.u8(0x61);
      w.u8(0x62);
      w.u8(0x63);
    });
    assert.equal(r.raw(bad)!.errno, P9Errno.EINVAL);
    assert.equal(r.server.fids.size, 1, 'nothing was made');
    // A message longer than msize.
    const big = Buffer.alloc(9000);
    big.writeUInt32LE(9000, 0);
    big[4] = P9Type.TWRITE;
    assert.equal(r.raw(big)!.errno, P9Errno.EINVAL);
  });

  it('unknown fid (EBADF), unknown or R-message type (ENOSYS), Tauth (ENOSYS), a fid already in use', () => {
    const r = new Rig().session();
    assert.equal(r.err(P9Type.TGETATTR, (w) => {
      w.u32(99);
      w.u64(0x7ff);
    }), P9Errno.EBADF);
    assert.equal(r.err(200, () => {}), P9Errno.ENOSYS);
    assert.equal(r.err(P9Type.RREAD, () => {}), P9Errno.ENOSYS);
    assert.equal(r.err(P9Type.TAUTH, (w) => w.u32(5)), P9Errno.ENOSYS);
    assert.equal(r.walk(1, 1, []).errno, null, 'walking a fid onto itself is allowed');
    r.ok(P9Type.TWALK, (w) => {
      w.u32(1);
      w.u32(2);
      w.u16(0);
    });
    assert.equal(r.walk(1, 2, []).errno, P9Errno.EBADF, 'newfid in use');
  });

  it('a walk of more than 16 names, names with "/", empty names; `..` at the root stays at the root', () => {
    const r = new Rig().session();
    assert.equal(r.walk(1, 2, new Array<string>(17).fill('sub')).errno, P9Errno.EINVAL);
    assert.equal(r.walk(1, 2, ['sub/../..']).errno, P9Errno.EINVAL);
    assert.equal(r.walk(1, 2, ['']).errno, P9Errno.EINVAL);
    const up = r.walk(1, 2, ['..', '..', 'a.txt']);
    assert.equal(up.errno, null);
    assert.equal(up.body.readUInt16LE(0), 3);
    const root = r.walk(1, 3, []);
    assert.equal(root.errno, null);
    // The qid of `..` at the root is the root's.
    const rootQid = r.ok(P9Type.TGETATTR, (w) => {
      w.u32(3);
      w.u64(0x7ff);
    }).subarray(8, 21);
    assert.deepEqual(up.body.subarray(2, 15), rootQid);
    // Names with `/` or `..` cannot be created.
    for (const bad of ['..', '.', 'a/b', '']) {
      assert.equal(r.err(P9Type.TMKDIR, (w) => {
        w.u32(1);
        w.str(s(bad));
        w.u32(0o755);
        w.u32(0);
      }), P9Errno.EINVAL, `mkdir "${bad}"`);
    }
    assert.deepEqual(readdirSync(r.dir).sort(), ['a.txt', 'sub']);
  });

  it('a partial walk answers the qids so far and makes no newfid', () => {
    const r = new Rig().session();
    const p = r.walk(1, 2, ['sub', 'nope', 'x']);
    assert.equal(p.errno, null);
    assert.equal(p.body.readUInt16LE(0), 1);
    assert.equal(p.body[2], P9QidType.DIR);
    assert.equal(r.server.fids.has(2), false);
    assert.equal(r.walk(1, 2, ['nope']).errno, P9Errno.ENOENT);
    assert.equal(r.host.inodeCount, 1, 'the lookups of failed walks were given back');
    // An open fid is not walked in place (its handle would no longer be its object's).
    r.walk(1, 3, ['sub']);
    r.ok(P9Type.TLOPEN, (w) => {
      w.u32(3);
      w.u32(0);
    });
    assert.equal(r.walk(3, 3, ['..']).errno, P9Errno.EBADF);
    assert.equal(r.walk(3, 4, ['..']).errno, null, 'into a new fid it is');
  });

  it('planted symlinks are never followed: a walk stops at one (ENOTDIR beyond), open is ELOOP, readlink gives its text', () => {
    const r = new Rig().session();
    symlinkSync('/', join(r.dir, 'to-root'));
    symlinkSync('../secret', join(r.dir, 'to-secret'));
    // The symlink itself is walked to; nothing beyond it (a partial walk of one name, no newfid).
    const through = r.walk(1, 2, ['to-root', 'etc']);
    assert.equal(through.body.readUInt16LE(0), 1);
    assert.equal(through.body[2], P9QidType.SYMLINK);
    assert.equal(r.server.fids.has(2), false);
    r.walk(1, 5, ['to-root']);
    assert.equal(r.walk(5, 6, ['etc']).errno, P9Errno.ENOTDIR);
    assert.equal(r.walk(1, 2, ['to-secret']).errno, null);
    assert.equal(r.err(P9Type.TLOPEN, (w) => {
      w.u32(2);
      w.u32(0);
    }), P9Errno.ELOOP);
    // Readlink gives the text, never the target's content.
    const t = r.ok(P9Type.TREADLINK, (w) => w.u32(2));
    assert.equal(t.subarray(2).toString(), '../secret');
    // Creating through the symlink's name is refused (it exists and is not a regular file).
    r.walk(1, 3, []);
    assert.notEqual(r.send(P9Type.TLCREATE, (w) => {
      w.u32(3);
      w.str(s('to-secret'));
      w.u32(2);
      w.u32(0o644);
      w.u32(0);
    }).errno, null);
    assert.equal(existsSync(join(r.outside, 'secret')), true);
  });
});

describe('P9Server: races with the host', () => {
  it('a directory swapped for a symlink after the walk: creating through the fid stays in the pinned directory', () => {
    const r = new Rig().session();
    assert.equal(r.walk(1, 2, ['sub']).errno, null);
    renameSync(join(r.dir, 'sub'), join(r.dir, 'sub-moved'));
    symlinkSync(r.outside, join(r.dir, 'sub'));
    r.ok(P9Type.TLCREATE, (w) => {
      w.u32(2);
      w.str(s('made.txt'));
      w.u32(2);
      w.u32(0o644);
      w.u32(0);
    });
    assert.equal(existsSync(join(r.dir, 'sub-moved', 'made.txt')), true);
    assert.deepEqual(readdirSync(r.outside).sort(), ['secret', 'share']);
  });

  it('a name swapped under a fid: remove, link and readlink act only if the name is still the fid\'s object', () => {
    const r = new Rig().session();
    symlinkSync('a.txt', join(r.dir, 'ln'));
    assert.equal(r.walk(1, 2, ['ln']).errno, null);
    assert.equal(r.walk(1, 3, ['a.txt']).errno, null);
    // The host replaces both names with other objects.
    rmSync(join(r.dir, 'ln'));
    symlinkSync('/etc/passwd', join(r.dir, 'ln'));
    renameSync(join(r.dir, 'a.txt'), join(r.dir, 'a-moved.txt'));
    writeFileSync(join(r.dir, 'a.txt'), 'another file');
    assert.equal(r.err(P9Type.TREADLINK, (w) => w.u32(2)), P9Errno.ENOENT);
    assert.equal(r.err(P9Type.TLINK, (w) => {
      w.u32(1);
      w.u32(3);
      w.str(s('hard'));
    }), P9Errno.ENOENT);
    assert.equal(r.err(P9Type.TREMOVE, (w) => w.u32(3)), P9Errno.ENOENT);
    assert.deepEqual(readdirSync(r.dir).sort(), ['a-moved.txt', 'a.txt', 'ln', 'sub']);
  });
});

describe('P9Server: bounds', () => {
  it('fids above maxFids are EMFILE; clunk gives them back', () => {
    const r = new Rig({ maxFids: 4 }).session();
    for (let f = 2; f <= 4; f++) assert.equal(r.walk(1, f, ['sub']).errno, null);
    assert.equal(r.walk(1, 5, ['sub']).errno, P9Errno.EMFILE);
    assert.equal(r.host.inodeCount, 2, 'three fids on one object hold one inode');
    for (let f = 2; f <= 4; f++) r.ok(P9Type.TCLUNK, (w) => w.u32(f));
    assert.equal(r.host.inodeCount, 1);
    assert.equal(r.walk(1, 5, ['sub']).errno, null);
  });

  it('no room for an 11-byte Rlerror: nothing written (0); a read and a readdir fit the room given', () => {
    const r = new Rig().session();
    assert.equal(r.raw(message(P9Type.TCLUNK, 1, (w) => w.u32(9)), undefined, 10), null);
    writeFileSync(join(r.dir, 'big'), Buffer.alloc(5000, 1));
    r.walk(1, 2, ['big']);
    r.ok(P9Type.TLOPEN, (w) => {
      w.u32(2);
      w.u32(0);
    });
    const rd = r.raw(message(P9Type.TREAD, 3, (w) => {
      w.u32(2);
      w.u64(0);
      w.u32(5000);
    }), undefined, 100)!;
    assert.equal(rd.body.readUInt32LE(0), 89, 'read clamped to the room');
    for (let i = 0; i < 50; i++) writeFileSync(join(r.dir, `f${i}`), '');
    r.walk(1, 4, []);
    r.ok(P9Type.TLOPEN, (w) => {
      w.u32(4);
      w.u32(0);
    });
    const dir = r.raw(message(P9Type.TREADDIR, 5, (w) => {
      w.u32(4);
      w.u64(0);
      w.u32(8192);
    }), undefined, 200)!;
    assert.equal(dir.errno, null);
    assert.ok(dir.body.readUInt32LE(0) <= 200 - 11);
  });

  it('read-only: every change is EROFS; reads work', () => {
    const r = new Rig({ readOnly: true }).session();
    r.walk(1, 2, ['a.txt']);
    assert.equal(r.err(P9Type.TLOPEN, (w) => {
      w.u32(2);
      w.u32(2);
    }), P9Errno.EROFS);
    r.ok(P9Type.TLOPEN, (w) => {
      w.u32(2);
      w.u32(0);
    });
    assert.equal(r.err(P9Type.TMKDIR, (w) => {
      w.u32(1);
      w.str(s('x'));
      w.u32(0o755);
      w.u32(0);
    }), P9Errno.EROFS);
    assert.equal(r.err(P9Type.TUNLINKAT, (w) => {
      w.u32(1);
      w.str(s('a.txt'));
      w.u32(0);
    }), P9Errno.EROFS);
    assert.deepEqual(readdirSync(r.dir).sort(), ['a.txt', 'sub']);
  });
});

describe('P9Server: locks', () => {
  it('a conflicting lock of another owner is BLOCKED (never waits); getlock reports it; unlock frees it', () => {
    const r = new Rig().session();
    r.walk(1, 2, ['a.txt']);
    const lock = (owner: number, type: number, start: number, length: number): number =>
      r.ok(P9Type.TLOCK, (w) => {
        w.u32(2);
        w.u8(type);
        w.u32(1);
        w.u64(start);
        w.u64(length);
        w.u32(owner);
        w.str(s('c'));
      })[0]!;
    assert.equal(lock(1, P9LockType.WRLCK, 0, 100), P9LockStatus.SUCCESS);
    assert.equal(lock(2, P9LockType.RDLCK, 50, 10), P9LockStatus.BLOCKED);
    assert.equal(lock(2, P9LockType.RDLCK, 100, 0), P9LockStatus.SUCCESS, 'beyond the range');
    const g = r.ok(P9Type.TGETLOCK, (w) => {
      w.u32(2);
      w.u8(P9LockType.WRLCK);
      w.u64(10);
      w.u64(1);
      w.u32(2);
      w.str(s('c'));
    });
    assert.equal(g[0], P9LockType.WRLCK);
    assert.equal(g.readUInt32LE(17), 1, 'the holder proc_id');
    assert.equal(lock(1, P9LockType.UNLCK, 0, 0), P9LockStatus.SUCCESS);
    assert.equal(lock(2, P9LockType.WRLCK, 0, 50), P9LockStatus.SUCCESS);
  });
});

describe('P9Server: random messages', () => {
  it('3,000 random and mutated messages: never a throw, replies within the room, nothing outside the share touched', () => {
    const r = new Rig().session();
    r.walk(1, 2, ['a.txt']);
    let seed = 0x9e3779b9;
    const rand = (n: number): number => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) % n;
    };
    const types = Object.values(P9Type);
    const names = ['..', '.', 'a.txt', 'sub', 'x', '../secret', '/etc', 'sub/..', ''];
    for (let i = 0; i < 3000; i++) {
      const type = types[rand(types.length)]!;
      const m = message(type, rand(0x10000), (w) => {
        const fields = rand(8);
        for (let k = 0; k < fields; k++) {
          const what = rand(4);
          if (what === 0) w.u32(rand(6));
          else if (what === 1) w.str(s(names[rand(names.length)]!));
          else if (what === 2) w.u64(rand(1 << 20));
          else w.u16(rand(4));
        }
      });
      if (rand(4) === 0) m[7 + rand(Math.max(1, m.length - 7))] = rand(256);
      const cap = rand(3) === 0 ? rand(64) : 4096;
      const len = rand(10) === 0 ? m.length + rand(5) - 2 : m.length;
      const reply = r.raw(m.subarray(0, Math.min(m.length, Math.max(0, len))), Math.max(0, len), cap);
      if (reply === null) assert.ok(cap < 11);
    }
    assert.equal(existsSync(join(r.outside, 'secret')), true);
    assert.deepEqual(readdirSync(r.outside).sort(), ['secret', 'share']);
  });
});
