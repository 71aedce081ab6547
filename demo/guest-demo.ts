/**
 * The main job with a real guest (`npm run demo` when QEMU is present): the `virtio-ts blk` and
 * `virtio-ts rng` back-ends, run as a user runs them, serve a Linux guest booted by QEMU 7.2
 * (TCG, q35, vhost-user-blk-pci and vhost-user-rng-pci). The guest writes a pattern to its disk
 * with O_DIRECT, reads it back, flushes, and reads /dev/hwrng; after it powers off, the host
 * checks the image holds the pattern byte for byte. Every step is printed.
 *
 *   node dist/demo/guest-demo.js
 *
 * Exit status: 0 when every check held, 1 when one failed, 2 when QEMU or the guest kernel is
 * missing (scripts/install-guest-deps.sh installs them).
 */
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import {
  bootGuest,
  ensureGuestDeps,
  makeRawImage,
  makeTempDir,
  repoRoot,
  startProcess,
  waitForPath,
  type ManagedProcess,
} from '../test/support/guest.js';

const CLI = join(repoRoot, 'dist', 'src', 'cli', 'main.js');
const IMAGE_BYTES = 16 << 20;
const PATTERN_AT = 1 << 20;
const PATTERN_LEN = 256 * 1024;
const RNG_BYTES = 32;
// 6 Reserved Feature Bits, 5.2.3 Feature bits.
const BITS: readonly [number, string][] = [
  [9, 'BLK_F_FLUSH'],
  [28, 'INDIRECT_DESC'],
  [29, 'EVENT_IDX'],
  [32, 'VERSION_1'],
  [34, 'RING_PACKED'],
];

function pattern(len: number, seed: number): Buffer {
  const b = Buffer.alloc(len);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex').slice(0, 16);

async function startBackend(args: readonly string[], sock: string): Promise<ManagedProcess> {
  const p = startProcess(process.execPath, [CLI, ...args, '--socket-path', sock]);
  try {
    await waitForPath(sock, { process: p, timeoutMs: 15_000 });
  } catch (e) {
    await p.stop();
    throw new Error(`virtio-ts ${args[0]} did not start: ${(e as Error).message}\n${p.output()}`, { cause: e });
  }
  return p;
}

async function main(): Promise<number> {
  const deps = ensureGuestDeps();
  if (!deps.ok) {
    console.log(`guest demo skipped: ${deps.reason} (scripts/install-guest-deps.sh installs QEMU, the kernel and busybox)`);
    return 2;
  }
  const out = (s = ''): void => console.log(s);
  let failures = 0;
  const check = (ok: boolean, what: string): void => {
    out(`  ${ok ? 'ok  ' : 'FAIL'} ${what}`);
    if (!ok) failures++;
  };

  const tmp = await makeTempDir('vts-demo-');
  const img = tmp.file('disk.img');
  const blkSock = tmp.file('blk.sock');
  const rngSock = tmp.file('rng.sock');
  const data = pattern(PATTERN_LEN, 0xd15c);
  const backends: ManagedProcess[] = [];
  try {
    await makeRawImage(img, IMAGE_BYTES);
    out('virtio-ts guest demo: vhost-user back-ends serving a Linux guest under QEMU (TCG)');
    out(`  virtio-ts blk --socket-path ${blkSock} --image ${img}   (${IMAGE_BYTES >> 20} MiB raw image)`);
    backends.push(await startBackend(['blk', '--image', img], blkSock));
    out(`  virtio-ts rng --socket-path ${rngSock}`);
    backends.push(await startBackend(['rng'], rngSock));

    const script = `
wait_path /dev/vda || fail "no /dev/vda"
wait_path /dev/hwrng || fail "no /dev/hwrng"
dev=$(basename "$(readlink -f /sys/block/vda/device)")
result features "$(virtio_features "$dev")"
result sectors "$(cat /sys/block/vda/size)"
dd if=/pattern.bin of=/dev/vda bs=4096 seek=${PATTERN_AT / 4096} count=${PATTERN_LEN / 4096} oflag=direct conv=notrunc 2>/tmp/e || fail "write: $(cat /tmp/e)"
dd if=/dev/vda of=/tmp/back.bin bs=4096 skip=${PATTERN_AT / 4096} count=${PATTERN_LEN / 4096} iflag=direct 2>/tmp/e || fail "read: $(cat /tmp/e)"
result readback "$(sha256sum /tmp/back.bin | cut -c1-16)"
sync
blockdev --flushbufs /dev/vda || fail "flush"
result rng_current "$(cat /sys/class/misc/hw_random/rng_current)"
dd if=/dev/hwrng of=/tmp/r.bin bs=${RNG_BYTES} count=1 iflag=fullblock 2>/tmp/e || fail "hwrng: $(cat /tmp/e)"
result rng "$(od -An -tx1 -v /tmp/r.bin | tr -d '\\n' | sed 's/^ //')"
`;
    out('  booting the guest (q35, vhost-user-blk-pci + vhost-user-rng-pci, 256 MiB memfd RAM) ...');
    const res = await bootGuest({
      machine: 'q35',
      modules: ['virtio_blk', 'virtio_rng'],
      script,
      extraFiles: [{ path: '/pattern.bin', data }],
      memfd: true,
      timeoutMs: 120_000,
      qemuArgs: [
        '-chardev', `socket,id=blk0,path=${blkSock}`,
        '-device', 'vhost-user-blk-pci,chardev=blk0,num-queues=1',
        '-chardev', `socket,id=rng0,path=${rngSock}`,
        '-device', 'vhost-user-rng-pci,chardev=rng0',
      ],
    });
    out(`  guest ran its script ${(res.bootMs / 1000).toFixed(1)} s after QEMU started and powered off at ${(res.totalMs / 1000).toFixed(1)} s`);
    const features = res.results.get('features') ?? '';
    const names = BITS.filter(([b]) => features[b] === '1').map(([, n]) => n);
    out(`  guest's virtio-blk driver negotiated: ${names.join(' ')}`);
    check(Number(res.results.get('sectors')) === IMAGE_BYTES / 512, `guest sees a disk of ${res.results.get('sectors')} sectors`);
    check(res.results.get('readback') === sha(data), `guest wrote ${PATTERN_LEN >> 10} KiB at ${PATTERN_AT >> 10} KiB with O_DIRECT and read back ${res.results.get('readback')}... (sent ${sha(data)}...)`);
    const rng = res.results.get('rng') ?? '';
    check(/virtio/.test(res.results.get('rng_current') ?? ''), `guest's hwrng is ${res.results.get('rng_current')}`);
    check(rng.split(' ').length === RNG_BYTES && new Set(rng.split(' ')).size > 1, `guest read ${RNG_BYTES} bytes from /dev/hwrng: ${rng}`);

    for (const b of backends.splice(0)) await b.stop(5000);
    const fh = await open(img, 'r');
    try {
      const onDisk = Buffer.alloc(PATTERN_LEN);
      await fh.read(onDisk, 0, PATTERN_LEN, PATTERN_AT);
      check(onDisk.equals(data), `host: the image holds the guest's ${PATTERN_LEN >> 10} KiB byte for byte after power-off`);
    } finally {
      await fh.close();
    }
  } finally {
    for (const b of backends) await b.stop(5000);
    await tmp.remove();
  }
  out(failures === 0 ? '  all checks held' : `  ${failures} check(s) failed`);
  return failures === 0 ? 0 : 1;
}

process.exitCode = await main().catch((e: unknown) => {
  // A GuestError's message carries the guest's whole console.
  console.error(`guest demo failed: ${e instanceof Error ? e.message : String(e)}`);
  return 1;
});
