// `npm run bench [-- name...]`: builds what the benchmarks need (the C floor with the machine's
// gcc) and runs them side by side. Not a test: it prints figures for bench/README.md.
import { mkdirSync } from 'node:fs';
import { ensureDeps, root, run } from './ensure-deps.mjs';

const all = ['ring', 'blk-vhost', 'blk-inprocess', 'blk-frontend'];
const wanted = process.argv.slice(2).length ? process.argv.slice(2) : all;

ensureDeps();
mkdirSync(`${root}/build/bench`, { recursive: true });
if (wanted.includes('ring')) {
  run('gcc', ['-O2', '-pthread', '-o', 'build/bench/ring-floor', 'bench/c/ring-floor.c']);
  console.log('--- virtio-ts rings beside the C floor (same run) ---');
  run(process.execPath, ['--expose-gc', 'dist/bench/ring-bench.js', '1000000', 'build/bench/ring-floor']);
}
if (wanted.includes('blk-vhost')) {
  // virtio-ts blk and qemu-storage-daemon (scripts/install-guest-deps.sh installs it) under the same
  // C vhost-user front-end, alternating; the runner's options are in bench/README.md.
  console.log('--- vhost-user-blk: virtio-ts beside qemu-storage-daemon (same load generator, alternating) ---');
  // The bench builds the load generator (build/bench/vhost-blk-loadgen) from its sources when stale.
  run(process.execPath, ['dist/bench/blk-vhost-bench.js']);
}
if (wanted.includes('blk-inprocess')) {
  // In-process virtio-blk (real driver and device on a RAM disk): 4 KiB random reads, QD1 and QD32.
  console.log('--- in-process virtio-blk: 4 KiB random reads (BlkDriver + BlkDevice, createLoopback) ---');
  run(process.execPath, ['--expose-gc', 'dist/bench/blk-inprocess-bench.js', '100000']);
}
if (wanted.includes('blk-frontend')) {
  // The library's TypeScript vhost-user front-end (BlkDriver over VhostUserDriverTransport) as the
  // load generator, against virtio-ts blk and qemu-storage-daemon, alternating.
  console.log('--- vhost-user-blk driven by the TypeScript front-end: virtio-ts beside qemu-storage-daemon ---');
  run(process.execPath, ['dist/bench/blk-frontend-bench.js']);
}
if (wanted.includes('fs-host')) {
  // virtio-fs's host file layer alone: LOOKUP+GETATTR+FORGET and CREATE+RELEASE+UNLINK+FORGET,
  // retained descriptors of forgotten inodes on and off.
  console.log('--- virtio-fs host file layer: metadata operations (bench/fs-host-bench.ts) ---');
  run(process.execPath, ['dist/bench/fs-host-bench.js']);
}
if (wanted.includes('read-batch')) {
  // 4 KiB page-cache reads: one pread each against io_uring batches (virtio-fs READ_BATCH).
  console.log('--- 4 KiB reads: pread against io_uring batches (bench/read-batch-bench.ts) ---');
  run(process.execPath, ['dist/bench/read-batch-bench.js']);
}
