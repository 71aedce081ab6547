/**
 * IoUring's quiet submissions: completions the kernel posts inside io_uring_enter (a page-cache
 * read) do not signal the ring's eventfd (IORING_CQ_EVENTFD_DISABLED around the call), so the
 * reap right after a submission needs no eventfd read; a completion posted later (an fsync,
 * which the kernel hands to an io-wq worker) still signals it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { IoUring, UringOp, UringPrep, ioUringSupport } from './io-uring.js';
import { loadNativePlatform } from './native-platform.js';

const support = ioUringSupport();
// io_uring is part of the platform; on CI its absence is a failure.
const skip = support.ok || process.env['CI'] === 'true' ? false : `io_uring unavailable: ${support.ok ? '' : support.reason}`;

/** Linux 5.8 brought the CQ ring's flags (IORING_CQ_EVENTFD_DISABLED). */
function kernelHasCqFlags(): boolean {
  const [major, minor] = release().split('.').map(Number);
  return major! > 5 || (major === 5 && minor! >= 8);
}

describe('IoUring quiet submissions', { skip, timeout: 30_000 }, () => {
  let dir = '';
  let fd = -1;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'vts-quiet-'));
    const path = join(dir, 'f.bin');
    writeFileSync(path, Buffer.alloc(8192, 7));
    fd = openSync(path, 'r+');
  });
  after(() => {
    if (fd >= 0) closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  });

  it('a page-cache read completes inside the submission, is reaped without an eventfd read, and leaves the eventfd unsignalled', () => {
    const ring = IoUring.open(8);
    try {
      if (kernelHasCqFlags()) assert.equal(ring.quietSubmit, true, `Linux ${release()} has CQ flags`);
      const buf = new Uint8Array(4096);
      const out = new Int32Array(16);
      assert.equal(ring.prepRw(UringOp.READ, fd, buf, 0, 4096, 0, 11), UringPrep.QUEUED);
      assert.equal(ring.submit(), 1);
      assert.equal(ring.reap(out, false), 1, 'completed inside io_uring_enter');
      assert.deepEqual([out[0], out[1]], [11, 4096]);
      assert.ok(buf.every((b) => b === 7));
      const signalled = loadNativePlatform().eventfdRead(ring.eventFd);
      assert.equal(signalled, ring.quietSubmit ? 0 : 1, 'the inline completion signals only without quiet submissions');
    } finally {
      ring.close();
    }
  });

  it('a completion posted after the submission (fsync, done by an io-wq worker) still signals the eventfd', async () => {
    const ring = IoUring.open(8);
    const platform = loadNativePlatform();
    try {
      const out = new Int32Array(16);
      assert.ok(ring.prepFsync(fd, true, 22));
      assert.equal(ring.submit(), 1);
      let got = ring.reap(out, false);
      if (got === 0) {
        // Not done inside the call: the eventfd must wake us (bounded by the test's timeout).
        await new Promise<void>((resolve) => {
          const w = platform.watchReadable(ring.eventFd, () => {
            w.stop();
            resolve();
          });
        });
        got = ring.reap(out, true);
      }
      assert.equal(got, 1);
      assert.deepEqual([out[0], out[1]], [22, 0]);
    } finally {
      ring.close();
    }
  });
});
