/**
 * `virtio-ts console --port SPEC`: what one port is and where its host side goes.
 *
 * SPEC is a comma-separated list of items, in any order:
 *   console          the port is a console (CONSOLE_PORT: /dev/hvcN in a Linux guest)
 *   name=NAME        its name (PORT_NAME: /sys/class/virtio-ports/vportNpM/name); no comma, 1..255 bytes
 * and exactly one host side:
 *   socket=PATH      a Unix socket the back-end listens on: a client connecting opens the host
 *                    side, its disconnecting closes it (PORT_OPEN to the guest); one client at a time
 *   pty              a pseudo-terminal; its path is printed ("port N pty /dev/pts/M"); open while a
 *                    program has the terminal open
 *   stdio            standard input and output (one port at most); always open
 *   file=PATH        appends what the guest writes to PATH (nothing goes to the guest); always open
 * Ports are numbered in the order given: the first --port is port 0.
 */
import { CliError, CliFault } from '../../cli/options.js';

/** Where a console port's host side goes (`socket=`, `pty`, `stdio` or `file=` of a --port SPEC). */
export type ConsoleHostSpec =
  | {
      /** A Unix socket the back-end listens on; a connected client is the host side. */
      readonly kind: 'socket';
      /** The socket's path (at most 107 bytes). */
      readonly path: string;
    }
  | {
      /** A pseudo-terminal, open while a program has it open. */
      readonly kind: 'pty';
    }
  | {
      /** Standard input and output (one port at most). */
      readonly kind: 'stdio';
    }
  | {
      /** A file the guest's output is appended to (nothing goes to the guest). */
      readonly kind: 'file';
      /** The file's path. */
      readonly path: string;
    };

/** One parsed `--port SPEC`. */
export interface ConsolePortSpec {
  /** `console`: the port is nominated a console (CONSOLE_PORT, 5.3.6.2). */
  readonly console: boolean;
  /** `name=NAME`: the PORT_NAME sent to the guest; null when not given. */
  readonly name: string | null;
  /** Where the port's host side goes. */
  readonly host: ConsoleHostSpec;
}

/** Largest port name accepted (Linux reads at most a page; QEMU names are short). */
export const MAX_PORT_NAME_BYTES = 255;
/** sockaddr_un.sun_path holds 107 bytes and a NUL. */
const MAX_SOCKET_PATH_BYTES = 107;
const COMMAND = 'console';

function bad(message: string): CliError {
  return new CliError(CliFault.BAD_VALUE, message, COMMAND);
}

/** Parses one --port value (throws CliError BAD_VALUE with the reason). */
export function parsePortSpec(text: string): ConsolePortSpec {
  let isConsole = false;
  let name: string | null = null;
  let host: ConsoleHostSpec | null = null;
  const setHost = (h: ConsoleHostSpec): void => {
    if (host !== null) throw bad(`--port ${text}: more than one host side (${host.kind} and ${h.kind})`);
    host = h;
  };
  if (text.trim() === '') throw bad('--port is empty');
  for (const item of text.split(',')) {
    const eq = item.indexOf('=');
    const key = eq < 0 ? item : item.slice(0, eq);
    const value = eq < 0 ? null : item.slice(eq + 1);
    const needValue = (): string => {
      if (value === null || value === '') throw bad(`--port ${text}: ${key}= needs a value`);
      if (value.includes('\0')) throw bad(`--port ${text}: ${key}= contains a NUL byte`);
      return value;
    };
    const noValue = (): void => {
      if (value !== null) throw bad(`--port ${text}: ${key} takes no value`);
    };
    switch (key) {
      case 'console':
        noValue();
        if (isConsole) throw bad(`--port ${text}: console given twice`);
        isConsole = true;
        break;
      case 'name': {
        if (name !== null) throw bad(`--port ${text}: name given twice`);
        const n = needValue();
        if (Buffer.byteLength(n) > MAX_PORT_NAME_BYTES) throw bad(`--port ${text}: name longer than ${MAX_PORT_NAME_BYTES} bytes`);
        name = n;
        break;
      }
      case 'socket': {
        const p = needValue();
        if (Buffer.byteLength(p) > MAX_SOCKET_PATH_BYTES) throw bad(`--port ${text}: socket path longer than ${MAX_SOCKET_PATH_BYTES} bytes`);
        setHost({ kind: 'socket', path: p });
        break;
      }
      case 'file':
        setHost({ kind: 'file', path: needValue() });
        break;
      case 'pty':
        noValue();
        setHost({ kind: 'pty' });
        break;
      case 'stdio':
        noValue();
        setHost({ kind: 'stdio' });
        break;
      default:
        throw bad(`--port ${text}: unknown item "${item}" (console, name=NAME, socket=PATH, pty, stdio, file=PATH)`);
    }
  }
  if (host === null) throw bad(`--port ${text}: no host side (socket=PATH, pty, stdio or file=PATH)`);
  return { console: isConsole, name, host };
}

/** Checks the ports together: at most one stdio, no socket or file path twice. */
export function checkPortSpecs(ports: readonly ConsolePortSpec[], maxPorts: number): void {
  if (ports.length > maxPorts) throw bad(`${ports.length} ports but at most ${maxPorts}`);
  const seen = new Set<string>();
  let stdio = 0;
  for (const p of ports) {
    if (p.host.kind === 'stdio' && ++stdio > 1) throw bad('stdio serves one port at most');
    if (p.host.kind === 'socket' || p.host.kind === 'file') {
      const key = `${p.host.kind}:${p.host.path}`;
      if (seen.has(key)) throw bad(`${p.host.kind} ${p.host.path} given for two ports`);
      seen.add(key);
    }
  }
  const names = ports.map((p) => p.name).filter((n): n is string => n !== null);
  if (new Set(names).size !== names.length) throw bad('two ports have the same name');
}

/** `--size COLSxROWS` (each 1..65535). */
export function parseConsoleSize(text: string): { cols: number; rows: number } {
  const m = /^(\d{1,5})x(\d{1,5})$/.exec(text);
  const cols = m ? Number(m[1]) : NaN;
  const rows = m ? Number(m[2]) : NaN;
  if (!(cols >= 1 && cols <= 0xffff && rows >= 1 && rows <= 0xffff)) throw new CliError(CliFault.BAD_VALUE, `--size must be COLSxROWS (1..65535 each), not "${text}"`, COMMAND);
  return { cols, rows };
}
