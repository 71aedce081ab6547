/**
 * Command-line parsing for `virtio-ts`: sub-commands, strict options (node:util parseArgs), usage
 * text, and typed usage errors. Nothing here touches the OS, so every rule is unit-tested.
 *
 * The back-end sub-commands follow the vhost-user "Backend program conventions"
 * (vhost-user.rst): `--socket-path=PATH` and `--fd=FDNUM` are mutually exclusive, and
 * `--print-capabilities` prints the JSON capabilities and exits 0, ignoring every other option.
 */
import { constants as bufferConstants } from 'node:buffer';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ErrorCode, VirtioError, isVirtioError } from '../errors.js';
import { LogLevel } from '../log.js';
import { parseSize } from './parse-size.js';

/** Why the command line was refused; stable values for tests and scripts. */
export const CliFault = {
  UNKNOWN_COMMAND: 'UNKNOWN_COMMAND',
  UNKNOWN_OPTION: 'UNKNOWN_OPTION',
  /** An option lacks its value, or a positional argument was given. */
  BAD_SYNTAX: 'BAD_SYNTAX',
  /** Neither --socket-path nor --fd. */
  MISSING_SOCKET: 'MISSING_SOCKET',
  /** Neither --image (--blk-file) nor --memory. */
  MISSING_IMAGE: 'MISSING_IMAGE',
  /** Options that exclude each other (--socket-path/--fd, --image/--memory). */
  CONFLICT: 'CONFLICT',
  BAD_SIZE: 'BAD_SIZE',
  BAD_NUMBER: 'BAD_NUMBER',
  BAD_VALUE: 'BAD_VALUE',
} as const;
export type CliFault = (typeof CliFault)[keyof typeof CliFault];

/** A usage error: the process prints it with the sub-command's usage and exits with EXIT.USAGE. */
export class CliError extends VirtioError {
  constructor(
    readonly fault: CliFault,
    message: string,
    /** The sub-command whose usage applies (null: the top-level usage). */
    readonly command: CommandName | null = null,
  ) {
    super(ErrorCode.INVALID_ARGUMENT, message);
  }
}

/** Process exit codes. */
export const EXIT = { OK: 0, RUNTIME: 1, USAGE: 2 } as const;

export const COMMANDS = ['blk', 'rng', 'demo'] as const;
export type CommandName = (typeof COMMANDS)[number];

/** Options every back-end sub-command takes. */
export interface BackendOptions {
  /** Listen on this Unix socket path, or */
  readonly socketPath: string | null;
  /** serve the already listening socket inherited as this fd (`--fd`). */
  readonly fd: number | null;
  /** LogLevel: 0 errors, 1 warnings, 2 info (default), 3 debug. */
  readonly verbosity: number;
}

export interface BlkOptions extends BackendOptions {
  /** Raw image file (`--image` or `--blk-file`), or null with `memoryBytes`. */
  readonly image: string | null;
  /** Size of a RAM disk (`--memory`), or null with `image`. */
  readonly memoryBytes: number | null;
  readonly readOnly: boolean;
  readonly numQueues: number;
  readonly queueSize: number;
  readonly serial: string | null;
  /** `--poll-us N`: busy-poll window after a processing pass in µs, or null for the default. */
  readonly pollUs: number | null;
}

export type RngOptions = BackendOptions;

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
  | { readonly kind: 'capabilities'; readonly command: 'blk' | 'rng' }
  | { readonly kind: 'blk'; readonly options: BlkOptions }
  | { readonly kind: 'rng'; readonly options: RngOptions }
  | { readonly kind: 'demo'; readonly options: DemoOptions };

export const DEFAULTS = {
  numQueues: 1,
  queueSize: 1024,
  verbosity: LogLevel.INFO,
  demoDiskBytes: 1 << 20,
  demoEntropyBytes: 32,
} as const;

/** vhost-user carries the vring index in 8 bits (VRING_IDX_MASK): at most 256 queues. */
export const MAX_NUM_QUEUES = 256;
/** 2.7: a split queue size is a power of 2 of at most 32768 (the larger of the two layouts' limits here). */
export const MAX_QUEUE_SIZE = 32768;
/** sockaddr_un.sun_path is 108 bytes including the terminating NUL. */
export const MAX_SOCKET_PATH_BYTES = 107;
/** virtio-blk serial (VIRTIO_BLK_T_GET_ID) is at most 20 bytes. */
export const MAX_SERIAL_BYTES = 20;
/** Largest `--poll-us` (the back-end's MAX_POLL_US). */
export const MAX_POLL_US_CLI = 1000;
/** `--poll-us` default with a RAM disk (measured, bench/README.md "Back-end tuning"). */
export const DEFAULT_POLL_US_MEMORY = 50;

// ---------------------------------------------------------------------------------------------
// Usage text

const BLK_USAGE = `Usage: virtio-ts blk (--socket-path PATH | --fd N) (--image FILE | --memory SIZE) [options]

Serves a virtio-blk device to one vhost-user front-end (QEMU vhost-user-blk) at a time; after a
disconnect it waits for the next. Ends cleanly on SIGTERM or SIGINT, removing its socket.

  --socket-path PATH      listen on this Unix socket (a stale socket file is replaced)
  --fd N                  serve the Unix socket inherited as file descriptor N: a listening one
                          (front-ends in turn), or a connected one (served once, then exit)
  --image FILE            raw disk image (also --blk-file FILE)
  --memory SIZE           a RAM disk of SIZE bytes (K, M, G suffixes; a multiple of 512)
  --read-only             offer VIRTIO_BLK_F_RO and refuse writes
  --num-queues N          request queues, 1..${MAX_NUM_QUEUES} (default ${DEFAULTS.numQueues})
  --queue-size N          the ring size the device is built for, a power of 2 from 2 to ${MAX_QUEUE_SIZE}
                          (default ${DEFAULTS.queueSize}): it bounds a request's descriptors (seg_max = N - 2);
                          the front-end (QEMU's queue-size) chooses the ring size itself
  --serial S              device id returned by VIRTIO_BLK_T_GET_ID (at most ${MAX_SERIAL_BYTES} bytes)
  --poll-us N             after serving requests, keep watching the ring for N microseconds
                          (0..${MAX_POLL_US_CLI}) before sleeping, saving the front-end's kicks and the
                          wake-ups (default ${DEFAULT_POLL_US_MEMORY} with --memory, 0 with --image)
  --print-capabilities    print the vhost-user capabilities as JSON and exit
  -v, --verbose           debug log on stderr, every vhost-user message received included
                          (the default logs connections, rings and shutdown)
  -q, --quiet             log errors only
  -h, --help              this text
`;

const RNG_USAGE = `Usage: virtio-ts rng (--socket-path PATH | --fd N) [options]

Serves a virtio entropy device (host randomness) to one vhost-user front-end (QEMU
vhost-user-rng) at a time; after a disconnect it waits for the next. Ends cleanly on SIGTERM or
SIGINT, removing its socket.

  --socket-path PATH      listen on this Unix socket (a stale socket file is replaced)
  --fd N                  serve the Unix socket inherited as file descriptor N: a listening one
                          (front-ends in turn), or a connected one (served once, then exit)
  --print-capabilities    print the vhost-user capabilities as JSON and exit
  -v, --verbose           debug log on stderr, every vhost-user message received included
                          (the default logs connections, rings and shutdown)
  -q, --quiet             log errors only
  -h, --help              this text
`;

const DEMO_USAGE = `Usage: virtio-ts demo [options]

Runs a virtio driver against virtio-ts devices in this process: it writes and reads back a block
device, flushes it, reads its id, draws entropy, and prints each step.

  --disk-size SIZE        size of the demo RAM disk (default 1M)
  --entropy-bytes N       entropy bytes to draw, 1..65536 (default ${DEFAULTS.demoEntropyBytes})
  -v, --verbose           log the device side too
  -h, --help              this text
`;

const MAIN_USAGE = `Usage: virtio-ts <command> [options]

Commands:
  blk     serve a virtio-blk device over vhost-user
  rng     serve a virtio entropy device over vhost-user
  demo    in-process demo: a driver writes and reads a block device and draws entropy

Run "virtio-ts <command> --help" for the options of a command.
  -h, --help       this text
  --version        print the version
`;

/** The usage text of a sub-command, or the top-level usage for null. */
export function usage(command: CommandName | null): string {
  switch (command) {
    case 'blk':
      return BLK_USAGE;
    case 'rng':
      return RNG_USAGE;
    case 'demo':
      return DEMO_USAGE;
    default:
      return MAIN_USAGE;
  }
}

// ---------------------------------------------------------------------------------------------
// Parsing

const COMMON_BACKEND = {
  'socket-path': { type: 'string' },
  fd: { type: 'string' },
  'print-capabilities': { type: 'boolean' },
  verbose: { type: 'boolean', short: 'v', multiple: true },
  quiet: { type: 'boolean', short: 'q' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

const BLK_OPTIONS = {
  ...COMMON_BACKEND,
  image: { type: 'string' },
  'blk-file': { type: 'string' },
  memory: { type: 'string' },
  'read-only': { type: 'boolean' },
  'num-queues': { type: 'string' },
  'queue-size': { type: 'string' },
  serial: { type: 'string' },
  'poll-us': { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

const DEMO_OPTIONS = {
  'disk-size': { type: 'string' },
  'entropy-bytes': { type: 'string' },
  verbose: { type: 'boolean', short: 'v', multiple: true },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

/** Maps parseArgs' own errors (plain TypeErrors with ERR_PARSE_ARGS_* codes) to CliError. */
function strictParse<O extends NonNullable<ParseArgsConfig['options']>>(command: CommandName, args: readonly string[], options: O) {
  try {
    return parseArgs({ args: [...args], options, strict: true, allowPositionals: false }).values;
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    const msg = e instanceof Error ? e.message : String(e);
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') throw new CliError(CliFault.UNKNOWN_OPTION, firstLine(msg), command);
    throw new CliError(CliFault.BAD_SYNTAX, firstLine(msg), command);
  }
}

function firstLine(s: string): string {
  const nl = s.indexOf('\n');
  return nl < 0 ? s : s.slice(0, nl);
}

/** A decimal integer in [min, max]; anything else (hex, signs, blanks, fractions) is refused. */
export function parseIntInRange(text: string, what: string, min: number, max: number, command: CommandName): number {
  if (!/^\d{1,15}$/.test(text)) throw new CliError(CliFault.BAD_NUMBER, `${what}: "${text}" is not a whole number`, command);
  const n = Number(text);
  if (n < min || n > max) throw new CliError(CliFault.BAD_NUMBER, `${what}: ${n} is out of range ${min}..${max}`, command);
  return n;
}

function sizeOption(text: string, what: string, command: CommandName): number {
  try {
    return parseSize(text, what);
  } catch (e) {
    if (isVirtioError(e)) throw new CliError(CliFault.BAD_SIZE, e.message, command);
    throw e;
  }
}

function verbosityOf(values: { verbose?: boolean[] | undefined; quiet?: boolean | undefined }, command: CommandName): number {
  const v = values.verbose?.length ?? 0;
  if (values.quiet && v > 0) throw new CliError(CliFault.CONFLICT, '--quiet and --verbose exclude each other', command);
  if (values.quiet) return LogLevel.ERROR;
  return Math.min(LogLevel.DEBUG, DEFAULTS.verbosity + v);
}

function backendOptions(
  command: 'blk' | 'rng',
  values: { 'socket-path'?: string | undefined; fd?: string | undefined; verbose?: boolean[] | undefined; quiet?: boolean | undefined },
): BackendOptions {
  const socketPath = values['socket-path'] ?? null;
  const fdText = values.fd ?? null;
  if (socketPath !== null && fdText !== null) {
    throw new CliError(CliFault.CONFLICT, '--socket-path and --fd exclude each other', command);
  }
  if (socketPath === null && fdText === null) {
    throw new CliError(CliFault.MISSING_SOCKET, 'give --socket-path PATH or --fd N', command);
  }
  if (socketPath !== null) {
    if (socketPath === '') throw new CliError(CliFault.BAD_VALUE, '--socket-path is empty', command);
    const bytes = Buffer.byteLength(socketPath);
    if (bytes > MAX_SOCKET_PATH_BYTES) {
      throw new CliError(CliFault.BAD_VALUE, `--socket-path is ${bytes} bytes; a Unix socket path holds at most ${MAX_SOCKET_PATH_BYTES}`, command);
    }
    if (socketPath.includes('\0')) throw new CliError(CliFault.BAD_VALUE, '--socket-path contains a NUL byte', command);
  }
  // 0..2 are stdin/stdout/stderr by the conventions; the socket comes above them.
  const fd = fdText === null ? null : parseIntInRange(fdText, '--fd', 3, 0x7fffffff, command);
  return { socketPath, fd, verbosity: verbosityOf(values, command) };
}

function parseBlk(args: readonly string[]): Parsed {
  const v = strictParse('blk', args, BLK_OPTIONS);
  if (v.help) return { kind: 'help', text: BLK_USAGE };
  const common = backendOptions('blk', v);
  if (v.image !== undefined && v['blk-file'] !== undefined) {
    throw new CliError(CliFault.CONFLICT, '--image and --blk-file are the same option; give one', 'blk');
  }
  const image = v.image ?? v['blk-file'] ?? null;
  const memoryText = v.memory ?? null;
  if (image !== null && memoryText !== null) throw new CliError(CliFault.CONFLICT, '--image and --memory exclude each other', 'blk');
  if (image === null && memoryText === null) throw new CliError(CliFault.MISSING_IMAGE, 'give --image FILE or --memory SIZE', 'blk');
  if (image === '') throw new CliError(CliFault.BAD_VALUE, '--image is empty', 'blk');
  let memoryBytes: number | null = null;
  if (memoryText !== null) {
    memoryBytes = sizeOption(memoryText, '--memory', 'blk');
    // 5.2.4: capacity is counted in 512-byte sectors.
    if (memoryBytes % 512 !== 0) throw new CliError(CliFault.BAD_SIZE, `--memory: ${memoryBytes} is not a multiple of 512`, 'blk');
    if (memoryBytes > bufferConstants.MAX_LENGTH) {
      throw new CliError(CliFault.BAD_SIZE, `--memory: ${memoryBytes} is above the largest RAM disk Node can hold (${bufferConstants.MAX_LENGTH})`, 'blk');
    }
  }
  const numQueues = v['num-queues'] === undefined ? DEFAULTS.numQueues : parseIntInRange(v['num-queues'], '--num-queues', 1, MAX_NUM_QUEUES, 'blk');
  let queueSize: number = DEFAULTS.queueSize;
  if (v['queue-size'] !== undefined) {
    // A virtio-blk request has a header and a status descriptor at least: seg_max = N - 2 >= 0.
    queueSize = parseIntInRange(v['queue-size'], '--queue-size', 2, MAX_QUEUE_SIZE, 'blk');
    if ((queueSize & (queueSize - 1)) !== 0) throw new CliError(CliFault.BAD_NUMBER, `--queue-size: ${queueSize} is not a power of 2`, 'blk');
  }
  const serial = v.serial ?? null;
  if (serial !== null && Buffer.byteLength(serial) > MAX_SERIAL_BYTES) {
    throw new CliError(CliFault.BAD_VALUE, `--serial is ${Buffer.byteLength(serial)} bytes; at most ${MAX_SERIAL_BYTES}`, 'blk');
  }
  const pollUs = v['poll-us'] === undefined ? null : parseIntInRange(v['poll-us'], '--poll-us', 0, MAX_POLL_US_CLI, 'blk');
  return { kind: 'blk', options: { ...common, image, memoryBytes, readOnly: v['read-only'] === true, numQueues, queueSize, serial, pollUs } };
}

function parseRng(args: readonly string[]): Parsed {
  const v = strictParse('rng', args, COMMON_BACKEND);
  if (v.help) return { kind: 'help', text: RNG_USAGE };
  return { kind: 'rng', options: backendOptions('rng', v) };
}

function parseDemo(args: readonly string[]): Parsed {
  const v = strictParse('demo', args, DEMO_OPTIONS);
  if (v.help) return { kind: 'help', text: DEMO_USAGE };
  let diskBytes: number = DEFAULTS.demoDiskBytes;
  if (v['disk-size'] !== undefined) {
    diskBytes = sizeOption(v['disk-size'], '--disk-size', 'demo');
    if (diskBytes % 512 !== 0 || diskBytes < 64 * 1024 || diskBytes > 256 * 1024 * 1024) {
      throw new CliError(CliFault.BAD_SIZE, '--disk-size: a multiple of 512 from 64K to 256M', 'demo');
    }
  }
  const entropyBytes =
    v['entropy-bytes'] === undefined ? DEFAULTS.demoEntropyBytes : parseIntInRange(v['entropy-bytes'], '--entropy-bytes', 1, 65536, 'demo');
  const verbosity = (v.verbose?.length ?? 0) > 0 ? LogLevel.DEBUG : LogLevel.WARN;
  return { kind: 'demo', options: { verbosity, diskBytes, entropyBytes } };
}

/**
 * Parses `argv` without the node and script words (`process.argv.slice(2)`). Throws CliError for
 * every usage error.
 */
export function parseCommandLine(argv: readonly string[]): Parsed {
  const [first, ...rest] = argv;
  if (first === undefined || first === '-h' || first === '--help' || first === 'help') {
    return { kind: 'help', text: MAIN_USAGE };
  }
  if (first === '--version' || first === '-V') return { kind: 'version' };
  if (!(COMMANDS as readonly string[]).includes(first)) {
    throw new CliError(CliFault.UNKNOWN_COMMAND, `unknown command "${first}"`);
  }
  const command = first as CommandName;
  // vhost-user.rst, Backend program conventions: "--print-capabilities ... Other options and
  // arguments should be ignored", so it wins before any other option is even validated.
  if ((command === 'blk' || command === 'rng') && rest.some((a) => a === '--print-capabilities')) {
    return { kind: 'capabilities', command };
  }
  switch (command) {
    case 'blk':
      return parseBlk(rest);
    case 'rng':
      return parseRng(rest);
    case 'demo':
      return parseDemo(rest);
  }
}
