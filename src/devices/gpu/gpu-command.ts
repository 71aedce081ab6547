/**
 * `virtio-ts gpu`: a virtio-gpu 2D device over vhost-user, each front-end connection getting a
 * fresh VhostUserGpuDevice that speaks the vhost-user-gpu display protocol on the socket the
 * front-end hands over (VHOST_USER_GPU_SET_SOCKET).
 */
import { createLogger } from '../../log.js';
import type { CliIo } from '../../cli/options.js';
import { runBackend } from '../../cli/serve.js';
import type { GpuOptions } from './cli.js';
import { VhostUserGpuDevice } from './vhost-user-gpu-device.js';

/** Runs `virtio-ts gpu` until a signal; resolves with the exit code. */
export async function runGpu(options: GpuOptions, io: CliIo): Promise<number> {
  const logger = createLogger(options.verbosity, 'virtio-ts gpu', io.stderr);
  return runBackend({
    options,
    logger,
    description: `virtio-gpu 2D; ${options.displays.map((d) => `${d.width}x${d.height}`).join(', ')}`,
    device: () => {
      const device = new VhostUserGpuDevice({ displays: options.displays, queueSize: options.queueSize, logger });
      device.onDisplay((d) => {
        logger.info('display socket attached');
        d.ready.then(
          () => logger.info(`display ready: ${device.scanouts.map((s) => `${s.preferredWidth}x${s.preferredHeight}${s.enabled ? '' : ' (off)'}`).join(', ')}`),
          (e: Error) => logger.warn(`display handshake failed: ${e.message}`),
        );
      });
      return device;
    },
  });
}
