/**
 * One FUSE workload through FsDriver, checked against the host directory it is served from:
 * the same steps run against virtio-ts fs and against QEMU's C virtiofsd (so both back-ends are
 * held to the same results). Returns the operations each back-end refused with ENOSYS.
 */
import assert from 'node:assert/strict';
import { existsSync, lstatSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { FuseReplyError } from '../../src/devices/fs/fs-driver-types.js';
import type { FsDriver } from '../../src/devices/fs/fs-driver.js';

const ROOT = 1n;
const O_RDWR = 2;
const ENOENT = 2;
const EEXIST = 17;
const ENOSYS = 38;

async function optional(name: string, skipped: string[], f: () => Promise<void>): Promise<void> {
  try {
    await f();
  } catch (e) {
    if (e instanceof FuseReplyError && e.errno === ENOSYS) skipped.push(name);
    else throw e;
  }
}

export async function fsDriverWorkload(fs: FsDriver, share: string): Promise<string[]> {
  const skipped: string[] = [];
  await fs.init();
  assert.ok(fs.minor >= 27 && fs.maxWrite >= 4096, `INIT: 7.${fs.minor}, max_write ${fs.maxWrite}`);
  const hello = await fs.lookup(ROOT, 'hello.txt');
  assert.equal(hello.attr.size, statSync(join(share, 'hello.txt')).size);
  assert.equal(hello.attr.ino, statSync(join(share, 'hello.txt')).ino);
  await assert.rejects(fs.lookup(ROOT, 'missing'), (e: unknown) => e instanceof FuseReplyError && e.errno === ENOENT);

  // CREATE, WRITE, READ back, SETATTR (size, mode, times), GETATTR by handle, FSYNC, FLUSH.
  const { entry, fh } = await fs.create(ROOT, 'made.bin', 0o100640, O_RDWR);
  const data = Buffer.alloc(200_000);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 0xff;
  for (let off = 0; off < data.length; off += 65536) assert.ok((await fs.write(entry.nodeid, fh, off, data.subarray(off, off + 65536))) > 0);
  assert.deepEqual(Buffer.from(await fs.read(entry.nodeid, fh, 1000, 5000)), data.subarray(1000, 6000));
  await fs.fsync(entry.nodeid, fh, true);
  await fs.flush(entry.nodeid, fh);
  const a = await fs.setattr(entry.nodeid, { size: 150_000, mode: 0o600, mtime: [1_600_000_000, 123_000_000] });
  assert.equal(a.size, 150_000);
  assert.equal(a.mode & 0o7777, 0o600);
  const st = statSync(join(share, 'made.bin'));
  assert.equal(st.size, 150_000);
  assert.equal(st.mode & 0o7777, 0o600);
  assert.equal(Math.floor(st.mtimeMs / 1000), 1_600_000_000);
  assert.equal((await fs.getattr(entry.nodeid, fh)).size, 150_000);
  assert.deepEqual(readFileSync(join(share, 'made.bin')), data.subarray(0, 150_000));
  await optional('FALLOCATE', skipped, async () => {
    await fs.fallocate(entry.nodeid, fh, 0, 300_000);
    assert.equal(statSync(join(share, 'made.bin')).size, 300_000);
  });
  await optional('LSEEK', skipped, async () => {
    assert.equal(await fs.lseek(entry.nodeid, fh, 0, 3), 0, 'SEEK_DATA at 0');
  });
  await fs.release(entry.nodeid, fh);

  // Directories, symlinks, hard links, renames.
  const d = await fs.mkdir(ROOT, 'dir', 0o750);
  assert.ok(lstatSync(join(share, 'dir')).isDirectory());
  const l = await fs.symlink(d.nodeid, 'link', '../hello.txt');
  assert.equal(readlinkSync(join(share, 'dir', 'link')), '../hello.txt');
  assert.equal(await fs.readlink(l.nodeid), '../hello.txt');
  const hard = await fs.link(hello.nodeid, d.nodeid, 'hard.txt');
  assert.equal(hard.attr.nlink, 2);
  assert.equal(statSync(join(share, 'dir', 'hard.txt')).ino, statSync(join(share, 'hello.txt')).ino);
  await fs.rename(ROOT, 'made.bin', d.nodeid, 'moved.bin');
  assert.ok(existsSync(join(share, 'dir', 'moved.bin')) && !existsSync(join(share, 'made.bin')));
  await optional('RENAME2', skipped, async () => {
    await assert.rejects(fs.rename(d.nodeid, 'moved.bin', d.nodeid, 'hard.txt', 1), (e: unknown) => e instanceof FuseReplyError && e.errno === EEXIST);
  });
  const names = (await fs.readdir(d.nodeid)).map((e) => e.name).sort();
  assert.deepEqual(names, ['.', '..', 'hard.txt', 'link', 'moved.bin']);
  const plus = await fs.readdir(d.nodeid, true);
  const moved = plus.find((e) => e.name === 'moved.bin');
  assert.ok(moved?.entry !== undefined && moved.entry.attr.size === 300_000 - (skipped.includes('FALLOCATE') ? 150_000 : 0));
  // READDIRPLUS looked every entry up: those lookups are the driver's to give back.
  await fs.batchForget(plus.filter((e) => e.entry !== undefined && e.entry.nodeid !== 0n).map((e) => ({ nodeid: e.entry!.nodeid, nlookup: 1 })));
  const s = await fs.statfs(ROOT);
  assert.ok(s.blocks > 0 && s.bsize > 0);

  // Removal, then the lookups are given back (FORGET, BATCH_FORGET over hiprio).
  await fs.unlink(d.nodeid, 'moved.bin');
  await fs.unlink(d.nodeid, 'link');
  await fs.unlink(d.nodeid, 'hard.txt');
  await fs.rmdir(ROOT, 'dir');
  assert.ok(!existsSync(join(share, 'dir')));
  await fs.forget(l.nodeid, 1);
  await fs.batchForget([
    { nodeid: entry.nodeid, nlookup: 1 },
    { nodeid: d.nodeid, nlookup: 1 },
    { nodeid: hello.nodeid, nlookup: 2 },
  ]);
  // The session still answers after the hiprio requests.
  assert.equal((await fs.lookup(ROOT, 'hello.txt')).attr.size, statSync(join(share, 'hello.txt')).size);
  return skipped;
}
