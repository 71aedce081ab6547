/**
 * `virtio-ts crypto`: a virtio crypto device (5.9) over vhost-user, on node:crypto. Each
 * front-end connection gets a fresh device (sessions do not outlive the front-end that made them).
 */
import { createLogger } from '../../log.js';
import type { CliIo } from '../../cli/options.js';
import { runBackend } from '../../cli/serve.js';
import type { CryptoOptions } from './cli.js';
import { CryptoDevice } from './crypto-device.js';

export async function runCrypto(options: CryptoOptions, io: CliIo): Promise<number> {
  const logger = createLogger(options.verbosity, 'virtio-ts crypto', io.stderr);
  return runBackend({
    options,
    logger,
    description: `virtio-crypto, ${options.numQueues} data queue${options.numQueues === 1 ? '' : 's'}, at most ${options.maxSessions} sessions`,
    device: () =>
      new CryptoDevice({
        maxDataQueues: options.numQueues,
        queueSize: options.queueSize,
        maxSessions: options.maxSessions,
        maxSize: options.maxSize,
        logger,
      }),
  });
}
