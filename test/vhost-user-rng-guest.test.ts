/**
 * The `virtio-ts rng` back-end serving a real Linux guest through QEMU 7.2's vhost-user-rng:
 * the guest loads virtio-rng, reads /dev/hwrng and prints the bytes; the host checks they are
 * there and not constant. Over PCI (q35) and virtio-mmio version 2 (microvm).
 */
import { after, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import {
  bootGuest,
  ensureGuestDeps,
  isSocket,
  makeTempDir,
  repoRoot,
  startProcess,
  waitForPath,
  withConsole,
  type GuestMachine,
  type TempDir,
} from './support/guest.js';

const deps = ensureGuestDeps();
const skip = deps.ok ? false : deps.reason;

const CLI = join(repoRoot, 'dist', 'src', 'cli', 'main.js');
const READ_BYTES = 256;

// 5.4: entropy device id 4. Its negotiated features, and on microvm its MMIO Version register (4.2.2).
const rngScript = `
wait_path /dev/hwrng || fail "no /dev/hwrng"
for d in /sys/bus/virtio/devices/*; do
  [ "$(cat $d/device)" = 0x0004 ] && dev=$(basename $d)
done
[ -n "$dev" ] || fail "no virtio entropy device in /sys/bus/virtio/devices"
result features "$(virtio_features "$dev")"
result transport "$(basename "$(readlink -f /sys/bus/virtio/devices/$dev/..)")"
result rng_current "$(cat /sys/class/misc/hw_random/rng_current)"
dd if=/dev/hwrng of=/tmp/r.bin bs=${READ_BYTES} count=1 iflag=fullblock 2>/tmp/dd.err || fail "read: $(cat /tmp/dd.err)"
result bytes "$(od -An -tx1 -v /tmp/r.bin | tr -d ' \\n')"
`;

describe('virtio-ts rng: vhost-user back-end serving a real Linux guest (QEMU 7.2)', { skip, timeout: 240_000 }, () => {
  let tmp: TempDir;
  before(async () => {
    tmp = await makeTempDir('vts-vurng-');
  });
  after(async () => {
    await tmp?.remove();
  });

  async function rngRun(t: TestContext, machine: GuestMachine, device: string): Promise<void> {
    const sock = tmp.file(`${machine}.sock`);
    const be = startProcess(process.execPath, [CLI, 'rng', '--socket-path', sock]);
    try {
      await waitForPath(sock, { process: be, timeoutMs: 15_000 });
      const res = await bootGuest({
        machine,
        modules: ['virtio_rng'],
        script: rngScript,
        qemuArgs: ['-chardev', `socket,id=c0,path=${sock}`, '-device', `${device},chardev=c0`],
        memfd: true,
        timeoutMs: 60_000,
      }).catch((e: unknown) => {
        throw new Error(`${(e as Error).message}\n----- virtio-ts rng -----\n${be.output()}`, { cause: e });
      });
      t.diagnostic(`${machine}: /init at ${res.bootMs.toFixed(0)} ms, QEMU exited at ${res.totalMs.toFixed(0)} ms`);
      await withConsole(res, `----- virtio-ts rng -----\n${be.output()}`, async () => {
        assert.match(res.results.get('rng_current') ?? '', /virtio/, 'the guest uses the virtio rng');
        const f = res.results.get('features') ?? '';
        assert.match(f, /^[01]{64}$/, 'features string');
        assert.equal(f[32], '1', 'VIRTIO_F_VERSION_1 negotiated (a modern device on both transports)');
        const transport = res.results.get('transport') ?? '';
        assert.match(transport, machine === 'microvm' ? /virtio-mmio|LNRO0005/ : /^0000:/, `the device sits on the ${machine} transport (${transport})`);
        const hex = res.results.get('bytes') ?? '';
        assert.match(hex, new RegExp(`^[0-9a-f]{${READ_BYTES * 2}}$`), `${READ_BYTES} bytes read: ${hex}`);
        const bytes = Buffer.from(hex, 'hex');
        const distinct = new Set(bytes).size;
        // 256 uniform bytes have about 162 distinct values; a constant or short cycle has few.
        assert.ok(distinct > 64, `bytes are not constant (${distinct} distinct values)`);
        const ended = await be.stop(5000);
        assert.deepEqual(ended, { code: 0, signal: null }, 'back-end ends cleanly on SIGTERM');
        assert.equal(isSocket(sock), false, 'back-end removed its socket');
      });
    } finally {
      await be.stop();
    }
  }

  it('q35: vhost-user-rng-pci, /dev/hwrng gives random bytes', async (t) => {
    // vhost-user-rng-pci is modern-only in QEMU 7.2 (it has no disable-legacy property).
    await rngRun(t, 'q35', 'vhost-user-rng-pci');
  });

  it('microvm (virtio-mmio version 2): vhost-user-rng, /dev/hwrng gives random bytes', async (t) => {
    await rngRun(t, 'microvm', 'vhost-user-rng');
  });
});
