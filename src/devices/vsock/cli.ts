/**
 * `virtio-ts vsock`: its options, usage and checks. Serving is in vsock-command.ts, loaded only
 * when the command runs.
 */
import {
  BACKEND_COMMON_USAGE,
  BACKEND_SOCKET_USAGE,
  CliError,
  CliFault,
  MAX_SOCKET_PATH_BYTES,
  parseIntInRange,
  stringOption,
  type BackendOptions,
  type OptionValues,
} from '../../cli/options.js';
import { isReservedGuestCid } from '../../spec/vsock.js';
import type { DeviceCli } from '../device-type.js';

export interface VsockCliOptions extends BackendOptions {
  readonly guestCid: number;
  /** The host side's main Unix socket; guest connections to port P go to `<udsPath>_P`. */
  readonly udsPath: string;
}

const COMMAND = 'vsock';
/** Room left in a Unix socket path for `_<port>` (at most 11 bytes). */
const PORT_SUFFIX_BYTES = 11;

const VSOCK_USAGE = `Usage: virtio-ts vsock (--socket-path PATH | --fd N) --guest-cid N --uds-path P [options]

Serves a virtio-vsock device (stream sockets) to one vhost-user front-end (QEMU
vhost-user-vsock) at a time; after a disconnect it waits for the next. The host side is Unix
sockets, as vhost-device-vsock and Firecracker do it: a guest connecting to host port X (CID 2)
reaches the Unix socket P_X; a host program connecting to P and writing "CONNECT X\\n" reaches
the guest's port X and reads "OK <host port>\\n" once the guest accepted. Ends cleanly on
SIGTERM or SIGINT, removing its sockets.

${BACKEND_SOCKET_USAGE}
  --guest-cid N           the guest's context ID, 3..4294967294
  --uds-path P            the host side's Unix socket
${BACKEND_COMMON_USAGE}
`;

function parseVsock(v: OptionValues, common: BackendOptions): VsockCliOptions {
  const cidText = stringOption(v, 'guest-cid');
  if (cidText === undefined) throw new CliError(CliFault.BAD_VALUE, 'give --guest-cid N', COMMAND);
  const guestCid = parseIntInRange(cidText, '--guest-cid', 0, 0xffff_ffff, COMMAND);
  // 5.10.4 device/vsock/7: never a reserved CID.
  if (isReservedGuestCid(guestCid)) throw new CliError(CliFault.BAD_VALUE, `--guest-cid ${guestCid} is reserved (0, 1, 2 and 4294967295)`, COMMAND);
  const udsPath = stringOption(v, 'uds-path');
  if (udsPath === undefined || udsPath === '') throw new CliError(CliFault.BAD_VALUE, 'give --uds-path P', COMMAND);
  if (Buffer.byteLength(udsPath) + PORT_SUFFIX_BYTES > MAX_SOCKET_PATH_BYTES) {
    throw new CliError(CliFault.BAD_VALUE, `--uds-path is too long for a Unix socket with a _<port> suffix (at most ${MAX_SOCKET_PATH_BYTES - PORT_SUFFIX_BYTES} bytes)`, COMMAND);
  }
  return { ...common, guestCid, udsPath };
}

/** The `virtio-ts vsock` sub-command: its options, usage, parsing and run. */
export const VSOCK_CLI: DeviceCli<VsockCliOptions> = {
  options: {
    'guest-cid': { type: 'string' },
    'uds-path': { type: 'string' },
  },
  usage: VSOCK_USAGE,
  parse: parseVsock,
  async run(options, io) {
    const { runVsock } = await import('./vsock-command.js');
    return runVsock(options, io);
  },
};
