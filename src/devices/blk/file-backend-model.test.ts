/**
 * Data integrity of the file backend through the real driver and device: random batches of
 * requests (several in flight at once) against an in-memory model, then the file itself read
 * with fs. Discarded sectors read as anything (driver/blk/24), so the model forgets them.
 */
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { BlkDriver, BlkRequestError } from './blk-driver.js';
import { BlkStatus } from '../../spec/blk.js';
import { BlkDevice } from './blk-device.js';
import { FileBackend } from './file-backend.js';
import { createTestPair } from './test-pair.js';

const SECTORS = 128;
const SIZE = SECTORS * 512;
const T = { timeout: 120_000 };

type Op =
  | { kind: 'write'; sector: number; n: number; seed: number }
  | { kind: 'read'; sector: number; n: number }
  | { kind: 'flush' }
  | { kind: 'discard'; sector: number; n: number }
  | { kind: 'zeroes'; sector: number; n: number; unmap: boolean };

function fillPattern(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n * 512);
  let x = seed | 1;
  for (let i = 0; i < b.length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

// Mostly in range; sometimes reaching past the end (the device must answer IOERR).
const sectorArb = fc.oneof({ weight: 9, arbitrary: fc.integer({ min: 0, max: SECTORS - 1 }) }, { weight: 1, arbitrary: fc.integer({ min: SECTORS - 4, max: SECTORS + 4 }) });
const countArb = fc.integer({ min: 1, max: 24 });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('write' as const), sector: sectorArb, n: countArb, seed: fc.integer() }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('read' as const), sector: sectorArb, n: countArb }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'flush' as const }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('discard' as const), sector: sectorArb, n: countArb }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('zeroes' as const), sector: sectorArb, n: countArb, unmap: fc.boolean() }) },
);

function range(op: Op): [number, number] | null {
  return op.kind === 'flush' ? null : [op.sector, op.sector + op.n];
}

function inRange(op: Op): boolean {
  const r = range(op);
  return r === null || r[1] <= SECTORS;
}

/**
 * Ops of a batch run concurrently, so their order is undefined: keep only ops whose sectors no
 * other op of the batch modifies (reads may overlap reads).
 */
function independent(batch: readonly Op[]): Op[] {
  const kept: Op[] = [];
  for (const op of batch) {
    const r = range(op);
    const clash =
      r !== null &&
      kept.some((k) => {
        const kr = range(k);
        if (kr === null || (op.kind === 'read' && k.kind === 'read')) return false;
        return r[0] < kr[1] && kr[0] < r[1];
      });
    if (!clash) kept.push(op);
  }
  return kept;
}

class Model {
  readonly data: Uint8Array;
  /** 1 where the content is known; discarded sectors may read as anything. */
  readonly known = new Uint8Array(SIZE).fill(1);
  constructor(initial: Uint8Array) {
    this.data = Uint8Array.from(initial);
  }
  write(sector: number, b: Uint8Array): void {
    this.data.set(b, sector * 512);
    this.known.fill(1, sector * 512, sector * 512 + b.length);
  }
  zero(sector: number, n: number): void {
    this.data.fill(0, sector * 512, (sector + n) * 512);
    this.known.fill(1, sector * 512, (sector + n) * 512);
  }
  forget(sector: number, n: number): void {
    this.known.fill(0, sector * 512, (sector + n) * 512);
  }
  /** Learns what the storage returned for forgotten bytes, checks the rest. */
  check(at: number, got: Uint8Array, what: string): void {
    for (let i = 0; i < got.length; i++) {
      const o = at + i;
      if (this.known[o]) {
        if (got[i] !== this.data[o]) assert.fail(`${what}: byte ${o} is ${got[i]}, expected ${this.data[o]}`);
      }
    }
  }
}

describe('FileBackend through BlkDriver and BlkDevice', T, () => {
  let dir = '';
  let path = '';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'virtio-blk-model-'));
    path = join(dir, 'disk.img');
    writeFileSync(path, fillPattern(SECTORS, 77));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const packed of [false, true]) {
    it(`device/blk/22: random concurrent requests match a model (${packed ? 'packed' : 'split'})`, async () => {
      const backend = await FileBackend.open(path);
      try {
        const device = new BlkDevice(backend, { queueSize: 16 });
        const pair = createTestPair(device, { packed, queueSize: 16 });
        const drv = new BlkDriver(pair.ctx);
        assert.equal(drv.capacity, SECTORS);
        await fc.assert(
          fc.asyncProperty(fc.array(fc.array(opArb, { minLength: 1, maxLength: 12 }), { minLength: 1, maxLength: 8 }), async (batches) => {
            // Each run starts from whatever the file holds now.
            const model = new Model(readFileSync(path));
            for (const batch of batches) {
              const ops = independent(batch);
              const results = await Promise.allSettled(
                ops.map(async (op): Promise<Uint8Array | null> => {
                  switch (op.kind) {
                    case 'write':
                      await drv.write(op.sector, fillPattern(op.n, op.seed));
                      return null;
                    case 'read':
                      return drv.read(op.sector, op.n * 512);
                    case 'flush':
                      await drv.flush();
                      return null;
                    case 'discard':
                      await drv.discard(op.sector, op.n);
                      return null;
                    case 'zeroes':
                      await drv.writeZeroes(op.sector, op.n, op.unmap);
                      return null;
                  }
                }),
              );
              // Reads saw the state before the batch's writes (no overlap with them).
              ops.forEach((op, i) => {
                const r = results[i]!;
                if (!inRange(op)) {
                  assert.equal(r.status, 'rejected', `${op.kind} past the end must fail`);
                  const e = (r as PromiseRejectedResult).reason as unknown;
                  assert.ok(e instanceof BlkRequestError && e.status === BlkStatus.IOERR, String(e));
                  return;
                }
                assert.equal(r.status, 'fulfilled', `${JSON.stringify(op)}: ${String((r as PromiseRejectedResult).reason)}`);
                if (op.kind === 'read') model.check(op.sector * 512, (r as PromiseFulfilledResult<Uint8Array | null>).value!, 'read');
              });
              for (const op of ops) {
                if (!inRange(op)) continue;
                if (op.kind === 'write') model.write(op.sector, fillPattern(op.n, op.seed));
                else if (op.kind === 'zeroes') model.zero(op.sector, op.n);
                else if (op.kind === 'discard') model.forget(op.sector, op.n);
              }
            }
            // Every acknowledged write is in the file, read with fs.
            model.check(0, readFileSync(path), 'file');
            assert.equal(drv.inFlight, 0);
            assert.deepEqual(pair.resets, []);
          }),
          { numRuns: 60 },
        );
      } finally {
        await backend.close();
      }
    });
  }

  it('device/blk/25: an acknowledged write is in the file at once; writethrough writes and FLUSH call fdatasync', async () => {
    const backend = await FileBackend.open(path);
    let syncs = 0;
    const flush = backend.flush.bind(backend);
    backend.flush = () => {
      syncs++;
      return flush();
    };
    const fd = openSync(path, 'r');
    try {
      const pair = createTestPair(new BlkDevice(backend));
      const drv = new BlkDriver(pair.ctx);
      const readBack = (sector: number, n: number): Uint8Array => {
        const b = new Uint8Array(n * 512);
        assert.equal(readSync(fd, b, 0, b.length, sector * 512), b.length);
        return b;
      };
      for (let i = 0; i < 8; i++) {
        const data = fillPattern(3, 1000 + i);
        await drv.write(i * 10, data);
        assert.deepEqual(readBack(i * 10, 3), data, `write ${i}`);
      }
      assert.equal(syncs, 0, 'writeback: no fdatasync per write');
      await drv.flush();
      assert.equal(syncs, 1);
      drv.setWriteback(false);
      const data = fillPattern(2, 5);
      await drv.write(100, data);
      assert.equal(syncs, 2, 'writethrough: the write completed after an fdatasync');
      assert.deepEqual(readBack(100, 2), data);
      await drv.writeZeroes(100, 1);
      assert.deepEqual(readBack(100, 1), new Uint8Array(512));
      await drv.secureErase(101, 1);
      assert.deepEqual(readBack(101, 1), new Uint8Array(512));
    } finally {
      closeSync(fd);
      await backend.close();
    }
  });

  it('read-only file: RO offered, a write fails with IOERR and the file is unchanged; a closed backend answers IOERR', async () => {
    const before = readFileSync(path);
    const backend = await FileBackend.open(path, { readOnly: true });
    const pair = createTestPair(new BlkDevice(backend));
    const drv = new BlkDriver(pair.ctx);
    assert.equal(drv.readOnly, true);
    await assert.rejects(drv.write(0, fillPattern(1, 1)), (e: unknown) => e instanceof BlkRequestError && e.status === BlkStatus.IOERR);
    assert.deepEqual(readFileSync(path), before);
    assert.deepEqual(await drv.read(0, 1024), new Uint8Array(before.subarray(0, 1024)));
    await backend.close();
    await assert.rejects(drv.read(0, 512), (e: unknown) => e instanceof BlkRequestError && e.status === BlkStatus.IOERR);
    await assert.rejects(FileBackend.open(join(dir, 'missing.img')));
    await assert.rejects(FileBackend.open(dir), 'a directory is not an image');
  });
});
