/**
 * The `virtio-ts fs` back-end serving real Linux guests through QEMU 7.2's vhost-user-fs: the
 * guest mounts the share (`mount -t virtiofs TAG /mnt`), reads a host file, writes, renames and
 * deletes, lists, and tries to leave the share through a symlink the host planted; the host
 * checks what changed in the directory and that nothing outside it was reached.
 * q35 (vhost-user-fs-pci) and microvm (vhost-user-fs-device, virtio-mmio 2) with little-endian
 * FUSE; s390x over Channel I/O (vhost-user-fs-ccw), whose big-endian driver sends big-endian FUSE,
 * which the device detects at FUSE_INIT.
 */
import { after, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  bootGuest,
  bootS390xGuest,
  ensureGuestDeps,
  ensureGuestKit,
  GuestKitPart,
  isSocket,
  makeTempDir,
  repoRoot,
  startProcess,
  waitForPath,
  withConsole,
  type GuestResult,
  type TempDir,
} from './support/guest.js';

const deps = ensureGuestDeps();
const skip = deps.ok ? false : deps.reason;
const s390xDeps = ensureGuestKit([GuestKitPart.S390X, GuestKitPart.TOOLS]);
const s390xSkip = s390xDeps.ok ? false : s390xDeps.reason;

const CLI = join(repoRoot, 'dist', 'src', 'cli', 'main.js');
const TAG = 'vts-share';
const HOST_TEXT = 'written by the host';

// The escape attempts must all fail: `escape` is a host symlink to /, `outside` is a directory
// next to the share holding a file the guest must never see. The guest resolves a symlink in its
// own namespace (READLINK, as with virtiofsd): /mnt/escape/ is the guest's root, never the host's.
const fsScript = (outsideSecret: string): string => `
mkdir -p /mnt
mount -t virtiofs ${TAG} /mnt || fail "mount: $(dmesg | tail -5)"
result got "$(cat /mnt/from-host.txt)"
echo "written by the guest" > /mnt/from-guest.txt || fail write
mkdir /mnt/dir || fail mkdir
echo moved > /mnt/dir/a || fail "write in dir"
mv /mnt/dir/a /mnt/dir/b || fail rename
(umask 002 && echo g > /mnt/dir/g && mkdir /mnt/dir/gd) || fail "umask 002 creations"
rm /mnt/to-delete.txt || fail unlink
result ls "$(ls /mnt | tr '\\n' ' ')"
result size "$(stat -c %s /mnt/from-host.txt)"
cat /mnt/escape${outsideSecret} >/dev/null 2>&1 && result escape_symlink reached || result escape_symlink refused
[ "$(ls /mnt/escape/ 2>&1)" = "$(ls /)" ] && result escape_ls guest-root || result escape_ls "$(ls /mnt/escape/ 2>&1 | head -3 | tr '\\n' ' ')"
cat /mnt/../outside/secret >/dev/null 2>&1 && result escape_dotdot reached || result escape_dotdot refused
df /mnt >/dev/null 2>&1 && result statfs ok
sync
umount /mnt || fail umount
result done 1
`;

describe('virtio-ts fs: vhost-user back-end serving real Linux guests (QEMU 7.2)', { timeout: 400_000 }, () => {
  let tmp: TempDir;
  before(async () => {
    tmp = await makeTempDir('vts-vufs-');
  });
  after(async () => {
    await tmp?.remove();
  });

  /** A fresh share (with a sibling the guest must not reach) and `virtio-ts fs` serving it. */
  async function serve(name: string, run: (sock: string) => Promise<GuestResult>, t: TestContext, extraArgs: readonly string[] = []): Promise<{ res: GuestResult; share: string; log: string }> {
    const share = tmp.file(`${name}-share`);
    mkdirSync(share);
    mkdirSync(tmp.file('outside'), { recursive: true });
    writeFileSync(tmp.file('outside/secret'), 'not for the guest');
    writeFileSync(join(share, 'from-host.txt'), HOST_TEXT);
    writeFileSync(join(share, 'to-delete.txt'), 'bye');
    symlinkSync('/', join(share, 'escape'));
    const sock = tmp.file(`${name}.sock`);
    // The back-end runs with umask 022 (inherited), so the guest's umask-002 objects prove that
    // new objects get the guest's bits, not those less the back-end's umask.
    const oldUmask = process.umask(0o022);
    let be: ReturnType<typeof startProcess>;
    try {
      be = startProcess(process.execPath, [CLI, 'fs', '--socket-path', sock, '--shared-dir', share, '--tag', TAG, ...extraArgs]);
    } finally {
      process.umask(oldUmask);
    }
    try {
      await waitForPath(sock, { process: be, timeoutMs: 15_000 });
      const res = await run(sock).catch((e: unknown) => {
        throw new Error(`${(e as Error).message}\n----- virtio-ts fs -----\n${be.output()}`, { cause: e });
      });
      t.diagnostic(`${name}: /init at ${res.bootMs.toFixed(0)} ms, QEMU exited at ${res.totalMs.toFixed(0)} ms`);
      let log = '';
      await withConsole(res, `----- virtio-ts fs -----\n${be.output()}`, async () => {
        const ended = await be.stop(5000);
        assert.deepEqual(ended, { code: 0, signal: null }, 'back-end ends cleanly on SIGTERM');
        assert.equal(isSocket(sock), false, 'back-end removed its socket');
        log = be.output();
      });
      return { res, share, log };
    } finally {
      await be.stop();
    }
  }

  function check(res: GuestResult, share: string, log: string, order: RegExp): Promise<void> {
    return withConsole(res, `----- virtio-ts fs -----\n${log}`, async () => {
      assert.match(log, order, 'the device read FUSE_INIT in the driver\'s byte order');
      const r = res.results;
      assert.equal(r.get('done'), '1', 'the script ran to its end (mount, I/O, umount)');
      assert.equal(r.get('got'), HOST_TEXT, 'the guest read the host file');
      assert.equal(r.get('size'), String(HOST_TEXT.length));
      assert.equal(r.get('ls'), 'dir escape from-guest.txt from-host.txt ', 'the guest lists the share');
      assert.equal(r.get('statfs'), 'ok');
      assert.equal(readFileSync(join(share, 'from-guest.txt'), 'utf8'), 'written by the guest\n', 'the host sees the guest write');
      assert.equal(readFileSync(join(share, 'dir/b'), 'utf8'), 'moved\n', 'mkdir + write + rename reached the host');
      assert.equal(existsSync(join(share, 'dir/a')), false);
      assert.equal(lstatSync(join(share, 'dir/g')).mode & 0o7777, 0o664, 'a file made under the guest\'s umask 002 is group-writable on the host');
      assert.equal(lstatSync(join(share, 'dir/gd')).mode & 0o7777, 0o775, 'so is a directory');
      assert.equal(existsSync(join(share, 'to-delete.txt')), false, 'unlink reached the host');
      assert.equal(r.get('escape_symlink'), 'refused', 'a symlink to / does not lead to the host file system');
      assert.equal(r.get('escape_ls'), 'guest-root', "a symlink to / is the guest's own root");
      assert.equal(r.get('escape_dotdot'), 'refused', '.. of the mount is not the host directory above the share');
    });
  }

  it('q35: vhost-user-fs-pci, mount -t virtiofs, read, write, rename, unlink, no escape', { skip }, async (t) => {
    const { res, share, log } = await serve(
      'q35',
      (sock) =>
        bootGuest({
          machine: 'q35',
          modules: ['virtiofs'],
          script: fsScript(tmp.file('outside/secret')),
          qemuArgs: ['-chardev', `socket,id=c0,path=${sock}`, '-device', `vhost-user-fs-pci,chardev=c0,tag=${TAG}`],
          memfd: true,
          timeoutMs: 90_000,
        }),
      t,
    );
    await check(res, share, log, /FUSE_INIT: protocol 7\.\d+, little-endian driver/);
  });

  it('q35 with --async-io: READ and WRITE on the thread pool, the same workload', { skip }, async (t) => {
    const { res, share, log } = await serve(
      'q35-async',
      (sock) =>
        bootGuest({
          machine: 'q35',
          modules: ['virtiofs'],
          script: fsScript(tmp.file('outside/secret')),
          qemuArgs: ['-chardev', `socket,id=c0,path=${sock}`, '-device', `vhost-user-fs-pci,chardev=c0,tag=${TAG}`],
          memfd: true,
          timeoutMs: 90_000,
        }),
      t,
      ['--async-io'],
    );
    await check(res, share, log, /FUSE_INIT: protocol 7\.\d+, little-endian driver, max_write \d+, READ\/WRITE on the thread pool/);
  });

  it('microvm (virtio-mmio version 2): vhost-user-fs-device, the same workload', { skip }, async (t) => {
    const { res, share, log } = await serve(
      'microvm',
      (sock) =>
        bootGuest({
          machine: 'microvm',
          modules: ['virtiofs'],
          script: fsScript(tmp.file('outside/secret')),
          qemuArgs: ['-chardev', `socket,id=c0,path=${sock}`, '-device', `vhost-user-fs-device,chardev=c0,tag=${TAG}`],
          memfd: true,
          timeoutMs: 90_000,
        }),
      t,
    );
    await check(res, share, log, /FUSE_INIT: protocol 7\.\d+, little-endian driver/);
  });

  it('s390x over CCW: vhost-user-fs-ccw, a big-endian FUSE driver mounts and reads and writes', { skip: s390xSkip }, async (t) => {
    const { res, share, log } = await serve(
      's390x',
      (sock) =>
        bootS390xGuest({
          modules: ['virtiofs'],
          script: fsScript(tmp.file('outside/secret')),
          qemuArgs: ['-chardev', `socket,id=c0,path=${sock}`, '-device', `vhost-user-fs-ccw,chardev=c0,tag=${TAG}`],
          memfd: true,
          timeoutMs: 150_000,
        }),
      t,
    );
    await check(res, share, log, /FUSE_INIT: protocol 7\.\d+, big-endian driver/);
  });
});
