/**
 * native/fs-io.c through src/platform/fs-io.ts: pread/pwrite on the thread pool into and out of
 * a slot's bounce buffer; results (bytes, a short count at the end of the file, -errno); one
 * transfer at a time per slot (EBUSY), a length beyond the bounce buffer refused, a freed slot
 * refused.
 */
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { FsIoOp, createFsIoSlot, loadVectoredIo } from './fs-io.js';

const dir = mkdtempSync(join(tmpdir(), 'vts-fsio-'));

function once(): { done: (r: number) => void; result: Promise<number> } {
  let done!: (r: number) => void;
  const result = new Promise<number>((r) => (done = r));
  return { done, result };
}

describe('fs-io (thread-pool pread/pwrite)', () => {
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('READ fills the bounce buffer, WRITE sends it; short at the end of the file; -EBADF for a descriptor not open', async () => {
    const path = join(dir, 'f');
    writeFileSync(path, Buffer.from('0123456789'));
    const fd = openSync(path, 'r+');
    let next = once();
    const slot = createFsIoSlot(64, (r) => next.done(r));
    try {
      slot.submit(FsIoOp.READ, fd, 2, 5);
      assert.throws(() => slot.submit(FsIoOp.READ, fd, 0, 1), /EBUSY/, 'one transfer at a time');
      assert.equal(await next.result, 5);
      assert.equal(slot.bounce.subarray(0, 5).toString(), '23456');
      next = once();
      slot.submit(FsIoOp.READ, fd, 8, 64);
      assert.equal(await next.result, 2, 'short at the end of the file');
      next = once();
      slot.bounce.write('abc', 0);
      slot.submit(FsIoOp.WRITE, fd, 12, 3);
      assert.equal(await next.result, 3);
      assert.equal(readFileSync(path, 'latin1'), '0123456789\0\0abc');
      assert.throws(() => slot.submit(FsIoOp.READ, fd, 0, 65), /bounce/, 'longer than the bounce buffer');
    } finally {
      closeSync(fd);
    }
    next = once();
    slot.submit(FsIoOp.READ, 999_999, 0, 4); // a descriptor number this process has not opened
    assert.equal(await next.result, -9, 'EBADF as a value');
    slot.free();
    assert.throws(() => slot.submit(FsIoOp.READ, 0, 0, 1), /EBADF|freed/);
  });

  it('preadv/pwritev: one call over spans of several views, in span order; a span outside its view refused', () => {
    const path = join(dir, 'v');
    writeFileSync(path, Buffer.from('abcdefghijklmnopqrstuvwxyz'));
    const fd = openSync(path, 'r+');
    try {
      const vio = loadVectoredIo();
      const a = new Uint8Array(8);
      const b = new Uint8Array(16);
      const spans = new Float64Array([1, 4, 3, 0, 0, 5, 1, 10, 2]);
      assert.equal(vio.preadv(fd, 2, [a, b], spans, 3), 10);
      assert.equal(Buffer.from(b.subarray(4, 7)).toString(), 'cde');
      assert.equal(Buffer.from(a.subarray(0, 5)).toString(), 'fghij');
      assert.equal(Buffer.from(b.subarray(10, 12)).toString(), 'kl');
      assert.equal(vio.pwritev(fd, 20, [a, b], spans, 3), 10);
      assert.equal(readFileSync(path, 'latin1'), 'abcdefghijklmnopqrstcdefghijkl');
      assert.equal(vio.preadv(fd, 100, [a, b], spans, 3), 0, 'past the end');
      assert.throws(() => vio.preadv(fd, 0, [a, b], new Float64Array([0, 4, 5]), 1), /outside/);
      assert.throws(() => vio.preadv(fd, 0, [a], new Float64Array([1, 0, 1]), 1), /outside/);
      assert.equal(vio.preadv(999_999, 0, [a], new Float64Array([0, 0, 1]), 1), -9, 'EBADF as a value');
    } finally {
      closeSync(fd);
    }
  });
});
