/**
 * Where UringBackend sends each operation (`bufferedWrites`, the `--aio auto` policy): reads
 * always through io_uring; a buffered write through io_uring while no write is in flight there,
 * else pwrite on libuv's thread pool (OVERFLOW); every buffered write on the pool (POOL); none
 * (URING); O_DIRECT writes always through io_uring. Data intact whichever way it went, FLUSH
 * covering both, close waiting for the pool's writes; `--aio auto` from the command line to the
 * backend.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseCommandLine } from '../../cli/args.js';
import { ioUringSupport } from '../../platform/io-uring.js';
import { BlkReqType, BlkStatus } from '../../spec/blk.js';
import { RawDriver, header, pattern, setup } from './blk-test-support.js';
import { BlkAio, type BlkOptions } from './cli.js';
import { poolWrite } from './pool-write.js';
import { BufferedWriteRoute, UringBackend } from './uring-backend.js';
import { UringIoError } from './uring-file-io.js';
import { openImage } from './uring-open.js';

const support = ioUringSupport();
const skip = support.ok || process.env['CI'] === 'true' ? false : `io_uring unavailable: ${support.ok ? '' : support.reason}`;

describe('UringBackend write routes (--aio auto)', { skip, timeout: 60_000 }, () => {
  let dir = '';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'vts-uring-routes-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  function image(name: string, bytes: number): string {
    const p = join(dir, name);
    writeFileSync(p, Buffer.alloc(bytes));
    return p;
  }

  /** Issues `n` 4 KiB writes in one synchronous pass (as a device's pass over a kick does). */
  async function writeBatch(b: UringBackend, n: number, seed: number): Promise<void> {
    const ops: (Promise<void> | undefined)[] = [];
    for (let i = 0; i < n; i++) ops.push(b.write(i * 8192, pattern(4096, seed + i)));
    await Promise.all(ops);
  }

  function assertBatch(path: string, n: number, seed: number): void {
    const file = readFileSync(path);
    for (let i = 0; i < n; i++) assert.deepEqual(new Uint8Array(file.subarray(i * 8192, i * 8192 + 4096)), pattern(4096, seed + i), `block ${i}`);
  }

  it('OVERFLOW: a lone write goes through io_uring; the writes of a batch beyond those in flight there go to the thread pool', async () => {
    const path = image('overflow.img', 1 << 20);
    const b = await UringBackend.open(path, { bufferedWrites: BufferedWriteRoute.OVERFLOW, inlineWrites: false });
    try {
      // One at a time: nothing else in flight, every write takes the ring.
      for (let i = 0; i < 4; i++) await b.write(i * 4096, pattern(4096, i));
      let c = b.counters;
      assert.equal(c.pooledWrites, 0, 'lone writes stay on io_uring');
      assert.equal(c.submitted, 4);
      // 16 in one pass: the first goes to the kernel at once (eager); if it completed inside
      // io_uring_enter the second is queued on the ring too; every later one finds a write in
      // flight on the ring and goes to the pool.
      await writeBatch(b, 16, 100);
      c = b.counters;
      const viaRing = c.submitted - 4;
      assert.ok(viaRing === 1 || viaRing === 2, `1 or 2 writes of the batch on the ring, not ${viaRing}`);
      assert.equal(c.pooledWrites, 16 - viaRing);
      // Reads never go to the pool.
      const dst = new Uint8Array(16 * 4096);
      await Promise.all(Array.from({ length: 16 }, (_, i) => b.read(i * 8192, dst, i * 4096, 4096)));
      assert.equal(b.counters.submitted, c.submitted + 16);
      assert.equal(b.counters.pooledWrites, c.pooledWrites);
      for (let i = 0; i < 16; i++) assert.deepEqual(dst.subarray(i * 4096, (i + 1) * 4096), pattern(4096, 100 + i));
      await b.flush();
      assertBatch(path, 16, 100);
    } finally {
      await b.close();
    }
  });

  it('POOL: every buffered write on the thread pool; URING: none', async () => {
    const poolPath = image('pool.img', 1 << 20);
    const pool = await UringBackend.open(poolPath, { bufferedWrites: BufferedWriteRoute.POOL, inlineWrites: false });
    try {
      await pool.write(0, pattern(4096, 1));
      await writeBatch(pool, 8, 10);
      assert.equal(pool.counters.pooledWrites, 9);
      assert.equal(pool.counters.submitted, 0, 'no write on the ring');
      assertBatch(poolPath, 8, 10);
    } finally {
      await pool.close();
    }
    const ringPath = image('ring.img', 1 << 20);
    const ring = await UringBackend.open(ringPath, { inlineWrites: false });
    try {
      assert.equal(ring.bufferedWrites, BufferedWriteRoute.URING, 'the library default');
      await writeBatch(ring, 8, 20);
      assert.equal(ring.counters.pooledWrites, 0);
      assert.equal(ring.counters.submitted, 8);
      assertBatch(ringPath, 8, 20);
    } finally {
      await ring.close();
    }
  });

  it('O_DIRECT writes stay on io_uring whatever the route', async () => {
    const path = image('direct.img', 1 << 20);
    const b = await UringBackend.open(path, { direct: true, bufferedWrites: BufferedWriteRoute.POOL });
    try {
      await writeBatch(b, 8, 30);
      assert.equal(b.counters.pooledWrites, 0);
      assert.equal(b.counters.submitted, 8);
      assertBatch(path, 8, 30);
    } finally {
      await b.close();
    }
  });

  it('through a BlkDevice: writes from the pool acknowledged only when written, FLUSH OK, data read back', async () => {
    const path = image('dev.img', 256 * 512);
    const backend = await UringBackend.open(path, { bufferedWrites: BufferedWriteRoute.POOL, inlineWrites: false });
    try {
      const { pair } = setup({}, {}, backend);
      const raw = new RawDriver(pair.ctx);
      const data = pattern(8192, 3);
      assert.equal(await raw.status([header(BlkReqType.OUT, 8), data], [1]), BlkStatus.OK);
      assert.equal(backend.counters.pooledWrites, 1);
      assert.equal(await raw.status([header(BlkReqType.FLUSH, 0)], [1]), BlkStatus.OK);
      const r = await raw.send([header(BlkReqType.IN, 8)], [8192, 1]);
      assert.equal(r.ins[1]![0], BlkStatus.OK);
      assert.deepEqual(r.ins[0], data);
      assert.deepEqual(new Uint8Array(readFileSync(path).subarray(8 * 512, 8 * 512 + 8192)), data);
    } finally {
      await backend.close();
    }
  });

  it('close waits for the writes on the pool before closing the file', async () => {
    const path = image('close.img', 4 << 20);
    const b = await UringBackend.open(path, { bufferedWrites: BufferedWriteRoute.POOL, inlineWrites: false });
    const writes = Array.from({ length: 32 }, (_, i) => b.write(i * 65536, pattern(65536, 50 + i)));
    await b.close();
    await Promise.all(writes);
    const file = readFileSync(path);
    for (let i = 0; i < 32; i++) assert.deepEqual(new Uint8Array(file.subarray(i * 65536, (i + 1) * 65536)), pattern(65536, 50 + i), `chunk ${i}`);
  });

  it('a pool write to a bad fd rejects with the errno name (EBADF)', async () => {
    await assert.rejects(poolWrite(1 << 20, new Uint8Array(512), 0, 512, 0), (e: unknown) => e instanceof UringIoError && e.errno === 'EBADF');
  });

  it('--aio auto: parsed (the command default is io_uring); openImage(auto) gives a UringBackend routing OVERFLOW', async () => {
    const parse = (argv: string[]): BlkOptions => (parseCommandLine(['blk', '--socket-path', 's', ...argv]) as unknown as { options: BlkOptions }).options;
    assert.equal(parse(['--image', 'x.img', '--aio', 'auto']).aio, BlkAio.AUTO);
    assert.equal(parse(['--image', 'x.img', '--aio', 'auto', '--direct']).direct, true);
    assert.equal(parse(['--image', 'x.img']).aio, undefined, 'absent: the command chooses (io_uring)');
    const path = image('open.img', 65536);
    const opened = await openImage(path, { aio: BlkAio.AUTO });
    try {
      assert.equal(opened.aio, BlkAio.AUTO);
      assert.ok(opened.backend instanceof UringBackend);
      assert.equal(opened.backend.bufferedWrites, BufferedWriteRoute.OVERFLOW);
    } finally {
      await opened.backend.close();
    }
    const plain = await openImage(path, { aio: BlkAio.IO_URING });
    try {
      assert.equal((plain.backend as UringBackend).bufferedWrites, BufferedWriteRoute.URING);
    } finally {
      await plain.backend.close();
    }
  });
});
