/**
 * Running one real peer by hand, with the kit's kernels and initramfs (after `npx tsc`):
 *
 *   node dist/test/support/guest-cli.js --kernel generic --device 9p --print -- \
 *     -fsdev local,id=f0,path=/tmp/share,security_model=none -device virtio-9p-pci,fsdev=f0,mount_tag=host0
 *
 * `--print` builds the initramfs and prints the QEMU command line; run it in a terminal and the
 * guest gives you a busybox shell on the serial console (`poweroff -f` leaves). Without `--print`
 * the guest runs `--script` (or `--script-file`), its console is shown as it comes, and the exit
 * status is the script's. Options:
 *   --kernel cloud|generic|s390x   --machine q35|microvm (x86)   --device TYPE (GUEST_DEVICE_MODULES)
 *   --module NAME   --userspace BINARY   --memfd (shared RAM for vhost-user)   --timeout SECONDS
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { buildInitramfs, type OutOfTreeKo } from './guest-initramfs.js';
import { findKernel, KernelFlavour } from './guest-kernels.js';
import { modulesForDevices, TRANSPORT_MODULES, type GuestDeviceType } from './guest-modules.js';
import { buildOutOfTreeModules } from './guest-oot-modules.js';
import { qemuArgv, runQemu, type GuestMachine } from './guest-qemu.js';
import { copyBinaryWithLibs } from './guest-userspace.js';
import { findS390xAssets, QEMU_S390X, s390xQemuArgv } from './s390x-guest.js';

const INTERACTIVE = 'echo "guest shell: poweroff -f leaves"\nexec setsid cttyhack sh\n';

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      kernel: { type: 'string', default: 'cloud' },
      machine: { type: 'string', default: 'q35' },
      device: { type: 'string', multiple: true, default: [] },
      module: { type: 'string', multiple: true, default: [] },
      userspace: { type: 'string', multiple: true, default: [] },
      script: { type: 'string' },
      'script-file': { type: 'string' },
      memfd: { type: 'boolean', default: false },
      print: { type: 'boolean', default: false },
      timeout: { type: 'string', default: '300' },
    },
  });
  const script = values['script-file'] ? readFileSync(values['script-file'], 'utf8') : (values.script ?? (values.print ? INTERACTIVE : 'uname -a\n'));
  const extraFiles = copyBinaryWithLibs(values.userspace);
  let binary: string;
  let argv: string[];
  if (values.kernel === 's390x') {
    const assets = findS390xAssets();
    const initrd = await buildInitramfs({ kernel: assets.kernel, busybox: assets.busybox, modules: values.module, initScript: script, extraFiles });
    binary = QEMU_S390X;
    argv = s390xQemuArgv({ modules: values.module, script, memfd: values.memfd, qemuArgs: positionals, kernelImage: assets.kernel.image, initrd });
  } else {
    const flavour = values.kernel === 'generic' ? KernelFlavour.GENERIC : KernelFlavour.CLOUD;
    const machine = values.machine as GuestMachine;
    const kernel = findKernel(flavour);
    const { modules, outOfTree } = modulesForDevices(flavour, values.device as GuestDeviceType[]);
    const oot: OutOfTreeKo[] = outOfTree.length > 0 ? (await buildOutOfTreeModules(undefined, outOfTree)).modules : [];
    const initrd = await buildInitramfs({
      kernel,
      modules: [...TRANSPORT_MODULES[machine], ...modules, ...values.module],
      outOfTreeModules: oot,
      initScript: script,
      extraFiles,
    });
    binary = 'qemu-system-x86_64';
    argv = qemuArgv({ machine, kernel: kernel.image, initrd, memfd: values.memfd, qemuArgs: positionals });
  }
  if (values.print) {
    console.log([binary, ...argv].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' '));
    return 0;
  }
  const res = await runQemu(binary, argv, { timeoutMs: Number(values.timeout) * 1000, allowFailure: true, onLine: (l) => console.log(l) });
  console.error(`exit ${res.exitCode}; /init at ${res.bootMs.toFixed(0)} ms; QEMU ran ${res.totalMs.toFixed(0)} ms`);
  return res.exitCode;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(e instanceof Error ? e.message : String(e));
    process.exit(2);
  },
);
