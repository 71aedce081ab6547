/**
 * `virtio-ts scsi`: a virtio-scsi host (5.6) over vhost-user, one LUN per `--lun` on a raw image
 * file or a RAM disk. The storage is opened once and shared by the device of each successive
 * front-end connection, so a front-end that reconnects finds the disks as it left them.
 */
import { ErrorCode, VirtioError } from '../../errors.js';
import { createLogger } from '../../log.js';
import type { CliIo } from '../../cli/options.js';
import { runBackend } from '../../cli/serve.js';
import type { BlkBackend } from '../blk/backend.js';
import { FileBackend } from '../blk/file-backend.js';
import { MemoryBackend } from '../blk/memory-backend.js';
import type { ScsiOptions } from './cli.js';
import { ScsiDevice, type ScsiLunSpec } from './scsi-device.js';

export async function runScsi(options: ScsiOptions, io: CliIo): Promise<number> {
  const logger = createLogger(options.verbosity, 'virtio-ts scsi', io.stderr);
  const backends: BlkBackend[] = [];
  const specs: ScsiLunSpec[] = [];
  const closeAll = async (): Promise<void> => {
    for (const b of backends) await b.close();
  };
  try {
    for (const [i, l] of options.luns.entries()) {
      let backend: BlkBackend;
      if (l.file !== null) {
        try {
          backend = await FileBackend.open(l.file, { readOnly: l.readOnly });
        } catch (e) {
          throw new VirtioError(ErrorCode.BACKEND_IO, `cannot open LUN ${i} image ${l.file}: ${(e as Error).message}`, { cause: e });
        }
      } else backend = new MemoryBackend(l.memoryBytes!, { sparse: true, readOnly: l.readOnly });
      backends.push(backend);
      if (backend.size < 512) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `LUN ${i} is ${backend.size} bytes: at least one 512-byte block`);
      specs.push({ id: i, backend, readOnly: l.readOnly, ...(l.serial !== null ? { serial: l.serial } : {}) });
    }
  } catch (e) {
    await closeAll();
    throw e;
  }
  const what = options.luns.map((l, i) => `LUN ${i}: ${l.file ?? `RAM disk of ${l.memoryBytes} bytes`}${l.readOnly ? ' (read-only)' : ''}`).join('; ');
  return runBackend({
    options,
    logger,
    description: `virtio-scsi, ${options.numQueues} request queue${options.numQueues === 1 ? '' : 's'}; ${what}`,
    device: () => new ScsiDevice(specs, { numQueues: options.numQueues, queueSize: options.queueSize, logger }),
    cleanup: closeAll,
  });
}
