/**
 * `virtio-ts console`: a virtio-console device (MULTIPORT) over vhost-user whose ports' host
 * sides are sockets, ptys, stdio or log files (port-link.ts). The host sides live as long as the
 * process; each front-end connection gets a fresh device whose ports are linked to them.
 */
import type { CliIo } from '../../cli/options.js';
import { runBackend } from '../../cli/serve.js';
import { createLogger } from '../../log.js';
import type { ConsoleCliOptions } from './cli.js';
import { ConsoleDevice } from './console-device.js';
import { ConsolePortLink } from './port-link.js';

const DEFAULT_SIZE = { cols: 80, rows: 24 };

export async function runConsole(options: ConsoleCliOptions, io: CliIo): Promise<number> {
  const logger = createLogger(options.verbosity, 'virtio-ts console', io.stderr);
  let current: ConsoleDevice | null = null;
  const resize = (id: number, cols: number, rows: number): void => {
    if (cols < 1 || rows < 1 || cols > 0xffff || rows > 0xffff) return;
    logger.info(`port ${id}: size ${cols}x${rows}`);
    current?.resize(cols, rows, id);
  };
  const links = options.ports.map((spec, id) => new ConsolePortLink(id, spec, logger, resize));
  const startSize = options.size ?? DEFAULT_SIZE;
  // Port 0's size is in the configuration when given or when a terminal gives it.
  const p0 = options.ports[0]!;
  const sizedByTerminal = p0.console && (p0.host.kind === 'pty' || (p0.host.kind === 'stdio' && process.stdout.isTTY === true));
  const hasStdio = options.ports.some((p) => p.host.kind === 'stdio');
  try {
    for (const l of links) {
      await l.start(startSize);
      if (l.ptyPath !== null) {
        // Where a user finds the terminal: stdout, unless stdout carries a port's data.
        if (hasStdio) logger.info(`port ${l.id} pty ${l.ptyPath}`);
        else io.stdout(`port ${l.id} pty ${l.ptyPath}\n`);
      }
    }
  } catch (e) {
    await Promise.all(links.map((l) => l.close()));
    throw e;
  }
  const port0Size = (): { cols: number; rows: number } | undefined => {
    if (options.size) return options.size;
    if (!sizedByTerminal) return undefined;
    if (p0.host.kind === 'pty') return links[0]!.ptySize ?? DEFAULT_SIZE;
    return { cols: process.stdout.columns, rows: process.stdout.rows };
  };
  return runBackend({
    options,
    logger,
    description: `virtio-console with ${options.ports.length} port(s) (${options.ports.map((p, i) => `${i}: ${p.host.kind}`).join(', ')})`,
    device: () => {
      const size = port0Size();
      const d = new ConsoleDevice({
        ports: options.ports.map((p, id) => {
          const ptySize = id !== 0 && p.console ? links[id]!.ptySize : null;
          return { console: p.console, ...(p.name !== null ? { name: p.name } : {}), hostOpen: links[id]!.connected, ...(ptySize ? { size: ptySize } : {}) };
        }),
        maxNrPorts: options.maxPorts,
        multiport: true,
        ...(size ? { size } : {}),
        logger,
      });
      current = d;
      for (const l of links) l.attach(d);
      return d;
    },
    cleanup: async () => {
      await Promise.all(links.map((l) => l.close()));
    },
  });
}
