/**
 * `virtio-ts input`: a virtio-input device over vhost-user, fed from standard input (one event
 * per line, "TYPE CODE VALUE"; "SYN" ends an update). Status events the guest sends (LEDs) are
 * printed as "status TYPE CODE VALUE".
 */
import { createInterface } from 'node:readline';
import type { CliIo } from '../../cli/options.js';
import { runBackend } from '../../cli/serve.js';
import { createLogger } from '../../log.js';
import type { InputCliOptions } from './cli.js';
import { InputDevice, type InputEventValue } from './input-device.js';
import { createInputDevice } from './input-type.js';

/** Parses one input line; null for a blank or malformed line, 'syn' for an update's end. */
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

export async function runInput(options: InputCliOptions, io: CliIo): Promise<number> {
  const logger = createLogger(options.verbosity, 'virtio-ts input', io.stderr);
  let current: InputDevice | null = null;
  // One update is collected per SYN; bounded so a line flood without SYN cannot grow memory.
  let pending: InputEventValue[] = [];
  const rl = createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    const e = parseInputLine(line);
    if (e === null) {
      if (line.trim() !== '') logger.warn(`ignored input line: ${line.slice(0, 80)}`);
      return;
    }
    if (e === 'syn') {
      if (current && !current.sendUpdate(pending)) logger.warn('update dropped: the guest is not reading events');
      pending = [];
    } else if (pending.length < 64) pending.push(e);
    else logger.warn('update longer than 64 events dropped');
  });
  try {
    return await runBackend({
      options,
      logger,
      description: `virtio-input ${options.preset}`,
      device: () => {
        const d = createInputDevice({ preset: options.preset, ...(options.name !== undefined ? { name: options.name } : {}) });
        d.onStatus = (t, c, v) => io.stdout(`status ${t} ${c} ${v}\n`);
        current = d;
        return d;
      },
    });
  } finally {
    rl.close();
  }
}
