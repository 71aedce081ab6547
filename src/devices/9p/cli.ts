/**
 * `virtio-ts 9p`: its options, usage and checks. Serving is in p9-command.ts, loaded only when
 * the command runs.
 */
import { statSync } from 'node:fs';
import {
  BACKEND_COMMON_USAGE,
  BACKEND_SOCKET_USAGE,
  CliError,
  CliFault,
  parseIntInRange,
  queueSizeOption,
  stringOption,
  type BackendOptions,
  type OptionValues,
} from '../../cli/options.js';
import { P9_MIN_MSIZE, P9_TAG_MAX_BYTES } from '../../spec/9p.js';
import type { DeviceCli } from '../device-type.js';
import { shareOptionTexts } from '../fs/share-options.js';
import { P9_DEFAULT_MAX_MSIZE } from './p9-server.js';

/** Options of `virtio-ts 9p` as parsed from the command line: a host folder served over the 9P transport (device id 9). */
export interface P9Options extends BackendOptions {
  /** The host directory served to the guest (--shared-dir). */
  readonly sharedDir: string;
  /** Mount tag the guest mounts by (`mount -t 9p <tag>`), in the config space; default `virtio-ts`. */
  readonly tag: string;
  /** Every change refused with EROFS (--read-only). */
  readonly readOnly: boolean;
  /** Largest 9P message size offered at Tversion, bytes (default 512 KiB, at most 16 MiB). */
  readonly msize: number;
  /** Maximum virtqueue size offered (default 128). */
  readonly queueSize: number;
  /** Guest xattr names stored under this host prefix (absent: `user.*` passed through only). */
  readonly xattrPrefix?: string;
  /** uid ranges `guest:host:count[,...]` (--translate-uid, as virtio-fs's; absent: identity). */
  readonly translateUid?: string;
  /** gid ranges `guest:host:count[,...]` (--translate-gid; absent: identity). */
  readonly translateGid?: string;
}

export const P9_DEFAULTS = { tag: 'virtio-ts', queueSize: 128, msize: P9_DEFAULT_MAX_MSIZE } as const;
const MAX_MSIZE = 16 << 20;
const COMMAND = '9p';

const P9_USAGE = `Usage: virtio-ts 9p (--socket-path PATH | --fd N) --shared-dir DIR [options]

Shares a host directory as a virtio 9P transport device (9P2000.L) with one vhost-user
front-end at a time; the guest mounts it with
\`mount -t 9p -o trans=virtio,version=9p2000.L TAG DIR\`. The guest cannot reach outside DIR:
names are looked up in directories the device holds open, never through a path, and symlinks
are never followed. QEMU 7.2 has no vhost-user 9p front-end; virtio-ts's own front-end (or any
that speaks vhost-user with device id 9) drives it. After a disconnect it waits for the next
front-end. Ends cleanly on SIGTERM or SIGINT, removing its socket.

${BACKEND_SOCKET_USAGE}
  --shared-dir DIR        the host directory to share
  --tag TAG               the mount tag (1..${P9_TAG_MAX_BYTES} bytes of UTF-8, default ${P9_DEFAULTS.tag})
  --read-only             refuse every change (EROFS)
  --msize N               largest 9P message, ${P9_MIN_MSIZE}..${MAX_MSIZE} bytes (default ${P9_DEFAULTS.msize})
  --queue-size N          largest ring size, a power of 2 from 2 to 32768 (default ${P9_DEFAULTS.queueSize})
  --xattr-prefix P        store every guest xattr name N as host name P+N (P in user., e.g.
                          user.9p.); without it only user.* names pass, unchanged
  --translate-uid MAP     guest:host:count[,...] uid ranges (default: identity): attributes,
                          Tsetattr and the owner of new objects (when run as root)
  --translate-gid MAP     the same for gids
${BACKEND_COMMON_USAGE}
`;

function parseP9(v: OptionValues, common: BackendOptions): P9Options {
  const sharedDir = stringOption(v, 'shared-dir');
  if (sharedDir === undefined || sharedDir === '') throw new CliError(CliFault.BAD_VALUE, 'give --shared-dir DIR', COMMAND);
  let isDir = false;
  try {
    isDir = statSync(sharedDir).isDirectory();
  } catch {
    isDir = false;
  }
  if (!isDir) throw new CliError(CliFault.BAD_VALUE, `--shared-dir ${sharedDir} is not a directory`, COMMAND);
  const tag = stringOption(v, 'tag') ?? P9_DEFAULTS.tag;
  const tagBytes = Buffer.byteLength(tag);
  if (tagBytes < 1 || tagBytes > P9_TAG_MAX_BYTES) throw new CliError(CliFault.BAD_VALUE, `--tag is ${tagBytes} bytes; 1..${P9_TAG_MAX_BYTES}`, COMMAND);
  const msizeText = stringOption(v, 'msize');
  const msize = msizeText === undefined ? P9_DEFAULTS.msize : parseIntInRange(msizeText, '--msize', P9_MIN_MSIZE, MAX_MSIZE, COMMAND);
  const queueSize = queueSizeOption(v, COMMAND, P9_DEFAULTS.queueSize, 2);
  return { ...common, sharedDir, tag, readOnly: v['read-only'] === true, msize, queueSize, ...shareOptionTexts(v, COMMAND) };
}

/** The `virtio-ts 9p` sub-command: its options, usage, parsing and run. */
export const P9_CLI: DeviceCli<P9Options> = {
  options: {
    'shared-dir': { type: 'string' },
    tag: { type: 'string' },
    'read-only': { type: 'boolean' },
    msize: { type: 'string' },
    'queue-size': { type: 'string' },
    'xattr-prefix': { type: 'string' },
    'translate-uid': { type: 'string' },
    'translate-gid': { type: 'string' },
  },
  usage: P9_USAGE,
  parse: parseP9,
  async run(options, io) {
    const { runP9 } = await import('./p9-command.js');
    return runP9(options, io);
  },
};
