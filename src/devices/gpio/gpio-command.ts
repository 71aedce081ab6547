/**
 * `virtio-ts gpio`: a virtio GPIO device (5.18) over vhost-user. The host's input levels live
 * across front-end connections (each connection's device starts from them); the control socket
 * drives them and reads the lines of the device serving now.
 */
import { createLogger } from '../../log.js';
import type { CliIo } from '../../cli/options.js';
import { runBackend } from '../../cli/serve.js';
import { ErrorCode, VirtioError } from '../../errors.js';
import type { GpioOptions } from './cli.js';
import { startGpioControl, type GpioControlTarget } from './gpio-control.js';
import { GpioDevice } from './gpio-device.js';

export async function runGpio(options: GpioOptions, io: CliIo): Promise<number> {
  const logger = createLogger(options.verbosity, 'virtio-ts gpio', io.stderr);
  const inputs = new Uint8Array(options.lines.length);
  const label = (i: number): string => options.lines[i]!.name ?? String(i);
  let current: GpioDevice | null = null;
  const make = (): GpioDevice => {
    const d = new GpioDevice(
      options.lines.map((l, i) => ({ name: l.name, direction: l.direction, input: inputs[i] as 0 | 1 })),
      { queueSize: options.queueSize, irq: options.irq, logger, onOutput: (line, level) => logger.info(`line ${label(line)}: driven ${level} by the driver`) },
    );
    current = d;
    return d;
  };
  // Before any front-end connects, a device of the configuration answers for the lines.
  const idle = make();
  current = null;
  const target: GpioControlTarget = {
    setInput(line, level) {
      const d = current ?? idle;
      const i = d.lineIndex(line);
      inputs[i] = level;
      d.setInput(i, level);
      logger.debug(`line ${label(i)}: host drives ${level}`);
    },
    line(line) {
      return (current ?? idle).line(line);
    },
  };
  let control: { close(): Promise<void> } | null = null;
  if (options.controlSocket !== null) {
    try {
      control = await startGpioControl(options.controlSocket, target);
    } catch (e) {
      throw new VirtioError(ErrorCode.PLATFORM, `cannot listen on --control-socket ${options.controlSocket}: ${(e as Error).message}`, { cause: e });
    }
  }
  const named = options.lines.filter((l) => l.name !== null).length;
  return runBackend({
    options,
    logger,
    description: `virtio-gpio, ${options.lines.length} lines (${named} named)${options.irq ? ', interrupts' : ''}${options.controlSocket ? `, control on ${options.controlSocket}` : ''}`,
    device: make,
    cleanup: async () => {
      await control?.close();
    },
  });
}
