/**
 * Proves the real-guest harness (test/support/guest.ts) with QEMU's own virtio devices, before
 * any of ours is involved: a Linux guest writes and reads a virtio-blk disk with O_DIRECT over
 * PCI (q35) and MMIO version 2 (microvm), the host checks the image, and the negotiated feature
 * bits are read from sysfs. Also proves the harness's failure paths (timeout kills QEMU, a failing
 * guest script rejects with the console).
 */
import { after, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { open, readFile } from 'node:fs/promises';
import {
  GuestError,
  GuestFailure,
  TRANSPORT_MODULES,
  bootGuest,
  buildInitramfs,
  ensureGuestDeps,
  findCloudKernel,
  isSocket,
  makeRawImage,
  makeTempDir,
  resolveModules,
  runGuest,
  startProcess,
  waitForPath,
  type GuestResult,
  type TempDir,
} from './support/guest.js';
import { xorshiftBytes } from '../src/testing/xorshift.js';

const deps = ensureGuestDeps();
const skip = deps.ok ? false : deps.reason;

// 1.1: VIRTIO_F_VERSION_1 is bit 32, VIRTIO_F_RING_PACKED bit 34 (6 Reserved Feature Bits).
const BIT_VERSION_1 = 32;
const BIT_RING_PACKED = 34;

const IMAGE_SIZE = 1 << 20;
const SECTOR = 512;
const PATTERN_OFFSET = 64 * 1024; // where the guest writes
const PATTERN_LEN = 64 * 1024;
const SEED_OFFSET = 256 * 1024; // what the host wrote before boot, for the guest to read

/** Deterministic bytes that differ at every position from a simple fill. */
function pattern(len: number, seed: number): Buffer {
  return Buffer.from(xorshiftBytes(len, seed));
}

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/**
 * Guest side: write /pattern.bin to the disk with O_DIRECT, read it back with O_DIRECT and compare,
 * read the host's seed region, and report the negotiated features of the disk.
 */
const blkScript = `
wait_path /dev/vda || fail "no /dev/vda"
dev=$(basename "$(readlink -f /sys/block/vda/device)")
result dev "$dev"
result features "$(virtio_features "$dev")"
result size_sectors "$(cat /sys/block/vda/size)"
dd if=/pattern.bin of=/dev/vda bs=4096 seek=${PATTERN_OFFSET / 4096} count=${PATTERN_LEN / 4096} oflag=direct conv=notrunc,fsync 2>/tmp/dd.err || fail "write: $(cat /tmp/dd.err)"
dd if=/dev/vda of=/tmp/back.bin bs=4096 skip=${PATTERN_OFFSET / 4096} count=${PATTERN_LEN / 4096} iflag=direct 2>/tmp/dd.err || fail "read: $(cat /tmp/dd.err)"
cmp /pattern.bin /tmp/back.bin || fail "read-back differs"
if has_feature "$dev" ${BIT_RING_PACKED}; then result packed 1; else result packed 0; fi
result readback_sha256 "$(sha256sum /tmp/back.bin | cut -d' ' -f1)"
dd if=/dev/vda of=/tmp/seed.bin bs=4096 skip=${SEED_OFFSET / 4096} count=1 iflag=direct 2>/dev/null || fail "seed read"
result seed_sha256 "$(sha256sum /tmp/seed.bin | cut -d' ' -f1)"
`;

/**
 * microvm only: the MMIO registers of the disk's transport (4.2.2: MagicValue at 0, Version at 4),
 * read through /dev/mem (the run passes iomem=relaxed: the region is claimed by virtio_mmio).
 */
const mmioScript = `
base=$(grep LNRO0005 /proc/iomem | head -n 1 | sed 's/^ *\\([0-9a-f]*\\)-.*/\\1/')
[ -n "$base" ] || fail "no virtio-mmio region in /proc/iomem"
magic=$(devmem 0x$base 32) || fail "devmem magic"
version=$(devmem $((0x$base + 4)) 32) || fail "devmem version"
result mmio_magic "$magic"
result mmio_version "$version"
`;

describe('real-guest harness (QEMU TCG, cloud kernel, busybox initramfs)', { skip, timeout: 120_000 }, () => {
  let tmp: TempDir;
  const writePattern = pattern(PATTERN_LEN, 0x1234);
  const seed = pattern(4096, 0xbeef);

  before(async () => {
    tmp = await makeTempDir('vts-harness-');
  });
  after(async () => {
    await tmp?.remove();
  });

  it('resolves module dependencies from modules.dep in load order', () => {
    const kernel = findCloudKernel();
    const order = resolveModules(kernel, [...TRANSPORT_MODULES.q35, 'virtio_blk']).map((p) => p.replace(/^.*\//, '').replace(/\.ko.*$/, ''));
    const pos = (m: string): number => {
      const i = order.indexOf(m);
      assert.ok(i >= 0, `${m} missing from ${order.join(',')}`);
      return i;
    };
    assert.ok(pos('virtio_ring') < pos('virtio'));
    assert.ok(pos('virtio') < pos('virtio_pci'));
    assert.ok(pos('virtio_pci_modern_dev') < pos('virtio_pci'));
    assert.ok(pos('virtio') < pos('virtio_blk'));
    assert.equal(new Set(order).size, order.length, 'each module once');
    assert.throws(() => resolveModules(kernel, ['no_such_module_xyz']), (e: unknown) => e instanceof GuestError && e.failure === GuestFailure.NOT_FOUND);
  });

  /** A fresh image: zeros, with the seed block at SEED_OFFSET. */
  async function seededImage(name: string): Promise<string> {
    const img = tmp.file(name);
    await makeRawImage(img, IMAGE_SIZE);
    const fh = await open(img, 'r+');
    try {
      await fh.write(seed, 0, seed.length, SEED_OFFSET);
    } finally {
      await fh.close();
    }
    return img;
  }

  async function blkRun(
    t: TestContext,
    machine: 'q35' | 'microvm',
    img: string,
    qemuArgs: string[],
    extraScript = '',
    append = '',
  ): Promise<{ res: GuestResult; image: Buffer }> {
    const res = await bootGuest({
      machine,
      modules: ['virtio_blk'],
      script: blkScript + extraScript,
      extraFiles: [{ path: '/pattern.bin', data: writePattern }],
      qemuArgs,
      append,
      // vhost-user needs shared, fd-backed guest RAM; used everywhere so both machines prove it boots.
      memfd: true,
      timeoutMs: 45_000,
    });
    t.diagnostic(`${machine}: /init reached ${res.bootMs.toFixed(0)} ms, QEMU exited ${res.totalMs.toFixed(0)} ms after start`);
    return { res, image: await readFile(img) };
  }

  function checkDisk(res: { results: Map<string, string> }, image: Buffer): void {
    assert.equal(res.results.get('size_sectors'), String(IMAGE_SIZE / SECTOR));
    assert.equal(res.results.get('readback_sha256'), sha256(writePattern));
    // The guest saw what the host wrote before boot: reads reach the image.
    assert.equal(res.results.get('seed_sha256'), sha256(seed));
    // The guest's O_DIRECT writes reached the image, and nothing else changed.
    assert.ok(image.subarray(PATTERN_OFFSET, PATTERN_OFFSET + PATTERN_LEN).equals(writePattern), 'pattern in image');
    assert.ok(image.subarray(SEED_OFFSET, SEED_OFFSET + seed.length).equals(seed), 'seed untouched');
    assert.ok(image.subarray(0, PATTERN_OFFSET).every((b) => b === 0), 'bytes before the pattern untouched');
    assert.ok(image.subarray(PATTERN_OFFSET + PATTERN_LEN, SEED_OFFSET).every((b) => b === 0), 'bytes after the pattern untouched');
  }

  function featureBit(res: { results: Map<string, string> }, bit: number): boolean {
    const f = res.results.get('features');
    assert.ok(f !== undefined && /^[01]{64}$/.test(f), `features string: ${String(f)}`);
    return f[bit] === '1';
  }

  it('q35: virtio-blk-pci with packed=on, O_DIRECT write and read-back reach the image; packed ring negotiated', async (t) => {
    const img = await seededImage('q35.img');
    const { res, image } = await blkRun(t, 'q35', img, [
      '-drive', `file=${img},if=none,id=d0,format=raw,cache=none,aio=threads`,
      '-device', 'virtio-blk-pci,drive=d0,packed=on,disable-legacy=on',
    ]);
    checkDisk(res, image);
    assert.ok(featureBit(res, BIT_VERSION_1), 'VIRTIO_F_VERSION_1 negotiated');
    assert.ok(featureBit(res, BIT_RING_PACKED), 'VIRTIO_F_RING_PACKED negotiated');
    assert.equal(res.results.get('packed'), '1', 'guest-side has_feature agrees');
  });

  it('microvm: virtio-blk-device on virtio-mmio version 2, split ring, O_DIRECT round trip', async (t) => {
    const img = await seededImage('microvm.img');
    const { res, image } = await blkRun(
      t,
      'microvm',
      img,
      ['-drive', `file=${img},if=none,id=d0,format=raw,cache=none,aio=threads`, '-device', 'virtio-blk-device,drive=d0'],
      mmioScript,
      'iomem=relaxed',
    );
    checkDisk(res, image);
    assert.equal(res.results.get('mmio_magic')?.toLowerCase(), '0x74726976', 'MagicValue "virt"');
    assert.equal(Number(res.results.get('mmio_version')), 2, 'MMIO version 2 (not legacy)');
    assert.ok(featureBit(res, BIT_VERSION_1), 'VIRTIO_F_VERSION_1 negotiated');
    assert.equal(featureBit(res, BIT_RING_PACKED), false, 'packed ring not offered by default');
    assert.equal(res.results.get('packed'), '0', 'guest-side has_feature agrees');
  });

  it('q35: vhost-user-blk-pci served by qemu-storage-daemon (memfd RAM, helper processes and socket wait)', async (t) => {
    const img = await seededImage('vu.img');
    const sock = tmp.file('vu.sock');
    const qsd = startProcess('qemu-storage-daemon', [
      '--blockdev', `driver=file,node-name=file0,filename=${img}`,
      '--blockdev', 'driver=raw,node-name=raw0,file=file0',
      '--export', `type=vhost-user-blk,id=e0,node-name=raw0,addr.type=unix,addr.path=${sock},writable=on,num-queues=1`,
    ]);
    try {
      await waitForPath(sock, { process: qsd, timeoutMs: 10_000 });
      assert.ok(isSocket(sock));
      const { res } = await blkRun(t, 'q35', img, [
        '-chardev', `socket,id=c0,path=${sock}`,
        '-device', 'vhost-user-blk-pci,chardev=c0,num-queues=1',
      ]);
      await qsd.stop();
      checkDisk(res, await readFile(img));
      assert.ok(featureBit(res, BIT_VERSION_1), 'VIRTIO_F_VERSION_1 negotiated');
    } finally {
      await qsd.stop();
    }
  });

  it('a failing guest script rejects with SCRIPT_FAILED, its results and the console', async (t) => {
    const t0 = performance.now();
    const err = await bootGuest({ machine: 'microvm', modules: [], script: 'result reached 1\nfail "deliberate"\n', timeoutMs: 30_000 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    t.diagnostic(`microvm without devices: ${(performance.now() - t0).toFixed(0)} ms start to exit`);
    assert.ok(err instanceof GuestError, String(err));
    assert.equal(err.failure, GuestFailure.SCRIPT_FAILED);
    assert.match(err.message, /RESULT reached=1/);
    assert.match(err.message, /RESULT error=deliberate/);
  });

  it('the host can talk to a waiting guest script over the console', async (t) => {
    const initrd = await buildInitramfs({
      modules: [...TRANSPORT_MODULES.microvm],
      initScript: 'result asking 1\nhost_wait go-on || fail "no go"\nresult answered 1\n',
    });
    let sent = 0;
    const res = await runGuest({
      machine: 'microvm',
      initrd,
      timeoutMs: 30_000,
      onLine: (line, guest) => {
        if (line === 'RESULT asking=1') {
          guest.send('not-yet\ngo-on\n');
          sent++;
        }
      },
    });
    t.diagnostic(`microvm without devices: /init reached ${res.bootMs.toFixed(0)} ms, QEMU exited ${res.totalMs.toFixed(0)} ms after start`);
    assert.equal(sent, 1);
    assert.equal(res.exitCode, 0);
    assert.equal(res.results.get('answered'), '1');
  });

  it('a run past its timeout is killed with SIGKILL and rejects with TIMEOUT and the console', async () => {
    const initrd = await buildInitramfs({ modules: [...TRANSPORT_MODULES.microvm], initScript: 'sleep 600\n' });
    let pid = -1;
    const t0 = performance.now();
    const err = await runGuest({ machine: 'microvm', initrd, timeoutMs: 1500, onStart: (p) => (pid = p) }).then(
      () => undefined,
      (e: unknown) => e,
    );
    const ms = performance.now() - t0;
    assert.ok(err instanceof GuestError, String(err));
    assert.equal(err.failure, GuestFailure.TIMEOUT);
    assert.equal(err.code, 'TIMEOUT');
    assert.match(err.message, /----- console -----|exceeded 1500 ms/);
    assert.ok(ms < 10_000, `settled ${ms.toFixed(0)} ms after start`);
    assert.ok(pid > 0);
    assert.throws(() => process.kill(pid, 0), { code: 'ESRCH' }, 'QEMU is gone');
  });

  it('an aborted run ends QEMU and rejects with the abort reason', async () => {
    const initrd = await buildInitramfs({ modules: [...TRANSPORT_MODULES.microvm], initScript: 'echo stuck\nsleep 600\n' });
    let pid = -1;
    const ac = new AbortController();
    const reason = new Error('test abort');
    const err = await runGuest({
      machine: 'microvm',
      initrd,
      timeoutMs: 30_000,
      onStart: (p) => (pid = p),
      // The guest is in its script and will sleep 600 s: only the abort can end the run early.
      onLine: (l) => {
        if (l === 'stuck') ac.abort(reason);
      },
      signal: ac.signal,
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.equal(err, reason);
    assert.ok(pid > 0);
    assert.throws(() => process.kill(pid, 0), { code: 'ESRCH' }, 'QEMU is gone');
  });
});
