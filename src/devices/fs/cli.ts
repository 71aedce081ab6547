/**
 * `virtio-ts fs`: its options, usage and checks. Serving is in fs-command.ts, loaded only when
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
import type { DeviceCli } from '../device-type.js';
import { FS_TAG_MAX_BYTES } from './fs-device.js';
import { FS_CACHE_POLICIES, type FsCachePolicy } from './fuse-server.js';
import { shareOptionTexts } from './share-options.js';

export interface FsOptions extends BackendOptions {
  readonly sharedDir: string;
  readonly tag: string;
  readonly numRequestQueues: number;
  readonly queueSize: number;
  /** Present only when given on the command line. */
  readonly cache?: FsCachePolicy;
  readonly readOnly?: true;
  readonly translateUid?: string;
  readonly translateGid?: string;
  readonly xattrPrefix?: string;
  readonly notification?: true;
  readonly posixAcl?: true;
  readonly asyncIo?: true;
  /** `--no-io-uring`: one pread per READ instead of batches through io_uring. */
  readonly ioUring?: false;
  /** `--retain-fds N`: descriptors of forgotten inodes kept for a quick re-LOOKUP (HostFsLimits.retainedDescriptors). */
  readonly retainFds?: number;
}

export const FS_DEFAULTS = { numRequestQueues: 1, queueSize: 1024 } as const;
const MAX_REQUEST_QUEUES = 64;
const COMMAND = 'fs';

const FS_USAGE = `Usage: virtio-ts fs (--socket-path PATH | --fd N) --shared-dir DIR --tag TAG [options]

Shares a host directory with one vhost-user front-end (QEMU vhost-user-fs-pci, -device,
-ccw) at a time, as a virtio-fs device the guest mounts with \`mount -t virtiofs TAG DIR\`. The
guest cannot reach outside DIR: names are looked up in directories the device holds open, never
through a path, and symlinks are never followed. After a disconnect it waits for the next
front-end. Ends cleanly on SIGTERM or SIGINT, removing its socket.

${BACKEND_SOCKET_USAGE}
  --shared-dir DIR        the host directory to share
  --tag TAG               the mount tag (1..${FS_TAG_MAX_BYTES} bytes of UTF-8)
  --num-request-queues N  request queues, 1..${MAX_REQUEST_QUEUES} (default ${FS_DEFAULTS.numRequestQueues})
  --queue-size N          largest ring size, a power of 2 from 2 to 32768 (default ${FS_DEFAULTS.queueSize})
  --cache POLICY          never | auto | always (virtiofsd's cache=: entry/attr timeouts 0 s /
                          1 s / 1 day, direct I/O or kept page cache; default auto)
  --readonly              refuse every change (EROFS)
  --translate-uid MAP     guest:host:count[,...] uid ranges (default: identity)
  --translate-gid MAP     the same for gids
  --xattr-prefix P        store every guest xattr name N as host name P+N (P in user., e.g.
                          user.virtiofs.); default: only user.* names, passed through
  --posix-acl             POSIX ACLs (virtiofsd's posix_acl): system.posix_acl_* stored on the
                          host, which enforces them; the guest kernel checks them too
  --notification          offer VIRTIO_FS_F_NOTIFICATION (a notification queue: blocking locks
                          answered by FUSE_NOTIFY_LOCK); Linux 6.1 and QEMU 7.2 do not use it
  --async-io              READ and WRITE on the thread pool (through a bounce buffer), not on
                          the event loop: for slow disks; costs a copy per transfer
  --no-io-uring           one pread per READ; by default the READs of a pass are read with
                          one io_uring_enter per batch where the kernel allows io_uring
  --retain-fds N          keep the descriptors of the last N forgotten inodes open, 0..65536,
                          so a LOOKUP of one of them needs no open (default 4096; 0: close at
                          FORGET, as virtiofsd)
${BACKEND_COMMON_USAGE}
`;

function parseFs(v: OptionValues, common: BackendOptions): FsOptions {
  const sharedDir = stringOption(v, 'shared-dir');
  if (sharedDir === undefined || sharedDir === '') throw new CliError(CliFault.BAD_VALUE, 'give --shared-dir DIR', COMMAND);
  let isDir = false;
  try {
    isDir = statSync(sharedDir).isDirectory();
  } catch {
    isDir = false;
  }
  if (!isDir) throw new CliError(CliFault.BAD_VALUE, `--shared-dir ${sharedDir} is not a directory`, COMMAND);
  const tag = stringOption(v, 'tag');
  if (tag === undefined) throw new CliError(CliFault.BAD_VALUE, 'give --tag TAG', COMMAND);
  const tagBytes = Buffer.byteLength(tag);
  if (tagBytes < 1 || tagBytes > FS_TAG_MAX_BYTES) throw new CliError(CliFault.BAD_VALUE, `--tag is ${tagBytes} bytes; 1..${FS_TAG_MAX_BYTES}`, COMMAND);
  const nrqText = stringOption(v, 'num-request-queues');
  const numRequestQueues = nrqText === undefined ? FS_DEFAULTS.numRequestQueues : parseIntInRange(nrqText, '--num-request-queues', 1, MAX_REQUEST_QUEUES, COMMAND);
  const queueSize = queueSizeOption(v, COMMAND, FS_DEFAULTS.queueSize, 2);
  const cache = stringOption(v, 'cache');
  if (cache !== undefined && !FS_CACHE_POLICIES.includes(cache as FsCachePolicy)) throw new CliError(CliFault.BAD_VALUE, `--cache ${cache}: never, auto or always`, COMMAND);
  const extra: { -readonly [K in 'cache' | 'readOnly' | 'notification' | 'posixAcl' | 'asyncIo' | 'ioUring' | 'retainFds']?: FsOptions[K] } = {};
  if (cache !== undefined) extra.cache = cache as FsCachePolicy;
  if (v['notification'] === true) extra.notification = true;
  if (v['async-io'] === true) extra.asyncIo = true;
  if (v['no-io-uring'] === true) extra.ioUring = false;
  const retainText = stringOption(v, 'retain-fds');
  if (retainText !== undefined) extra.retainFds = parseIntInRange(retainText, '--retain-fds', 0, 65536, COMMAND);
  if (v['posix-acl'] === true) {
    if (v['translate-uid'] !== undefined || v['translate-gid'] !== undefined) {
      throw new CliError(CliFault.BAD_VALUE, '--posix-acl with --translate-uid/-gid: the ACL entries would keep untranslated ids', COMMAND);
    }
    extra.posixAcl = true;
  }
  if (v['readonly'] === true) extra.readOnly = true;
  return { ...common, sharedDir, tag, numRequestQueues, queueSize, ...extra, ...shareOptionTexts(v, COMMAND) };
}

/** The `virtio-ts fs` sub-command: its options, usage, parsing and run. */
export const FS_CLI: DeviceCli<FsOptions> = {
  options: {
    'shared-dir': { type: 'string' },
    tag: { type: 'string' },
    'num-request-queues': { type: 'string' },
    'queue-size': { type: 'string' },
    cache: { type: 'string' },
    readonly: { type: 'boolean' },
    'translate-uid': { type: 'string' },
    'translate-gid': { type: 'string' },
    'xattr-prefix': { type: 'string' },
    notification: { type: 'boolean' },
    'posix-acl': { type: 'boolean' },
    'async-io': { type: 'boolean' },
    'no-io-uring': { type: 'boolean' },
    'retain-fds': { type: 'string' },
  },
  usage: FS_USAGE,
  parse: parseFs,
  async run(options, io) {
    const { runFs } = await import('./fs-command.js');
    return runFs(options, io);
  },
};
