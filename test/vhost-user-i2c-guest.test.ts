/**
 * The `virtio-ts i2c` back-end serving a real Linux guest through QEMU 7.2's vhost-user-i2c-pci
 * (q35, generic kernel with the out-of-tree i2c-virtio module, i2c-dev, at24). On the bus: an
 * EEPROM at 0x50 backed by an image file and a register file at 0x20. The guest's busybox
 * i2cdetect finds both; i2cset/i2cget write and read registers (one past the last is NACKed);
 * an at24 24c02 instantiated by the guest reads back what the host put in the image, and its
 * writes (page writes through the at24 driver) land in the image.
 *
 * The back-end runs as the built CLI in a child process, as a user would run it.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  ensureGuestKit,
  guestKitPartsFor,
  isSocket,
  makeTempDir,
  repoRoot,
  runDeviceGuest,
  startProcess,
  waitForPath,
  withConsole,
  type ManagedProcess,
  type TempDir,
} from './support/guest.js';

const GUEST = { kernel: 'generic', devices: ['i2c'] } as const;
const deps = ensureGuestKit(guestKitPartsFor(GUEST));
const skip = deps.ok ? false : deps.reason;

const CLI = join(repoRoot, 'dist', 'src', 'cli', 'main.js');
const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const GUEST_TEXT = 'written by the guest through at24';

async function startI2c(sock: string, targets: readonly string[]): Promise<ManagedProcess> {
  const p = startProcess(process.execPath, [CLI, 'i2c', '--socket-path', sock, ...targets.flatMap((t) => ['--target', t]), '-v']);
  try {
    await waitForPath(sock, { process: p, timeoutMs: 15_000 });
  } catch (e) {
    await p.stop();
    throw new Error(`virtio-ts i2c did not start: ${(e as Error).message}\n${p.output()}`, { cause: e });
  }
  return p;
}

const script = `
bus=""
for i in $(seq 1 50); do
  for a in /sys/bus/i2c/devices/i2c-*; do
    [ -e "$a/name" ] || continue
    case "$(cat $a/name)" in *virtio*|*Virtio*) bus=\${a##*/i2c-};; esac
  done
  [ -n "$bus" ] && break
  sleep 0.2
done
[ -n "$bus" ] || fail "no virtio I2C adapter: $(cat /sys/bus/i2c/devices/*/name 2>&1 | tr '\\n' ' ')"
result adapter "$(cat /sys/bus/i2c/devices/i2c-$bus/name)"
wait_path /dev/i2c-$bus || fail "no /dev/i2c-$bus"
result features "$(virtio_features $(ls /sys/bus/virtio/devices | head -n 1))"
result detect "$(i2cdetect -y $bus 2>&1 | tail -n +2 | cut -c5- | tr -s ' ' '\\n' | grep -v -e '^--$' -e '^$' | tr '\\n' ' ')"
i2cset -y $bus 0x20 0x05 0xab || fail "i2cset reg 5"
i2cset -y $bus 0x20 0x0f 0x3c || fail "i2cset reg 15"
result reg5 "$(i2cget -y $bus 0x20 0x05)"
result reg15 "$(i2cget -y $bus 0x20 0x0f)"
if i2cget -y $bus 0x20 0x10 >/dev/null 2>&1; then result reg16 read; else result reg16 nack; fi
if i2cget -y $bus 0x33 0x00 >/dev/null 2>&1; then result absent read; else result absent nack; fi
result eeprom_byte0 "$(i2cget -y $bus 0x50 0x00)"
result eeprom_byte200 "$(i2cget -y $bus 0x50 0xc8)"
echo 24c02 0x50 > /sys/bus/i2c/devices/i2c-$bus/new_device || fail "new_device"
e=/sys/bus/i2c/devices/$bus-0050/eeprom
wait_path $e || fail "at24 did not bind: $(dmesg | grep -i at24 | tail -n 3)"
result eeprom_size "$(wc -c < $e)"
result eeprom_sha256 "$(dd if=$e bs=256 count=1 2>/dev/null | sha256sum | cut -d' ' -f1)"
printf '${GUEST_TEXT}' | dd of=$e bs=1 seek=100 conv=notrunc 2>/dev/null || fail "at24 write"
result eeprom_back "$(dd if=$e bs=1 skip=100 count=${GUEST_TEXT.length} 2>/dev/null)"
`;

describe('virtio-ts i2c: vhost-user back-end serving a real Linux guest (QEMU 7.2 vhost-user-i2c-pci)', { skip, timeout: 300_000 }, () => {
  let tmp: TempDir;
  before(async () => {
    tmp = await makeTempDir('vts-vui2c-');
  });
  after(async () => {
    await tmp?.remove();
  });

  it('device/i2c/2 device/i2c/5: i2cdetect finds both targets, i2cset/i2cget reach the registers, at24 reads and writes the host EEPROM image', async (t) => {
    const img = tmp.file('eeprom.bin');
    const seed = Uint8Array.from({ length: 256 }, (_, i) => (i * 7 + 3) & 0xff);
    await writeFile(img, seed);
    const sock = tmp.file('i2c.sock');
    const be = await startI2c(sock, [`0x50=eeprom:256,file=${img}`, '0x20=regs:16']);
    try {
      const res = await runDeviceGuest({
        ...GUEST,
        extraModules: ['at24'],
        qemuArgs: ['-chardev', `socket,id=c0,path=${sock}`],
        qemuDevices: ['vhost-user-i2c-pci,chardev=c0'],
        script,
        memfd: true,
        timeoutMs: 120_000,
      }).catch((e: unknown) => {
        throw new Error(`${(e as Error).message}\n----- virtio-ts i2c -----\n${be.output()}`, { cause: e });
      });
      t.diagnostic(`/init at ${res.bootMs.toFixed(0)} ms, QEMU exited at ${res.totalMs.toFixed(0)} ms`);
      const ended = await be.stop(5000);
      await withConsole(res, be.output(), async () => {
        assert.deepEqual(ended, { code: 0, signal: null }, 'back-end ends cleanly on SIGTERM');
        assert.equal(isSocket(sock), false, 'back-end removed its socket');
        const f = res.results.get('features') ?? '';
        assert.match(f, /^[01]{64}$/);
        assert.equal(f[0], '1', 'VIRTIO_I2C_F_ZERO_LENGTH_REQUEST negotiated');
        assert.equal(f[32], '1', 'VIRTIO_F_VERSION_1');
        assert.deepEqual((res.results.get('detect') ?? '').trim().split(' '), ['20', '50'], 'i2cdetect: exactly the two targets');
        assert.equal(res.results.get('reg5'), '0xab');
        assert.equal(res.results.get('reg15'), '0x3c');
        assert.equal(res.results.get('reg16'), 'nack', 'a register past the last is NACKed (VIRTIO_I2C_MSG_ERR)');
        assert.equal(res.results.get('absent'), 'nack', 'nobody at 0x33');
        assert.equal(res.results.get('eeprom_byte0'), `0x${seed[0]!.toString(16).padStart(2, '0')}`);
        assert.equal(res.results.get('eeprom_byte200'), `0x${seed[200]!.toString(16).padStart(2, '0')}`);
        assert.equal(res.results.get('eeprom_size'), '256');
        assert.equal(res.results.get('eeprom_sha256'), sha256(seed), 'at24 read the whole image the host holds');
        assert.equal(res.results.get('eeprom_back'), GUEST_TEXT);
        const image = await readFile(img);
        const expected = Buffer.from(seed);
        expected.write(GUEST_TEXT, 100, 'latin1');
        assert.equal(image.length, 256);
        assert.deepEqual(image, expected, 'the at24 writes reached the image file, nothing else changed');
      });
    } finally {
      await be.stop();
    }
  });
});
