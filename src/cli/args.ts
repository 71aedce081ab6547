/**
 * Command-line parsing for `virtio-ts`: the sub-commands come from the device registry (one per
 * device type with a CLI, src/devices/registry.ts) plus the built-in `demo`; strict options,
 * usage text, and typed usage errors. Nothing here touches the OS, so every rule is unit-tested.
 *
 * The back-end sub-commands follow the vhost-user "Backend program conventions"
 * (vhost-user.rst): `--socket-path=PATH` and `--fd=FDNUM` are mutually exclusive, and
 * `--print-capabilities` prints the JSON capabilities and exits 0, ignoring every other option.
 */
import { deviceType, deviceTypes } from '../devices/registry.js';
import type { DeviceType } from '../devices/device-type.js';
import { LogLevel } from '../log.js';
import { DEFAULT_DESCRIPTOR_DIR, type DescriptorOptions } from './descriptors.js';
import {
  BACKEND_OPTIONS,
  CliError,
  CliFault,
  DEFAULT_VERBOSITY,
  backendOptions,
  parseIntInRange,
  sizeOption,
  stringOption,
  strictParse,
  type BackendOptions,
} from './options.js';

export {
  CliError,
  CliFault,
  EXIT,
  MAX_NUM_QUEUES,
  MAX_QUEUE_SIZE,
  MAX_SOCKET_PATH_BYTES,
  type BackendOptions,
  type CliIo,
} from './options.js';
export { DEFAULT_POLL_US_MEMORY, MAX_POLL_US_CLI, MAX_SERIAL_BYTES, type BlkOptions } from '../devices/blk/cli.js';

/** The built-in sub-commands that are not device types. */
export const DEMO_COMMAND = 'demo';
export const DESCRIPTORS_COMMAND = 'descriptors';

export interface DemoOptions {
  readonly verbosity: number;
  /** Size of the demo's RAM disk. */
  readonly diskBytes: number;
  /** Entropy bytes to draw. */
  readonly entropyBytes: number;
}

export type Parsed =
  | { readonly kind: 'help'; readonly text: string }
  | { readonly kind: 'version' }
  | { readonly kind: 'capabilities'; readonly command: string }
  | { readonly kind: 'device'; readonly command: string; readonly options: BackendOptions }
  | { readonly kind: 'demo'; readonly options: DemoOptions }
  | { readonly kind: 'descriptors'; readonly options: DescriptorOptions };

export const DEFAULTS = {
  numQueues: 1,
  queueSize: 1024,
  verbosity: DEFAULT_VERBOSITY,
  demoDiskBytes: 1 << 20,
  demoEntropyBytes: 32,
} as const;

/** The sub-commands, in usage order: every registered device type with a CLI, then the built-in ones. */
export function commands(): string[] {
  return [...deviceTypes().filter((t) => t.cli !== null).map((t) => t.name), DEMO_COMMAND, DESCRIPTORS_COMMAND];
}

/** The device type behind sub-command `name`, or undefined (demo, unknown, or no CLI). */
function commandType(name: string): DeviceType | undefined {
  const t = deviceType(name);
  return t?.cli ? t : undefined;
}

// ---------------------------------------------------------------------------------------------
// Usage text

const DEMO_USAGE = `Usage: virtio-ts demo [options]

Runs a virtio driver against virtio-ts devices in this process: it writes and reads back a block
device, flushes it, reads its id, draws entropy, and prints each step.

  --disk-size SIZE        size of the demo RAM disk (default 1M)
  --entropy-bytes N       entropy bytes to draw, 1..65536 (default ${DEFAULTS.demoEntropyBytes})
  -v, --verbose           log the device side too
  --version               print the version and exit
  -h, --help              this text
`;

const DESCRIPTORS_USAGE = `Usage: virtio-ts descriptors [--dir DIR] [--binary-dir DIR]

Writes a vhost-user.json back-end descriptor, 50-virtio-ts-<type>.json, for each device type with
a vhost-user back-end type, so QEMU's management software (libvirt) finds the back-ends. Each
names a program of its own (virtio-ts-blk, ...) as its binary. Prints the files written.

  --dir DIR               where to write (default ${DEFAULT_DESCRIPTOR_DIR}; /etc/qemu/vhost-user
                          overrides it for local changes; made if missing)
  --binary-dir DIR        where the virtio-ts-<type> programs are (e.g. an npm .bin folder);
                          default: this package's own program files
  --version               print the version and exit
  -h, --help              this text
`;

function mainUsage(): string {
  const rows = deviceTypes()
    .filter((t) => t.cli !== null)
    .map((t) => [t.name, t.summary] as const);
  rows.push([DEMO_COMMAND, 'in-process demo: a driver writes and reads a block device and draws entropy']);
  rows.push([DESCRIPTORS_COMMAND, 'write vhost-user.json descriptors so QEMU and libvirt find the back-ends']);
  const width = Math.max(8, ...rows.map(([n]) => n.length + 2));
  const lines = rows.map(([n, s]) => `  ${n.padEnd(width)}${s}`).join('\n');
  return `Usage: virtio-ts <command> [options]

Commands:
${lines}

Run "virtio-ts <command> --help" for the options of a command.
  -h, --help       this text
  --version        print the version
`;
}

/** The usage text of a sub-command, or the top-level usage for null (or an unknown name). */
export function usage(command: string | null): string {
  if (command === DEMO_COMMAND) return DEMO_USAGE;
  if (command === DESCRIPTORS_COMMAND) return DESCRIPTORS_USAGE;
  const t = command === null ? undefined : commandType(command);
  return t ? t.cli!.usage : mainUsage();
}

// ---------------------------------------------------------------------------------------------
// Parsing

const DEMO_OPTIONS = {
  'disk-size': { type: 'string' },
  'entropy-bytes': { type: 'string' },
  verbose: { type: 'boolean', short: 'v', multiple: true },
  help: { type: 'boolean', short: 'h' },
} as const;

function parseDevice(t: DeviceType, args: readonly string[]): Parsed {
  const cli = t.cli!;
  const v = strictParse(t.name, args, { ...BACKEND_OPTIONS, ...cli.options });
  if (v['help'] === true) return { kind: 'help', text: cli.usage };
  const common = backendOptions(t.name, v);
  return { kind: 'device', command: t.name, options: cli.parse(v, common) };
}

const DESCRIPTORS_OPTIONS = {
  dir: { type: 'string' },
  'binary-dir': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

function parseDescriptors(args: readonly string[]): Parsed {
  const v = strictParse(DESCRIPTORS_COMMAND, args, DESCRIPTORS_OPTIONS);
  if (v['help'] === true) return { kind: 'help', text: DESCRIPTORS_USAGE };
  const dir = stringOption(v, 'dir') ?? DEFAULT_DESCRIPTOR_DIR;
  const binaryDir = stringOption(v, 'binary-dir');
  for (const [name, value] of [['--dir', dir], ['--binary-dir', binaryDir]] as const) {
    if (value === '') throw new CliError(CliFault.BAD_VALUE, `${name}: give a folder`, DESCRIPTORS_COMMAND);
  }
  return { kind: 'descriptors', options: binaryDir === undefined ? { dir } : { dir, binaryDir } };
}

function parseDemo(args: readonly string[]): Parsed {
  const v = strictParse(DEMO_COMMAND, args, DEMO_OPTIONS);
  if (v['help'] === true) return { kind: 'help', text: DEMO_USAGE };
  let diskBytes: number = DEFAULTS.demoDiskBytes;
  const diskText = stringOption(v, 'disk-size');
  if (diskText !== undefined) {
    diskBytes = sizeOption(diskText, '--disk-size', DEMO_COMMAND);
    if (diskBytes % 512 !== 0 || diskBytes < 64 * 1024 || diskBytes > 256 * 1024 * 1024) {
      throw new CliError(CliFault.BAD_SIZE, '--disk-size: a multiple of 512 from 64K to 256M', DEMO_COMMAND);
    }
  }
  const entropyText = stringOption(v, 'entropy-bytes');
  const entropyBytes = entropyText === undefined ? DEFAULTS.demoEntropyBytes : parseIntInRange(entropyText, '--entropy-bytes', 1, 65536, DEMO_COMMAND);
  const verbose = v['verbose'];
  const verbosity = Array.isArray(verbose) && verbose.length > 0 ? LogLevel.DEBUG : LogLevel.WARN;
  return { kind: 'demo', options: { verbosity, diskBytes, entropyBytes } };
}

/**
 * Parses `argv` without the node and script words (`process.argv.slice(2)`). Throws CliError for
 * every usage error.
 */
export function parseCommandLine(argv: readonly string[]): Parsed {
  const [first, ...rest] = argv;
  if (first === undefined) throw new CliError(CliFault.MISSING_COMMAND, 'no command given');
  if (first === '-h' || first === '--help' || first === 'help') {
    return { kind: 'help', text: mainUsage() };
  }
  if (first === '--version' || first === '-V') return { kind: 'version' };
  if (first === DEMO_COMMAND) return rest.includes('--version') ? { kind: 'version' } : parseDemo(rest);
  if (first === DESCRIPTORS_COMMAND) return rest.includes('--version') ? { kind: 'version' } : parseDescriptors(rest);
  const t = commandType(first);
  if (!t) throw new CliError(CliFault.UNKNOWN_COMMAND, `unknown command "${first}"`);
  // vhost-user.rst, Backend program conventions: "--print-capabilities ... Other options and
  // arguments should be ignored", so it wins before any other option is even validated.
  if (rest.some((a) => a === '--print-capabilities')) return { kind: 'capabilities', command: t.name };
  // Every command answers --version (one program, one version), before its options are checked.
  if (rest.some((a) => a === '--version')) return { kind: 'version' };
  return parseDevice(t, rest);
}
