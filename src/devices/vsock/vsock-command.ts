/**
 * `virtio-ts vsock`: a virtio-vsock device (5.10) over vhost-user, its host side Unix sockets
 * (backends/unix-backend.ts). One host side serves every front-end connection in turn.
 */
import { createLogger } from '../../log.js';
import type { CliIo } from '../../cli/options.js';
import { runBackend } from '../../cli/serve.js';
import { UnixVsockBackend } from './backends/unix-backend.js';
import type { VsockCliOptions } from './cli.js';
import { VsockDevice } from './vsock-device.js';

export async function runVsock(options: VsockCliOptions, io: CliIo): Promise<number> {
  const logger = createLogger(options.verbosity, 'virtio-ts vsock', io.stderr);
  const backend = await UnixVsockBackend.listen({ udsPath: options.udsPath, logger });
  return runBackend({
    options,
    logger,
    description: `virtio-vsock (guest CID ${options.guestCid}, host side ${options.udsPath})`,
    // A fresh device per front-end: each connection starts from reset.
    device: () => new VsockDevice({ guestCid: options.guestCid, backend, logger }),
    cleanup: () => backend.close(),
  });
}
