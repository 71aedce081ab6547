/* global process, console, performance */
// virtio-fs back-ends side by side through the same front-end: `virtio-ts fs` and QEMU's C
// virtiofsd (/usr/lib/qemu/virtiofsd), each a process behind vhost-user, driven by the same
// front-end for both: FS_BENCH_FRONTEND=c (default) the guest-less C one,
// bench/c/vhost-fs-loadgen.c (one run per back-end with the five jobs; it reads the back-end's
// process-tree CPU from /proc just before and after each timed job, as bench/proc-cpu.mjs does,
// and its own CPU; built with gcc on first use), or =ts the TypeScript FsDriver over the
// library's vhost-user front-end (250-300 CPU µs per 128 KiB READ: it bounded both back-ends'
// read rates on two cores). Rows: LOOKUP+GETATTR (+FORGET) per second, CREATE+RELEASE+UNLINK per second, 4 KiB
// random reads of a 64 MiB file (host page cache), 1 MiB sequential reads and writes (MiB/s);
// 16 requests in flight (FS_BENCH_QD). For each row: the back-end's CPU seconds (its process tree,
// /proc/<pid>/stat utime+stime) and the ratio virtio-ts / virtiofsd.
//
// Run (built): node bench/fs-ops.mjs [seconds-per-row=3]
// FS_BENCH_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/p": node flags for the virtio-ts back-end
// (profiling it under the bench's load); FS_BENCH_VTS_ARGS="--async-io": more `virtio-ts fs`
// options; FS_BENCH_ONLY=vts: no virtiofsd run; FS_BENCH_JOBS=randread,create: some rows only;
// FS_BENCH_WARMUP=seconds untimed per row (default 1);
// FS_BENCH_RING=any: let virtio-ts negotiate packed rings (virtiofsd has split only);
// FS_BENCH_STALL_MS=period of the front-end's stall watch (default 100, printed with its count;
// with the C front-end: its rescue period, --rescue-ms); FS_BENCH_ROUNDS=N rounds, the order of
// the back-ends reversed every other round; FS_BENCH_DIR=where the share is made (default the
// temporary directory; /dev/shm puts it on tmpfs); FS_BENCH_EXT4_IMAGE_MIB=N a journaled ext4
// image of N MiB, loop-mounted for the run (root).
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync, existsSync, truncateSync } from 'node:fs';
import { tmpdir, loadavg } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { treeCpuSeconds } from './proc-cpu.mjs';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = (p) => join(root, 'dist', p);
const { FsDriver } = await import(dist('src/devices/fs/fs-driver.js'));
const { spawnBackend } = await import(dist('src/vhost-user/frontend-process.js'));
const { VhostUserDriverTransport, startVhostUserDriver } = await import(dist('src/vhost-user/frontend-transport.js'));
const { DeviceId } = await import(dist('src/spec/device-id.js'));
const { buildFsLoadgen, parseFsLoadgenOutput } = await import(dist('bench/fs-loadgen.js'));
const { runLoadgen } = await import(dist('bench/blk-vhost-bench.js'));

let SECONDS = Number(process.argv[2] ?? 3);
const VIRTIOFSD = '/usr/lib/qemu/virtiofsd';
const CLI = dist('src/cli/main.js');
const ROOT = 1n;
// FS_BENCH_QD: requests in flight (default 16).
const IN_FLIGHT = Number(process.env.FS_BENCH_QD ?? 16);
if (!Number.isInteger(IN_FLIGHT) || IN_FLIGHT < 1 || IN_FLIGHT > 64) throw new Error(`FS_BENCH_QD is 1..64, not ${process.env.FS_BENCH_QD}`);
const CHUNK = Number(process.env.FS_BENCH_CHUNK ?? 1 << 20);
// Seconds each row's workload runs untimed first (FS_BENCH_WARMUP, default 1; 0: none): the
// JavaScript back-end's first requests pay V8's compilation (on its own threads, counted in the
// process's CPU seconds) and the inode table's first fills, which a C back-end does not; without
// it that one-off cost lands on whichever row comes first (lookup+getattr).
const WARMUP = Number(process.env.FS_BENCH_WARMUP ?? 1);
// Ring layout offered to the back-ends (FS_BENCH_RING=split|any, default split): QEMU 7.2's
// virtiofsd (libvhost-user) has split rings only, while virtio-ts offers packed rings too and
// would otherwise negotiate them; split for both compares like for like.
const RING = process.env.FS_BENCH_RING ?? 'split';
const RING_PACKED = 1n << 34n;
// FS_BENCH_STALL_MS: period of the front-end's stall watch (default 100; see runBackend).
const STALL_KICK_MS = Number(process.env.FS_BENCH_STALL_MS ?? 100);
const FRONTEND = process.env.FS_BENCH_FRONTEND ?? 'c';
if (FRONTEND !== 'c' && FRONTEND !== 'ts') throw new Error(`FS_BENCH_FRONTEND is c or ts, not ${FRONTEND}`);
// FS_BENCH_ROUNDS (default 1): rounds, the back-ends' order reversed in every other round. The
// metadata rows are mostly the host file system's cost, and that depends on what ran just before:
// this VM's root is ext4 without a journal, whose inode allocator skips inodes freed in the last
// 60 s (recently_deleted() in fs/ext4/ialloc.c: a buffer lookup per skipped inode), so a create
// costs more after another back-end's create row; alternating the order cancels that out.
const ROUNDS = Number(process.env.FS_BENCH_ROUNDS ?? 1);
if (!Number.isInteger(ROUNDS) || ROUNDS < 1) throw new Error(`FS_BENCH_ROUNDS is a positive integer, not ${process.env.FS_BENCH_ROUNDS}`);
// FS_BENCH_EXT4_IMAGE_MIB=N (root): the share goes on a fresh journaled ext4 of N MiB, an image
// file in /var/tmp loop-mounted for the run and removed after it: the file system a host's
// shared folder is usually on (a journal, so no recently-deleted inode scan; see FS_BENCH_CREATE_PAUSE).
const IMAGE_MIB = process.env.FS_BENCH_EXT4_IMAGE_MIB === undefined ? 0 : Number(process.env.FS_BENCH_EXT4_IMAGE_MIB);
if (!Number.isInteger(IMAGE_MIB) || IMAGE_MIB < 0) throw new Error(`FS_BENCH_EXT4_IMAGE_MIB is a size in MiB, not ${process.env.FS_BENCH_EXT4_IMAGE_MIB}`);
const image = IMAGE_MIB > 0 ? mountExt4Image(IMAGE_MIB) : null;
// FS_BENCH_DIR: where the share is made (default the temporary directory); its file system type is printed.
const SHARE_PARENT = image?.mountPoint ?? process.env.FS_BENCH_DIR ?? tmpdir();
// Named now: an image is unmounted before the results are printed.
const SHARE_DESC = image !== null ? `ext4 with a journal (a ${IMAGE_MIB} MiB loop-mounted image)` : `${mountOf(SHARE_PARENT).type ?? '?'} (${SHARE_PARENT})`;
// FS_BENCH_CREATE_PAUSE (seconds): the C front-end idles this long before each create row, so
// that no inode freed by the previous create row (the other back-end's) is still "recently
// deleted" for ext4 (measured in process, bench/fs-server-cpu.mjs, 40,000 iterations: 128-183
// CPU µs per create+release+unlink+forget run back to back, 42 µs after 70 s idle). Default 61
// on ext4 without a journal (no /proc/fs/jbd2/<device>-8), 0 elsewhere.
const CREATE_PAUSE = Number(process.env.FS_BENCH_CREATE_PAUSE ?? (ext4WithoutJournal(SHARE_PARENT) ? 61 : 0));
// FS_BENCH_JOBS (C front-end): a comma-separated subset of lookup, create, randread, seqread,
// seqwrite (default all five): a row studied alone, without the others' minutes.
const ROW_OF_JOB = { lookup: 'lookup+getattr /s', create: 'create+unlink /s', randread: '4 KiB random read /s', seqread: 'seq read MiB/s', seqwrite: 'seq write MiB/s' };
const JOB_NAMES = process.env.FS_BENCH_JOBS === undefined ? Object.keys(ROW_OF_JOB) : process.env.FS_BENCH_JOBS.split(',').map((j) => j.trim());
for (const j of JOB_NAMES) if (!(j in ROW_OF_JOB)) throw new Error(`FS_BENCH_JOBS names some of ${Object.keys(ROW_OF_JOB).join(', ')}, not ${j}`);
if (process.env.FS_BENCH_JOBS !== undefined && FRONTEND !== 'c') throw new Error('FS_BENCH_JOBS needs the C front-end (FS_BENCH_FRONTEND=c)');

/** The mount `dir` is on: its source device and file system type (nulls when findmnt fails). */
function mountOf(dir) {
  try {
    const [source, type] = execFileSync('findmnt', ['-n', '-o', 'SOURCE,FSTYPE', '-T', dir], { encoding: 'utf8' }).trim().split(/\s+/);
    return { source: source ?? null, type: type ?? null };
  } catch {
    return { source: null, type: null };
  }
}

/** A journaled ext4 of `mib` MiB in an image file, loop-mounted; `remove()` unmounts and deletes it. */
function mountExt4Image(mib) {
  const dir = mkdtempSync(join('/var/tmp', 'vts-fs-bench-ext4-'));
  const file = join(dir, 'fs.img');
  const mountPoint = join(dir, 'mnt');
  mkdirSync(mountPoint);
  try {
    writeFileSync(file, '');
    truncateSync(file, mib * 1048576);
    execFileSync('mkfs.ext4', ['-q', '-F', '-J', 'size=64', file]);
    execFileSync('mount', ['-o', 'loop', file, mountPoint]);
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`FS_BENCH_EXT4_IMAGE_MIB: making or mounting the ext4 image failed (root, mkfs.ext4 and loop devices needed): ${e.message}`);
  }
  // An interrupted run unmounts it too (the `finally` below does not run on a signal).
  const onSignal = () => {
    image?.remove();
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  return {
    mountPoint,
    remove() {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      try {
        execFileSync('umount', [mountPoint]);
      } catch {
        // Still busy (a back-end not yet gone after a signal): detached from the tree at once
        // (released when idle), so the removal below never reaches inside the mount.
        execFileSync('umount', ['-l', mountPoint]);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Whether `dir` is on ext4 without a journal (its allocator then skips inodes freed in the last 60 s). */
function ext4WithoutJournal(dir) {
  const { source, type } = mountOf(dir);
  return type === 'ext4' && source !== null && !existsSync(`/proc/fs/jbd2/${source.replace(/^\/dev\//, '')}-8`);
}

/** utime + stime of `pid` and its descendants, in seconds. */
function cpuSeconds(pid) {
  return treeCpuSeconds(pid);
}

/** Runs `one(i)` with IN_FLIGHT in flight for `seconds` (default SECONDS); operations per second. */
async function rate(one, seconds = SECONDS) {
  let n = 0;
  const end = performance.now() + seconds * 1000;
  const worker = async () => {
    while (performance.now() < end) await one(n++);
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  return n / ((performance.now() - t0) / 1000);
}

/**
 * Writes back the file system's dirty pages (syncfs of the share's file system) before a back-end
 * starts: the 128 MiB of files made for the bench (and whatever the previous run removed) are
 * otherwise written back during the first back-end's first rows, and ext4's create and unlink
 * cost several times their usual CPU under that writeback (journal commits): measured 140-220
 * CPU µs per create+unlink for the back-end that ran first against 45-70 µs for the one after it.
 */
function settle(share) {
  execFileSync('sync', ['-f', share]);
}

/**
 * The C front-end: one run of bench/c/vhost-fs-loadgen.c with the five jobs against a fresh
 * back-end (virtiofsd serves one connection). Each job runs WARMUP seconds untimed, then SECONDS
 * timed; the back-end's CPU is read by the program around the timed part only. Its rescue (a wait
 * of FS_BENCH_STALL_MS without a completion looks at the used ring, then re-notifies) stands in
 * for the TS front-end's stall watch; the count is printed.
 */
async function runBackendC(name, cmd, args, share) {
  settle(share);
  const loadgen = buildFsLoadgen();
  const sock = join(share, '..', `${name}.sock`);
  const p = await spawnBackend(cmd, args(sock), sock);
  try {
    const argOfJob = { lookup: 'lookup', create: 'create', randread: 'randread:4096', seqread: `seqread:${CHUNK}`, seqwrite: `seqwrite:${CHUNK}` };
    const jobs = JOB_NAMES.map((j) => argOfJob[j]);
    const lgArgs = ['--socket', sock, '--duration', String(SECONDS), '--warmup', String(WARMUP), '--qd', String(IN_FLIGHT), '--dir', 'scratch', '--span-mib', '64', '--rescue-ms', String(STALL_KICK_MS), '--create-pause', String(CREATE_PAUSE), '--cpu-pid', String(p.child.pid), ...jobs.flatMap((j) => ['--job', j])];
    const run = await runLoadgen(loadgen, lgArgs, (SECONDS + WARMUP) * 5 * 1000 + CREATE_PAUSE * 1000 + 60_000);
    if (run.code !== 0 || run.timedOut) throw new Error(`vhost-fs-loadgen against ${name} failed (${run.code ?? run.signal}${run.timedOut ? ', timed out' : ''}):\n${run.stdout}${run.stderr}\n--- back-end ---\n${p.output()}`);
    const out = parseFsLoadgenOutput(run.stdout);
    const rows = { ring: 'split', maxWrite: Number(out.info?.get('max_write') ?? 0), stallKicks: 0, frontendCpu: 0 };
    for (const r of out.results) {
      const seq = r.job.startsWith('seq');
      rows[ROW_OF_JOB[r.job]] = { value: seq ? r.mibPerSec : r.opsPerSec, cpu: r.backendCpuS, wall: r.secs, ops: r.ops, frontendCpu: r.cpuS, maxWrite: rows.maxWrite };
      rows.stallKicks += r.rescueKicks + r.rescueUsed;
      rows.frontendCpu += r.cpuS;
    }
    return rows;
  } finally {
    await p.stop();
  }
}

async function runBackend(name, cmd, args, share) {
  if (FRONTEND === 'c') return runBackendC(name, cmd, args, share);
  settle(share);
  const sock = join(share, '..', `${name}.sock`);
  const p = await spawnBackend(cmd, args(sock), sock);
  // The stall watch (100 ms) re-notifies a ring that made no progress: QEMU 7.2's virtiofsd
  // loses kicks with EVENT_IDX (a missing barrier in libvhost-user's vu_queue_pop; see
  // src/vhost-user/frontend-stall-watch.ts), which hung 4 of 22 runs before. Each rescue costs
  // up to two periods of idle wall time (rate), no CPU; the count is printed.
  const t = await VhostUserDriverTransport.connect(sock, { deviceId: DeviceId.FS, timeoutMs: 10_000, memorySize: 128 << 20, stallKickMs: STALL_KICK_MS });
  const rows = {};
  try {
    const wanted = RING === 'any' ? (1n << 64n) - 1n : ((1n << 64n) - 1n) & ~RING_PACKED;
    const d = await startVhostUserDriver(t, { wantedFeatures: wanted, queueSizes: [256, 256] });
    rows.ring = (d.context.features & RING_PACKED) !== 0n ? 'packed' : 'split';
    const fs = new FsDriver(d.context, { requestQueues: 1 });
    await fs.init();
    const row = async (label, f) => {
      if (WARMUP > 0) {
        const measured = SECONDS;
        SECONDS = WARMUP;
        try {
          await f();
        } finally {
          SECONDS = measured;
        }
      }
      const c0 = cpuSeconds(p.child.pid);
      const t0 = performance.now();
      const value = await f();
      const wall = (performance.now() - t0) / 1000;
      rows[label] = { value, cpu: cpuSeconds(p.child.pid) - c0, wall, maxWrite: fs.maxWrite };
    };
    await row('lookup+getattr /s', () =>
      rate(async (i) => {
        const e = await fs.lookup(ROOT, `f${i % 1000}`);
        await fs.getattr(e.nodeid);
        await fs.forget(e.nodeid, 1);
      }),
    );
    const dir = await fs.lookup(ROOT, 'scratch');
    await row('create+unlink /s', () =>
      rate(async (i) => {
        const name = `c${i}`;
        const { entry, fh } = await fs.create(dir.nodeid, name, 0o100644, 2);
        await fs.release(entry.nodeid, fh);
        await fs.unlink(dir.nodeid, name);
        await fs.forget(entry.nodeid, 1);
      }),
    );
    const big = await fs.lookup(ROOT, 'big.bin');
    const bfh = await fs.open(big.nodeid, 0);
    await row('4 KiB random read /s', () => rate(async () => fs.read(big.nodeid, bfh, Math.floor(Math.random() * 16384) * 4096, 4096)));
    // The same request size for both back-ends: 1 MiB, or the smaller max_write one offers.
    const chunk = Math.min(CHUNK, fs.maxWrite);
    rows.maxWrite = fs.maxWrite;
    await row('seq read MiB/s', async () => {
      let off = 0;
      const r = await rate(async () => {
        const o = off;
        off = (off + chunk) % (64 << 20);
        await fs.read(big.nodeid, bfh, o, chunk);
      });
      return (r * chunk) / (1 << 20);
    });
    await fs.release(big.nodeid, bfh);
    // Overwrites of a file already in the page cache, wrapping at 64 MiB: the cost per request
    // then does not depend on how far a back-end got (appending allocates new pages and blocks,
    // so a slower run would pay more per request).
    const w = await fs.lookup(ROOT, 'written.bin');
    const wfh = await fs.open(w.nodeid, 2);
    const data = randomBytes(chunk);
    await row('seq write MiB/s', async () => {
      let off = 0;
      const r = await rate(async () => {
        const o = off;
        off = (off + chunk) % (64 << 20);
        await fs.write(w.nodeid, wfh, o, data);
      });
      return (r * chunk) / (1 << 20);
    });
    await fs.release(w.nodeid, wfh);
    fs.detach();
    rows.stallKicks = t.stallKicks;
  } finally {
    t.close();
    await p.stop();
  }
  return rows;
}

function makeShare() {
  const base = mkdtempSync(join(SHARE_PARENT, 'vts-fs-bench-'));
  const share = join(base, 'share');
  mkdirSync(join(share, 'scratch'), { recursive: true });
  for (let i = 0; i < 1000; i++) writeFileSync(join(share, `f${i}`), 'x');
  writeFileSync(join(share, 'big.bin'), randomBytes(64 << 20));
  writeFileSync(join(share, 'written.bin'), randomBytes(64 << 20));
  return { base, share };
}

const nodeArgs = (process.env.FS_BENCH_NODE_ARGS ?? '').split(' ').filter((a) => a !== '');
const vtsArgs = (process.env.FS_BENCH_VTS_ARGS ?? '').split(' ').filter((a) => a !== '');
const backends = {
  'virtio-ts fs': () => runBackend('vts', process.execPath, (sock) => [...nodeArgs, CLI, 'fs', '--socket-path', sock, '--shared-dir', share, '--tag', 'bench', '--queue-size', '256', ...vtsArgs], share),
};
if (existsSync(VIRTIOFSD) && process.env.FS_BENCH_ONLY !== 'vts') {
  backends.virtiofsd = () => runBackend('virtiofsd', VIRTIOFSD, (sock) => [`--socket-path=${sock}`, '-o', `source=${share}`, '-o', 'cache=auto', '--thread-pool-size=0'], share);
}

/** One round's results per back-end; odd rounds run the back-ends in the reverse order. */
const rounds = [];
const { base, share } = makeShare();
try {
  readFileSync(join(share, 'big.bin')); // into the page cache
  readFileSync(join(share, 'written.bin'));
  for (let r = 0; r < ROUNDS; r++) {
    const names = Object.keys(backends);
    if (r % 2 === 1) names.reverse();
    const results = {};
    for (const name of names) results[name] = await backends[name]();
    rounds.push(results);
  }
} finally {
  rmSync(base, { recursive: true, force: true });
  image?.remove();
}

console.log(`fs-ops: front-end ${FRONTEND === 'c' ? 'C (bench/c/vhost-fs-loadgen.c)' : 'TypeScript FsDriver'}, ${SECONDS} s per row (after ${WARMUP} s untimed), ${IN_FLIGHT} in flight, share on ${SHARE_DESC}, ${ROUNDS} round(s), ${CREATE_PAUSE} s idle before each create row, load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
const feCols = FRONTEND === 'c';
const first = rounds[0];
console.log(`rings: virtio-ts fs ${first['virtio-ts fs'].ring}, virtiofsd ${first.virtiofsd?.ring ?? '-'} (FS_BENCH_RING=${RING})`);
console.log(`max_write: virtio-ts fs ${first['virtio-ts fs'].maxWrite}, virtiofsd ${first.virtiofsd?.maxWrite ?? '-'}; sequential rows use min(${CHUNK}, max_write) per request`);
const labels = Object.keys(first['virtio-ts fs']).filter((l) => !['maxWrite', 'ring', 'stallKicks', 'frontendCpu'].includes(l));
const perCpu = (r) => (r.value * r.wall) / Math.max(r.cpu, 0.01);
rounds.forEach((results, r) => {
  if (ROUNDS > 1) console.log(`\nround ${r + 1} (${Object.keys(results).join(' first, then ')}):`);
  console.log(`${feCols ? 'rescues (a wait of' : 'stall re-notifications (lost kicks rescued,'} ${STALL_KICK_MS} ms ${feCols ? 'without a completion: used ring looked at, then re-notified)' : 'watch)'}: virtio-ts fs ${results['virtio-ts fs'].stallKicks}, virtiofsd ${results.virtiofsd?.stallKicks ?? '-'}`);
  console.log(`| row | virtio-ts fs | CPU s | virtiofsd | CPU s | ratio (rate) | ratio (per CPU s) | CPU µs/op virtio-ts | CPU µs/op virtiofsd |${feCols ? ' front-end CPU s (vts / vfsd) |' : ''}`);
  console.log(`| --- | --- | --- | --- | --- | --- | --- | --- | --- |${feCols ? ' --- |' : ''}`);
  for (const label of labels) {
    const a = results['virtio-ts fs'][label];
    const b = results.virtiofsd?.[label];
    // CPU µs per operation (a sequential row's operation is one request of `chunk` bytes): the
    // figure to compare on a loaded machine, where rates swing with the scheduler.
    const opsOf = (x) => x.ops ?? x.value * x.wall * (label.includes('MiB/s') ? (1 << 20) / Math.min(CHUNK, x.maxWrite) : 1);
    const usPerOp = (x) => ((x.cpu * 1e6) / Math.max(opsOf(x), 1)).toFixed(1);
    console.log(
      `| ${label} | ${a.value.toFixed(0)} | ${a.cpu.toFixed(2)} | ${b ? b.value.toFixed(0) : '-'} | ${b ? b.cpu.toFixed(2) : '-'} | ${b ? (a.value / b.value).toFixed(2) : '-'} | ${b ? (perCpu(a) / perCpu(b)).toFixed(2) : '-'} | ${usPerOp(a)} | ${b ? usPerOp(b) : '-'} |${feCols ? ` ${a.frontendCpu.toFixed(2)} / ${b ? b.frontendCpu.toFixed(2) : '-'} |` : ''}`,
    );
  }
});
if (ROUNDS > 1 && first.virtiofsd !== undefined) {
  // Over the rounds: the ratio of the summed rates (each round weighs what it measured) and
  // the range of the rounds' ratios.
  console.log(`\nover ${ROUNDS} rounds (order alternating): virtio-ts / virtiofsd by rate`);
  console.log('| row | ratio of the means | rounds\' ratios |');
  console.log('| --- | --- | --- |');
  for (const label of labels) {
    const sum = (name) => rounds.reduce((t, res) => t + res[name][label].value, 0);
    const each = rounds.map((res) => (res['virtio-ts fs'][label].value / res.virtiofsd[label].value).toFixed(2));
    console.log(`| ${label} | ${(sum('virtio-ts fs') / sum('virtiofsd')).toFixed(2)} | ${each.join(', ')} |`);
  }
}
