/**
 * The `virtio-ts scsi` back-end serving a real Linux guest through QEMU 7.2's vhost-user-scsi-pci
 * (q35, cloud kernel: virtio_scsi, scsi_mod, sd_mod). QEMU owns the configuration space and gives
 * the back-end every queue (controlq, eventq, request queue). Three LUNs on raw image files:
 * LUN 0 gets an O_DIRECT pattern the host compares byte for byte; LUN 1 is read-only with a
 * seed the guest reads (its writes must fail); LUN 2 gets an ext2 file system (busybox mke2fs)
 * that the guest mounts, writes, remounts and reads, and whose superblock the host checks.
 *
 * The back-end runs as the built CLI in a child process, as a user would run it.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  ensureGuestDeps,
  isSocket,
  makeRawImage,
  makeTempDir,
  repoRoot,
  runDeviceGuest,
  startProcess,
  waitForPath,
  withConsole,
  type ManagedProcess,
  type TempDir,
} from './support/guest.js';
import { xorshiftBytes } from '../src/testing/xorshift.js';

const deps = ensureGuestDeps();
const skip = deps.ok ? false : deps.reason;

const CLI = join(repoRoot, 'dist', 'src', 'cli', 'main.js');

const IMAGE_SIZE = 4 << 20;
const FS_IMAGE_SIZE = 8 << 20;
const PATTERN_OFFSET = 64 * 1024;
const PATTERN_LEN = 128 * 1024;
const SEED_OFFSET = 1 << 20;
const SEED_LEN = 8192;

function pattern(len: number, seed: number): Buffer {
  return Buffer.from(xorshiftBytes(len, seed));
}

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

async function startScsi(sock: string, luns: readonly string[], extra: readonly string[]): Promise<ManagedProcess> {
  const p = startProcess(process.execPath, [CLI, 'scsi', '--socket-path', sock, ...luns.flatMap((l) => ['--lun', l]), ...extra]);
  try {
    await waitForPath(sock, { process: p, timeoutMs: 15_000 });
  } catch (e) {
    await p.stop();
    throw new Error(`virtio-ts scsi did not start: ${(e as Error).message}\n${p.output()}`, { cause: e });
  }
  return p;
}

/** lsscsi from /sys/class/scsi_device, the O_DIRECT round trip, the read-only LUN, ext2 on LUN 2. */
const script = `
for d in sda sdb sdc; do wait_path /dev/$d 300 || fail "no /dev/$d"; done
# The disks are named in probe order: find each LUN's block device.
lun_dev() { ls /sys/class/scsi_device/*:0:0:$1/device/block; }
d0=$(lun_dev 0); d1=$(lun_dev 1); d2=$(lun_dev 2)
result scsi_devices "$(ls /sys/class/scsi_device | tr '\\n' ' ')"
for h in /sys/class/scsi_device/*; do
  n=$(basename $h | tr ':' '_')
  result "sdev_$n" "$(cat $h/device/type) $(cat $h/device/vendor | tr -d ' ') $(cat $h/device/model | tr -s ' ' | sed 's/ *$//')"
done
result lsscsi "$(lsscsi | head -n 1 | tr -s ' \\t' ' ')"
result lun0_size "$(cat /sys/block/$d0/size)"
result lun1_ro "$(cat /sys/block/$d1/ro)"
result lun0_wwid "$(cat /sys/block/$d0/device/wwid 2>/dev/null)"
result features "$(virtio_features $(ls /sys/bus/virtio/devices | head -n 1))"
result nr_hw_queues "$(ls /sys/block/$d0/mq | wc -l)"
dd if=/pattern.bin of=/dev/$d0 bs=4096 seek=${PATTERN_OFFSET / 4096} count=${PATTERN_LEN / 4096} oflag=direct conv=notrunc 2>/tmp/dd.err || fail "write: $(cat /tmp/dd.err)"
dd if=/dev/$d0 of=/tmp/back.bin bs=4096 skip=${PATTERN_OFFSET / 4096} count=${PATTERN_LEN / 4096} iflag=direct 2>/tmp/dd.err || fail "read: $(cat /tmp/dd.err)"
cmp /pattern.bin /tmp/back.bin || fail "read-back differs"
result readback_sha256 "$(sha256sum /tmp/back.bin | cut -d' ' -f1)"
dd if=/dev/$d1 of=/tmp/seed.bin bs=4096 skip=${SEED_OFFSET / 4096} count=${SEED_LEN / 4096} iflag=direct 2>/dev/null || fail "seed read"
result seed_sha256 "$(sha256sum /tmp/seed.bin | cut -d' ' -f1)"
if dd if=/pattern.bin of=/dev/$d1 bs=4096 count=1 oflag=direct conv=notrunc 2>/dev/null; then result lun1_write ok; else result lun1_write refused; fi
mke2fs -q /dev/$d2 || fail "mke2fs"
mkdir -p /mnt
mount -t ext2 /dev/$d2 /mnt || fail "mount"
cp /pattern.bin /mnt/pattern.bin || fail "cp"
umount /mnt || fail "umount"
mount -t ext2 -o ro /dev/$d2 /mnt || fail "remount"
result fs_sha256 "$(sha256sum /mnt/pattern.bin | cut -d' ' -f1)"
umount /mnt
sync
`;

describe('virtio-ts scsi: vhost-user back-end serving a real Linux guest (QEMU 7.2 vhost-user-scsi-pci)', { skip, timeout: 300_000 }, () => {
  let tmp: TempDir;
  const writePattern = pattern(PATTERN_LEN, 0x5c51);
  const seed = pattern(SEED_LEN, 0xbeef);

  before(async () => {
    tmp = await makeTempDir('vts-vuscsi-');
  });
  after(async () => {
    await tmp?.remove();
  });

  const variants = [
    { name: 'modern PCI, split ring, one request queue', tag: 'modern', device: 'num_queues=1', cli: [], smp: 1, queues: 1, packed: false, modern: true },
    { name: 'two request queues on two vCPUs, packed ring', tag: 'mq', device: 'num_queues=2,packed=on', cli: ['--num-queues', '2'], smp: 2, queues: 2, packed: true, modern: true },
    { name: 'transitional PCI driven through its legacy interface', tag: 'legacy', device: 'num_queues=1,disable-legacy=off,disable-modern=on', cli: [], smp: 1, queues: 1, packed: false, modern: false },
  ] as const;

  for (const v of variants) it(`${v.name}: lsscsi sees three disks; dd with O_DIRECT reaches the image (sha256); the read-only LUN refuses writes; ext2 mounts`, async (t) => {
    const img0 = tmp.file(`${v.tag}-lun0.img`);
    const img1 = tmp.file(`${v.tag}-lun1.img`);
    const img2 = tmp.file(`${v.tag}-lun2.img`);
    await makeRawImage(img0, IMAGE_SIZE);
    await makeRawImage(img1, IMAGE_SIZE);
    await makeRawImage(img2, FS_IMAGE_SIZE);
    const fh = await open(img1, 'r+');
    try {
      await fh.write(seed, 0, seed.length, SEED_OFFSET);
    } finally {
      await fh.close();
    }
    const sock = tmp.file(`${v.tag}.sock`);
    const be = await startScsi(sock, [`file=${img0},serial=vts-lun0`, `file=${img1},readonly`, `file=${img2}`], v.cli);
    try {
      const res = await runDeviceGuest({
        devices: ['scsi'],
        qemuArgs: ['-chardev', `socket,id=c0,path=${sock}`],
        qemuDevices: [`vhost-user-scsi-pci,chardev=c0,${v.device}`],
        smp: v.smp,
        files: [{ path: '/pattern.bin', data: writePattern }],
        script,
        memfd: true,
        timeoutMs: 120_000,
      }).catch((e: unknown) => {
        throw new Error(`${(e as Error).message}\n----- virtio-ts scsi -----\n${be.output()}`, { cause: e });
      });
      t.diagnostic(`/init at ${res.bootMs.toFixed(0)} ms, QEMU exited at ${res.totalMs.toFixed(0)} ms`);
      const ended = await be.stop(5000);
      const log = be.output();
      await withConsole(res, log, async () => {
        assert.deepEqual(ended, { code: 0, signal: null }, 'back-end ends cleanly on SIGTERM');
        assert.equal(isSocket(sock), false, 'back-end removed its socket');
        // lsscsi-equivalent: host 0 (whatever number), channel 0, target 0, LUNs 0..2, all disks.
        const devs = (res.results.get('scsi_devices') ?? '').trim().split(' ');
        assert.equal(devs.length, 3, `three SCSI devices: ${devs.join(' ')}`);
        assert.deepEqual(
          devs.map((d) => d.split(':').slice(1).join(':')),
          ['0:0:0', '0:0:1', '0:0:2'],
        );
        const sdev = [...res.results.entries()].filter(([k]) => k.startsWith('sdev_')).map(([, v]) => v);
        assert.deepEqual(sdev, ['0 VIRTIO virtio-ts disk', '0 VIRTIO virtio-ts disk', '0 VIRTIO virtio-ts disk'], 'three direct-access disks');
        assert.match(res.results.get('lsscsi') ?? '', /disk VIRTIO virtio-ts disk 1\.0/);
        assert.equal(res.results.get('lun0_size'), String(IMAGE_SIZE / 512), 'capacity from READ CAPACITY');
        assert.equal(res.results.get('lun1_ro'), '1', 'MODE SENSE write protect');
        assert.match(res.results.get('lun0_wwid') ?? '', /VIRTIO.*vts-lun0/, 'device identification VPD page (0x83)');
        assert.equal(res.results.get('readback_sha256'), sha256(writePattern), 'guest read back what it wrote');
        assert.equal(res.results.get('seed_sha256'), sha256(seed), 'guest read what the host put in the image');
        assert.equal(res.results.get('lun1_write'), 'refused');
        assert.equal(res.results.get('fs_sha256'), sha256(writePattern), 'file read back from ext2 after a remount');
        const f = res.results.get('features') ?? '';
        assert.match(f, /^[01]{64}$/);
        assert.equal(f[34] === '1', v.packed, 'VIRTIO_F_RING_PACKED');
        assert.equal(f[32] === '1', v.modern, 'VIRTIO_F_VERSION_1');
        assert.equal(f[1], '1', 'VIRTIO_SCSI_F_HOTPLUG negotiated');
        assert.equal(res.results.get('nr_hw_queues'), String(v.queues), 'blk-mq hardware queues: one per request queue');
        const image0 = await readFile(img0);
        const expected = Buffer.alloc(IMAGE_SIZE);
        writePattern.copy(expected, PATTERN_OFFSET);
        const diff = image0.findIndex((b, i) => b !== expected[i]);
        assert.equal(diff, -1, `LUN 0 image differs from the expected bytes at offset ${diff}`);
        const image1 = await readFile(img1);
        assert.equal(sha256(image1.subarray(SEED_OFFSET, SEED_OFFSET + SEED_LEN)), sha256(seed), 'read-only LUN unchanged');
        assert.equal(image1.subarray(0, 4096).every((b) => b === 0), true, 'read-only LUN not written');
        const image2 = await readFile(img2);
        assert.equal(image2.readUInt16LE(1024 + 56), 0xef53, 'ext2 superblock magic in LUN 2');
      });
    } finally {
      await be.stop();
    }
  });
});
