/** `virtio-ts fs`: a host directory shared as a virtio-fs device (5.11) over vhost-user. */
import { createLogger } from '../../log.js';
import type { CliIo } from '../../cli/options.js';
import { raiseInliningBudgets } from '../../cli/inlining-budgets.js';
import { runBackend } from '../../cli/serve.js';
import type { FsOptions } from './cli.js';
import { FsDevice } from './fs-device.js';
import { IdMap } from './id-map.js';

export async function runFs(options: FsOptions, io: CliIo): Promise<number> {
  // Before any request is served, so the request path is first optimized with them.
  raiseInliningBudgets();
  const logger = createLogger(options.verbosity, 'virtio-ts fs', io.stderr);
  let current: FsDevice | null = null;
  return runBackend({
    options,
    logger,
    description: `virtio-fs (${options.sharedDir}, tag ${options.tag})`,
    // A fresh device per front-end: each connection starts from reset with empty tables.
    device: () => {
      current?.close();
      current = new FsDevice({
        sharedDir: options.sharedDir,
        tag: options.tag,
        numRequestQueues: options.numRequestQueues,
        queueSize: options.queueSize,
        ...(options.cache !== undefined ? { cache: options.cache } : {}),
        ...(options.readOnly ? { readOnly: true } : {}),
        ...(options.translateUid !== undefined ? { uidMap: IdMap.parse(options.translateUid) } : {}),
        ...(options.translateGid !== undefined ? { gidMap: IdMap.parse(options.translateGid) } : {}),
        ...(options.xattrPrefix !== undefined ? { xattrPrefix: options.xattrPrefix } : {}),
        ...(options.notification ? { notification: true } : {}),
        ...(options.posixAcl ? { posixAcl: true } : {}),
        ...(options.asyncIo ? { asyncIo: true } : {}),
        ...(options.ioUring === false ? { ioUring: false } : {}),
        ...(options.retainFds !== undefined ? { retainedDescriptors: options.retainFds } : {}),
        logger,
      });
      return current;
    },
    cleanup: () => current?.close(),
  });
}
