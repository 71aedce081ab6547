#!/usr/bin/env node
/**
 * The `virtio-ts` command: a vhost-user back-end per registered device type (`blk`, `rng`, ...;
 * src/devices/registry.ts), and the in-process `demo`.
 * Exit codes: 0 success, 1 runtime failure, 2 usage error (EXIT in args.ts).
 */
import { readFileSync, realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ErrorCode, VirtioError, isVirtioError } from '../errors.js';
import { deviceType } from '../devices/registry.js';
import { printCapabilities } from '../vhost-user/capabilities.js';
import { CliError, EXIT, parseCommandLine } from './args.js';
import type { CliIo } from './options.js';
import { checkBackendSocket } from './socket-check.js';

export type { CliIo } from './options.js';

const processIo: CliIo = {
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
};

/**
 * The `--print-capabilities` text (JSON and a newline) of a device type's back-end, from its
 * registry record (vhost-user.json @VHostUserBackendCapabilities).
 */
export function capabilitiesJson(command: string): string {
  const t = deviceType(command);
  if (!t) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `unknown device type ${command}`);
  if (!t.vhostUser) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `${command}: vhost-user.json defines no back-end type for this device`);
  return printCapabilities(t.vhostUser.type, t.vhostUser.features);
}

function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
}

/**
 * Runs the command line `argv` (without node and the script) and resolves with the exit code.
 * Back-end commands resolve only when they end (SIGTERM, SIGINT, or a fatal error).
 */
export async function main(argv: readonly string[], io: CliIo = processIo): Promise<number> {
  try {
    const parsed = parseCommandLine(argv);
    switch (parsed.kind) {
      case 'help':
        io.stdout(parsed.text);
        return EXIT.OK;
      case 'version':
        io.stdout(`virtio-ts ${version()}\n`);
        return EXIT.OK;
      case 'capabilities': {
        io.stdout(capabilitiesJson(parsed.command));
        return EXIT.OK;
      }
      case 'device': {
        await checkBackendSocket(parsed.options);
        return await deviceType(parsed.command)!.cli!.run({ ...parsed.options, command: parsed.command }, io);
      }
      case 'descriptors': {
        const { writeDescriptors } = await import('./descriptors.js');
        for (const w of writeDescriptors(parsed.options)) io.stdout(`${w.path}\n`);
        return EXIT.OK;
      }
      case 'demo': {
        const { runDemo } = await import('./demo.js');
        return await runDemo(parsed.options, io);
      }
    }
  } catch (e) {
    if (e instanceof CliError) {
      // One line and a hint, as GNU tools do: the whole usage would scroll the error away.
      const program = e.command === null ? 'virtio-ts' : `virtio-ts ${e.command}`;
      io.stderr(`${program}: ${e.message}\nTry '${program} --help' for ${e.command === null ? 'the commands' : 'its options'}.\n`);
      return EXIT.USAGE;
    }
    const msg = isVirtioError(e) ? `${e.message} (${e.code})` : e instanceof Error ? (e.stack ?? e.message) : String(e);
    io.stderr(`virtio-ts: ${msg}\n`);
    return EXIT.RUNTIME;
  }
}

function invokedDirectly(): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (invokedDirectly()) {
  main(process.argv.slice(2)).then(
    // stdout and stderr are synchronous for files and pipes on Linux, so nothing written is lost;
    // exiting explicitly means no stray handle can keep a finished back-end alive.
    (code) => process.exit(code),
    (e: unknown) => {
      process.stderr.write(`virtio-ts: ${String(e)}\n`);
      process.exit(EXIT.RUNTIME);
    },
  );
}
