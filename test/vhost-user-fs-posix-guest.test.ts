/**
 * virtio-fs under real Linux guests (q35 vhost-user-fs-pci, microvm vhost-user-fs-device and
 * s390x vhost-user-fs-ccw, QEMU 7.2, `virtio-ts fs`): the
 * POSIX workload of issue 12 (test/support/posix-workload.c: create, write, read back, rename
 * over, hard and symbolic links, chmod/chown/utimensat, xattrs, locks between two processes,
 * readdir of 10,000 entries, a sparse file with SEEK_DATA/SEEK_HOLE, fsync, unlink of an open
 * file) compiled static, run in the guest on the virtiofs mount and on the host in a plain
 * directory: the two outputs must be the same line for line. Meanwhile a host-side racer swaps
 * a directory of the share for a symlink to a directory outside it, and the guest, reading
 * through that name again and again, must never see the outside file.
 * The s390x guest is big-endian: its FUSE requests come in big-endian (the back-end's log shows
 * FUSE_INIT read as such), and the workload, compiled for s390x, must print what the host run
 * prints. QEMU 7.2's C virtiofsd refuses that mount (it reads a byte-swapped opcode at INIT).
 * Fails (does not skip) under CI=true when QEMU, the kernel or gcc is missing.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import {
  bootGuest,
  bootS390xGuest,
  compileStatic,
  ensureGuestDeps,
  ensureGuestKit,
  GuestKitPart,
  makeTempDir,
  repoRoot,
  startProcess,
  waitForPath,
  withConsole,
  type ExtraFile,
  type GuestResult,
  type TempDir,
} from './support/guest.js';
import { compileStaticS390x } from './support/s390x-cc.js';

const deps = ensureGuestDeps();
const skip = deps.ok ? false : deps.reason;
const s390xDeps = ensureGuestKit([GuestKitPart.S390X, GuestKitPart.S390X_GCC, GuestKitPart.TOOLS]);
const s390xSkip = s390xDeps.ok ? false : s390xDeps.reason;
const CLI = join(repoRoot, 'dist', 'src', 'cli', 'main.js');
const TAG = 'posix';
// The C source lives next to the compiled support files' sources (test/support/).
const SOURCE = join(repoRoot, 'test', 'support', 'posix-workload.c');

describe('virtio-fs: the POSIX workload in q35, microvm and s390x guests equals the host run; a racing host finds no escape', { timeout: 600_000 }, () => {
  let tmp: TempDir;
  before(async () => {
    tmp = await makeTempDir('vts-fs-posix-');
  });
  after(async () => {
    await tmp?.remove();
  });

  /**
   * The host run of the (amd64) workload, the share with its racer, `virtio-ts fs -v` serving
   * it, the guest `boot`ed with the workload `program` for its architecture; the outputs compared.
   * Returns the back-end's log.
   */
  async function posixRun(
    t: TestContext,
    machine: string,
    program: ExtraFile,
    boot: (sock: string, script: string) => Promise<GuestResult>,
  ): Promise<string> {
    const hostProgram = await compileStatic({ source: readFileSync(SOURCE, 'utf8'), path: '/bin/posix-workload' });
    // The host run, as root in a plain directory of the same file system.
    const hostBin = tmp.file(`${machine}-posix-workload`);
    writeFileSync(hostBin, hostProgram.data);
    chmodSync(hostBin, 0o755);
    mkdirSync(tmp.file(`${machine}-host-run`));
    const hostOut = execFileSync(hostBin, [tmp.file(`${machine}-host-run`)], { encoding: 'utf8', timeout: 60_000 });

    const share = tmp.file(`${machine}-share`);
    mkdirSync(join(share, 'work'), { recursive: true });
    mkdirSync(join(share, 'race', 'a'), { recursive: true });
    writeFileSync(join(share, 'race', 'a', 'secret'), 'inside');
    mkdirSync(tmp.file('outside'), { recursive: true });
    writeFileSync(tmp.file('outside/secret'), 'OUTSIDE');
    // The racer: swaps race/a with a symlink to ../../outside, as fast as it can, bounded in time.
    const racerScript = `const fs=require('fs');const r=${JSON.stringify(join(share, 'race'))};fs.symlinkSync(${JSON.stringify(tmp.file('outside'))},r+'/evil');const end=Date.now()+150000;let n=0;while(Date.now()<end){try{fs.renameSync(r+'/a',r+'/t');fs.renameSync(r+'/evil',r+'/a');fs.renameSync(r+'/a',r+'/evil');fs.renameSync(r+'/t',r+'/a');n++}catch{}if(fs.existsSync(r+'/stop'))break}console.log('swaps',n)`;
    const sock = tmp.file(`${machine}.sock`);
    const be = startProcess(process.execPath, [CLI, 'fs', '--socket-path', sock, '--shared-dir', share, '--tag', TAG]);
    const racer = spawn(process.execPath, ['-e', racerScript], { stdio: ['ignore', 'pipe', 'ignore'] });
    let swaps = '';
    racer.stdout.on('data', (d: Buffer) => (swaps += d.toString()));
    const racerDone = new Promise<void>((resolve) => racer.on('exit', () => resolve()));
    const racerKill = setTimeout(() => racer.kill('SIGKILL'), 170_000);
    try {
      await waitForPath(sock, { process: be, timeoutMs: 15_000 });
      const script = `
mkdir -p /mnt
mount -t virtiofs ${TAG} /mnt || fail "mount: $(dmesg | tail -5)"
/bin/posix-workload /mnt/work > /tmp/out 2>&1 || fail "workload exit $?"
result posix "$(tr '\\n' '|' < /tmp/out)"
outside=0; inside=0
i=0; while [ $i -lt 300 ]; do
  v=$(cat /mnt/race/a/secret 2>/dev/null)
  [ "$v" = OUTSIDE ] && outside=$((outside+1))
  [ "$v" = inside ] && inside=$((inside+1))
  i=$((i+1))
done
result race "outside=$outside inside=$inside"
touch /mnt/race/stop
umount /mnt || fail umount
result done 1
`;
      const res = await boot(sock, script).catch((e: unknown) => {
        throw new Error(`${(e as Error).message}\n----- virtio-ts fs -----\n${be.output()}`, { cause: e });
      });
      t.diagnostic(`guest /init at ${res.bootMs.toFixed(0)} ms, QEMU exited at ${res.totalMs.toFixed(0)} ms`);
      await withConsole(res, `----- virtio-ts fs -----\n${be.output()}`, async () => {
        assert.equal(res.results.get('done'), '1');
        const guestOut = (res.results.get('posix') ?? '').split('|').filter((l) => l.length > 0);
        assert.deepEqual(guestOut, hostOut.split('\n').filter((l) => l.length > 0), 'the guest run on virtio-fs prints what the host run prints');
        const race = res.results.get('race') ?? '';
        t.diagnostic(`race: ${race}`);
        assert.match(race, /^outside=0 inside=\d+$/, 'the outside file was never read through the share');
      });
    } finally {
      writeFileSync(join(share, 'race', 'stop'), '');
      await racerDone.catch(() => undefined);
      clearTimeout(racerKill);
      await be.stop();
      t.diagnostic(`racer ${swaps.trim()}`);
    }
    return be.output();
  }

  for (const [machine, device] of [
    ['q35', 'vhost-user-fs-pci'],
    ['microvm', 'vhost-user-fs-device'],
  ] as const) {
    it(`${machine}: POSIX workload on the virtiofs mount = on the host; the swapped-in symlink never leads outside`, { skip, timeout: 200_000 }, async (t) => {
      const program = await compileStatic({ source: readFileSync(SOURCE, 'utf8'), path: '/bin/posix-workload' });
      const log = await posixRun(t, machine, program, (sock, script) =>
        bootGuest({
          machine,
          modules: ['virtiofs'],
          script,
          extraFiles: [program],
          qemuArgs: ['-chardev', `socket,id=c0,path=${sock}`, '-device', `${device},chardev=c0,tag=${TAG}`],
          memfd: true,
          timeoutMs: 170_000,
        }),
      );
      assert.match(log, /FUSE_INIT: protocol 7\.\d+, little-endian driver/);
    });
  }

  it('s390x over CCW (vhost-user-fs-ccw): the big-endian FUSE driver runs the POSIX workload (compiled for s390x) = on the host', { skip: s390xSkip, timeout: 280_000 }, async (t) => {
    const program = await compileStaticS390x(readFileSync(SOURCE, 'utf8'), '/bin/posix-workload');
    const log = await posixRun(t, 's390x', program, (sock, script) =>
      bootS390xGuest({
        modules: ['virtiofs'],
        script,
        extraFiles: [program],
        qemuArgs: ['-chardev', `socket,id=c0,path=${sock}`, '-device', `vhost-user-fs-ccw,chardev=c0,tag=${TAG}`],
        memfd: true,
        timeoutMs: 250_000,
      }),
    );
    assert.match(log, /FUSE_INIT: protocol 7\.\d+, big-endian driver/, 'the device served big-endian FUSE');
  });
});
