/**
 * Soak (issue 17, section 2; not CI): `virtio-ts blk` serving a real Linux guest (QEMU 7.2, q35,
 * vhost-user-blk-pci) under mixed block I/O for a long time, reporting the back-end's resident
 * memory at the start, every few minutes and at the end, so a leak shows as a trend.
 *
 *   node dist/bench/soak.js [--minutes N] [--sample-minutes M] [--image-mib S] [--jobs J]
 *                           [--backend-arg ARG]...
 *
 * Defaults: 60 minutes, a sample every 5, a 64 MiB raw image, 2 guest jobs at once. The guest
 * (busybox, O_DIRECT) runs J loops in parallel until the time is up; each loop writes a random
 * 4 KiB-aligned extent of 4 KiB to 1 MiB from a known pattern, reads it back and compares it,
 * reads 4 KiB at a random offset, and every 16 rounds flushes (sync, BLKFLSBUF). The host
 * samples /proc/<pid>/status (VmRSS, VmHWM) and /proc/<pid>/stat (CPU seconds) of the back-end
 * and prints one line per sample, then a summary with the guest's operation and error counts.
 * Exit status 0 only when the guest saw no mismatch or I/O error and the back-end ended cleanly.
 *
 * Every process it starts (the back-end, QEMU) is ended when the run finishes or fails, and
 * with this process (test/support's startProcess and runGuest bind them to it).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCode, VirtioError } from '../src/errors.js';
import { bootGuest, ensureGuestDeps, makeRawImage, makeTempDir, repoRoot, startProcess, waitForPath } from '../test/support/guest.js';

interface SoakOptions {
  minutes: number;
  sampleMinutes: number;
  imageMiB: number;
  jobs: number;
  backendArgs: string[];
}

function parseArgs(argv: readonly string[]): SoakOptions {
  const o: SoakOptions = { minutes: 60, sampleMinutes: 5, imageMiB: 64, jobs: 2, backendArgs: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const v = argv[i + 1];
    const num = (): number => {
      const n = Number(v);
      if (!(n > 0)) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `${a} needs a positive number, got ${String(v)}`);
      i++;
      return n;
    };
    if (a === '--minutes') o.minutes = num();
    else if (a === '--sample-minutes') o.sampleMinutes = num();
    else if (a === '--image-mib') o.imageMiB = Math.floor(num());
    else if (a === '--jobs') o.jobs = Math.floor(num());
    else if (a === '--backend-arg' && v !== undefined) {
      o.backendArgs.push(v);
      i++;
    } else throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `unknown argument ${a} (see the header of bench/soak.ts)`);
  }
  return o;
}

/** Resident memory (VmRSS, VmHWM) in KiB and CPU seconds (user + system) of `pid`. */
function sample(pid: number): { rssKiB: number; hwmKiB: number; cpuS: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  // Fields 14 and 15 of /proc/<pid>/stat, after the parenthesised command name.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(f[11]) + Number(f[12]);
  return { rssKiB: kib('VmRSS'), hwmKiB: kib('VmHWM'), cpuS: ticks / 100 };
}

const PATTERN_BYTES = 1 << 20;

function patternBytes(): Buffer {
  const b = Buffer.alloc(PATTERN_BYTES);
  let x = 0x50a6;
  for (let i = 0; i < b.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

function guestScript(o: SoakOptions): string {
  // Each job writes and verifies only its own slice of the disk (concurrent writers to one
  // extent would make a correct device look wrong); the random reads go anywhere.
  const blocks = (o.imageMiB << 20) / 4096;
  const slice = Math.floor(blocks / o.jobs);
  return `
wait_path /dev/vda || fail "no /dev/vda"
end=$(( $(cut -d. -f1 /proc/uptime) + ${Math.round(o.minutes * 60)} ))
job() {
  j=$1; n=0; bad=0; ioerr=0
  while [ $(cut -d. -f1 /proc/uptime) -lt $end ]; do
    cnt=$(( 1 + RANDOM % 256 ))
    off=$(( RANDOM * 32768 + RANDOM ))
    off=$(( (j - 1) * ${slice} + off % (${slice} - cnt) ))
    dd if=/pattern.bin of=/dev/vda bs=4096 seek=$off count=$cnt oflag=direct conv=notrunc 2>/dev/null || ioerr=$((ioerr + 1))
    dd if=/dev/vda of=/tmp/r$j.bin bs=4096 skip=$off count=$cnt iflag=direct 2>/dev/null || ioerr=$((ioerr + 1))
    dd if=/pattern.bin of=/tmp/e$j.bin bs=4096 count=$cnt 2>/dev/null
    cmp -s /tmp/r$j.bin /tmp/e$j.bin || { bad=$((bad + 1)); echo "SOAK job $j mismatch at block $off count $cnt"; }
    dd if=/dev/vda of=/dev/null bs=4096 skip=$(( (RANDOM * 32768 + RANDOM) % ${blocks} )) count=1 iflag=direct 2>/dev/null || ioerr=$((ioerr + 1))
    n=$((n + 1))
    if [ $((n % 16)) -eq 0 ]; then sync; blockdev --flushbufs /dev/vda || ioerr=$((ioerr + 1)); fi
    if [ $((n % 50)) -eq 0 ]; then echo "SOAK job $j rounds=$n mismatches=$bad ioerrors=$ioerr uptime=$(cut -d' ' -f1 /proc/uptime)"; fi
  done
  echo "$n $bad $ioerr" > /tmp/job$j.out
}
for j in $(seq 1 ${o.jobs}); do job $j & done
wait
rounds=0; bad=0; ioerr=0
for j in $(seq 1 ${o.jobs}); do
  read n b e < /tmp/job$j.out
  rounds=$((rounds + n)); bad=$((bad + b)); ioerr=$((ioerr + e))
done
result rounds $rounds
result mismatches $bad
result ioerrors $ioerr
`;
}

async function main(): Promise<number> {
  const o = parseArgs(process.argv.slice(2));
  const deps = ensureGuestDeps();
  if (!deps.ok) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `guest dependencies missing: ${deps.reason}`);
  const tmp = await makeTempDir('vts-soak-');
  const img = tmp.file('soak.img');
  const sock = tmp.file('blk.sock');
  await makeRawImage(img, o.imageMiB << 20);
  const cli = join(repoRoot, 'dist', 'src', 'cli', 'main.js');
  const be = startProcess(process.execPath, [cli, 'blk', '--socket-path', sock, '--image', img, ...o.backendArgs]);
  const samples: { min: number; rssKiB: number; hwmKiB: number; cpuS: number }[] = [];
  const t0 = Date.now();
  const take = (): void => {
    const s = sample(be.child.pid!);
    const min = (Date.now() - t0) / 60_000;
    samples.push({ min, ...s });
    console.log(`sample t=${min.toFixed(1)} min rss=${(s.rssKiB / 1024).toFixed(1)} MiB hwm=${(s.hwmKiB / 1024).toFixed(1)} MiB cpu=${s.cpuS.toFixed(1)} s load=${readFileSync('/proc/loadavg', 'utf8').split(' ')[0]}`);
  };
  let timer: ReturnType<typeof setInterval> | null = null;
  try {
    await waitForPath(sock, { process: be, timeoutMs: 15_000 });
    console.log(`soak: ${o.minutes} min, ${o.jobs} guest jobs, ${o.imageMiB} MiB image, back-end pid ${be.child.pid}`);
    take(); // before the guest
    timer = setInterval(take, o.sampleMinutes * 60_000);
    const res = await bootGuest({
      machine: 'q35',
      modules: ['virtio_blk'],
      script: guestScript(o),
      extraFiles: [{ path: '/pattern.bin', data: patternBytes() }],
      qemuArgs: ['-chardev', `socket,id=c0,path=${sock}`, '-device', 'vhost-user-blk-pci,chardev=c0,disable-legacy=on,num-queues=1'],
      memfd: true,
      smp: 1,
      timeoutMs: o.minutes * 60_000 + 300_000,
      allowFailure: true,
      onLine: (line) => {
        if (line.startsWith('SOAK')) console.log(`guest: ${line}`);
      },
    });
    clearInterval(timer);
    timer = null;
    take(); // the end, before the back-end stops
    const ended = await be.stop(5000);
    const r = (k: string): string => res.results.get(k) ?? '?';
    const first = samples[1] ?? samples[0]!;
    const last = samples[samples.length - 1]!;
    console.log(`guest: exit ${res.exitCode}, rounds ${r('rounds')}, mismatches ${r('mismatches')}, I/O errors ${r('ioerrors')}`);
    console.log(`back-end: ended ${JSON.stringify(ended)}; rss before the guest ${(samples[0]!.rssKiB / 1024).toFixed(1)} MiB, at the first sample with the guest ${(first.rssKiB / 1024).toFixed(1)} MiB, at the end ${(last.rssKiB / 1024).toFixed(1)} MiB, peak ${(last.hwmKiB / 1024).toFixed(1)} MiB, cpu ${last.cpuS.toFixed(1)} s`);
    const ok = res.exitCode === 0 && r('mismatches') === '0' && r('ioerrors') === '0' && ended.code === 0;
    if (!ok) console.log(`----- guest console (tail) -----\n${res.output.slice(-4000)}\n----- back-end -----\n${be.output().slice(-4000)}`);
    return ok ? 0 : 1;
  } finally {
    if (timer) clearInterval(timer);
    await be.stop();
    await tmp.remove();
  }
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
