/**
 * vhost-user-blk over NBD, side by side: `virtio-ts blk --nbd` against qemu-storage-daemon with a
 * `driver=nbd` block node, both in front of the same qemu-nbd serving one 256 MiB raw image
 * (page-cached), both driven by the same guest-less C front-end (bench/c/vhost-blk-loadgen.c,
 * which issues reads). Back-ends alternate A B A B (a fresh process per cell); printed: IOPS per
 * job and the back-end's CPU seconds per cell (utime + stime from /proc, all jobs of the cell).
 *
 * With `--tls` the same run also has the pair over TLS: a second qemu-nbd on the same image with a
 * `tls-creds-x509` object (certificates made by openssl in the run's temporary directory),
 * `virtio-ts blk --nbd nbds+unix://... --nbd-tls-ca` beside qemu-storage-daemon `driver=nbd` with
 * `tls-creds` (an x509 client object on the same CA), both checking the name `localhost`.
 *
 *   node dist/bench/blk-nbd-bench.js [--rounds N] [--duration SECS] [--tls] [--job NAME:rand|seq:BS:QD:call|poll]...
 *
 * Every process it starts is ended when its cell finishes or on error (and dies with this one).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ErrorCode, VirtioError } from '../src/errors.js';
import { makeNbdTlsCredentials, type NbdTlsCredentials } from '../test/support/nbd-tls-certs.js';
import { buildLoadgen, parseLoadgenOutput, repoRoot, runLoadgen, startBenchProcess, waitForSocket, type JobResult } from './blk-vhost-bench.js';

const IMAGE_BYTES = 256 << 20;
const DEFAULT_JOBS = ['r4k-qd1:rand:4096:1:call', 'r4k-qd32:rand:4096:32:call', 's64k-qd8:seq:65536:8:call'];

/** Where the back-ends find the NBD servers: the plaintext one and, with --tls, the TLS one. */
interface NbdServers {
  readonly plain: string;
  readonly tls: string;
  readonly creds: NbdTlsCredentials | null;
}

interface Backend {
  readonly name: string;
  readonly cmd: string;
  readonly tls: boolean;
  args(socket: string, n: NbdServers): string[];
}

const BACKENDS: readonly Backend[] = [
  {
    name: 'virtio-ts',
    cmd: process.execPath,
    tls: false,
    args: (s, n) => [join(repoRoot, 'dist', 'src', 'cli', 'main.js'), 'blk', '--socket-path', s, '--nbd', `nbd+unix:///?socket=${n.plain}`, '-q'],
  },
  {
    name: 'qsd',
    cmd: 'qemu-storage-daemon',
    tls: false,
    args: (s, n) => [
      '--blockdev',
      `driver=nbd,node-name=n0,server.type=unix,server.path=${n.plain}`,
      '--export',
      `type=vhost-user-blk,id=e0,node-name=n0,addr.type=unix,addr.path=${s},writable=on,num-queues=1`,
    ],
  },
  {
    name: 'virtio-ts TLS',
    cmd: process.execPath,
    tls: true,
    args: (s, n) => [join(repoRoot, 'dist', 'src', 'cli', 'main.js'), 'blk', '--socket-path', s, '--nbd', `nbds+unix:///?socket=${n.tls}`,
      '--nbd-tls-ca', n.creds!.caCert, '--nbd-tls-hostname', 'localhost', '-q'],
  },
  {
    name: 'qsd TLS',
    cmd: 'qemu-storage-daemon',
    tls: true,
    args: (s, n) => [
      '--object',
      `tls-creds-x509,id=tls0,dir=${n.creds!.serverDir},endpoint=client`,
      '--blockdev',
      `driver=nbd,node-name=n0,server.type=unix,server.path=${n.tls},tls-creds=tls0,tls-hostname=localhost`,
      '--export',
      `type=vhost-user-blk,id=e0,node-name=n0,addr.type=unix,addr.path=${s},writable=on,num-queues=1`,
    ],
  },
];

/** utime + stime of a process in seconds. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // USER_HZ is 100 on Linux
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  let rounds = 2;
  let duration = 3;
  let tls = false;
  const jobs: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--tls') {
      tls = true;
      continue;
    }
    const v = argv[++i];
    if (v === undefined) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `${argv[i - 1]} needs a value`);
    if (argv[i - 1] === '--rounds') rounds = Number(v);
    else if (argv[i - 1] === '--duration') duration = Number(v);
    else if (argv[i - 1] === '--job') jobs.push(v);
    else throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `unknown option ${argv[i - 1]}`);
  }
  if (jobs.length === 0) jobs.push(...DEFAULT_JOBS);
  const loadgen = buildLoadgen();
  const dir = mkdtempSync(join(tmpdir(), 'vts-nbdb-'));
  const img = join(dir, 'disk.img');
  writeFileSync(img, Buffer.alloc(IMAGE_BYTES, 0x5a));
  const nbdSocket = join(dir, 'nbd.sock');
  const nbd = startBenchProcess('qemu-nbd', ['--socket', nbdSocket, '--format', 'raw', '--persistent', '--shared=8', img]);
  const backends = BACKENDS.filter((b) => tls || !b.tls);
  const runs = new Map<string, { results: JobResult[]; cpu: number }[]>(backends.map((b) => [b.name, []]));
  const load0 = loadavg();
  const servers: NbdServers = { plain: nbdSocket, tls: join(dir, 'nbd-tls.sock'), creds: tls ? makeNbdTlsCredentials(join(dir, 'creds')) : null };
  // The same image a second time, over TLS: both qemu-nbd open it read-write; the jobs only read.
  const nbdTls = !tls
    ? null
    : startBenchProcess('qemu-nbd', ['--socket', servers.tls, '--format', 'raw', '--persistent', '--shared=8',
        '--object', `tls-creds-x509,id=tls0,dir=${servers.creds!.serverDir},endpoint=server,verify-peer=off`, '--tls-creds', 'tls0', img]);
  try {
    await waitForSocket(nbdSocket, nbd);
    if (nbdTls !== null) await waitForSocket(servers.tls, nbdTls);
    // Warm the page cache so both back-ends read cached data.
    execFileSync('cat', [img], { stdio: ['ignore', 'ignore', 'ignore'], maxBuffer: IMAGE_BYTES * 2 });
    let cell = 0;
    for (let r = 0; r < rounds; r++) {
      for (const b of backends) {
        const socket = join(dir, `c${cell++}.sock`);
        const p = startBenchProcess(b.cmd, b.args(socket, servers));
        try {
          await waitForSocket(socket, p);
          const pid = p.child.pid!;
          const c0 = cpuSeconds(pid);
          const run = await runLoadgen(loadgen, ['--socket', socket, '--duration', String(duration), ...jobs.flatMap((j) => ['--job', j])], (duration * jobs.length + 60) * 1000);
          const c1 = cpuSeconds(pid);
          if (run.code !== 0) throw new VirtioError(ErrorCode.PLATFORM, `load generator against ${b.name} failed:\n${run.stdout}${run.stderr}\n${p.stderr()}`);
          const out = parseLoadgenOutput(run.stdout);
          runs.get(b.name)!.push({ results: [...out.results], cpu: c1 - c0 });
          process.stdout.write(`round ${r + 1} ${b.name}: ${out.results.map((x) => `${x.job} ${(x.iops / 1000).toFixed(1)}k`).join(', ')}; CPU ${(c1 - c0).toFixed(2)} s\n`);
        } finally {
          await p.stop();
          rmSync(socket, { force: true });
        }
      }
    }
    const load1 = loadavg();
    console.log(`\nvhost-user-blk over NBD (qemu-nbd, raw 256 MiB page-cached image), ${duration} s per job, ${rounds} rounds alternating`);
    console.log(`load average before ${load0.map((x) => x.toFixed(2)).join(' ')}, after ${load1.map((x) => x.toFixed(2)).join(' ')}`);
    const pairs = tls ? ['', ' TLS'] : [''];
    const iops = (n: string, job: string): number => median(runs.get(n)!.map((c) => c.results.find((x) => x.job === job)?.iops ?? 0));
    const cpu = (n: string): number => median(runs.get(n)!.map((c) => c.cpu));
    console.log(`| job |${pairs.map((t) => ` virtio-ts${t} IOPS | qsd${t} IOPS | ratio${t} |`).join('')}`);
    console.log(`| --- |${pairs.map(() => ' ---: | ---: | ---: |').join('')}`);
    for (const job of jobs.map((j) => j.split(':')[0]!)) {
      const cells = pairs.map((t) => ` ${iops(`virtio-ts${t}`, job).toFixed(0)} | ${iops(`qsd${t}`, job).toFixed(0)} | ${(iops(`virtio-ts${t}`, job) / iops(`qsd${t}`, job)).toFixed(2)} |`);
      console.log(`| ${job} |${cells.join('')}`);
    }
    const cpuCells = pairs.map((t) => ` ${cpu(`virtio-ts${t}`).toFixed(2)} | ${cpu(`qsd${t}`).toFixed(2)} | ${(cpu(`virtio-ts${t}`) / cpu(`qsd${t}`)).toFixed(2)} |`);
    console.log(`| back-end CPU s per cell (${jobs.length} jobs x ${duration} s) |${cpuCells.join('')}`);
    return 0;
  } finally {
    await nbdTls?.stop();
    await nbd.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = await main();
}
