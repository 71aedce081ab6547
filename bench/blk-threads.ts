/**
 * Multiqueue scaling of vhost-user-blk back-ends: 1, 2 and 4 queues, each driven at once by the
 * same guest-less C front-end (bench/c/vhost-blk-loadgen.c --queues N: one process per queue).
 * Back-ends, alternating in every round (a fresh process per cell):
 *   - virtio-ts threads: `virtio-ts blk --memory 256M --num-queues N --threads N` (queue i on
 *     ring thread i);
 *   - virtio-ts main: the same without --threads (every queue on the main thread);
 *   - qsd: qemu-storage-daemon, null-co of the same size, export num-queues=N on one iothread
 *     (`--object iothread` + the export's `iothread=`: QEMU 7.2 has no per-queue iothread
 *     mapping, `iothread-vq-mapping` came later).
 * Printed per cell: total IOPS (sum over the queues), the back-end's CPU seconds during the load
 * (utime + stime of its process from /proc, all threads), and IOPS per back-end CPU second;
 * the table shows medians. The load average is printed before and after: on a shared machine
 * it decides what the figures mean.
 *
 *   node dist/bench/blk-threads.js [--rounds N] [--duration SECS] [--queues 1,2,4] [--job SPEC]
 *                                  [--only NAME] [--loadgen PATH]
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ErrorCode, VirtioError } from '../src/errors.js';
import { buildLoadgen, parseLoadgenOutput, repoRoot, runLoadgen, startBenchProcess, waitForSocket } from './blk-vhost-bench.js';

const DISK_BYTES = 256 * 1024 * 1024;
const CLI = join(repoRoot, 'dist', 'src', 'cli', 'main.js');
/** Clock ticks per second of /proc/<pid>/stat (Linux USER_HZ). */
const USER_HZ = 100;

interface Backend {
  readonly name: string;
  readonly cmd: string;
  args(socket: string, queues: number): string[];
}

const BACKENDS: readonly Backend[] = [
  {
    name: 'virtio-ts threads',
    cmd: process.execPath,
    args: (s, n) => [CLI, 'blk', '--socket-path', s, '--memory', '256M', '--num-queues', String(n), '--threads', String(n)],
  },
  { name: 'virtio-ts main', cmd: process.execPath, args: (s, n) => [CLI, 'blk', '--socket-path', s, '--memory', '256M', '--num-queues', String(n)] },
  {
    name: 'qsd',
    cmd: 'qemu-storage-daemon',
    args: (s, n) => [
      '--object',
      'iothread,id=io0',
      '--blockdev',
      `driver=null-co,node-name=null0,size=${DISK_BYTES},read-zeroes=on`,
      '--export',
      `type=vhost-user-blk,id=e0,node-name=null0,addr.type=unix,addr.path=${s},writable=on,num-queues=${n},iothread=io0`,
    ],
  },
];

interface Options {
  rounds: number;
  duration: number;
  queues: number[];
  job: string;
  only: string | null;
  loadgen: string | null;
}

function parseArgs(argv: readonly string[]): Options {
  const o: Options = { rounds: 3, duration: 5, queues: [1, 2, 4], job: 'r4k-qd32:rand:4096:32:call', only: null, loadgen: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = argv[i + 1];
    const need = (): string => {
      if (v === undefined) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `${a} needs a value`);
      i++;
      return v;
    };
    if (a === '--rounds') o.rounds = Number(need());
    else if (a === '--duration') o.duration = Number(need());
    else if (a === '--queues') o.queues = need().split(',').map(Number);
    else if (a === '--job') o.job = need();
    else if (a === '--only') o.only = need();
    else if (a === '--loadgen') o.loadgen = need();
    else throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `unknown argument ${a}`);
  }
  if (!Number.isInteger(o.rounds) || o.rounds < 1 || o.rounds > 50) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, '--rounds is 1..50');
  if (!(o.duration > 0 && o.duration <= 600)) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, '--duration is (0, 600] seconds');
  if (!o.queues.every((q) => Number.isInteger(q) && q >= 1 && q <= 8)) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, '--queues is a list of 1..8');
  if (o.only !== null && !BACKENDS.some((b) => b.name === o.only)) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `--only is one of ${BACKENDS.map((b) => b.name).join(', ')}`);
  return o;
}

/** CPU seconds (user + system, every thread) of process `pid` so far. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces) in parentheses: state is field 3.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / USER_HZ;
}

interface Cell {
  readonly iops: number;
  readonly cpu: number;
  readonly perQueue: readonly number[];
}

async function runCell(b: Backend, queues: number, dir: string, loadgen: string, o: Options, cell: number): Promise<Cell> {
  const socket = join(dir, `c${cell}.sock`);
  const backend = startBenchProcess(b.cmd, b.args(socket, queues));
  try {
    await waitForSocket(socket, backend, 30_000);
    const pid = backend.child.pid!;
    const cpu0 = cpuSeconds(pid);
    const run = await runLoadgen(loadgen, ['--socket', socket, '--duration', String(o.duration), '--queues', String(queues), '--job', o.job], (o.duration + 60) * 1000);
    const cpu = cpuSeconds(pid) - cpu0;
    if (run.timedOut || run.code !== 0) {
      throw new VirtioError(ErrorCode.PLATFORM, `load generator against ${b.name} (${queues} queues) failed (${String(run.code ?? run.signal)}):\n${run.stdout}${run.stderr}\n--- back-end ---\n${backend.stderr()}`);
    }
    const out = parseLoadgenOutput(run.stdout);
    if (out.results.length !== queues) throw new VirtioError(ErrorCode.PLATFORM, `${out.results.length} RESULT lines for ${queues} queues`);
    const perQueue = out.results.map((r) => r.iops);
    return { iops: perQueue.reduce((s, x) => s + x, 0), cpu, perQueue };
  } finally {
    await backend.stop();
    rmSync(socket, { force: true });
  }
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ')).join('\n');
}

const load = (): string => loadavg().map((x) => x.toFixed(2)).join(' ');

async function main(): Promise<number> {
  const o = parseArgs(process.argv.slice(2));
  if (!existsSync(CLI)) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'dist/src/cli/main.js is not built (npx tsc -p tsconfig.json)');
  const loadgen = o.loadgen ?? buildLoadgen();
  const backends = BACKENDS.filter((b) => o.only === null || b.name === o.only);
  const dir = mkdtempSync(join(tmpdir(), 'vts-blkt-'));
  const cells = new Map<string, Cell[]>();
  const key = (b: Backend, q: number): string => `${b.name}|${q}`;
  console.log(`load average before: ${load()}`);
  try {
    let cell = 0;
    for (let r = 0; r < o.rounds; r++) {
      for (const q of o.queues) {
        for (const b of backends) {
          const c = await runCell(b, q, dir, loadgen, o, cell++);
          console.log(`round ${r + 1} ${b.name} ${q}q: ${c.iops.toFixed(0)} IOPS (${c.perQueue.map((x) => (x / 1000).toFixed(0) + 'k').join(' + ')}), ${c.cpu.toFixed(2)} CPU s, load ${load()}`);
          const list = cells.get(key(b, q)) ?? [];
          list.push(c);
          cells.set(key(b, q), list);
        }
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const rows: string[][] = [['queues', ...backends.flatMap((b) => [`${b.name} IOPS`, 'CPU s', 'IOPS/CPU s'])]];
  for (const q of o.queues) {
    rows.push([
      String(q),
      ...backends.flatMap((b) => {
        const cs = cells.get(key(b, q)) ?? [];
        const iops = median(cs.map((c) => c.iops));
        const cpu = median(cs.map((c) => c.cpu));
        return [iops.toFixed(0), cpu.toFixed(2), (median(cs.map((c) => (c.iops * o.duration) / Math.max(c.cpu, 0.01)))).toFixed(0)];
      }),
    ]);
  }
  console.log(`\nvhost-user-blk multiqueue, job ${o.job} on every queue, ${o.duration} s, ${o.rounds} rounds alternating; medians`);
  console.log(table(rows));
  console.log(`load average after: ${load()} (${process.env['HOSTNAME'] ?? 'this machine'}, ${(await import('node:os')).cpus().length} CPUs)`);
  return 0;
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = await main();
}
