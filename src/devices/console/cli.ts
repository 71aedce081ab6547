/** `virtio-ts console`: its options and usage. */
import { BACKEND_COMMON_USAGE, BACKEND_SOCKET_USAGE, type BackendOptions, parseIntInRange, stringOption } from '../../cli/options.js';
import type { DeviceCli } from '../device-type.js';
import { type ConsolePortSpec, checkPortSpecs, parseConsoleSize, parsePortSpec } from './port-spec.js';

export interface ConsoleCliOptions extends BackendOptions {
  /** The --port options in order (port 0 first). */
  readonly ports: readonly ConsolePortSpec[];
  /** max_nr_ports: room for ports beyond those given (1..1024). */
  readonly maxPorts: number;
  /** Port 0's size in the configuration (VIRTIO_CONSOLE_F_SIZE), or null. */
  readonly size: {
    /** Columns (characters per line). */
    readonly cols: number;
    /** Rows (lines). */
    readonly rows: number;
  } | null;
}

const CONSOLE_USAGE = `Usage: virtio-ts console (--socket-path PATH | --fd N) [--port SPEC]... [options]

Serves a virtio-console device (MULTIPORT) to one vhost-user front-end at a time. Each --port
adds a port, numbered in order from 0; without any, port 0 is a console on stdio.
SPEC is a comma-separated list:
  console              the port is a console (hvc in a Linux guest)
  name=NAME            the port's name (/sys/class/virtio-ports/*/name), no commas
and exactly one host side:
  socket=PATH          listen on this Unix socket; a client connecting opens the port's host
                       side, its leaving closes it (the guest sees both); one client at a time
  pty                  a pseudo-terminal; its path is printed as "port N pty PATH"
  stdio                standard input and output (one port at most)
  file=PATH            append what the guest writes to PATH
Example: --port name=org.qemu.guest_agent.0,socket=/run/qga.sock --port console,pty

Options:
  --port SPEC          a port (repeatable)
  --size COLSxROWS     port 0's console size in the configuration (VIRTIO_CONSOLE_F_SIZE) and
                       a pty's starting size; a console's terminal changing size later (pty,
                       stdio on a terminal) is passed on (RESIZE, or config for port 0)
  --max-ports N        max_nr_ports, at least the number of ports (default: that number)
${BACKEND_SOCKET_USAGE}
${BACKEND_COMMON_USAGE}
`;

/** 5.3.4: this implementation's max_nr_ports bound (ConsoleDevice's). */
const MAX_PORTS = 1024;

/** The `virtio-ts console` sub-command: its options, usage, parsing and run. */
export const CONSOLE_CLI: DeviceCli<ConsoleCliOptions> = {
  options: {
    port: { type: 'string', multiple: true },
    size: { type: 'string' },
    'max-ports': { type: 'string' },
  },
  usage: CONSOLE_USAGE,
  parse(values, common) {
    const given = (values['port'] as string[] | undefined) ?? [];
    const ports = given.length > 0 ? given.map(parsePortSpec) : [parsePortSpec('console,stdio')];
    const maxText = stringOption(values, 'max-ports');
    const maxPorts = maxText === undefined ? ports.length : parseIntInRange(maxText, '--max-ports', 1, MAX_PORTS, 'console');
    checkPortSpecs(ports, maxPorts);
    const sizeText = stringOption(values, 'size');
    return { ...common, ports, maxPorts, size: sizeText === undefined ? null : parseConsoleSize(sizeText) };
  },
  async run(options, io) {
    const { runConsole } = await import('./console-command.js');
    return runConsole(options, io);
  },
};
