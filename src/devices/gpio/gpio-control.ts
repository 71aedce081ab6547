/**
 * The host side of the lines over a Unix socket (`virtio-ts gpio --control-socket`): one text
 * command a line, one answer a line. Lines longer than 256 bytes close the connection, so a
 * client cannot grow the buffer without bound.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { unlink } from 'node:fs/promises';
import { isVirtioError } from '../../errors.js';
import { GpioDirection, GpioIrqType } from '../../spec/gpio.js';
import type { GpioLineInfo } from './gpio-device.js';

/** What the control socket drives: the device of the current connection, or the line table. */
export interface GpioControlTarget {
  /** `set LINE 0|1`: the host drives `level` on the line named (or numbered) `line`; throws for an unknown line. */
  setInput(line: string, level: 0 | 1): void;
  /** `get LINE`: the state of the line named (or numbered) `line`; throws for an unknown line. */
  line(line: string): GpioLineInfo;
}

const MAX_COMMAND = 256;

const DIRECTION_NAMES: Record<number, string> = { [GpioDirection.NONE]: 'none', [GpioDirection.IN]: 'in', [GpioDirection.OUT]: 'out' };
const IRQ_NAMES: Record<number, string> = {
  [GpioIrqType.NONE]: 'none',
  [GpioIrqType.EDGE_RISING]: 'rising',
  [GpioIrqType.EDGE_FALLING]: 'falling',
  [GpioIrqType.EDGE_BOTH]: 'both',
  [GpioIrqType.LEVEL_HIGH]: 'high',
  [GpioIrqType.LEVEL_LOW]: 'low',
};

/** Answers one command line. */
export function gpioControlCommand(target: GpioControlTarget, line: string): string {
  const words = line.trim().split(/\s+/);
  try {
    if (words[0] === 'set' && words.length === 3 && (words[2] === '0' || words[2] === '1')) {
      target.setInput(words[1]!, words[2] === '1' ? 1 : 0);
      return 'ok';
    }
    if (words[0] === 'get' && words.length === 2) {
      const i = target.line(words[1]!);
      return `ok level=${i.level} direction=${DIRECTION_NAMES[i.direction]} output=${i.outputValue} input=${i.input} irq=${IRQ_NAMES[i.irqType]}`;
    }
    return 'err commands: set LINE 0|1, get LINE';
  } catch (e) {
    return `err ${isVirtioError(e) ? e.message : String(e)}`;
  }
}

/** Listens on `path` (a stale file is replaced); `close` ends every connection and removes it. */
export async function startGpioControl(
  path: string,
  target: GpioControlTarget,
): Promise<{
  /** Stops listening, ends every connection and removes the socket file. */
  close(): Promise<void>;
}> {
  await unlink(path).catch(() => undefined);
  const sockets = new Set<Socket>();
  const server: Server = createServer((s) => {
    sockets.add(s);
    s.setEncoding('utf8');
    let buf = '';
    s.on('data', (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const cmd = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (cmd.trim() !== '') s.write(`${gpioControlCommand(target, cmd)}\n`);
      }
      if (buf.length > MAX_COMMAND) s.destroy();
    });
    s.on('error', () => undefined);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await unlink(path).catch(() => undefined);
    },
  };
}
