/** The native xattr calls through a pinned O_PATH descriptor (native/xattrs.c). */
import assert from 'node:assert/strict';
import { closeSync, constants, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { PlatformError } from './platform-error.js';
import { XattrFlags, loadXattrs, xattrErrno } from './xattrs.js';

const O_PATH = 0o10000000;
const ENODATA = 61;
const EEXIST = 17;
const EINVAL = 22;

describe('native xattr calls', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vts-xattr-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('set, get (size query first), list, remove on an O_PATH descriptor; errors carry the errno', () => {
    const x = loadXattrs();
    writeFileSync(join(dir, 'f'), 'x');
    const fd = openSync(join(dir, 'f'), O_PATH | constants.O_NOFOLLOW);
    try {
      const name = Buffer.from('user.vts');
      x.set(fd, name, Buffer.from('value!'), 0);
      assert.equal(x.get(fd, name, new Uint8Array(0)), 6);
      const v = Buffer.alloc(6);
      assert.equal(x.get(fd, name, v), 6);
      assert.equal(v.toString(), 'value!');
      const list = Buffer.alloc(x.list(fd, new Uint8Array(0)));
      x.list(fd, list);
      assert.ok(list.toString('latin1').split('\0').includes('user.vts'));
      assert.throws(() => x.set(fd, name, Buffer.from('again'), XattrFlags.CREATE), (e: unknown) => e instanceof PlatformError && xattrErrno(e) === EEXIST);
      x.remove(fd, name);
      assert.throws(() => x.get(fd, name, v), (e: unknown) => e instanceof PlatformError && xattrErrno(e) === ENODATA);
      assert.throws(() => x.get(fd, Buffer.from('user.a\0b'), v), (e: unknown) => e instanceof PlatformError && xattrErrno(e) === EINVAL, 'a name with NUL');
      assert.throws(() => x.get(fd, Buffer.alloc(0), v), (e: unknown) => e instanceof PlatformError && xattrErrno(e) === EINVAL, 'an empty name');
    } finally {
      closeSync(fd);
    }
  });
});
