/**
 * `virtio-ts rng`: a virtio entropy device (5.4) over vhost-user, filled from the host's
 * cryptographic random source (the device's default).
 */
import { createLogger } from '../../log.js';
import type { BackendOptions, CliIo } from '../../cli/options.js';
import { runBackend } from '../../cli/serve.js';
import { EntropyDevice } from './entropy-device.js';

export async function runRng(options: BackendOptions, io: CliIo): Promise<number> {
  const logger = createLogger(options.verbosity, 'virtio-ts rng', io.stderr);
  return runBackend({
    options,
    logger,
    description: 'virtio-rng (host crypto randomness)',
    // A fresh device per front-end: each connection starts from reset (server.ts).
    device: () => new EntropyDevice(),
  });
}
