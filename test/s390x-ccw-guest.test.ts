/**
 * A real big-endian guest over Channel I/O (test/support/s390x-guest.ts): Debian's s390x kernel
 * under qemu-system-s390x (TCG) drives two in-QEMU virtio-blk-ccw disks, one limited to the
 * legacy revision 0 (`max_revision=0`: big-endian rings and config, 32 feature bits, 4.3.2.1
 * of the spec) and one at the newest revision (VIRTIO_F_VERSION_1, little-endian). The guest reads
 * a pattern the host wrote into each image and copies it to another block, which the host checks
 * byte for byte; the capacity it reports proves it decoded the config in the right byte order.
 * The guest's byte order and architecture are printed in the test output.
 *
 * A virtio-ts device on CCW over vhost-user awaits a net or fs device in virtio-ts (QEMU 7.2 has
 * vhost-user-fs-ccw and virtio-net-ccw with -netdev vhost-user, no vhost-user-blk-ccw).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { open, readFile } from 'node:fs/promises';
import { bootS390xGuest, ensureGuestKit, GuestKitPart, makeRawImage, makeTempDir, withConsole, type TempDir } from './support/guest.js';

const deps = ensureGuestKit([GuestKitPart.S390X, GuestKitPart.TOOLS]);
const skip = deps.ok ? false : deps.reason;

const IMAGE_SIZE = 1 << 20;
const BLOCK = 4096;
const READ_BLOCK = 16; // where the host writes the pattern (in 4 KiB blocks)
const WRITE_BLOCK = 32; // where the guest copies it
const BIT_VERSION_1 = 32; // 6 Reserved Feature Bits

function pattern(seed: number): Buffer {
  const b = Buffer.alloc(BLOCK);
  let x = seed;
  for (let i = 0; i < b.length; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

// For each disk: the CCW bus id of its subchannel's device, negotiated features, capacity, the
// pattern's checksum; then an O_DIRECT copy of the pattern block to WRITE_BLOCK.
const script = `
printf '\\001\\002' > /tmp/u16
case "$(od -An -tx2 /tmp/u16 | tr -d ' ')" in 0102) result byteorder big ;; 0201) result byteorder little ;; *) result byteorder unknown ;; esac
result arch "$(uname -m)"
wait_path /sys/block/vdb || fail "two disks expected: $(ls /sys/block)"
for d in vda vdb; do
  dev=$(readlink -f /sys/block/$d/device)
  bus=$(basename "$(dirname "$dev")")
  result \${bus}_features "$(virtio_features "$(basename "$dev")")"
  result \${bus}_sectors "$(cat /sys/block/$d/size)"
  dd if=/dev/$d of=/tmp/p bs=${BLOCK} skip=${READ_BLOCK} count=1 iflag=direct 2>/dev/null || fail "read $d"
  result \${bus}_sha256 "$(sha256sum /tmp/p | cut -d' ' -f1)"
  dd if=/tmp/p of=/dev/$d bs=${BLOCK} seek=${WRITE_BLOCK} count=1 oflag=direct conv=notrunc,fsync 2>/dev/null || fail "write $d"
done
`;

describe('s390x guest over Channel I/O (big-endian, legacy revision 0 and modern virtio-blk-ccw)', { skip, timeout: 240_000 }, () => {
  let tmp: TempDir;
  before(async () => {
    tmp = await makeTempDir('vts-s390x-');
  });
  after(async () => {
    await tmp?.remove();
  });

  it('the Linux virtio_ccw driver reads and writes both disks; revision 0 negotiates no VERSION_1', async (t) => {
    const legacy = pattern(0x5a5a0001);
    const modern = pattern(0x5a5a0002);
    const images = { '0.0.0001': tmp.file('legacy.img'), '0.0.0002': tmp.file('modern.img') };
    for (const [bus, img] of Object.entries(images)) {
      await makeRawImage(img, IMAGE_SIZE);
      const fh = await open(img, 'r+');
      await fh.write(bus === '0.0.0001' ? legacy : modern, 0, BLOCK, READ_BLOCK * BLOCK).finally(() => fh.close());
    }
    const res = await bootS390xGuest({
      modules: ['virtio_blk'],
      script,
      qemuArgs: [
        '-drive', `file=${images['0.0.0001']},if=none,id=d1,format=raw,cache=none,aio=threads`,
        '-device', 'virtio-blk-ccw,drive=d1,devno=fe.0.0001,max_revision=0',
        '-drive', `file=${images['0.0.0002']},if=none,id=d2,format=raw,cache=none,aio=threads`,
        '-device', 'virtio-blk-ccw,drive=d2,devno=fe.0.0002',
      ],
      timeoutMs: 180_000,
    });
    const r = res.results;
    t.diagnostic(`guest: ${r.get('arch') ?? '?'}, byte order ${r.get('byteorder') ?? '?'}; /init at ${res.bootMs.toFixed(0)} ms, QEMU exited at ${res.totalMs.toFixed(0)} ms`);
    await withConsole(res, '', async () => {
      assert.equal(r.get('arch'), 's390x');
      assert.equal(r.get('byteorder'), 'big', 'a u16 read back from bytes 01 02 is 0x0102 only on a big-endian CPU');
      for (const [bus, data] of [['0.0.0001', legacy], ['0.0.0002', modern]] as const) {
        assert.equal(r.get(`${bus}_sectors`), String(IMAGE_SIZE / 512), `${bus}: capacity decoded in the config's byte order`);
        assert.equal(r.get(`${bus}_sha256`), createHash('sha256').update(data).digest('hex'), `${bus}: the guest read the host's pattern`);
        const image = await readFile(images[bus]);
        assert.ok(image.subarray(WRITE_BLOCK * BLOCK, (WRITE_BLOCK + 1) * BLOCK).equals(data), `${bus}: the guest's write reached the image`);
      }
      const f1 = r.get('0.0.0001_features') ?? '';
      const f2 = r.get('0.0.0002_features') ?? '';
      assert.match(f1, /^[01]{64}$/);
      assert.equal(f1[BIT_VERSION_1], '0', 'max_revision=0: legacy device, VIRTIO_F_VERSION_1 not negotiated');
      assert.equal(f2[BIT_VERSION_1], '1', 'default revision: VIRTIO_F_VERSION_1 negotiated');
    });
  });
});
