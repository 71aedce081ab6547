/**
 * The TypeScript front-end as a load generator: BlkDriver over VhostUserDriverTransport (memfd
 * guest memory, eventfd kicks and calls) doing 4 KiB random reads against virtio-ts
 * (`virtio-ts blk --memory 256M`) and qemu-storage-daemon (null-co, 256 MiB), alternating
 * A B A B per round with a fresh back-end per cell. The C load generator (blk-vhost-bench.ts)
 * measures the back-ends; this measures the whole TypeScript driver path on top of them.
 *
 *   node dist/bench/blk-frontend-bench.js [--rounds N] [--duration SECS] [--packed]
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BlkDriver } from '../src/devices/blk/blk-driver.js';
import { ErrorCode, VirtioError } from '../src/errors.js';
import { DeviceId } from '../src/spec/device-id.js';
import { F } from '../src/spec/features.js';
import { spawnBackend } from '../src/vhost-user/frontend-process.js';
import { VhostUserDriverTransport, startVhostUserDriver } from '../src/vhost-user/frontend-transport.js';
import { qsdArgs, repoRoot } from './blk-vhost-bench.js';
import { xorshift32 } from '../src/testing/xorshift.js';

const DISK = 256 << 20;
const ALL = (1n << 64n) - 1n;

interface Backend {
  name: string;
  cmd: string;
  args(sock: string): string[];
}

const BACKENDS: Backend[] = [
  { name: 'virtio-ts', cmd: process.execPath, args: (s) => [join(repoRoot, 'dist', 'src', 'cli', 'main.js'), 'blk', '--socket-path', s, '--memory', '256M'] },
  { name: 'qsd', cmd: 'qemu-storage-daemon', args: (s) => qsdArgs(s, { nullBytes: DISK }) },
];

/** A cheap deterministic random sector stream. */
const rng = xorshift32;

async function job(b: BlkDriver, qd: number, secs: number): Promise<number> {
  const sectors = DISK / 512 - 8;
  const next = rng(qd * 7919);
  const buf = new Uint8Array(4096);
  let ios = 0;
  const end = performance.now() + secs * 1000;
  const worker = async (): Promise<void> => {
    while (performance.now() < end) {
      const s = (next() % sectors) & ~7;
      const r = await b.read(s, buf.length);
      if (r.length !== buf.length) throw new VirtioError(ErrorCode.REQUEST_FAILED, 'short read');
      ios++;
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: qd }, worker));
  return ios / ((performance.now() - t0) / 1000);
}

async function cell(be: Backend, dir: string, n: number, secs: number, packed: boolean): Promise<number[]> {
  const sock = join(dir, `c${n}.sock`);
  const p = await spawnBackend(be.cmd, be.args(sock), sock);
  let t: VhostUserDriverTransport | null = null;
  try {
    t = await VhostUserDriverTransport.connect(sock, { deviceId: DeviceId.BLOCK, memorySize: 32 << 20 });
    const want = packed ? ALL : ALL & ~F.RING_PACKED;
    const d = await startVhostUserDriver(t, { wantedFeatures: want, queueSizes: [256] });
    const b = new BlkDriver(d.context);
    await job(b, 1, 0.5); // warm-up
    return [await job(b, 1, secs), await job(b, 32, secs)];
  } finally {
    t?.close();
    await p.stop();
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  let rounds = 3;
  let secs = 3;
  let packed = false;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--rounds') rounds = Number(argv[++i]);
    else if (argv[i] === '--duration') secs = Number(argv[++i]);
    else if (argv[i] === '--packed') packed = true;
    else throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `unknown argument ${argv[i]}`);
  }
  if (!existsSync(join(repoRoot, 'dist', 'src', 'cli', 'main.js'))) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'build first (npx tsc -p .)');
  const dir = mkdtempSync(join(tmpdir(), 'vts-feb-'));
  const results = new Map<string, number[][]>(BACKENDS.map((b) => [b.name, [[], []]]));
  try {
    let n = 0;
    for (let r = 0; r < rounds; r++) {
      for (const be of BACKENDS) {
        // qsd's libvhost-user (QEMU 7.2) has no packed rings: it stays on split.
        const [qd1, qd32] = await cell(be, dir, n++, secs, packed && be.name === 'virtio-ts');
        const acc = results.get(be.name)!;
        acc[0]!.push(qd1!);
        acc[1]!.push(qd32!);
        console.log(`round ${r + 1}/${rounds} ${be.name}: QD1 ${qd1!.toFixed(0)} IOPS, QD32 ${qd32!.toFixed(0)} IOPS`);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(`\nTypeScript front-end (BlkDriver over vhost-user), 4 KiB random reads, ${secs} s per job, median of ${rounds}`);
  console.log('job         virtio-ts IOPS  qsd IOPS  ratio');
  for (const [i, name] of ['r4k-qd1', 'r4k-qd32'].entries()) {
    const a = median(results.get('virtio-ts')![i]!);
    const b = median(results.get('qsd')![i]!);
    console.log(`${name.padEnd(10)}  ${a.toFixed(0).padStart(14)}  ${b.toFixed(0).padStart(8)}  ${(a / b).toFixed(2)}`);
  }
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e: unknown) => {
    console.error(e);
    process.exitCode = 1;
  });
}
