/**
 * virtio-fs's host file layer alone (HostFs, no rings, no FUSE decoding): what the fs-ops rows'
 * metadata operations cost in system calls and JavaScript, with the retained descriptors of
 * forgotten inodes (retained-descriptors.ts) on (the default, 4096) and off (0, virtiofsd's way).
 *
 * - lookup: LOOKUP + GETATTR + FORGET of f0..f999 in turn (fs-ops' lookup row's names).
 * - create: CREATE + RELEASE + UNLINK + FORGET of one of 64 names in turn (fs-ops' create row).
 *
 * Wall and CPU (user, system) µs per operation; rounds alternate the two settings. Not a test.
 *
 *   node dist/bench/fs-host-bench.js [operations=200000] [rounds=2]
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StatField } from '../src/platform/fs-at.js';
import { HostFs } from '../src/devices/fs/host-fs.js';

const N = Number(process.argv[2] ?? 200_000);
const ROUNDS = Number(process.argv[3] ?? 2);
const FILES = 1000;
const O_RDWR = 2;

// Not under /tmp when that is tmpfs: the create row measures the host file system's inode work.
const dir = mkdtempSync(join(process.env['TMPDIR'] ?? tmpdir(), 'vts-fshost-'));
for (let i = 0; i < FILES; i++) writeFileSync(join(dir, `f${i}`), 'x');
const names = Array.from({ length: FILES }, (_, i) => Buffer.from(`f${i}`));
const created = Array.from({ length: 64 }, (_, i) => Buffer.from(`c${i}`));
const st = new Float64Array(StatField.COUNT);

function measure(label: string, retained: number, op: (host: HostFs, i: number) => void): void {
  const host = new HostFs(dir, { retainedDescriptors: retained });
  try {
    for (let i = 0; i < FILES * 2; i++) op(host, i); // warm: JIT, the first opens
    const t0 = process.hrtime.bigint();
    const c0 = process.cpuUsage();
    for (let i = 0; i < N; i++) op(host, i);
    const wallUs = Number(process.hrtime.bigint() - t0) / 1000 / N;
    const c = process.cpuUsage(c0);
    console.log(`| ${label} | ${retained} | ${wallUs.toFixed(2)} | ${(c.user / N).toFixed(2)} | ${(c.system / N).toFixed(2)} |`);
  } finally {
    host.close();
  }
}

const lookup = (host: HostFs, i: number): void => {
  const inode = host.lookupEntry(1, names[i % FILES]!, st);
  host.statInto(inode.nodeid, st);
  host.forget(inode.nodeid, 1);
};
const create = (host: HostFs, i: number): void => {
  const name = created[i & 63]!;
  const { inode, fh } = host.createEntry(1, name, O_RDWR, 0o644, st);
  host.release(fh);
  host.unlink(1, name);
  host.forget(inode.nodeid, 1);
};

console.log(`HostFs alone, ${N} operations per cell, ${dir}`);
console.log('| operation | retained descriptors | wall µs/op | user µs/op | system µs/op |');
console.log('| --- | ---: | ---: | ---: | ---: |');
try {
  for (let r = 0; r < ROUNDS; r++) {
    for (const retained of [0, 4096]) {
      measure('LOOKUP+GETATTR+FORGET', retained, lookup);
      measure('CREATE+RELEASE+UNLINK+FORGET', retained, create);
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
