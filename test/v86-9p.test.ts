/**
 * Linux's 9p file system over 9pnet_virtio (the i386 686 kernel under v86) on a virtio-ts 9P
 * device on v86's PCI bus: the guest mounts the share by its tag, reads a host file, writes,
 * makes a directory, renames, makes symbolic and hard links, truncates, removes, makes a FIFO
 * (Tmknod), and the host directory is compared with what the guest did afterwards; a 200 KiB host
 * file is read whole. Ownership: with the server running as root, what the guest's root makes
 * is 0:0 on the host, and what a guest user (uid 1234, gid 5678, through `su`: Linux attaches
 * once per uid, Tattach n_uname) makes in a directory it owns is 1234:5678 on the host.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmodSync, lstatSync, mkdtempSync, readFileSync, readlinkSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { P9Device } from '../src/devices/9p/p9-device.js';
import { runV86DeviceGuest } from './support/v86-device-guest.js';
import { ensureV86Deps } from './support/v86-guest.js';

const deps = ensureV86Deps();
const RUN_TIMEOUT_MS = 8 * 60_000;
const TAG = 'v86share';
const BIG_KIB = 300;
/** The server may chown (runs as root): the guest user's part of the script runs, its owners are checked. */
const HOST_ROOT = process.geteuid?.() === 0;
/** A guest user for `su` (busybox su as root asks no password). */
const GUEST_USER = { uid: 1234, gid: 5678 };
const ETC_FILES = [
  { path: '/etc/passwd', data: `root:x:0:0:root:/:/bin/sh\nu:x:${GUEST_USER.uid}:${GUEST_USER.gid}:u:/:/bin/sh\n` },
  { path: '/etc/group', data: `root:x:0:\ng:x:${GUEST_USER.gid}:\n` },
];
// As the guest user: a file, a directory, a symlink and a FIFO in /mnt/own, which it owns.
const USER_PART = `
chown ${GUEST_USER.uid}:${GUEST_USER.gid} /mnt/own || fail "chown"
su -s /bin/sh u -c 'echo by-user > /mnt/own/f && mkdir /mnt/own/d && ln -s f /mnt/own/l && mkfifo /mnt/own/p' || fail "create as uid ${GUEST_USER.uid}"
result userids "$(cd /mnt/own && stat -c '%n=%u:%g' f d l p | tr '\\n' ' ')"
`;

const SCRIPT = `
wait_path /sys/bus/virtio/drivers/9pnet_virtio 600 || fail "no 9pnet_virtio"
for d in /sys/bus/virtio/devices/*; do [ -f "$d/mount_tag" ] && result tag "$(cat "$d/mount_tag")"; done
mkdir -p /mnt
mount -t 9p -o trans=virtio,version=9p2000.L,msize=65536 ${TAG} /mnt || fail "mount"
result hostfile "$(cat /mnt/from-host.txt)"
result hostsum "$(md5sum /mnt/pattern.bin | cut -d' ' -f1)"
echo guest-wrote > /mnt/g.txt || fail "write"
mkdir /mnt/d || fail "mkdir"
echo inner > /mnt/d/inner.txt
mv /mnt/g.txt /mnt/d/renamed.txt || fail "rename"
ln -s renamed.txt /mnt/d/link || fail "symlink"
result readlink "$(readlink /mnt/d/link)"
result vialink "$(cat /mnt/d/link)"
ln /mnt/d/inner.txt /mnt/hard.txt || fail "link"
dd if=/dev/zero of=/mnt/big bs=1024 count=${BIG_KIB} 2>/dev/null || fail "dd"
result bigsize "$(stat -c %s /mnt/big)"
echo 0123456789 > /mnt/trunc.txt
truncate -s 4 /mnt/trunc.txt 2>/dev/null || dd if=/dev/null of=/mnt/trunc.txt bs=1 seek=4 2>/dev/null
result trunc "$(cat /mnt/trunc.txt)"
rm /mnt/delete-me.txt || fail "unlink"
mkdir /mnt/empty && rmdir /mnt/empty || fail "rmdir"
chmod 600 /mnt/d/inner.txt || fail "chmod"
mkdir /mnt/own || fail "mkdir own"
mkfifo /mnt/own/fifo || fail "mkfifo"
result fifotype "$(stat -c %F /mnt/own/fifo)"
echo by-root > /mnt/own/by-root || fail "write own/by-root"
result rootids "$(stat -c %u:%g /mnt/own/by-root /mnt/own/fifo | tr '\\n' ' ')"
${HOST_ROOT ? USER_PART : ''}
result ls "$(ls /mnt | tr '\\n' ' ')"
result lsd "$(ls /mnt/d | tr '\\n' ' ')"
sync
umount /mnt || fail "umount"
result ok 1
`;

describe('v86: Linux 9p over 9pnet_virtio on a virtio-ts 9P device', { skip: deps.ok ? false : deps.reason }, () => {
  it('the guest mounts the share, writes, renames, links and removes; the host directory shows it', { timeout: RUN_TIMEOUT_MS + 60_000 }, async () => {
    if (!deps.ok) throw new Error(deps.reason);
    const dir = mkdtempSync(join(tmpdir(), 'vts-v86-9p-'));
    const device = new P9Device({ sharedDir: dir, tag: TAG });
    try {
      // The share's root is mkdtemp's 0700: the guest user must be able to reach /mnt/own.
      chmodSync(dir, 0o755);
      writeFileSync(join(dir, 'from-host.txt'), 'written on the host\n');
      writeFileSync(join(dir, 'delete-me.txt'), 'x');
      // Read by the guest in large (zero-copy) Treads.
      const pattern = Buffer.alloc(200 * 1024);
      for (let i = 0; i < pattern.length; i++) pattern[i] = (i * 131 + (i >> 10)) & 0xff;
      writeFileSync(join(dir, 'pattern.bin'), pattern);
      const patternSum = createHash('md5').update(pattern).digest('hex');
      // The agreed msize, read before the device is detached (and so reset) at the end of the run.
      let msize = -1;
      const res = await runV86DeviceGuest({
        assets: deps,
        devices: [{ device }],
        script: SCRIPT,
        extraFiles: ETC_FILES,
        timeoutMs: RUN_TIMEOUT_MS,
        beforeDetach: () => {
          msize = device.server9p.msize;
        },
      });
      const a = res.adapters[0]!;
      console.log(`v86 9p: boot ${Math.round(res.bootMs)} ms, total ${Math.round(res.totalMs)} ms, ${a.irqRaises} interrupts, msize ${msize}`);
      assert.equal(res.results.get('ok'), '1', res.output);
      assert.equal(res.results.get('tag'), TAG, 'the mount tag from the configuration');
      assert.equal(res.results.get('hostfile'), 'written on the host');
      assert.equal(res.results.get('hostsum'), patternSum, 'a 200 KiB host file read whole by the guest');
      assert.equal(res.results.get('readlink'), 'renamed.txt');
      assert.equal(res.results.get('vialink'), 'guest-wrote');
      assert.equal(res.results.get('bigsize'), String(BIG_KIB * 1024));
      assert.equal(res.results.get('trunc'), '0123');
      // The host directory is what the guest made.
      assert.deepEqual(readdirSync(dir).sort(), ['big', 'd', 'from-host.txt', 'hard.txt', 'own', 'pattern.bin', 'trunc.txt']);
      assert.deepEqual(readdirSync(join(dir, 'd')).sort(), ['inner.txt', 'link', 'renamed.txt']);
      assert.equal(readFileSync(join(dir, 'd', 'renamed.txt'), 'utf8'), 'guest-wrote\n');
      assert.equal(readlinkSync(join(dir, 'd', 'link')), 'renamed.txt');
      assert.ok(lstatSync(join(dir, 'd', 'link')).isSymbolicLink());
      assert.equal(statSync(join(dir, 'hard.txt')).ino, statSync(join(dir, 'd', 'inner.txt')).ino, 'a hard link');
      assert.equal(statSync(join(dir, 'd', 'inner.txt')).mode & 0o777, 0o600);
      assert.deepEqual(readFileSync(join(dir, 'big')), Buffer.alloc(BIG_KIB * 1024));
      assert.equal(res.results.get('ls'), 'big d from-host.txt hard.txt own pattern.bin trunc.txt ');
      assert.equal(res.results.get('lsd'), 'inner.txt link renamed.txt ');
      // Tmknod: the guest's mkfifo is a FIFO on the host.
      assert.equal(res.results.get('fifotype'), 'fifo');
      assert.ok(lstatSync(join(dir, 'own', 'fifo')).isFIFO(), 'a FIFO on the host');
      // Owners: the guest's root (its attach's n_uname 0) makes 0:0 objects; as the server's
      // user when it may not chown (then the user part is not run).
      const self = HOST_ROOT ? '0:0' : `${process.geteuid?.()}:${process.getegid?.()}`;
      const ids = (p: string): string => `${lstatSync(join(dir, 'own', p)).uid}:${lstatSync(join(dir, 'own', p)).gid}`;
      assert.deepEqual(['by-root', 'fifo'].map(ids), [self, self]);
      assert.equal(res.results.get('rootids'), HOST_ROOT ? '0:0 0:0 ' : `${self} ${self} `);
      if (HOST_ROOT) {
        const user = `${GUEST_USER.uid}:${GUEST_USER.gid}`;
        assert.deepEqual(readdirSync(join(dir, 'own')).sort(), ['by-root', 'd', 'f', 'fifo', 'l', 'p']);
        assert.deepEqual(['f', 'd', 'l', 'p'].map(ids), [user, user, user, user], 'made by the guest user: its uid and gid on the host');
        assert.equal(res.results.get('userids'), `f=${user} d=${user} l=${user} p=${user} `);
        assert.equal(readFileSync(join(dir, 'own', 'f'), 'utf8'), 'by-user\n');
        assert.ok(lstatSync(join(dir, 'own', 'd')).isDirectory());
        assert.equal(readlinkSync(join(dir, 'own', 'l')), 'f');
        assert.ok(lstatSync(join(dir, 'own', 'p')).isFIFO());
      } else assert.deepEqual(readdirSync(join(dir, 'own')).sort(), ['by-root', 'fifo']);
      assert.equal(msize, 65536, 'msize agreed');
      assert.equal(device.malformed, 0);
      assert.deepEqual(res.badAccesses, []);
    } finally {
      device.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
