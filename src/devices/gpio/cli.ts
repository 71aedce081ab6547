/**
 * `virtio-ts gpio`: its options, usage and checks. Serving is in gpio-command.ts, loaded only when
 * the command runs.
 */
import { BACKEND_COMMON_USAGE, BACKEND_SOCKET_USAGE, CliError, CliFault, MAX_SOCKET_PATH_BYTES, parseIntInRange, queueSizeOption, stringOption, type BackendOptions, type OptionValues } from '../../cli/options.js';
import { GpioDirection } from '../../spec/gpio.js';
import type { DeviceCli } from '../device-type.js';

/** One `--line NAME[=in|out]` option. */
export interface GpioLineOption {
  /** Null for a line without a name. */
  readonly name: string | null;
  /** Direction at reset: IN or OUT from `=in` / `=out`, else NONE (the driver configures it). */
  readonly direction: GpioDirection;
}

export interface GpioOptions extends BackendOptions {
  /** The lines in order (line 0 first), padded to `--lines` with unnamed ones. */
  readonly lines: readonly GpioLineOption[];
  /** Offer VIRTIO_GPIO_F_IRQ. */
  readonly irq: boolean;
  /** A Unix socket taking `set LINE 0|1` / `get LINE` commands, or null. */
  readonly controlSocket: string | null;
  /** `--queue-size`: the largest ring, a power of 2 from 4 to 32768. */
  readonly queueSize: number;
}

export const GPIO_DEFAULTS = { queueSize: 128 } as const;
/** Lines the CLI makes at most (the protocol allows 65535). */
export const GPIO_CLI_MAX_LINES = 1024;

const COMMAND = 'gpio';

const GPIO_USAGE = `Usage: virtio-ts gpio (--socket-path PATH | --fd N) --line NAME[=in|out] [--line ...] [options]

Serves a virtio GPIO device (5.18) to one vhost-user front-end (QEMU vhost-user-gpio-pci) at a
time; after a disconnect it waits for the next. The driver sets directions, output values and
interrupt types; the host drives the input levels through the control socket. Ends cleanly on
SIGTERM or SIGINT, removing its sockets.

${BACKEND_SOCKET_USAGE}
  --line NAME[=in|out]    a line: 0, 1, ... in order; its name (printable 7-bit ASCII, unique;
                          empty for none: --line '' or --line =in) and its direction at reset
                          (default none: the driver sets it)
  --lines N               pad with unnamed lines up to N in all (1..${GPIO_CLI_MAX_LINES})
  --no-irq                do not offer VIRTIO_GPIO_F_IRQ (no interrupts, no event queue)
  --control-socket PATH   a Unix socket for the host side of the lines, one command a line:
                          "set LINE 0|1" drives an input level (edges and levels raise
                          interrupts), "get LINE" answers "ok level=L direction=D output=V
                          input=I irq=T"; LINE is a name or a number; errors answer "err ..."
  --queue-size N          the largest ring, a power of 2 from 4 to 32768 (default ${GPIO_DEFAULTS.queueSize})
${BACKEND_COMMON_USAGE}
vhost-user.json (QEMU 7.2 and later) defines no back-end type for GPIO, so --print-capabilities
reports that and exits 1.
`;

/** One `--line` value. */
export function parseGpioLineSpec(text: string): GpioLineOption {
  const eq = text.lastIndexOf('=');
  const rawName = eq < 0 ? text : text.slice(0, eq);
  const dir = eq < 0 ? null : text.slice(eq + 1);
  let direction: GpioDirection = GpioDirection.NONE;
  if (dir === 'in') direction = GpioDirection.IN;
  else if (dir === 'out') direction = GpioDirection.OUT;
  else if (dir !== null) throw new CliError(CliFault.BAD_VALUE, `--line ${text}: the direction is in or out`, COMMAND);
  if (rawName !== '' && !/^[\x20-\x7e]+$/.test(rawName)) throw new CliError(CliFault.BAD_VALUE, `--line "${text}": a name of printable 7-bit ASCII, or none`, COMMAND);
  return { name: rawName === '' ? null : rawName, direction };
}

function parseGpio(v: OptionValues, common: BackendOptions): GpioOptions {
  const raw = v['line'];
  const texts = (Array.isArray(raw) ? raw : raw === undefined ? [] : [raw]).filter((x): x is string => typeof x === 'string');
  const lines = texts.map(parseGpioLineSpec);
  const names = new Set<string>();
  for (const l of lines) {
    if (l.name === null) continue;
    if (names.has(l.name)) throw new CliError(CliFault.CONFLICT, `two --line named "${l.name}" (names are unique, device/gpio/5)`, COMMAND);
    names.add(l.name);
  }
  const total = stringOption(v, 'lines');
  if (total !== undefined) {
    const n = parseIntInRange(total, '--lines', 1, GPIO_CLI_MAX_LINES, COMMAND);
    if (n < lines.length) throw new CliError(CliFault.CONFLICT, `--lines ${n} is fewer than the ${lines.length} --line given`, COMMAND);
    while (lines.length < n) lines.push({ name: null, direction: GpioDirection.NONE });
  }
  if (lines.length === 0) throw new CliError(CliFault.BAD_VALUE, 'give at least one --line NAME or --lines N', COMMAND);
  if (lines.length > GPIO_CLI_MAX_LINES) throw new CliError(CliFault.BAD_VALUE, `at most ${GPIO_CLI_MAX_LINES} lines`, COMMAND);
  const controlSocket = stringOption(v, 'control-socket') ?? null;
  if (controlSocket !== null && (controlSocket === '' || Buffer.byteLength(controlSocket) > MAX_SOCKET_PATH_BYTES)) {
    throw new CliError(CliFault.BAD_VALUE, `--control-socket: 1 to ${MAX_SOCKET_PATH_BYTES} bytes`, COMMAND);
  }
  const queueSize = queueSizeOption(v, COMMAND, GPIO_DEFAULTS.queueSize, 4);
  return { ...common, lines, irq: v['no-irq'] !== true, controlSocket, queueSize };
}

/** The `virtio-ts gpio` sub-command: its options, usage, parsing and run. */
export const GPIO_CLI: DeviceCli<GpioOptions> = {
  options: {
    line: { type: 'string', multiple: true },
    lines: { type: 'string' },
    'no-irq': { type: 'boolean' },
    'control-socket': { type: 'string' },
    'queue-size': { type: 'string' },
  },
  usage: GPIO_USAGE,
  parse: parseGpio,
  async run(options, io) {
    const { runGpio } = await import('./gpio-command.js');
    return runGpio(options, io);
  },
};
