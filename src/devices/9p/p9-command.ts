/** `virtio-ts 9p`: a host directory shared as a virtio 9P transport device over vhost-user. */
import { createLogger } from '../../log.js';
import type { CliIo } from '../../cli/options.js';
import { runBackend } from '../../cli/serve.js';
import { IdMap } from '../fs/id-map.js';
import type { P9Options } from './cli.js';
import { P9Device } from './p9-device.js';

export async function runP9(options: P9Options, io: CliIo): Promise<number> {
  const logger = createLogger(options.verbosity, 'virtio-ts 9p', io.stderr);
  let current: P9Device | null = null;
  return runBackend({
    options,
    logger,
    description: `virtio-9p (${options.sharedDir}, tag ${options.tag}${options.readOnly ? ', read-only' : ''})`,
    // A fresh device per front-end: each connection starts from reset with empty tables.
    device: () => {
      current?.close();
      current = new P9Device({
        sharedDir: options.sharedDir,
        tag: options.tag,
        readOnly: options.readOnly,
        maxMsize: options.msize,
        queueSize: options.queueSize,
        xattrPrefix: options.xattrPrefix ?? null,
        ...(options.translateUid !== undefined ? { uidMap: IdMap.parse(options.translateUid) } : {}),
        ...(options.translateGid !== undefined ? { gidMap: IdMap.parse(options.translateGid) } : {}),
        logger,
      });
      return current;
    },
    cleanup: () => current?.close(),
  });
}
