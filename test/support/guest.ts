/**
 * The real-guest kit, one import for tests: boots Debian kernels (cloud or generic amd64, s390x)
 * with a busybox initramfs under QEMU (TCG) and runs a shell script in the guest, which reports
 * `RESULT key=value` lines on the serial console and powers off. test/support/README.md says how
 * to write a device test; the parts live in one file per concept:
 *
 *   guest-errors.ts     GuestError, GuestFailure
 *   guest-host.ts       repoRoot, inCI, the kit's cache folder, install scripts
 *   guest-deps.ts       ensureGuestDeps, ensureGuestKit (skip outside CI, fail under CI)
 *   guest-kernels.ts    findCloudKernel, findGenericKernel
 *   guest-modules.ts    TRANSPORT_MODULES, GUEST_DEVICE_MODULES, resolveModules
 *   guest-oot-modules.ts  i2c-virtio, gpio-virtio, virtio_snd built from linux-source-6.1
 *   guest-initramfs.ts  buildInitramfs (cached by content hash), the /init helpers
 *   guest-userspace.ts  copyBinaryWithLibs (ldd), compileStatic (gcc -static, amd64 or i386)
 *   guest-qemu.ts       qemuArgv, runQemu, runGuest, bootGuest, withConsole
 *   guest-process.ts    startProcess, waitForPath, makeTempDir, makeRawImage
 *   device-guest.ts     runDeviceGuest: one call for a device test
 *   s390x-guest.ts      bootS390xGuest: a big-endian guest over Channel I/O
 *
 * Every QEMU (and every process started with `startProcess`) is killed on timeout, when the run
 * settles, and when the Node process exits; it also gets SIGKILL from the kernel if Node dies
 * without running its exit handlers (`setpriv --pdeathsig KILL`).
 */
export * from './guest-errors.js';
export * from './guest-host.js';
export * from './guest-deps.js';
export * from './guest-kernels.js';
export * from './guest-modules.js';
export * from './guest-oot-modules.js';
export * from './guest-initramfs.js';
export * from './guest-userspace.js';
export * from './guest-qemu.js';
export * from './guest-process.js';
export * from './device-guest.js';
export * from './s390x-guest.js';
