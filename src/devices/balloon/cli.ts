/** `virtio-ts balloon`: its options and usage. */
import { BACKEND_COMMON_USAGE, BACKEND_SOCKET_USAGE, type BackendOptions, parseIntInRange, stringOption } from '../../cli/options.js';
import type { DeviceCli } from '../device-type.js';

export interface BalloonCliOptions extends BackendOptions {
  /** Initial target in 4 KiB pages. */
  readonly pages: number;
  /** The JSON-lines control socket, or null. */
  readonly controlPath: string | null;
  /** Give inflated and reported pages back to the host (madvise). */
  readonly release: boolean;
}

const BALLOON_USAGE = `Usage: virtio-ts balloon (--socket-path PATH | --fd N) [options]

Serves a traditional virtio memory balloon to one vhost-user front-end at a time (QEMU 7.2
has no vhost-user balloon front-end; virtio-ts's own front-end drives it). Pages the guest
gives to the balloon or reports free are released on the host (madvise MADV_REMOVE on the
front-end's shared memory).

Options:
  --pages N            initial target in 4 KiB pages (default 0)
  --control PATH       a Unix socket taking JSON lines, one answer line each:
                         {"target_pages":N}   set the target (num_pages)
                         {"stats":true}       the guest's latest memory statistics, by name
                         {"query":true}       target, actual, ballooned and released pages
                         {"hint":"start"|"stop"|"done"}  free page hinting rounds
  --no-release         keep inflated and reported pages mapped (no madvise)
${BACKEND_SOCKET_USAGE}
${BACKEND_COMMON_USAGE}
`;

/** The `virtio-ts balloon` sub-command: its options, usage, parsing and run. */
export const BALLOON_CLI: DeviceCli<BalloonCliOptions> = {
  options: {
    pages: { type: 'string' },
    control: { type: 'string' },
    'no-release': { type: 'boolean' },
  },
  usage: BALLOON_USAGE,
  parse(values, common) {
    const pagesText = stringOption(values, 'pages');
    const pages = pagesText === undefined ? 0 : parseIntInRange(pagesText, '--pages', 0, 0xffff_ffff, 'balloon');
    return { ...common, pages, controlPath: stringOption(values, 'control') ?? null, release: values['no-release'] !== true };
  },
  async run(options, io) {
    const { runBalloon } = await import('./balloon-command.js');
    return runBalloon(options, io);
  },
};
