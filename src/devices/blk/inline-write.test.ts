/**
 * Lone buffered writes made inline (inline-write.ts): a write alone on the image file is one
 * pwrite on the event loop, done when `write` returns; with another operation in flight, with
 * O_DIRECT, O_DSYNC, `inlineWrites: false` or above INLINE_WRITE_MAX it goes through io_uring;
 * a slow inline write turns them off for a while; errors carry the errno; `--no-inline-writes`.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseCommandLine } from '../../cli/args.js';
import { ioUringSupport } from '../../platform/io-uring.js';
import { pattern } from './blk-test-support.js';
import type { BlkOptions } from './cli.js';
import { INLINE_WRITE_MAX, inlineWrite } from './inline-write.js';
import { UringBackend, type UringBackendOptions } from './uring-backend.js';
import { UringIoError } from './uring-file-io.js';

const support = ioUringSupport();
const skip = support.ok || process.env['CI'] === 'true' ? false : `io_uring unavailable: ${support.ok ? '' : support.reason}`;

describe('UringBackend inline writes', { skip, timeout: 60_000 }, () => {
  let dir = '';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'vts-inline-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  let n = 0;
  async function open(opts: UringBackendOptions = {}, bytes = 1 << 20): Promise<{ b: UringBackend; path: string }> {
    const path = join(dir, `img${n++}`);
    writeFileSync(path, Buffer.alloc(bytes));
    return { b: await UringBackend.open(path, opts), path };
  }
  const at = (path: string, off: number, len: number): Uint8Array => new Uint8Array(readFileSync(path).subarray(off, off + len));

  it('a lone buffered write is one pwrite: done when write returns, nothing submitted to io_uring', async () => {
    const { b, path } = await open();
    try {
      const data = pattern(4096, 1);
      assert.equal(b.write(8192, data), undefined, 'done synchronously');
      assert.deepEqual(at(path, 8192, 4096), data, 'in the file as write returns');
      assert.deepEqual([b.counters.inlineWrites, b.counters.submitted], [1, 0]);
      // Reads of what was written inline see it (the same page cache).
      const dst = new Uint8Array(4096);
      await b.read(8192, dst);
      assert.deepEqual(dst, data);
      // The largest inline write, then one byte more goes through io_uring.
      assert.equal(b.write(0, pattern(INLINE_WRITE_MAX, 2)), undefined);
      await b.write(0, pattern(INLINE_WRITE_MAX + 512, 3));
      assert.deepEqual(at(path, 0, INLINE_WRITE_MAX + 512), pattern(INLINE_WRITE_MAX + 512, 3));
      assert.equal(b.counters.inlineWrites, 2);
    } finally {
      await b.close();
    }
  });

  it('with another operation in flight the write goes through io_uring (and the next lone one inline again)', async () => {
    const { b, path } = await open();
    try {
      const flush = b.flush(); // queued for the ring's next submission: in flight
      const w = b.write(4096, pattern(4096, 4));
      assert.equal(b.counters.inlineWrites, 0, 'not inline behind the flush');
      await Promise.all([flush, w]);
      assert.equal(b.counters.submitted, 2);
      assert.deepEqual(at(path, 4096, 4096), pattern(4096, 4));
      assert.equal(b.write(4096, pattern(4096, 5)), undefined);
      assert.equal(b.counters.inlineWrites, 1);
    } finally {
      await b.close();
    }
  });

  it('never with inlineWrites false, O_DSYNC (write-through) or O_DIRECT', async () => {
    for (const opts of [{ inlineWrites: false }, { writeThrough: true }, { direct: true }] as UringBackendOptions[]) {
      const { b, path } = await open(opts);
      try {
        const data = pattern(4096, 6);
        await b.write(4096, data);
        assert.equal(b.counters.inlineWrites, 0, JSON.stringify(opts));
        assert.equal(b.counters.submitted, 1, JSON.stringify(opts));
        assert.deepEqual(at(path, 4096, 4096), data);
      } finally {
        await b.close();
      }
    }
  });

  it('an inline write slower than inlineSlowUs turns them off for 16 writes, then 32 after another slow one', async () => {
    // inlineSlowUs 0: every inline write counts as slow.
    const { b, path } = await open({ inlineSlowUs: 0 });
    try {
      assert.equal(b.write(0, pattern(4096, 7)), undefined);
      assert.deepEqual([b.counters.inlineWrites, b.counters.slowInlineWrites], [1, 1]);
      for (let i = 1; i <= 16; i++) await b.write(i * 4096, pattern(4096, 7 + i));
      assert.deepEqual([b.counters.inlineWrites, b.counters.submitted], [1, 16], 'the next 16 through io_uring');
      assert.equal(b.write(17 * 4096, pattern(4096, 30)), undefined, 'inline again after them');
      for (let i = 0; i < 32; i++) await b.write(i * 4096, pattern(4096, 40 + i));
      assert.deepEqual([b.counters.inlineWrites, b.counters.slowInlineWrites, b.counters.submitted], [2, 2, 48], 'then 32 through io_uring');
      for (let i = 0; i < 32; i++) assert.deepEqual(at(path, i * 4096, 4096), pattern(4096, 40 + i));
    } finally {
      await b.close();
    }
  });

  it('errors carry the errno name; a read-only image never writes', async () => {
    assert.throws(
      () => inlineWrite(1 << 20, pattern(16, 1), 0, 16, 0),
      (e: unknown) => e instanceof UringIoError && e.errno === 'EBADF',
    );
    const { b } = await open({ readOnly: true });
    try {
      assert.throws(() => b.write(0, pattern(4096, 1)), /read-only/);
      assert.equal(b.counters.inlineWrites, 0);
    } finally {
      await b.close();
    }
  });

  it('--no-inline-writes on the command line; absent by default', () => {
    const blk = (argv: string[]): BlkOptions => (parseCommandLine(['blk', '--socket-path', 's', '--image', 'x.img', ...argv]) as unknown as { options: BlkOptions }).options;
    assert.equal(blk([]).inlineWrites, undefined);
    assert.equal(blk(['--no-inline-writes']).inlineWrites, false);
  });
});
