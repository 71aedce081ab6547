/**
 * The completion wait of UringFileIo (`--wait-us`): a lone operation the kernel does not complete
 * inside io_uring_enter (O_DIRECT here) is waited for in the same io_uring_enter, so the backend
 * returns it done (undefined) without the eventfd waking the loop; never when other operations
 * are in flight; never with waitUs 0; the option parsed and bounded.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CliError, CliFault, parseCommandLine } from '../../cli/args.js';
import { ioUringSupport } from '../../platform/io-uring.js';
import { pattern } from './blk-test-support.js';
import { DEFAULT_WAIT_US, type BlkOptions } from './cli.js';
import { DirectBouncePool } from './direct-bounce-pool.js';
import { UringBackend } from './uring-backend.js';

const support = ioUringSupport();
const skip = support.ok || process.env['CI'] === 'true' ? false : `io_uring unavailable: ${support.ok ? '' : support.reason}`;

describe('io_uring completion wait (--wait-us)', { skip, timeout: 60_000 }, () => {
  let dir = '';
  let path = '';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'vts-uring-wait-'));
    path = join(dir, 'disk.img');
    const data = new Uint8Array(1 << 20);
    for (let i = 0; i < 256; i++) data.set(pattern(4096, i), i * 4096);
    writeFileSync(path, data);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('a lone O_DIRECT read is waited for inside the call: done synchronously, the data right', async () => {
    // 1 ms is far above an O_DIRECT 4 KiB read of a local disk, so nearly every wait hits.
    const b = await UringBackend.open(path, { direct: true, waitUs: 1000 });
    // Page-aligned memory, as guest memory is (a JS heap buffer would be bounced).
    const pool = new DirectBouncePool(4096, 1);
    try {
      const dst = pool.acquire() as Uint8Array;
      let sync = 0;
      for (let i = 0; i < 32; i++) {
        const r = b.read(i * 4096, dst, 0, 4096);
        if (r === undefined) sync++;
        else await r;
        assert.deepEqual(dst, pattern(4096, i), `block ${i}`);
        await new Promise<void>((resolve) => setImmediate(resolve)); // the next read is the first of its macrotask
      }
      const c = b.counters;
      assert.ok(c.waits >= 1 && c.waitHits >= 1, `waited: ${JSON.stringify(c)}`);
      assert.ok(sync >= c.waitHits, `every hit returned done (${sync} synchronous, ${c.waitHits} hits)`);
      assert.ok(c.waits <= 32);
    } finally {
      await b.close();
      pool.close();
    }
  });

  // Guest memory is page-aligned and goes to the kernel as it is; a buffer off the direct-I/O
  // memory alignment is bounced through an aligned chunk. Both kinds, in both orders, must keep
  // "the first operation of a pass" the only one that can wait.
  const layouts: { name: string; writeOff: number; readOff: number }[] = [
    { name: 'aligned buffers', writeOff: 0, readOff: 0 },
    { name: 'misaligned (bounced) buffers', writeOff: 16, readOff: 16 },
    { name: 'an aligned write, then bounced reads', writeOff: 0, readOff: 16 },
    { name: 'a bounced write, then aligned reads', writeOff: 16, readOff: 0 },
  ];
  for (const { name, writeOff, readOff } of layouts) {
    it(`only the first operation of a pass may wait (the others are batched), ${name}`, async () => {
      const b = await UringBackend.open(path, { direct: true, waitUs: 1000 });
      // Page-aligned memory: an offset of 16 bytes is off any direct-I/O memory alignment above 16.
      const mem = new DirectBouncePool(16 * 4096, 1);
      try {
        const area = mem.acquire() as Uint8Array;
        const src = area.subarray(writeOff, writeOff + 4096);
        src.set(pattern(4096, 255));
        const dst = area.subarray(4 * 4096 + readOff, 4 * 4096 + readOff + 8 * 4096);
        // Nine operations in one pass: the first (eager, alone in flight) may wait, the other
        // eight go in one batch after the pass, without waiting.
        const ops = [b.write(255 * 4096, src), ...Array.from({ length: 8 }, (_, i) => b.read(i * 4096, dst, i * 4096, 4096))];
        await Promise.all(ops);
        assert.ok(b.counters.waits <= 1, `waits ${b.counters.waits}`);
        assert.equal(b.counters.submitted, 9);
        for (let i = 0; i < 8; i++) assert.deepEqual(dst.subarray(i * 4096, (i + 1) * 4096), pattern(4096, i));
      } finally {
        await b.close();
        mem.close();
      }
    });
  }

  it('a lone operation waits only while the device says no other request is posted (gateWaits)', async () => {
    const b = await UringBackend.open(path, { direct: true, waitUs: 1000 });
    const pool = new DirectBouncePool(4096, 1);
    let othersWaiting = true;
    let asked = 0;
    b.gateWaits(() => {
      asked++;
      return othersWaiting;
    });
    try {
      const dst = pool.acquire() as Uint8Array;
      // Other requests posted: the lone read goes out without a wait (done later, by the eventfd).
      for (let i = 0; i < 4; i++) {
        const r = b.read(i * 4096, dst, 0, 4096);
        assert.notEqual(r, undefined, 'not waited for: a promise');
        await r;
        assert.deepEqual(dst, pattern(4096, i));
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
      assert.equal(b.counters.waits, 0);
      assert.ok(asked >= 4, `the gate was asked (${asked})`);
      // Nothing else posted: the same reads are waited for.
      othersWaiting = false;
      for (let i = 0; i < 4; i++) {
        const r = b.read(i * 4096, dst, 0, 4096);
        if (r !== undefined) await r;
        assert.deepEqual(dst, pattern(4096, i));
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
      assert.ok(b.counters.waits >= 1, `waited: ${JSON.stringify(b.counters)}`);
    } finally {
      await b.close();
      pool.close();
    }
  });

  it('no operation waits with waitUs 0', async () => {
    const none = await UringBackend.open(path, { direct: true });
    try {
      const dst = new Uint8Array(4096);
      for (let i = 0; i < 4; i++) await none.read(i * 4096, dst, 0, 4096);
      assert.equal(none.counters.waits, 0);
    } finally {
      await none.close();
    }
  });

  it('--wait-us: parsed, 0..1000, absent by default (the command uses DEFAULT_WAIT_US)', () => {
    const parse = (argv: string[]): BlkOptions => (parseCommandLine(['blk', '--socket-path', 's', '--image', 'x.img', ...argv]) as unknown as { options: BlkOptions }).options;
    assert.equal(parse(['--wait-us', '0']).waitUs, 0);
    assert.equal(parse(['--wait-us', '200']).waitUs, 200);
    assert.equal(parse([]).waitUs, undefined);
    assert.ok(DEFAULT_WAIT_US > 0 && DEFAULT_WAIT_US <= 1000);
    for (const bad of ['1001', 'x']) assert.throws(() => parse(['--wait-us', bad]), (e: unknown) => e instanceof CliError && e.fault === CliFault.BAD_NUMBER);
  });
});
