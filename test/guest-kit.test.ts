/**
 * Proves the guest kit (test/support): every per-device module list of GUEST_DEVICE_MODULES
 * loads in a real guest on each kernel it names (one boot per kernel: the cloud kernel, and the
 * generic amd64 kernel with the out-of-tree i2c-virtio, gpio-virtio and virtio_snd built from
 * linux-source-6.1); host binaries copied with their libraries (socat, iperf3) and static C programs
 * (amd64 and i386) run in the guest; `runDeviceGuest` drives an in-QEMU virtio-9p device with the
 * generic kernel's 9p driver; the i386 (686) out-of-tree build gives 32-bit x86 modules for v86.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import {
  buildOutOfTreeModules,
  checkGuestResult,
  deviceTypesOf,
  ensureGuestKit,
  findCloudKernel,
  findGenericKernel,
  GUEST_DEVICE_MODULES,
  GuestError,
  GuestFailure,
  GuestKitPart,
  KernelFlavour,
  makeTempDir,
  modulesForDevices,
  normModName,
  OutOfTreeTarget,
  resolveModules,
  runDeviceGuest,
  StaticArch,
  type GuestDeviceType,
  type TempDir,
} from './support/guest.js';

const deps = ensureGuestKit([GuestKitPart.TOOLS, GuestKitPart.GENERIC, GuestKitPart.HEADERS_AMD64, GuestKitPart.HEADERS_686, GuestKitPart.SOURCE]);
const skip = deps.ok ? false : deps.reason;

/** Guest lines reporting, for each module of the devices' lists, whether /sys/module has it. */
function moduleCheckScript(flavour: KernelFlavour, devices: readonly GuestDeviceType[]): { script: string; names: string[] } {
  const { modules, outOfTree } = modulesForDevices(flavour, devices);
  const names = [...modules, ...outOfTree].map(normModName);
  const script = names.map((m) => `if [ -d /sys/module/${m} ]; then result mod_${m} 1; else result mod_${m} 0; fi`).join('\n');
  return { script, names };
}

/** Prints the pointer width and a checksum only a working libc and CPU mode agree on. */
const PROBE_C = `
#include <stdio.h>
#include <string.h>
int main(void) {
  unsigned h = 2166136261u;
  const char *s = "virtio-ts";
  for (size_t i = 0; i < strlen(s); i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
  printf("%zu-%08x\\n", sizeof(void *) * 8, h);
  return 0;
}
`;
/** FNV-1a of "virtio-ts", as the probe computes it. */
function fnv1a(s: string): string {
  let h = 2166136261;
  for (const c of Buffer.from(s)) h = Math.imul(h ^ c, 16777619) >>> 0;
  return h.toString(16).padStart(8, '0');
}

describe('guest kit: kernels, per-device module lists, userspace, out-of-tree modules', { skip, timeout: 600_000 }, () => {
  let tmp: TempDir;
  before(async () => {
    tmp = await makeTempDir('vts-kit-');
  });
  after(async () => {
    await tmp?.remove();
  });

  it('every device list resolves on each kernel it names, in dependency order; other kernels refuse it', () => {
    for (const flavour of [KernelFlavour.CLOUD, KernelFlavour.GENERIC]) {
      const kernel = flavour === KernelFlavour.CLOUD ? findCloudKernel() : findGenericKernel();
      for (const device of deviceTypesOf(flavour)) {
        const order = resolveModules(kernel, [...modulesForDevices(flavour, [device]).modules]);
        assert.equal(new Set(order).size, order.length, `${flavour} ${device}: each module once`);
      }
    }
    const gpu = resolveModules(findGenericKernel(), ['virtio-gpu']).map((p) => normModName(p.replace(/^.*\//, '').replace(/\.ko$/, '')));
    assert.ok(gpu.indexOf('drm') < gpu.indexOf('virtio_gpu') && gpu.indexOf('virtio_dma_buf') < gpu.indexOf('virtio_gpu'), gpu.join(','));
    assert.deepEqual(Object.keys(GUEST_DEVICE_MODULES).filter((d) => !deviceTypesOf(KernelFlavour.GENERIC).includes(d as GuestDeviceType)), [], 'the generic kernel has every driver');
    assert.throws(() => modulesForDevices(KernelFlavour.CLOUD, ['gpu']), (e: unknown) => e instanceof GuestError && e.failure === GuestFailure.BAD_OPTION);
    assert.throws(() => resolveModules(findCloudKernel(), ['virtio-gpu']), (e: unknown) => e instanceof GuestError && e.failure === GuestFailure.NOT_FOUND);
  });

  it('checkGuestResult rejects with CHECK_FAILED and the console when a result or console check does not hold', () => {
    const res = { output: 'boot\nRESULT a=1\n', exitCode: 0, results: new Map([['a', '1']]), bootMs: 1, totalMs: 2, argv: [] };
    checkGuestResult(res, { results: { a: '1' }, console: [/^boot$/m] });
    const fails = (checks: Parameters<typeof checkGuestResult>[1], re: RegExp): void =>
      assert.throws(() => checkGuestResult(res, checks), (e: unknown) => e instanceof GuestError && e.failure === GuestFailure.CHECK_FAILED && re.test(e.message) && e.message.includes('RESULT a=1'));
    fails({ results: { a: '2' } }, /result a: got "1", want "2"/);
    fails({ results: { b: /x/ } }, /result b: got \(none\)/);
    fails({ console: [/panic/] }, /console does not match/);
  });

  it('cloud kernel: all its device lists load; socat and iperf3 (with their libraries) and static amd64 and i386 programs run', async (t) => {
    const devices = deviceTypesOf(KernelFlavour.CLOUD);
    const mods = moduleCheckScript(KernelFlavour.CLOUD, devices);
    const res = await runDeviceGuest({
      devices,
      userspace: ['socat', 'iperf3'],
      programs: [
        { source: PROBE_C, path: '/bin/probe64' },
        { source: PROBE_C, path: '/bin/probe32', arch: StaticArch.I386 },
      ],
      script: `${mods.script}
result socat "$(socat -V 2>&1 | grep -m1 'socat version' | cut -d' ' -f1-3)"
socat -h | grep -q vsock-connect && result socat_vsock 1
result iperf3 "$(iperf3 -v 2>&1 | head -n 1 | cut -d' ' -f1-2)"
result probe64 "$(/bin/probe64)"
result probe32 "$(/bin/probe32)"
`,
      checks: {
        results: {
          ...Object.fromEntries(mods.names.map((m) => [`mod_${m}`, '1'])),
          socat: /^socat version 1\.7\.4/,
          socat_vsock: '1',
          iperf3: /^iperf 3\.12/,
          probe64: `64-${fnv1a('virtio-ts')}`,
          probe32: `32-${fnv1a('virtio-ts')}`,
        },
      },
      timeoutMs: 240_000,
    });
    t.diagnostic(`cloud: ${mods.names.length} modules of ${devices.length} device lists; /init at ${res.bootMs.toFixed(0)} ms, exit at ${res.totalMs.toFixed(0)} ms`);
  });

  it('generic kernel: all its device lists load (out-of-tree ones taint it), and a virtio-9p device works through runDeviceGuest', async (t) => {
    const devices = deviceTypesOf(KernelFlavour.GENERIC);
    const mods = moduleCheckScript(KernelFlavour.GENERIC, devices);
    const share = tmp.file('share');
    await mkdir(share);
    const secret = `from-host-${process.pid}-${Date.now()}`;
    await writeFile(`${share}/from-host`, secret);
    const res = await runDeviceGuest({
      kernel: KernelFlavour.GENERIC,
      devices,
      qemuArgs: ['-fsdev', `local,id=f0,path=${share},security_model=none`],
      qemuDevices: ['virtio-9p-pci,fsdev=f0,mount_tag=host0'],
      script: `${mods.script}
result tainted "$(cat /proc/sys/kernel/tainted)"
mkdir -p /mnt/share
mount -t 9p -o trans=virtio,version=9p2000.L host0 /mnt/share || fail "mount 9p"
result host_file "$(cat /mnt/share/from-host)"
echo "reply-$(cat /mnt/share/from-host)" > /mnt/share/from-guest || fail "write 9p"
umount /mnt/share
`,
      checks: { results: { ...Object.fromEntries(mods.names.map((m) => [`mod_${m}`, '1'])), host_file: secret } },
      timeoutMs: 300_000,
    });
    t.diagnostic(`generic: ${mods.names.length} modules of ${devices.length} device lists; /init at ${res.bootMs.toFixed(0)} ms, exit at ${res.totalMs.toFixed(0)} ms`);
    // Taint bit 12 (TAINT_OOT_MODULE): the out-of-tree modules are what loaded.
    assert.ok((Number(res.results.get('tainted')) & (1 << 12)) !== 0, `tainted=${res.results.get('tainted') ?? '?'}`);
    assert.equal((await readFile(`${share}/from-guest`, 'utf8')).trim(), `reply-${secret}`);
  });

  it('the 686 (i386) out-of-tree build gives 32-bit x86 modules for the v86 kernel', async (t) => {
    const t0 = performance.now();
    const build = await buildOutOfTreeModules(OutOfTreeTarget.I686);
    t.diagnostic(`686 modules ${build.cached ? 'from the cache' : 'built'} in ${(performance.now() - t0).toFixed(0)} ms`);
    assert.match(build.kernelRelease, /-686$/);
    assert.deepEqual(build.modules.map((m) => m.name), ['i2c-virtio', 'gpio-virtio', 'virtio_snd']);
    for (const m of build.modules) {
      const elf = Buffer.from(m.data);
      assert.equal(elf.subarray(0, 4).toString('latin1'), '\x7fELF', m.name);
      assert.equal(elf[4], 1, `${m.name}: ELFCLASS32`);
      assert.equal(elf.readUInt16LE(18), 3, `${m.name}: EM_386`);
      assert.match(elf.toString('latin1'), /vermagic=6\.1\.0-\d+-686 SMP/, `${m.name}: built for the 686 kernel`);
    }
  });
});
