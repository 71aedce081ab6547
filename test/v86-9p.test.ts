/**
 * Linux's 9p file system over 9pnet_virtio (the i386 686 kernel under v86) on a virtio-ts 9P
 * device on v86's PCI bus: the guest mounts the share by its tag, reads a host file, writes,
 * makes a directory, renames, makes symbolic and hard links, truncates, removes, and the host
 * directory is compared with what the guest did afterwards; a 200 KiB host file is read whole.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { lstatSync, mkdtempSync, readFileSync, readlinkSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
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
      assert.deepEqual(readdirSync(dir).sort(), ['big', 'd', 'from-host.txt', 'hard.txt', 'pattern.bin', 'trunc.txt']);
      assert.deepEqual(readdirSync(join(dir, 'd')).sort(), ['inner.txt', 'link', 'renamed.txt']);
      assert.equal(readFileSync(join(dir, 'd', 'renamed.txt'), 'utf8'), 'guest-wrote\n');
      assert.equal(readlinkSync(join(dir, 'd', 'link')), 'renamed.txt');
      assert.ok(lstatSync(join(dir, 'd', 'link')).isSymbolicLink());
      assert.equal(statSync(join(dir, 'hard.txt')).ino, statSync(join(dir, 'd', 'inner.txt')).ino, 'a hard link');
      assert.equal(statSync(join(dir, 'd', 'inner.txt')).mode & 0o777, 0o600);
      assert.deepEqual(readFileSync(join(dir, 'big')), Buffer.alloc(BIG_KIB * 1024));
      assert.equal(res.results.get('ls'), 'big d from-host.txt hard.txt pattern.bin trunc.txt ');
      assert.equal(res.results.get('lsd'), 'inner.txt link renamed.txt ');
      assert.equal(msize, 65536, 'msize agreed');
      assert.equal(device.malformed, 0);
      assert.deepEqual(res.badAccesses, []);
    } finally {
      device.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
