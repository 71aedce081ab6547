/**
 * `virtio-ts blk --aio io_uring --direct --write-through` serving a real Linux guest (q35,
 * QEMU 7.2 vhost-user-blk-pci): the guest writes patterns with O_DIRECT at scattered offsets
 * and sizes, reads them back with O_DIRECT and reports their sha256; the guest sees a
 * writethrough cache (WCE 0); the back-end process holds an io_uring and the image open with
 * O_DIRECT and O_DSYNC (from /proc); after power-off the host compares the image byte for byte.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile, readdir, readlink } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  bootGuest,
  ensureGuestDeps,
  makeRawImage,
  makeTempDir,
  repoRoot,
  startProcess,
  waitForPath,
  withConsole,
  type ManagedProcess,
  type TempDir,
} from './support/guest.js';

const deps = ensureGuestDeps();
const skip = deps.ok ? false : deps.reason;

const CLI = join(repoRoot, 'dist', 'src', 'cli', 'main.js');
const IMAGE_SIZE = 8 << 20;
const O_DSYNC = 0o10000;
const O_DIRECT = 0o40000;

/** Writes: [offset in 4 KiB blocks, length in blocks, pattern seed]. */
const WRITES: readonly (readonly [number, number, number])[] = [
  [16, 1, 1],
  [40, 16, 2],
  [300, 64, 3],
  [1023, 2, 4],
  [1800, 8, 5],
];

function pattern(len: number, seed: number): Buffer {
  const b = Buffer.alloc(len);
  let x = (seed * 0x9e3779b1) >>> 0 || 1;
  for (let i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** What the back-end process holds open: whether an io_uring, and the flags of the image's fds. */
async function backendFds(pid: number, image: string): Promise<{ uring: boolean; imageFlags: number[] }> {
  let uring = false;
  const imageFlags: number[] = [];
  for (const fd of await readdir(`/proc/${pid}/fd`)) {
    let target = '';
    try {
      target = await readlink(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue;
    }
    if (target === 'anon_inode:[io_uring]') uring = true;
    if (target === image) {
      const m = /flags:\s+([0-7]+)/.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'));
      if (m) imageFlags.push(parseInt(m[1]!, 8));
    }
  }
  return { uring, imageFlags };
}

const script =
  `
wait_path /dev/vda || fail "no /dev/vda"
result write_cache "$(cat /sys/block/vda/queue/write_cache)"
result size_sectors "$(cat /sys/block/vda/size)"
` +
  WRITES.map(
    ([at, n, seed]) => `
dd if=/p${seed}.bin of=/dev/vda bs=4096 seek=${at} count=${n} oflag=direct conv=notrunc 2>/tmp/dd.err || fail "write ${seed}: $(cat /tmp/dd.err)"`,
  ).join('') +
  `
` +
  WRITES.map(
    ([at, n, seed]) => `
dd if=/dev/vda of=/tmp/r${seed}.bin bs=4096 skip=${at} count=${n} iflag=direct 2>/tmp/dd.err || fail "read ${seed}: $(cat /tmp/dd.err)"
result sha_${seed} "$(sha256sum /tmp/r${seed}.bin | cut -d' ' -f1)"`,
  ).join('') +
  `
blockdev --flushbufs /dev/vda || fail "flush"
`;

describe('virtio-ts blk on io_uring with O_DIRECT and write-through: a real guest (QEMU 7.2, q35)', { skip, timeout: 300_000 }, () => {
  let tmp: TempDir;
  before(async () => {
    tmp = await makeTempDir('vts-uring-guest-');
  });
  after(async () => {
    await tmp?.remove();
  });

  it('O_DIRECT writes and reads reach the image (sha256), WCE 0, the back-end on io_uring with O_DIRECT|O_DSYNC', async (t) => {
    const img = tmp.file('uring.img');
    await makeRawImage(img, IMAGE_SIZE);
    const sock = tmp.file('uring.sock');
    let seen: { uring: boolean; imageFlags: number[] } | null = null;
    let be: ManagedProcess | null = null;
    be = startProcess(process.execPath, [CLI, 'blk', '--socket-path', sock, '--image', img, '--aio', 'io_uring', '--direct', '--write-through']);
    try {
      await waitForPath(sock, { process: be, timeoutMs: 15_000 });
      const pid = be.child.pid!;
      const patterns = WRITES.map(([, n, seed]) => ({ path: `/p${seed}.bin`, data: pattern(n * 4096, seed) }));
      const res = await bootGuest({
        machine: 'q35',
        modules: ['virtio_blk'],
        script,
        extraFiles: patterns,
        qemuArgs: ['-chardev', `socket,id=c0,path=${sock}`, '-device', 'vhost-user-blk-pci,chardev=c0,disable-legacy=on,num-queues=1'],
        memfd: true,
        timeoutMs: 90_000,
      }).catch((e: unknown) => {
        throw new Error(`${(e as Error).message}\n----- virtio-ts blk -----\n${be!.output()}`, { cause: e });
      });
      // The back-end opened the image and its ring at start and keeps them for every front-end.
      seen = await backendFds(pid, img);
      t.diagnostic(`/init at ${res.bootMs.toFixed(0)} ms, QEMU exited at ${res.totalMs.toFixed(0)} ms`);
      const ended = await be.stop(5000);
      assert.deepEqual(ended, { code: 0, signal: null }, `back-end ends cleanly on SIGTERM\n${be.output()}`);
      const image = await readFile(img);
      await withConsole(res, be.output(), () => {
        assert.equal(res.results.get('size_sectors'), String(IMAGE_SIZE / 512));
        assert.equal(res.results.get('write_cache'), 'write through', 'WCE 0: the guest sees a writethrough cache');
        for (const [, n, seed] of WRITES) assert.equal(res.results.get(`sha_${seed}`), sha256(pattern(n * 4096, seed)), `read back pattern ${seed}`);
        assert.match(be!.output(), /aio=io_uring, O_DIRECT, write-through/);
        assert.ok(seen !== null, 'the back-end was inspected');
        const s = seen as { uring: boolean; imageFlags: number[] };
        assert.ok(s.uring, 'the back-end holds an io_uring');
        assert.ok(s.imageFlags.some((f) => (f & O_DIRECT) !== 0 && (f & O_DSYNC) !== 0), `an image fd with O_DIRECT|O_DSYNC: ${s.imageFlags.map((f) => f.toString(8)).join(',')}`);
        const expected = Buffer.alloc(IMAGE_SIZE);
        for (const [at, n, seed] of WRITES) pattern(n * 4096, seed).copy(expected, at * 4096);
        const diff = image.findIndex((b, i) => b !== expected[i]);
        assert.equal(diff, -1, `image differs from the expected bytes at offset ${diff}`);
      });
    } finally {
      await be.stop();
    }
  });
});
