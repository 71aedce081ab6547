/** `virtio-ts rng`: its usage (it has only the common back-end options). */
import { BACKEND_COMMON_USAGE, BACKEND_SOCKET_USAGE, type BackendOptions } from '../../cli/options.js';
import type { DeviceCli } from '../device-type.js';

const RNG_USAGE = `Usage: virtio-ts rng (--socket-path PATH | --fd N) [options]

Serves a virtio entropy device (host randomness) to one vhost-user front-end (QEMU
vhost-user-rng) at a time; after a disconnect it waits for the next. Ends cleanly on SIGTERM or
SIGINT, removing its socket.

${BACKEND_SOCKET_USAGE}
${BACKEND_COMMON_USAGE}
`;

/** `virtio-ts rng`: the common back-end options only. */
export const ENTROPY_CLI: DeviceCli<BackendOptions> = {
  options: {},
  usage: RNG_USAGE,
  parse: (_values, common) => common,
  async run(options, io) {
    const { runRng } = await import('./entropy-command.js');
    return runRng(options, io);
  },
};
