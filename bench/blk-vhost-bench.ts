/**
 * vhost-user-blk side by side: virtio-ts (`virtio-ts blk --memory 256M`) against
 * qemu-storage-daemon (a null-co block node of the same size), both driven by the same guest-less
 * C front-end, bench/c/vhost-blk-loadgen.c. The back-ends alternate A B A B A B (a fresh process
 * per cell) so drift on a shared machine hits both alike; the table shows the median of the runs.
 *
 *   node dist/bench/blk-vhost-bench.js [--rounds N] [--duration SECS] [--only virtio-ts|qsd]
 *                                      [--loadgen PATH] [--job NAME:rand|seq:BS:QD:call|poll]...
 *
 * Every process it starts is ended when a cell finishes, on error, on a time-out, on SIGINT or
 * SIGTERM, and (through `setpriv --pdeathsig KILL`) when this process dies.
 *
 * The helpers are exported for test/loadgen-qsd.test.ts, which runs the load generator's
 * `--verify` mode against qemu-storage-daemon.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ErrorCode, VirtioError } from '../src/errors.js';

function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'bench'))) return dir;
    dir = dirname(dir);
  }
  throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `cannot find the repository root above ${import.meta.url}`);
}

/** The repository root (the folder holding package.json). */
export const repoRoot: string = findRoot();
/** The load generator's C source (its own part; the shared front-end is LOADGEN_FRONT_SOURCES). */
export const LOADGEN_SOURCE: string = join(repoRoot, 'bench', 'c', 'vhost-blk-loadgen.c');
/** The load generator's command line (bench/c/vhost-blk-options.c and its header). */
export const LOADGEN_OPTION_SOURCES: readonly string[] = [join(repoRoot, 'bench', 'c', 'vhost-blk-options.c'), join(repoRoot, 'bench', 'c', 'vhost-blk-options.h')];
/** The vhost-user front-end the C load generators share (bench/c/vhost-front.c and its header). */
export const LOADGEN_FRONT_SOURCES: readonly string[] = [join(repoRoot, 'bench', 'c', 'vhost-front.c'), join(repoRoot, 'bench', 'c', 'vhost-front.h')];
/** Where scripts/bench.mjs builds it. */
export const LOADGEN_DEFAULT_BINARY: string = join(repoRoot, 'build', 'bench', 'vhost-blk-loadgen');

/**
 * Compiles the C program of `sources` (its .c files; headers count for freshness) with the
 * machine's gcc (`-O2 -Wall -Wextra -Werror`) into `out`, unless `out` is newer than every source.
 * Returns `out`. Throws (from execFileSync) if gcc fails.
 */
export function buildCProgram(out: string, sources: readonly string[]): string {
  const fresh = existsSync(out) && sources.every((src) => statSync(out).mtimeMs >= statSync(src).mtimeMs);
  if (!fresh) {
    // build/ is wiped by an addon rebuild (node-gyp rebuild): make the directory again.
    mkdirSync(dirname(out), { recursive: true });
    const cFiles = sources.filter((f) => f.endsWith('.c'));
    execFileSync('gcc', ['-O2', '-Wall', '-Wextra', '-Werror', '-o', out, ...cFiles], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 });
  }
  return out;
}

/** Builds the blk load generator (buildCProgram) into `out`. */
export function buildLoadgen(out: string = LOADGEN_DEFAULT_BINARY): string {
  return buildCProgram(out, [...LOADGEN_FRONT_SOURCES, ...LOADGEN_OPTION_SOURCES, LOADGEN_SOURCE]);
}

// ---------------------------------------------------------------------------------------------
// Output of the load generator

/** One `RESULT` line: a benchmark job. */
export interface JobResult {
  readonly job: string;
  readonly pattern: string;
  readonly bs: number;
  readonly qd: number;
  readonly completion: string;
  readonly ios: number;
  readonly secs: number;
  readonly iops: number;
  readonly mbps: number;
  readonly latMeanUs: number;
  readonly latP50Us: number;
  readonly latP99Us: number;
  readonly latMaxUs: number;
  readonly lenMismatches: number;
}

export interface LoadgenOutput {
  /** The `INFO` line's fields (negotiated features, capacity, ...), or null when absent. */
  readonly info: ReadonlyMap<string, string> | null;
  readonly results: readonly JobResult[];
  /** `VERIFY OK ...` / `VERIFY FAIL ...`: whether it passed and the line's fields; null when absent. */
  readonly verify: { readonly ok: boolean; readonly fields: ReadonlyMap<string, string> } | null;
}

function fieldsOf(words: readonly string[]): Map<string, string> {
  const m = new Map<string, string>();
  for (const w of words) {
    const eq = w.indexOf('=');
    if (eq > 0) m.set(w.slice(0, eq), w.slice(eq + 1));
  }
  return m;
}

function num(m: ReadonlyMap<string, string>, key: string, line: string): number {
  const v = m.get(key);
  const n = v === undefined ? NaN : Number(v);
  if (!Number.isFinite(n)) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `load generator line lacks a numeric ${key}: ${line}`);
  return n;
}

/** Parses the load generator's stdout. Throws a VirtioError on a malformed RESULT line. */
export function parseLoadgenOutput(stdout: string): LoadgenOutput {
  let info: Map<string, string> | null = null;
  let verify: LoadgenOutput['verify'] = null;
  const results: JobResult[] = [];
  for (const line of stdout.split('\n')) {
    const words = line.trim().split(/\s+/);
    if (words[0] === 'INFO') info = fieldsOf(words.slice(1));
    else if (words[0] === 'VERIFY' && (words[1] === 'OK' || words[1] === 'FAIL')) verify = { ok: words[1] === 'OK', fields: fieldsOf(words.slice(2)) };
    else if (words[0] === 'RESULT') {
      const f = fieldsOf(words.slice(1));
      results.push({
        job: f.get('job') ?? '?',
        pattern: f.get('pattern') ?? '?',
        completion: f.get('completion') ?? '?',
        bs: num(f, 'bs', line),
        qd: num(f, 'qd', line),
        ios: num(f, 'ios', line),
        secs: num(f, 'secs', line),
        iops: num(f, 'iops', line),
        mbps: num(f, 'mbps', line),
        latMeanUs: num(f, 'lat_mean_us', line),
        latP50Us: num(f, 'lat_p50_us', line),
        latP99Us: num(f, 'lat_p99_us', line),
        latMaxUs: num(f, 'lat_max_us', line),
        lenMismatches: num(f, 'len_mismatches', line),
      });
    }
  }
  return { info, results, verify };
}

// ---------------------------------------------------------------------------------------------
// Processes

const live = new Set<ChildProcess>();
let exitHook = false;

function track(child: ChildProcess): void {
  live.add(child);
  child.once('exit', () => live.delete(child));
  if (!exitHook) {
    exitHook = true;
    // Last resort: whatever is still running when Node exits is killed.
    process.once('exit', () => {
      for (const c of live) c.kill('SIGKILL');
    });
  }
}

/** A started back-end or load generator. */
export interface BenchProcess {
  readonly child: ChildProcess;
  /** stdout so far. */
  stdout(): string;
  /** stderr so far. */
  stderr(): string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM, SIGKILL after `graceMs`; resolves once it has exited. Idempotent. */
  stop(graceMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `cmd`, bound to this process's life (`setpriv --pdeathsig KILL` when available). */
export function startBenchProcess(cmd: string, args: readonly string[], cwd: string = repoRoot): BenchProcess {
  const viaSetpriv = existsSync('/usr/bin/setpriv');
  const child = viaSetpriv
    ? spawn('/usr/bin/setpriv', ['--pdeathsig', 'KILL', '--', cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], cwd })
    : spawn(cmd, [...args], { stdio: ['ignore', 'pipe', 'pipe'], cwd });
  track(child);
  let out = '';
  let err = '';
  child.stdout?.on('data', (b: Buffer) => (out += b.toString('utf8')));
  child.stderr?.on('data', (b: Buffer) => (err += b.toString('utf8')));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => {
    child.once('error', (e) => {
      err += `\nspawn error: ${e.message}\n`;
      res({ code: null, signal: null });
    });
    child.once('close', (code, signal) => res({ code, signal }));
  });
  const stop = async (graceMs = 2000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> => {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
      try {
        return await exited;
      } finally {
        clearTimeout(t);
      }
    }
    return exited;
  };
  return { child, stdout: () => out, stderr: () => err, exited, stop };
}

/** Resolves when `path` exists; rejects if `proc` exits first or after `timeoutMs`. */
export async function waitForSocket(path: string, proc: BenchProcess, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let gone = false;
  void proc.exited.then(() => (gone = true));
  while (!existsSync(path)) {
    if (gone) throw new VirtioError(ErrorCode.PLATFORM, `back-end exited before ${path} appeared:\n${proc.stdout()}${proc.stderr()}`);
    if (Date.now() > deadline) throw new VirtioError(ErrorCode.TIMEOUT, `${path} did not appear within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export interface LoadgenRun {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly timedOut: boolean;
}

/** Runs the load generator to its end, killing it after `timeoutMs`. */
export async function runLoadgen(binary: string, args: readonly string[], timeoutMs: number): Promise<LoadgenRun> {
  const p = startBenchProcess(binary, args);
  let timedOut = false;
  const t = setTimeout(() => {
    timedOut = true;
    void p.stop(500);
  }, timeoutMs);
  try {
    const { code, signal } = await p.exited;
    return { code, signal, stdout: p.stdout(), stderr: p.stderr(), timedOut };
  } finally {
    clearTimeout(t);
    await p.stop(500);
  }
}

/** qemu-storage-daemon arguments: a vhost-user-blk export of a null-co node, or of a raw file. */
export function qsdArgs(socket: string, disk: { nullBytes: number } | { image: string }): string[] {
  const blockdev =
    'nullBytes' in disk
      ? ['--blockdev', `driver=null-co,node-name=null0,size=${disk.nullBytes},read-zeroes=on`]
      : ['--blockdev', `driver=file,node-name=file0,filename=${disk.image}`, '--blockdev', 'driver=raw,node-name=null0,file=file0'];
  return [
    ...blockdev,
    '--export',
    `type=vhost-user-blk,id=e0,node-name=null0,addr.type=unix,addr.path=${socket},writable=on,num-queues=1`,
  ];
}

// ---------------------------------------------------------------------------------------------
// The side-by-side run

const DISK_BYTES = 256 * 1024 * 1024;

interface Backend {
  readonly name: string;
  readonly cmd: string;
  args(socket: string): string[];
}

const BACKENDS: readonly Backend[] = [
  {
    name: 'virtio-ts',
    cmd: process.execPath,
    args: (s) => [join(repoRoot, 'dist', 'src', 'cli', 'main.js'), 'blk', '--socket-path', s, '--memory', '256M'],
  },
  { name: 'qsd', cmd: 'qemu-storage-daemon', args: (s) => qsdArgs(s, { nullBytes: DISK_BYTES }) },
];

interface Options {
  rounds: number;
  duration: number;
  only: string | null;
  loadgen: string | null;
  jobs: string[];
}

function parseArgs(argv: readonly string[]): Options {
  const o: Options = { rounds: 3, duration: 5, only: null, loadgen: null, jobs: [] };
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
    else if (a === '--only') o.only = need();
    else if (a === '--loadgen') o.loadgen = need();
    else if (a === '--job') o.jobs.push(need());
    else throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `unknown argument ${a}`);
  }
  if (!Number.isInteger(o.rounds) || o.rounds < 1 || o.rounds > 50) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, '--rounds is 1..50');
  if (!(o.duration > 0 && o.duration <= 600)) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, '--duration is (0, 600] seconds');
  if (o.only !== null && !BACKENDS.some((b) => b.name === o.only)) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `--only is one of ${BACKENDS.map((b) => b.name).join(', ')}`);
  return o;
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

/** One cell: a fresh back-end, the load generator's jobs against it, the back-end stopped. */
async function runCell(b: Backend, dir: string, loadgen: string, o: Options, cell: number): Promise<JobResult[]> {
  const socket = join(dir, `c${cell}.sock`);
  const backend = startBenchProcess(b.cmd, b.args(socket));
  try {
    await waitForSocket(socket, backend);
    const args = ['--socket', socket, '--duration', String(o.duration), ...o.jobs.flatMap((j) => ['--job', j])];
    const njobs = o.jobs.length || 6;
    const run = await runLoadgen(loadgen, args, (o.duration * njobs + 60) * 1000);
    if (run.timedOut) throw new VirtioError(ErrorCode.TIMEOUT, `load generator against ${b.name} timed out:\n${run.stderr}`);
    if (run.code !== 0) throw new VirtioError(ErrorCode.PLATFORM, `load generator against ${b.name} failed (${String(run.code ?? run.signal)}):\n${run.stdout}${run.stderr}\n--- back-end ---\n${backend.stdout()}${backend.stderr()}`);
    const out = parseLoadgenOutput(run.stdout);
    if (cell < 2 && out.info) console.log(`  ${b.name}: ${[...out.info].map(([k, v]) => `${k}=${v}`).join(' ')}`);
    return [...out.results];
  } finally {
    await backend.stop();
    rmSync(socket, { force: true });
  }
}

async function main(): Promise<number> {
  const o = parseArgs(process.argv.slice(2));
  const loadgen = o.loadgen ?? buildLoadgen();
  let backends = BACKENDS.filter((b) => o.only === null || b.name === o.only);
  const dir = mkdtempSync(join(tmpdir(), 'vts-blkb-'));
  const onSignal = (sig: NodeJS.Signals): void => {
    for (const c of live) c.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    process.exit(sig === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const runs = new Map<string, JobResult[][]>(backends.map((b) => [b.name, []]));
  const skipped = new Map<string, string>();
  try {
    if (!existsSync(join(repoRoot, 'dist', 'src', 'cli', 'main.js'))) skipped.set('virtio-ts', 'dist/src/cli/main.js is not built');
    let cell = 0;
    for (let r = 0; r < o.rounds; r++) {
      for (const b of backends) {
        if (skipped.has(b.name)) continue;
        process.stdout.write(`round ${r + 1}/${o.rounds} ${b.name} ...\n`);
        try {
          runs.get(b.name)!.push(await runCell(b, dir, loadgen, o, cell++));
        } catch (e) {
          // The other back-end still gets measured; the reason is printed with the table.
          skipped.set(b.name, (e as Error).message.split('\n').slice(0, 12).join('\n'));
        }
      }
    }
    backends = backends.filter((b) => (runs.get(b.name)?.length ?? 0) > 0);
    for (const [name, why] of skipped) console.log(`\n${name}: not measured (or not in every round): ${why}`);
    if (backends.length === 0) return 1;
    const first = runs.get(backends[0]!.name)![0]!;
    const names = backends.map((b) => b.name);
    const ratioOk = names.includes('virtio-ts') && names.includes('qsd');
    const iopsRows: string[][] = [['job', ...names.map((n) => `${n} IOPS (median of ${runs.get(n)!.length})`), ...names.map((n) => `${n} runs`), ...(ratioOk ? ['virtio-ts / qsd'] : [])]];
    const latRows: string[][] = [['QD1 job', ...names.flatMap((n) => [`${n} mean us`, `p50`, `p99`]), ...(ratioOk ? ['mean ratio'] : [])]];
    for (let j = 0; j < first.length; j++) {
      const job = first[j]!.job;
      const per = (n: string): JobResult[] => runs.get(n)!.map((rs) => rs.find((x) => x.job === job)).filter((x): x is JobResult => x !== undefined);
      const iops = names.map((n) => median(per(n).map((x) => x.iops)));
      iopsRows.push([
        job,
        ...iops.map((x) => x.toFixed(0)),
        ...names.map((n) => per(n).map((x) => (x.iops / 1000).toFixed(1) + 'k').join(' ')),
        ...(ratioOk ? [(iops[names.indexOf('virtio-ts')]! / iops[names.indexOf('qsd')]!).toFixed(2)] : []),
      ]);
      if (first[j]!.qd === 1) {
        const lat = names.map((n) => [median(per(n).map((x) => x.latMeanUs)), median(per(n).map((x) => x.latP50Us)), median(per(n).map((x) => x.latP99Us))] as const);
        latRows.push([
          job,
          ...lat.flatMap((l) => l.map((x) => x.toFixed(1))),
          ...(ratioOk ? [(lat[names.indexOf('virtio-ts')]![0] / lat[names.indexOf('qsd')]![0]).toFixed(2)] : []),
        ]);
      }
    }
    console.log(`\nvhost-user-blk, ${o.duration} s per job, ${o.rounds} rounds alternating ${names.join(' / ')}; 256 MiB disk (RAM disk / null-co)`);
    console.log(table(iopsRows));
    console.log('');
    console.log(table(latRows));
    return skipped.size === 0 ? 0 : 1;
  } finally {
    for (const c of live) c.kill('SIGKILL');
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = await main();
}
