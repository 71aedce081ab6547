/**
 * virtio-fs POSIX ACLs in a real guest (q35, vhost-user-fs-pci, QEMU 7.2, Linux 6.1): `virtio-ts
 * fs --posix-acl` negotiates FUSE_POSIX_ACL, the guest (root) sets a system.posix_acl_access
 * with a named-user entry that denies uid 65534 (test/support/acl-probe.c, static), and the
 * guest kernel refuses that uid while another uid reads by the "other" entry. The back-end runs
 * as root on the host, so the refusal is the guest kernel enforcing the ACL it read over FUSE;
 * the ACL is also on the host file, as the same probe run on the host prints the same lines.
 * Fails (does not skip) under CI=true when QEMU, the kernel or gcc is missing.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadFsAt } from '../src/platform/fs-at.js';
import { bootGuest, compileStatic, ensureGuestDeps, makeTempDir, repoRoot, startProcess, waitForPath, withConsole, type TempDir } from './support/guest.js';

const deps = ensureGuestDeps();
const skip = deps.ok ? false : deps.reason;
const CLI = join(repoRoot, 'dist', 'src', 'cli', 'main.js');
const TAG = 'acl';
const SOURCE = join(repoRoot, 'test', 'support', 'acl-probe.c');

describe('virtio-fs --posix-acl: the guest kernel enforces an ACL set over FUSE', { timeout: 200_000 }, () => {
  let tmp: TempDir;
  before(async () => {
    tmp = await makeTempDir('vts-fs-acl-');
  });
  after(async () => {
    await tmp?.remove();
  });

  it('q35: FUSE_POSIX_ACL negotiated; a named-user entry refuses uid 65534 in the guest, the same as on the host', { skip, timeout: 180_000 }, async (t) => {
    const program = await compileStatic({ source: readFileSync(SOURCE, 'utf8'), path: '/bin/acl-probe' });
    const hostBin = tmp.file('acl-probe');
    writeFileSync(hostBin, program.data);
    chmodSync(hostBin, 0o755);
    const hostRun = tmp.file('host-run');
    mkdirSync(hostRun);
    chmodSync(hostRun, 0o755);
    // The probe's children drop to other uids: they must reach the directory at all.
    chmodSync(dirname(hostRun), 0o755);
    const hostOut = execFileSync(hostBin, [hostRun], { encoding: 'utf8', timeout: 30_000 });
    const share = tmp.file('share');
    mkdirSync(share);
    chmodSync(share, 0o755);
    const sock = tmp.file('acl.sock');
    const be = startProcess(process.execPath, [CLI, 'fs', '--socket-path', sock, '--shared-dir', share, '--tag', TAG, '--posix-acl']);
    try {
      await waitForPath(sock, { process: be, timeoutMs: 15_000 });
      const script = `
mkdir -p /mnt
mount -t virtiofs ${TAG} /mnt || fail "mount: $(dmesg | tail -5)"
/bin/acl-probe /mnt > /tmp/out 2>&1 || fail "probe exit $?: $(cat /tmp/out)"
result probe "$(tr '\\n' '|' < /tmp/out)"
umount /mnt || fail umount
result done 1
`;
      const res = await bootGuest({
        machine: 'q35',
        modules: ['virtiofs'],
        script,
        extraFiles: [program],
        qemuArgs: ['-chardev', `socket,id=c0,path=${sock}`, '-device', `vhost-user-fs-pci,chardev=c0,tag=${TAG}`],
        memfd: true,
        timeoutMs: 150_000,
      }).catch((e: unknown) => {
        throw new Error(`${(e as Error).message}\n----- virtio-ts fs -----\n${be.output()}`, { cause: e });
      });
      t.diagnostic(`guest /init at ${res.bootMs.toFixed(0)} ms, QEMU exited at ${res.totalMs.toFixed(0)} ms`);
      await withConsole(res, `----- virtio-ts fs -----\n${be.output()}`, async () => {
        assert.equal(res.results.get('done'), '1');
        const guestLines = (res.results.get('probe') ?? '').split('|').filter((l) => l.length > 0);
        assert.deepEqual(guestLines, ['before 65534: allowed', 'getxattr: 44 bytes, same', 'after 65534: EACCES', 'after 65533: allowed', 'mode: 644']);
        assert.deepEqual(guestLines, hostOut.split('\n').filter((l) => l.length > 0), 'the guest sees what the host sees');
        const value = Buffer.alloc(256);
        assert.equal(loadFsAt().getxattr(join(share, 'acl.txt'), 'system.posix_acl_access', value), 44, 'the ACL is on the host file');
      });
    } finally {
      await be.stop();
    }
  });
});
