/**
 * What a 4 KiB page-cache read costs through each path the virtio-fs device can take: one pread
 * per read (the fs-at binding, as `--no-io-uring`) against batches of 1, 2, 4, 8 and 16 reads
 * through one io_uring_enter each (the IoUring binding, as fs-read-batch.ts), random offsets of a
 * cached 64 MiB file, wall and CPU µs per read. Behind the choice of READ_BATCH and the
 * io_uring path: where a system call traps to a hypervisor, as here, it costs more than the copy.
 * Not a test: it prints figures.
 *
 *   node dist/bench/read-batch-bench.js [reads=400000]
 */
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { IoUring, UringOp } from '../src/platform/io-uring.js';
import { loadFsAt } from '../src/platform/fs-at.js';

const N = Number(process.argv[2] ?? 400_000);
const FILE = 64 << 20;
const BLOCKS = FILE / 4096;

const dir = mkdtempSync(join(tmpdir(), 'vts-readbatch-'));
const path = join(dir, 'data');
writeFileSync(path, randomBytes(FILE)); // written now: in the page cache
const fd = openSync(path, 'r');
const fsAt = loadFsAt();
const buf = new Uint8Array(1 << 16);
let seed = 1;
const nextBlock = (): number => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) % BLOCKS;

function preads(n: number): void {
  for (let i = 0; i < n; i++) {
    const r = fsAt.pread(fd, buf, (i & 15) * 4096, 4096, nextBlock() * 4096);
    if (r !== 4096) throw new Error(`pread: ${r}`);
  }
}

const ring = IoUring.open(16);
const cqe = new Int32Array(32);
function batches(n: number, size: number): void {
  for (let i = 0; i < n; i += size) {
    for (let k = 0; k < size; k++) ring.prepRw(UringOp.READ, fd, buf, ((i + k) & 15) * 4096, 4096, nextBlock() * 4096, k);
    ring.submit();
    let got = 0;
    while (got < size) {
      const m = ring.reap(cqe, false);
      for (let j = 0; j < m; j++) if (cqe[2 * j + 1] !== 4096) throw new Error(`io_uring read: ${cqe[2 * j + 1]}`);
      got += m;
      if (got < size && ring.submitWait(1e9) < 0) ring.submit();
    }
  }
}

const cases: [string, (n: number) => void][] = [
  ['pread, one per read', preads],
  ['io_uring, batches of 1', (n) => batches(n, 1)],
  ['io_uring, batches of 2', (n) => batches(n, 2)],
  ['io_uring, batches of 4', (n) => batches(n, 4)],
  ['io_uring, batches of 8', (n) => batches(n, 8)],
  ['io_uring, batches of 16', (n) => batches(n, 16)],
];
console.log(`4 KiB random reads of a cached 64 MiB file, ${N} per case, two rounds`);
console.log(`${'path'.padEnd(28)} ${'wall µs/read'.padStart(13)} ${'CPU µs/read'.padStart(12)}`);
for (let round = 0; round < 2; round++) {
  for (const [label, run] of cases) {
    run(Math.min(N, 10_000)); // warm up
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    run(N);
    const wall = ((performance.now() - t0) * 1000) / N;
    const c = process.cpuUsage(c0);
    console.log(`${label.padEnd(28)} ${wall.toFixed(2).padStart(13)} ${((c.user + c.system) / N).toFixed(2).padStart(12)}`);
  }
}
ring.close();
closeSync(fd);
rmSync(dir, { recursive: true, force: true });
