/**
 * `virtio-ts i2c`: a virtio I2C adapter (5.16) over vhost-user with the `--target` chips on its
 * bus. The targets are made once and put on the bus of each successive front-end's device, so a
 * front-end that reconnects finds them as it left them; an EEPROM with `file=` writes every
 * changed page through to its file.
 */
import { closeSync, existsSync, openSync, readSync, writeSync, fstatSync } from 'node:fs';
import { ErrorCode, VirtioError } from '../../errors.js';
import { createLogger } from '../../log.js';
import type { CliIo } from '../../cli/options.js';
import { runBackend } from '../../cli/serve.js';
import type { I2cOptions, I2cTargetOption } from './cli.js';
import { EepromTarget } from './eeprom-target.js';
import { I2cDevice } from './i2c-device.js';
import type { I2cTarget } from './i2c-target.js';
import { RegisterFileTarget } from './register-file-target.js';

/** Opens (or creates, erased) an EEPROM image of `size` bytes; returns its fd and contents. */
function openEepromFile(path: string, size: number): { fd: number; contents: Uint8Array } {
  const created = !existsSync(path);
  let fd: number;
  try {
    fd = openSync(path, created ? 'w+' : 'r+');
  } catch (e) {
    throw new VirtioError(ErrorCode.BACKEND_IO, `cannot open EEPROM image ${path}: ${(e as Error).message}`, { cause: e });
  }
  const contents = new Uint8Array(size).fill(0xff);
  if (created) writeSync(fd, contents, 0, size, 0);
  else {
    const len = fstatSync(fd).size;
    if (len > size) {
      closeSync(fd);
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `EEPROM image ${path} is ${len} bytes, more than the ${size} of the EEPROM`);
    }
    readSync(fd, contents, 0, len, 0);
  }
  return { fd, contents };
}

function describeTarget(t: I2cTargetOption): string {
  const at = `0x${t.address.toString(16)}${t.tenBit ? ' (10-bit)' : ''}`;
  return t.kind === 'eeprom' ? `${at}: EEPROM of ${t.size} bytes${t.file ? ` in ${t.file}` : ''}` : `${at}: ${t.count} registers`;
}

export async function runI2c(options: I2cOptions, io: CliIo): Promise<number> {
  const logger = createLogger(options.verbosity, 'virtio-ts i2c', io.stderr);
  const fds: number[] = [];
  const closeAll = (): void => {
    for (const fd of fds.splice(0)) closeSync(fd);
  };
  const targets: { address: number; tenBit: boolean; target: I2cTarget }[] = [];
  try {
    for (const t of options.targets) {
      let target: I2cTarget;
      if (t.kind === 'eeprom') {
        if (t.file !== null) {
          const { fd, contents } = openEepromFile(t.file, t.size);
          fds.push(fd);
          const eeprom: EepromTarget = new EepromTarget({
            size: t.size,
            contents,
            ...(t.pageSize !== null ? { pageSize: t.pageSize } : {}),
            onWrite: (offset, length) => {
              try {
                writeSync(fd, eeprom.memory, offset, length, offset);
              } catch (e) {
                logger.error(`EEPROM 0x${t.address.toString(16)}: writing ${t.file} failed: ${(e as Error).message}`);
              }
            },
          });
          target = eeprom;
        } else target = new EepromTarget({ size: t.size, ...(t.pageSize !== null ? { pageSize: t.pageSize } : {}) });
      } else target = new RegisterFileTarget({ count: t.count });
      targets.push({ address: t.address, tenBit: t.tenBit, target });
    }
  } catch (e) {
    closeAll();
    throw e;
  }
  return runBackend({
    options,
    logger,
    description: `virtio-i2c; ${options.targets.map(describeTarget).join('; ')}`,
    device: () => {
      const device = new I2cDevice({ queueSize: options.queueSize, logger });
      for (const t of targets) device.attach(t.address, t.target, t.tenBit);
      return device;
    },
    cleanup: closeAll,
  });
}
