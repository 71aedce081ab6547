/**
 * The one-device programs (`virtio-ts-blk`, `virtio-ts-rng`, ...): each is `virtio-ts <type>`
 * under a name of its own, because a vhost-user.json descriptor's `binary` names one program and
 * no arguments (vhost-user.rst, "Backend program conventions"; QEMU and libvirt start it with
 * `--socket-path`/`--fd` and `--print-capabilities` only). src/cli/programs/ has one entry file
 * per device type with a CLI; package.json lists them as bins.
 */
import { EXIT } from './options.js';

/** The program name of a device type's own program. */
export function programName(command: string): string {
  return `virtio-ts-${command}`;
}

/** Runs `virtio-ts <command>` with this process's arguments and exits with its code. */
export function runProgram(command: string): void {
  // Imported here, not at the top: main.ts reaches this file through args.ts and descriptors.ts.
  import('./main.js').then(({ main }) => main([command, ...process.argv.slice(2)])).then(
    (code) => process.exit(code),
    (e: unknown) => {
      process.stderr.write(`${programName(command)}: ${String(e)}\n`);
      process.exit(EXIT.RUNTIME);
    },
  );
}
