/**
 * File-backed vhost-user-blk side by side: `virtio-ts blk --image` (`--aio io_uring`, the default,
 * `auto` and `threads`; `--direct` for cache.direct=on) against qemu-storage-daemon `driver=file` with `aio=threads` and
 * `aio=io_uring`, `cache.direct=off` and `on`, all on the same raw image, driven by the same C
 * load generator (bench/c/vhost-blk-loadgen.c): 4 KiB random reads and writes at QD1 and QD32,
 * 64 KiB sequential reads and writes at QD8. The back-ends alternate within each round (a fresh
 * process per cell); each job is a separate load generator run, with the back-end's CPU time
 * (utime + stime of all its threads, io-wq workers and libuv's pool included) read from
 * /proc before and after, so IOPS per back-end CPU second is printed beside the IOPS.
 *
 *   node dist/bench/blk-file-bench.js [--rounds N] [--duration SECS] [--cache off|on|both]
 *                                     [--only NAME[,NAME]] [--jobs NAME[,NAME]] [--poll-us N[,N]] [--wait-us N[,N]]
 *                                     [--image-mib N] [--loadgen PATH]
 *
 * `virtio-ts no-inline` is `--aio io_uring --no-inline-writes` (cache.direct=off only).
 * `--only`: the back-ends whose name contains one of the names; `--jobs`: the jobs whose name
 * contains one; `--poll-us`, `--wait-us`: add `virtio-ts auto pollN` / `waitN` columns (`--poll-us N`,
 * `--wait-us N`). The last lines
 * compare each virtio-ts column but threads with qsd aio=io_uring (the goal) and name the rows
 * where `virtio-ts io_uring` (the command's defaults) is below it.
 *
 * The image lives in a fresh directory under $TMPDIR (use a real filesystem: tmpfs has no
 * O_DIRECT before Linux 6.6) and is filled with random bytes; with cache.direct=off the page
 * cache holds it (read once before the first round).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ErrorCode, VirtioError } from '../src/errors.js';
import { buildLoadgen, parseLoadgenOutput, repoRoot, runLoadgen, startBenchProcess, waitForSocket, type JobResult } from './blk-vhost-bench.js';

const CLI = join(repoRoot, 'dist', 'src', 'cli', 'main.js');
/** The column of `virtio-ts blk --image` with the command's defaults (`--aio io_uring`). */
const DEFAULT_COLUMN = 'virtio-ts io_uring';

interface Job {
  readonly name: string;
  readonly spec: string;
}

const JOBS: readonly Job[] = [
  { name: 'randread 4k qd1', spec: 'r4k-qd1:rand:4096:1:call' },
  { name: 'randread 4k qd32', spec: 'r4k-qd32:rand:4096:32:call' },
  { name: 'randwrite 4k qd1', spec: 'w4k-qd1:randw:4096:1:call' },
  { name: 'randwrite 4k qd32', spec: 'w4k-qd32:randw:4096:32:call' },
  { name: 'seqread 64k qd8', spec: 's64k-qd8:seq:65536:8:call' },
  { name: 'seqwrite 64k qd8', spec: 'sw64k-qd8:seqw:65536:8:call' },
];

interface Backend {
  readonly name: string;
  readonly direct: boolean;
  readonly cmd: string;
  args(socket: string, image: string): string[];
}

function qsd(aio: 'threads' | 'io_uring', direct: boolean): Backend {
  return {
    name: `qsd aio=${aio}`,
    direct,
    cmd: 'qemu-storage-daemon',
    args: (s, image) => [
      '--blockdev',
      `driver=file,node-name=file0,filename=${image},aio=${aio},cache.direct=${direct ? 'on' : 'off'}`,
      '--blockdev',
      'driver=raw,node-name=raw0,file=file0',
      '--export',
      `type=vhost-user-blk,id=e0,node-name=raw0,addr.type=unix,addr.path=${s},writable=on,num-queues=1`,
    ],
  };
}

/** `virtio-ts blk --image` with `--aio aio`; `pollUs` given: `--poll-us pollUs` (else the default). */
function virtioTs(direct: boolean, aio: 'auto' | 'io_uring' | 'threads', pollUs?: number, waitUs?: number, inline = true): Backend {
  return {
    name: inline ? `virtio-ts ${aio}${pollUs === undefined ? '' : ` poll${pollUs}`}${waitUs === undefined ? '' : ` wait${waitUs}`}` : 'virtio-ts no-inline',
    direct,
    cmd: process.execPath,
    args: (s, image) => [
      CLI,
      'blk',
      '--socket-path',
      s,
      '--image',
      image,
      '--aio',
      aio,
      '-q',
      ...(direct ? ['--direct'] : []),
      ...(pollUs === undefined ? [] : ['--poll-us', String(pollUs)]),
      ...(waitUs === undefined ? [] : ['--wait-us', String(waitUs)]),
      ...(inline ? [] : ['--no-inline-writes']),
    ],
  };
}

/**
 * The back-ends of one run: `pollUs` and `waitUs` add `virtio-ts auto` with each of those poll
 * windows and completion waits.
 */
function backendsFor(pollUs: readonly number[], waitUs: readonly number[]): Backend[] {
  const polled = (direct: boolean): Backend[] => [...pollUs.map((us) => virtioTs(direct, 'auto', us)), ...waitUs.map((us) => virtioTs(direct, 'auto', undefined, us))];
  return [
    virtioTs(false, 'auto'),
    ...polled(false),
    virtioTs(false, 'io_uring'),
    // `--no-inline-writes`: every buffered write through io_uring, as before inline-write.ts.
    virtioTs(false, 'io_uring', undefined, undefined, false),
    qsd('threads', false),
    qsd('io_uring', false),
    virtioTs(false, 'threads'),
    virtioTs(true, 'auto'),
    ...polled(true),
    virtioTs(true, 'io_uring'),
    qsd('threads', true),
    qsd('io_uring', true),
  ];
}

interface Options {
  rounds: number;
  duration: number;
  cache: 'off' | 'on' | 'both';
  only: string[] | null;
  imageMib: number;
  loadgen: string | null;
  /** `--jobs`: the jobs to run (names containing one of these), or null for all. */
  jobs: string[] | null;
  /** `--poll-us N[,N]`: extra `virtio-ts auto` columns with these poll windows. */
  pollUs: number[];
  /** `--wait-us N[,N]`: extra `virtio-ts auto` columns with these completion waits. */
  waitUs: number[];
}

function parseArgs(argv: readonly string[]): Options {
  const o: Options = { rounds: 3, duration: 3, cache: 'both', only: null, imageMib: 256, loadgen: null, jobs: null, pollUs: [], waitUs: [] };
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
    else if (a === '--cache') {
      const c = need();
      if (c !== 'off' && c !== 'on' && c !== 'both') throw new VirtioError(ErrorCode.INVALID_ARGUMENT, '--cache is off, on or both');
      o.cache = c;
    } else if (a === '--only') o.only = need().split(',');
    else if (a === '--image-mib') o.imageMib = Number(need());
    else if (a === '--loadgen') o.loadgen = need();
    else if (a === '--jobs') o.jobs = need().split(',');
    else if (a === '--poll-us') o.pollUs = need().split(',').map(Number);
    else if (a === '--wait-us') o.waitUs = need().split(',').map(Number);
    else throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `unknown argument ${a}`);
  }
  if (!Number.isInteger(o.rounds) || o.rounds < 1 || o.rounds > 50) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, '--rounds is 1..50');
  if (!(o.duration > 0 && o.duration <= 600)) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, '--duration is (0, 600] seconds');
  if (!o.waitUs.every((x) => Number.isInteger(x) && x >= 0 && x <= 1000)) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, '--wait-us is a list of 0..1000');
  if (!o.pollUs.every((x) => Number.isInteger(x) && x >= 0 && x <= 1000)) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, '--poll-us is a list of 0..1000');
  if (!Number.isInteger(o.imageMib) || o.imageMib < 16 || o.imageMib > 16384) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, '--image-mib is 16..16384');
  return o;
}

function selectedJobs(o: Options): readonly Job[] {
  return o.jobs === null ? JOBS : JOBS.filter((j) => o.jobs!.some((n) => j.name.includes(n)));
}

/** utime + stime of a process (all its threads) in seconds. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces, inside parentheses).
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // USER_HZ is 100 on Linux
}

interface Cell {
  readonly result: JobResult;
  readonly cpu: number;
}

async function runCell(b: Backend, image: string, dir: string, loadgen: string, o: Options, n: number): Promise<Map<string, Cell>> {
  const socket = join(dir, `c${n}.sock`);
  const proc = startBenchProcess(b.cmd, b.args(socket, image));
  const cells = new Map<string, Cell>();
  try {
    await waitForSocket(socket, proc);
    const pid = proc.child.pid!;
    for (const job of selectedJobs(o)) {
      const cpu0 = cpuSeconds(pid);
      const run = await runLoadgen(loadgen, ['--socket', socket, '--duration', String(o.duration), '--job', job.spec], (o.duration + 60) * 1000);
      const cpu = cpuSeconds(pid) - cpu0;
      if (run.timedOut || run.code !== 0) {
        throw new VirtioError(ErrorCode.PLATFORM, `${b.name} ${job.name}: load generator failed (${String(run.code ?? run.signal)}):\n${run.stdout}${run.stderr}\n--- back-end ---\n${proc.stdout()}${proc.stderr()}`);
      }
      const r = parseLoadgenOutput(run.stdout).results[0];
      if (r === undefined) throw new VirtioError(ErrorCode.PLATFORM, `${b.name} ${job.name}: no RESULT line`);
      cells.set(job.name, { result: r, cpu });
    }
    return cells;
  } finally {
    await proc.stop();
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
  return rows.map((r) => '| ' + r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ') + ' |').join('\n');
}

async function main(): Promise<number> {
  const o = parseArgs(process.argv.slice(2));
  const loadgen = o.loadgen ?? buildLoadgen();
  if (!existsSync(CLI)) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'dist/src/cli/main.js is not built (npx tsc -p tsconfig.json)');
  const dir = mkdtempSync(join(tmpdir(), 'vts-blkfile-'));
  const image = join(dir, 'disk.img');
  try {
    execFileSync('dd', ['if=/dev/urandom', `of=${image}`, 'bs=1M', `count=${o.imageMib}`, 'status=none'], { timeout: 300_000 });
    execFileSync('cat', [image], { stdio: ['ignore', 'ignore', 'inherit'], maxBuffer: 1 << 30 });
    const load0 = loadavg();
    const start = new Date().toISOString();
    console.log(`start ${start}, load average ${load0.map((x) => x.toFixed(2)).join(' ')}`);
    for (const direct of o.cache === 'both' ? [false, true] : [o.cache === 'on']) {
      const backends = backendsFor(o.pollUs, o.waitUs).filter((b) => b.direct === direct && (o.only === null || o.only.some((n) => b.name.includes(n))));
      const runs = new Map<string, Map<string, Cell>[]>(backends.map((b) => [b.name, []]));
      let n = 0;
      for (let r = 0; r < o.rounds; r++) {
        for (const b of backends) {
          process.stdout.write(`cache.direct=${direct ? 'on' : 'off'} round ${r + 1}/${o.rounds} ${b.name} ...\n`);
          runs.get(b.name)!.push(await runCell(b, image, dir, loadgen, o, n++));
        }
      }
      const names = backends.map((b) => b.name);
      const ref = names.indexOf('qsd aio=io_uring');
      // Every virtio-ts column but threads against qsd aio=io_uring (the goal), IOPS and per CPU-s.
      const compared = ref < 0 ? [] : names.filter((x) => x.startsWith('virtio-ts') && x !== 'virtio-ts threads');
      const ratioHead = (x: string): string[] => (x === 'virtio-ts io_uring' ? ['virtio-ts / qsd io_uring', 'per CPU-s'] : [`${x.slice('virtio-ts '.length)} / qsd io_uring`, 'per CPU-s']);
      const head = ['job', ...names.map((x) => `${x} IOPS`), ...names.map((x) => `${x} IOPS/CPU-s`), ...compared.flatMap(ratioHead)];
      const rows: string[][] = [head, head.map((h, i) => (i === 0 ? '---' : '---:'))];
      const behind: string[] = [];
      for (const job of selectedJobs(o)) {
        const iops = names.map((x) => median(runs.get(x)!.map((c) => c.get(job.name)!.result.iops)));
        const eff = names.map((x) => median(runs.get(x)!.map((c) => c.get(job.name)!.result.ios / Math.max(c.get(job.name)!.cpu, 0.01))));
        const ratios = compared.flatMap((x) => {
          const i = names.indexOf(x);
          return [iops[i]! / iops[ref]!, eff[i]! / eff[ref]!];
        });
        if (compared.includes(DEFAULT_COLUMN) && ratios[2 * compared.indexOf(DEFAULT_COLUMN)]! < 1) behind.push(job.name);
        rows.push([job.name, ...iops.map((x) => x.toFixed(0)), ...eff.map((x) => x.toFixed(0)), ...ratios.map((x) => x.toFixed(2))]);
      }
      console.log(`\ncache.direct=${direct ? 'on' : 'off'}: ${o.rounds} rounds alternating, ${o.duration} s per job, median; ${o.imageMib} MiB raw image on ${tmpdir()}`);
      console.log(table(rows));
      if (compared.includes(DEFAULT_COLUMN)) console.log(behind.length === 0 ? `${DEFAULT_COLUMN} (the default) at or above qsd aio=io_uring (IOPS) on every row` : `${DEFAULT_COLUMN} (the default) below qsd aio=io_uring (IOPS) on: ${behind.join(', ')}`);
    }
    const load1 = loadavg();
    console.log(`\nend ${new Date().toISOString()}, load average ${load1.map((x) => x.toFixed(2)).join(' ')}`);
    return 0;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = await main();
}
