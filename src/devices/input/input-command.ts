/**
 * `virtio-ts input`: a virtio-input device over vhost-user, fed from standard input and from the
 * clients of an optional events socket, one event per line (JSON or "TYPE CODE VALUE"; see
 * cli.ts). Status events the guest sends (LEDs) are printed as "status TYPE CODE VALUE" and sent
 * to the socket's clients as JSON.
 */
import { existsSync, lstatSync, unlinkSync } from 'node:fs';
import { type Server, type Socket, createServer } from 'node:net';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import type { CliIo } from '../../cli/options.js';
import { runBackend } from '../../cli/serve.js';
import { createLogger, type Logger } from '../../log.js';
import type { InputCliOptions } from './cli.js';
import { InputDevice, type InputEventValue } from './input-device.js';
import { MAX_JSON_LINE, parseJsonEventLine } from './input-json.js';
import { createInputDevice } from './input-type.js';

/** Parses one text input line; null for a blank or malformed line, 'syn' for an update's end. */
export function parseInputLine(line: string): InputEventValue | 'syn' | null {
  const t = line.trim();
  if (t === '') return null;
  if (t.toUpperCase() === 'SYN') return 'syn';
  const parts = t.split(/\s+/);
  if (parts.length !== 3 || !parts.every((p) => /^-?\d{1,10}$/.test(p))) return null;
  const [type, code, value] = parts.map(Number) as [number, number, number];
  if (type > 0xffff || code > 0xffff || type < 0 || code < 0 || value < -0x8000_0000 || value > 0x7fff_ffff) return null;
  if (type === 0 && code === 0) return 'syn';
  return { type, code, value };
}

/** One line in either form: JSON when it starts with "{", text otherwise. */
export function parseEventLine(line: string): InputEventValue | 'syn' | null {
  const t = line.trim();
  return t.startsWith('{') ? parseJsonEventLine(t) : parseInputLine(t);
}

/** Events of one update at most (a line flood without SYN cannot grow memory). */
const MAX_UPDATE = 64;
/** Clients of the events socket at most. */
const MAX_CLIENTS = 16;

/**
 * Reads event lines from `input` and hands each finished update to `send`. Each source keeps
 * its own pending update, so two sources never interleave inside an update.
 */
export function readEventLines(input: Readable, send: (update: InputEventValue[]) => void, logger: Logger): () => void {
  let pending: InputEventValue[] = [];
  const rl = createInterface({ input, crlfDelay: Infinity });
  rl.on('line', (line) => {
    const e = line.length > MAX_JSON_LINE ? null : parseEventLine(line);
    if (e === null) {
      if (line.trim() !== '') logger.warn(`ignored input line: ${line.slice(0, 80)}`);
      return;
    }
    if (e === 'syn') {
      send(pending);
      pending = [];
    } else if (pending.length < MAX_UPDATE) pending.push(e);
    else logger.warn(`update longer than ${MAX_UPDATE} events: event dropped`);
  });
  return () => rl.close();
}

function listenEvents(path: string, onClient: (s: Socket) => void): Promise<Server> {
  if (existsSync(path) && lstatSync(path).isSocket()) unlinkSync(path);
  const server = createServer(onClient);
  server.maxConnections = MAX_CLIENTS;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

export async function runInput(options: InputCliOptions, io: CliIo): Promise<number> {
  const logger = createLogger(options.verbosity, 'virtio-ts input', io.stderr);
  let current: InputDevice | null = null;
  const send = (update: InputEventValue[]): void => {
    if (current && !current.sendUpdate(update)) logger.warn('update dropped: the guest is not reading events');
  };
  const stops = [readEventLines(process.stdin, send, logger)];
  const clients = new Set<Socket>();
  let server: Server | null = null;
  try {
    if (options.eventsSocket !== undefined) {
      server = await listenEvents(options.eventsSocket, (s) => {
        clients.add(s);
        s.on('error', () => undefined);
        s.once('close', () => clients.delete(s));
        stops.push(readEventLines(s, send, logger));
      });
    }
    return await runBackend({
      options,
      logger,
      description: `virtio-input ${options.profile !== undefined ? `profile "${options.profile.name}"` : options.preset}`,
      device: () => {
        const d = createInputDevice({
          preset: options.preset,
          ...(options.profile !== undefined ? { profile: options.profile } : {}),
          ...(options.name !== undefined ? { name: options.name } : {}),
        });
        d.onStatus = (type, code, value) => {
          io.stdout(`status ${type} ${code} ${value}\n`);
          const line = `${JSON.stringify({ status: { type, code, value } })}\n`;
          for (const c of clients) if (c.writable && c.writableLength < 65536) c.write(line);
        };
        current = d;
        return d;
      },
    });
  } finally {
    for (const stop of stops) stop();
    for (const c of clients) c.destroy();
    if (server !== null) {
      const s = server;
      await new Promise<void>((resolve) => s.close(() => resolve()));
    }
  }
}
