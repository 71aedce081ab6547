/**
 * `virtio-ts balloon`: a traditional memory balloon (5.5) over vhost-user. Guest memory is
 * mmapped from the front-end's memfds, so pages the guest inflates or reports free are given
 * back with madvise(MADV_REMOVE) (page-release.ts). The host sets the target and reads
 * statistics through the control socket (balloon-control.ts). QEMU 7.2 has no vhost-user
 * balloon front-end: the peer is virtio-ts's own front-end (or any that speaks GET/SET_CONFIG).
 */
import type { CliIo } from '../../cli/options.js';
import { runBackend } from '../../cli/serve.js';
import { createLogger } from '../../log.js';
import { BalloonDevice } from './balloon-device.js';
import { type BalloonControlServer, serveBalloonControl } from './balloon-control.js';
import type { BalloonCliOptions } from './cli.js';
import { madvisePageReleaser } from './page-release.js';

export async function runBalloon(options: BalloonCliOptions, io: CliIo): Promise<number> {
  const logger = createLogger(options.verbosity, 'virtio-ts balloon', io.stderr);
  let target = options.pages;
  let current: BalloonDevice | null = null;
  let control: BalloonControlServer | null = null;
  if (options.controlPath !== null) {
    control = await serveBalloonControl(
      options.controlPath,
      {
        device: () => current,
        target: () => target,
        setTarget: (pages) => {
          target = pages;
          current?.setTarget(pages);
        },
      },
      logger,
    );
  }
  try {
    return await runBackend({
      options,
      logger,
      description: `virtio-balloon (target ${target} pages${options.controlPath !== null ? `, control ${options.controlPath}` : ''})`,
      // A fresh device per front-end, starting from the target the host set last.
      device: () => {
        current = new BalloonDevice({
          numPages: target,
          releasePages: options.release ? madvisePageReleaser : undefined,
          onActual: (a) => logger.debug(`actual ${a} pages`),
          logger,
        });
        return current;
      },
      cleanup: () => control?.close(),
    });
  } finally {
    await control?.close();
  }
}
