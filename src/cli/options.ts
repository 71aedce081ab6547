/**
 * What every `virtio-ts` sub-command shares: usage errors with stable faults, exit codes, strict
 * option parsing (node:util parseArgs), number and size options, verbosity, and the vhost-user
 * back-end options of the "Backend program conventions" (vhost-user.rst): `--socket-path=PATH`
 * and `--fd=FDNUM` exclude each other. Device types build their own options from these
 * (src/devices/<type>/cli.ts); nothing here knows a device type, so the registry can import
 * device CLIs without a cycle.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ErrorCode, VirtioError, isVirtioError } from '../errors.js';
import { LogLevel } from '../log.js';
import { parseSize } from './parse-size.js';

/** Why the command line was refused; stable values for tests and scripts. */
export const CliFault = {
  /** No sub-command at all. */
  MISSING_COMMAND: 'MISSING_COMMAND',
  /** A sub-command that does not exist (`virtio-ts --help` lists them). */
  UNKNOWN_COMMAND: 'UNKNOWN_COMMAND',
  /** An option the command does not take. */
  UNKNOWN_OPTION: 'UNKNOWN_OPTION',
  /** An option lacks its value, or a positional argument was given. */
  BAD_SYNTAX: 'BAD_SYNTAX',
  /** Neither --socket-path nor --fd. */
  MISSING_SOCKET: 'MISSING_SOCKET',
  /** Neither --image (--blk-file) nor --memory. */
  MISSING_IMAGE: 'MISSING_IMAGE',
  /** Options that exclude each other (--socket-path/--fd, --image/--memory). */
  CONFLICT: 'CONFLICT',
  /** A size (`--memory`, ...) that is not a number with an optional K, M, G suffix, or out of range. */
  BAD_SIZE: 'BAD_SIZE',
  /** A number option that is not an integer in its range. */
  BAD_NUMBER: 'BAD_NUMBER',
  /** Any other value the option does not take (an empty path, a serial too long, an unknown profile). */
  BAD_VALUE: 'BAD_VALUE',
} as const;
export type CliFault = (typeof CliFault)[keyof typeof CliFault];

/** A usage error: the process prints it on one line with a hint to `--help` and exits with EXIT.USAGE. */
export class CliError extends VirtioError {
  constructor(
    readonly fault: CliFault,
    message: string,
    /** The sub-command whose usage applies (null: the top-level usage). */
    readonly command: string | null = null,
  ) {
    super(ErrorCode.INVALID_ARGUMENT, message);
  }
}

/** Process exit codes. */
export const EXIT = { OK: 0, RUNTIME: 1, USAGE: 2 } as const;

/** Where the command writes; replaced in tests. */
export interface CliIo {
  /** Writes normal output (usage, results); `text` carries its own newlines. */
  readonly stdout: (text: string) => void;
  /** Writes error messages. */
  readonly stderr: (text: string) => void;
}

/** Options every back-end sub-command takes. */
export interface BackendOptions {
  /** Listen on this Unix socket path, or */
  readonly socketPath: string | null;
  /** serve the already listening socket inherited as this fd (`--fd`). */
  readonly fd: number | null;
  /** LogLevel: 0 errors, 1 warnings, 2 info (default), 3 debug. */
  readonly verbosity: number;
  /** The sub-command (the device type), for stats lines and metric labels; main() sets it. */
  readonly command?: string;
  /** `--stats-interval S`: a one-line report of the queue counters on stderr every S seconds. */
  readonly statsIntervalMs?: number;
  /** `--metrics HOST:PORT`: a Prometheus endpoint on a loopback address. */
  readonly metrics?: MetricsAddress;
  /** `--inspect HOST:PORT`: the live queue inspector's page on a loopback address. */
  readonly inspect?: MetricsAddress;
}

/** Where `--metrics` listens: a loopback address only (the counters are not for the network). */
export interface MetricsAddress {
  /** The address to bind: loopback only (127.x.x.x, ::1, localhost). */
  readonly host: string;
  /** 0: any free port (the command logs the one it got). */
  readonly port: number;
}

/** The back-ends' log level without `-v` or `-q`: connections, rings and shutdown. */
export const DEFAULT_VERBOSITY = LogLevel.INFO;
/** vhost-user carries the vring index in 8 bits (VRING_IDX_MASK): at most 256 queues. */
export const MAX_NUM_QUEUES = 256;
/** 2.7: a split queue size is a power of 2 of at most 32768 (the larger of the two layouts' limits here). */
export const MAX_QUEUE_SIZE = 32768;
/** sockaddr_un.sun_path is 108 bytes including the terminating NUL. */
export const MAX_SOCKET_PATH_BYTES = 107;

/** The parseArgs options of every back-end sub-command. */
export const BACKEND_OPTIONS = {
  'socket-path': { type: 'string' },
  fd: { type: 'string' },
  'print-capabilities': { type: 'boolean' },
  'stats-interval': { type: 'string' },
  metrics: { type: 'string' },
  inspect: { type: 'string' },
  verbose: { type: 'boolean', short: 'v', multiple: true },
  quiet: { type: 'boolean', short: 'q' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

/** The usage lines of BACKEND_OPTIONS; a device's usage places them among its own. */
export const BACKEND_SOCKET_USAGE = `  --socket-path PATH      listen on this Unix socket (a stale socket file is replaced)
  --fd N                  serve the Unix socket inherited as file descriptor N: a listening one
                          (front-ends in turn), or a connected one (served once, then exit)`;
/** The usage lines of the options every back-end takes. */
export const BACKEND_COMMON_USAGE = `  --print-capabilities    print the vhost-user capabilities as JSON and exit
  --stats-interval S      every S seconds (1..86400) print one line of per-queue counters on
                          stderr: requests and their rate, bytes, errors, in flight, kicks, calls
  --metrics HOST:PORT     serve the counters as Prometheus metrics at http://HOST:PORT/metrics;
                          HOST is a loopback address (127.x.x.x, ::1 in brackets, localhost)
  --inspect HOST:PORT     serve a live queue inspector page at http://HOST:PORT/ (loopback only)
  -v, --verbose           debug log on stderr, every vhost-user message received included
                          (the default logs connections, rings and shutdown)
  -q, --quiet             log errors only
  --version               print the version and exit
  -h, --help              this text`;

/** The values parseArgs gives for a set of options. */
export type OptionValues = Record<string, string | boolean | (string | boolean)[] | undefined>;

/** Maps parseArgs' own errors (plain TypeErrors with ERR_PARSE_ARGS_* codes) to CliError. */
export function strictParse(command: string, args: readonly string[], options: NonNullable<ParseArgsConfig['options']>): OptionValues {
  try {
    return parseArgs({ args: [...args], options, strict: true, allowPositionals: false }).values as OptionValues;
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

/** A string option's value, or undefined. */
export function stringOption(values: OptionValues, name: string): string | undefined {
  const v = values[name];
  return typeof v === 'string' ? v : undefined;
}

/** A decimal integer in [min, max]; anything else (hex, signs, blanks, fractions) is refused. */
export function parseIntInRange(text: string, what: string, min: number, max: number, command: string): number {
  if (!/^\d{1,15}$/.test(text)) throw new CliError(CliFault.BAD_NUMBER, `${what}: "${text}" is not a whole number`, command);
  const n = Number(text);
  if (n < min || n > max) throw new CliError(CliFault.BAD_NUMBER, `${what}: ${n} is out of range ${min}..${max}`, command);
  return n;
}

/** A size with K/M/G suffixes (parse-size.ts), as a usage error when malformed. */
export function sizeOption(text: string, what: string, command: string): number {
  try {
    return parseSize(text, what);
  } catch (e) {
    if (isVirtioError(e)) throw new CliError(CliFault.BAD_SIZE, e.message, command);
    throw e;
  }
}

/** -v (repeatable) raises the level from the default, -q lowers it to errors only. */
export function verbosityOf(values: OptionValues, command: string): number {
  const verbose = values['verbose'];
  const v = Array.isArray(verbose) ? verbose.length : 0;
  const quiet = values['quiet'] === true;
  if (quiet && v > 0) throw new CliError(CliFault.CONFLICT, '--quiet and --verbose exclude each other', command);
  if (quiet) return LogLevel.ERROR;
  return Math.min(LogLevel.DEBUG, DEFAULT_VERBOSITY + v);
}

/** The options of BACKEND_OPTIONS, checked: exactly one usable socket. */
export function backendOptions(command: string, values: OptionValues): BackendOptions {
  // A command may take --socket-path several times (`net`: one switch port each); the first is
  // the one checked and served here, the command handles the rest.
  const sp = values['socket-path'];
  const socketPath = (Array.isArray(sp) ? (typeof sp[0] === 'string' ? sp[0] : undefined) : stringOption(values, 'socket-path')) ?? null;
  const fdText = stringOption(values, 'fd') ?? null;
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
  const statsText = stringOption(values, 'stats-interval');
  const metricsText = stringOption(values, 'metrics');
  const inspectText = stringOption(values, 'inspect');
  return {
    socketPath,
    fd,
    verbosity: verbosityOf(values, command),
    ...(statsText === undefined ? {} : { statsIntervalMs: parseIntInRange(statsText, '--stats-interval', 1, 86400, command) * 1000 }),
    ...(metricsText === undefined ? {} : { metrics: metricsAddress(metricsText, command) }),
    ...(inspectText === undefined ? {} : { inspect: metricsAddress(inspectText, command, '--inspect') }),
  };
}

/** `--metrics HOST:PORT` (or `option`'s) with HOST a loopback name or address (`[::1]:PORT` for IPv6). */
export function metricsAddress(text: string, command: string, option = '--metrics'): MetricsAddress {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  if (m === null) throw new CliError(CliFault.BAD_VALUE, `${option}: "${text}" is not HOST:PORT`, command);
  const host = (m[1] ?? m[2])!;
  const loopback = host === 'localhost' || host === '::1' || /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.test(host);
  if (!loopback || host.split('.').some((p) => Number(p) > 255)) {
    throw new CliError(CliFault.BAD_VALUE, `${option}: ${host} is not a loopback address (127.x.x.x, [::1], localhost)`, command);
  }
  return { host, port: parseIntInRange(m[3]!, `${option} port`, 0, 65535, command) };
}

/** `--num-queues N` (1..MAX_NUM_QUEUES) with its default. */
export function numQueuesOption(values: OptionValues, command: string, fallback: number): number {
  const t = stringOption(values, 'num-queues');
  return t === undefined ? fallback : parseIntInRange(t, '--num-queues', 1, MAX_NUM_QUEUES, command);
}

/** `--queue-size N`: a power of 2 from `min` to MAX_QUEUE_SIZE, with its default. */
export function queueSizeOption(values: OptionValues, command: string, fallback: number, min = 2): number {
  const t = stringOption(values, 'queue-size');
  if (t === undefined) return fallback;
  const n = parseIntInRange(t, '--queue-size', min, MAX_QUEUE_SIZE, command);
  if ((n & (n - 1)) !== 0) throw new CliError(CliFault.BAD_NUMBER, `--queue-size: ${n} is not a power of 2`, command);
  return n;
}
