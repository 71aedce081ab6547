/* global process, console, performance, setTimeout */
// One virtio-fs operation, repeated, against one back-end over vhost-user (the same FsDriver
// front-end as bench/fs-ops.mjs, 16 in flight): the back-end's CPU µs per operation (its process
// tree's utime+stime), the front-end's (this process), the rate. Made for A/B runs on a loaded
// machine: alternate two trees or the two back-ends several times and compare the minimum, and
// attach `strace -f -c -p PID` or `perf record -g -p PID` to the back-end (its pid is printed
// before the timed part starts when FS_OP_PAUSE_MS gives the time to attach).
//
// Run (built): node bench/fs-op-cpu.mjs vts|virtiofsd lookup|create|rread|sread|swrite [count=20000]
// FS_OP_WARMUP=operations untimed first (default 2000); FS_OP_NAMES=files for lookup (default
// 1000); FS_OP_NODE_ARGS / FS_OP_VTS_ARGS: node flags and `virtio-ts fs` options for the
// virtio-ts back-end; FS_OP_PAUSE_MS: wait after the warm-up (default 0).
// An operation: lookup = LOOKUP+GETATTR+FORGET; create = CREATE+RELEASE+UNLINK+FORGET; rread = a
// 4 KiB READ at a random page of a 64 MiB file; sread / swrite = a 128 KiB READ / WRITE, in order.
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
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

const [which = 'vts', op = 'lookup', countText = '20000'] = process.argv.slice(2);
const COUNT = Number(countText);
const WARMUP = Number(process.env.FS_OP_WARMUP ?? 2000);
const NAMES = Number(process.env.FS_OP_NAMES ?? 1000);
const PAUSE_MS = Number(process.env.FS_OP_PAUSE_MS ?? 0);
const IN_FLIGHT = 16;
const CHUNK = 131072;
const RING_PACKED = 1n << 34n;
const args = (name) => (process.env[name] ?? '').split(' ').filter((a) => a !== '');

/** utime + stime of `pid` and its descendants, in µs. */
function cpuMicros(pid) {
  return treeCpuSeconds(pid) * 1e6;
}

const base = mkdtempSync(join(tmpdir(), 'vts-fs-op-'));
const share = join(base, 'share');
mkdirSync(join(share, 'scratch'), { recursive: true });
for (let i = 0; i < NAMES; i++) writeFileSync(join(share, `f${i}`), 'x');
writeFileSync(join(share, 'big.bin'), randomBytes(/read|write/.test(op) ? 64 << 20 : 4096));
readFileSync(join(share, 'big.bin')); // into the page cache
execFileSync('sync', ['-f', share]); // no writeback of the setup during the run (bench/README.md)
const sock = join(base, 'fs.sock');
const cmd =
  which === 'vts'
    ? [process.execPath, ...args('FS_OP_NODE_ARGS'), dist('src/cli/main.js'), 'fs', '--socket-path', sock, '--shared-dir', share, '--tag', 'bench', '--queue-size', '256', ...args('FS_OP_VTS_ARGS')]
    : ['/usr/lib/qemu/virtiofsd', `--socket-path=${sock}`, '-o', `source=${share}`, '-o', 'cache=auto', '--thread-pool-size=0'];
const p = await spawnBackend(cmd[0], cmd.slice(1), sock);
const t = await VhostUserDriverTransport.connect(sock, { deviceId: DeviceId.FS, timeoutMs: 10_000, memorySize: 128 << 20, stallKickMs: 100 });
try {
  // Split rings for both (QEMU 7.2's virtiofsd has no packed rings), as bench/fs-ops.mjs.
  const d = await startVhostUserDriver(t, { wantedFeatures: ((1n << 64n) - 1n) & ~RING_PACKED, queueSizes: [256, 256] });
  const fs = new FsDriver(d.context, { requestQueues: 1 });
  await fs.init();
  const dir = await fs.lookup(1n, 'scratch');
  const big = await fs.lookup(1n, 'big.bin');
  const fh = await fs.open(big.nodeid, 2);
  const chunk = Math.min(CHUNK, fs.maxWrite);
  const data = randomBytes(chunk);
  let i = 0;
  const ops = {
    lookup: async () => {
      const e = await fs.lookup(1n, `f${i++ % NAMES}`);
      await fs.getattr(e.nodeid);
      await fs.forget(e.nodeid, 1);
    },
    create: async () => {
      const name = `c${i++}`;
      const { entry, fh: cfh } = await fs.create(dir.nodeid, name, 0o100644, 2);
      await fs.release(entry.nodeid, cfh);
      await fs.unlink(dir.nodeid, name);
      await fs.forget(entry.nodeid, 1);
    },
    rread: async () => fs.read(big.nodeid, fh, Math.floor(Math.random() * 16384) * 4096, 4096),
    sread: async () => fs.read(big.nodeid, fh, (i++ * chunk) % (64 << 20), chunk),
    swrite: async () => fs.write(big.nodeid, fh, (i++ * chunk) % (64 << 20), data),
  };
  const one = ops[op];
  if (one === undefined) throw new Error(`unknown operation ${op} (lookup, create, rread, sread, swrite)`);
  const run = async (n) => {
    let started = 0;
    await Promise.all(
      Array.from({ length: IN_FLIGHT }, async () => {
        while (started < n) {
          started++;
          await one();
        }
      }),
    );
  };
  await run(WARMUP);
  if (PAUSE_MS > 0) {
    console.log(`back-end pid ${p.child.pid}: timed part in ${PAUSE_MS} ms`);
    await new Promise((r) => setTimeout(r, PAUSE_MS));
  }
  const c0 = cpuMicros(p.child.pid);
  const f0 = process.cpuUsage();
  const t0 = performance.now();
  await run(COUNT);
  const ms = performance.now() - t0;
  const backend = (cpuMicros(p.child.pid) - c0) / COUNT;
  const fu = process.cpuUsage(f0);
  const front = (fu.user + fu.system) / COUNT;
  console.log(
    `${which} ${op}: ${COUNT} in ${ms.toFixed(0)} ms, ${((COUNT / ms) * 1000).toFixed(0)} /s, back-end CPU ${backend.toFixed(1)} µs/op, front-end CPU ${front.toFixed(1)} µs/op, load ${loadavg()[0].toFixed(1)}`,
  );
  fs.detach();
} finally {
  t.close();
  await p.stop();
  rmSync(base, { recursive: true, force: true });
}
