/**
 * `virtio-ts blk`: its options, usage and checks. Serving is in blk-command.ts, loaded only when
 * the command runs.
 */
import { constants as bufferConstants } from 'node:buffer';
import {
  BACKEND_COMMON_USAGE,
  BACKEND_SOCKET_USAGE,
  CliError,
  CliFault,
  MAX_NUM_QUEUES,
  MAX_QUEUE_SIZE,
  numQueuesOption,
  parseIntInRange,
  queueSizeOption,
  sizeOption,
  stringOption,
  type BackendOptions,
  type OptionValues,
} from '../../cli/options.js';
import type { DeviceCli } from '../device-type.js';
import { parseNbdUri } from './nbd/nbd-uri.js';
import type { NbdTlsFiles } from './nbd/nbd-tls.js';

/** The parsed options of `virtio-ts blk`. */
export interface BlkOptions extends BackendOptions {
  /** Raw image file (`--image` or `--blk-file`), or null with `memoryBytes`. */
  readonly image: string | null;
  /** Size of a RAM disk (`--memory`), or null with `image`. */
  readonly memoryBytes: number | null;
  /** NBD export URI (`--nbd`), or null; `--nbd-connections` with it (default 1). */
  readonly nbd?: {
    /** The export's URI as given (already checked by parseNbdUri). */
    readonly uri: string;
    /** Connections to open when the server sets NBD_FLAG_CAN_MULTI_CONN (1..16). */
    readonly connections: number;
    /** `--nbd-tls-*`: the TLS credential files (only with an nbds URI); absent: none given. */
    readonly tls?: NbdTlsFiles;
  } | null;
  /** `--read-only`. */
  readonly readOnly: boolean;
  /** `--num-queues N`. */
  readonly numQueues: number;
  /** `--queue-size N`. */
  readonly queueSize: number;
  /** `--serial S`, or null. */
  readonly serial: string | null;
  /** `--poll-us N`: busy-poll window after a processing pass in µs, or null for the default. */
  readonly pollUs: number | null;
  /**
   * `--wait-us N` (io_uring): how long the io_uring_enter of a lone operation the kernel does not
   * complete inline sleeps for its completion, in µs; null for the default.
   */
  readonly waitUs?: number | null;
  /** `--threads T`: rings served on T worker threads (ring i on thread i mod T); 0: on the main thread. */
  readonly threads: number;
  /** `--aio auto|io_uring|threads` with --image (absent: io_uring where the kernel allows it). */
  readonly aio?: BlkAio;
  /** `--no-inline-writes`: every buffered write through io_uring (UringBackendOptions.inlineWrites false). */
  readonly inlineWrites?: false;
  /** `--direct`: O_DIRECT, bypassing the host page cache (cache.direct=on). */
  readonly direct?: boolean;
  /** `--write-through`: every write stable before it is acknowledged (WCE 0). */
  readonly writeThrough?: boolean;
}

/**
 * How an image file is accessed: io_uring batches (IO_URING), positional I/O on libuv's threads
 * (THREADS), or io_uring with the buffered writes that would queue behind io_uring's single
 * io-wq worker per file sent to libuv's threads instead (AUTO; the command's default is IO_URING,
 * measured faster on a quiet machine: bench/README.md).
 */
export const BlkAio = { AUTO: 'auto', IO_URING: 'io_uring', THREADS: 'threads' } as const;
export type BlkAio = (typeof BlkAio)[keyof typeof BlkAio];

export const BLK_DEFAULTS = { numQueues: 1, queueSize: 1024 } as const;
/** virtio-blk serial (VIRTIO_BLK_T_GET_ID) is at most 20 bytes. */
export const MAX_SERIAL_BYTES = 20;
/** Largest `--poll-us` (the back-end's MAX_POLL_US). */
export const MAX_POLL_US_CLI = 1000;
/** `--poll-us` default with a RAM disk (measured, bench/README.md "Back-end tuning"). */
export const DEFAULT_POLL_US_MEMORY = 50;
/**
 * `--poll-us` default with an image file: reads from the page cache and lone buffered writes
 * complete inside the pass, so a poll window catches the driver's next request without a kick
 * (measured, bench/README.md "Session 16": 4 KiB random reads at QD1 1.50x of qemu-storage-daemon
 * aio=io_uring with it, 0.98x without). Requests still in flight end the window at once.
 */
export const DEFAULT_POLL_US_IMAGE = 50;
/**
 * `--wait-us` default. The wait ends with the operation's completion, so the bound only caps a
 * slow disk; it is made only for a lone operation with nothing else posted (UringFileIo
 * waitGate). An O_DIRECT transfer takes 80-100 µs here: with 1000, 4 KiB QD1 reads 1.22x and
 * writes 1.16x of qemu-storage-daemon aio=io_uring, with 50 0.88x / 0.94x (bench/README.md
 * "Session 16").
 */
export const DEFAULT_WAIT_US = 1000;

const COMMAND = 'blk';

const BLK_USAGE = `Usage: virtio-ts blk (--socket-path PATH | --fd N) (--image FILE | --memory SIZE | --nbd URI) [options]

Serves a virtio-blk device to one vhost-user front-end (QEMU vhost-user-blk) at a time; after a
disconnect it waits for the next. Ends cleanly on SIGTERM or SIGINT, removing its socket.

${BACKEND_SOCKET_USAGE}
  --image FILE            raw disk image (also --blk-file FILE)
  --memory SIZE           a RAM disk of SIZE bytes (K, M, G suffixes; a multiple of 512)
  --nbd URI               an NBD export: nbd://HOST[:PORT]/EXPORT or nbd+unix:///EXPORT?socket=PATH
                          nbds://... or nbds+unix://...: the same over TLS (required, never plaintext)
  --nbd-connections N     connections to the export when its server allows several (1..16, default 1)
  --nbd-tls-ca FILE       with nbds: PEM CA certificates the server's certificate must chain to
                          (default: the system's)
  --nbd-tls-cert FILE     with nbds: PEM client certificate (with --nbd-tls-key)
  --nbd-tls-key FILE      with nbds: PEM client private key (with --nbd-tls-cert)
  --nbd-tls-hostname NAME with nbds: the name the server's certificate must carry (default: the
                          TCP host; over a Unix socket only the chain is checked without it)
  --nbd-tls-psk FILE      with nbds: authenticate with a pre-shared key instead of certificates
                          (psktool format: identity:hexkey per line, as nbdkit and qemu-nbd read)
  --nbd-tls-username NAME with --nbd-tls-psk: the identity to use (default: the file's first)
  --read-only             offer VIRTIO_BLK_F_RO and refuse writes
  --num-queues N          request queues, 1..${MAX_NUM_QUEUES} (default ${BLK_DEFAULTS.numQueues})
  --queue-size N          the ring size the device is built for, a power of 2 from 2 to ${MAX_QUEUE_SIZE}
                          (default ${BLK_DEFAULTS.queueSize}): it bounds a request's descriptors (seg_max = N - 2);
                          the front-end (QEMU's queue-size) chooses the ring size itself
  --serial S              device id returned by VIRTIO_BLK_T_GET_ID (at most ${MAX_SERIAL_BYTES} bytes)
  --poll-us N             after serving requests, keep watching the ring for N microseconds
                          (0..${MAX_POLL_US_CLI}) before sleeping, saving the front-end's kicks and the
                          wake-ups (default ${DEFAULT_POLL_US_MEMORY} with --memory, ${DEFAULT_POLL_US_IMAGE} with --image)
  --wait-us N             with --image through io_uring: when a request's operation is the only
                          one in flight, no other request is posted and the kernel does not
                          complete it at once (O_DIRECT, a buffered write ext4 hands to a
                          worker), sleep in io_uring_enter up to
                          N microseconds (0..${MAX_POLL_US_CLI}) for its completion instead of waking
                          the event loop for it; skipped for a while after misses (default ${DEFAULT_WAIT_US})
  --threads T             serve the queues on T worker threads (1..--num-queues; queue i on thread
                          i mod T); the main thread keeps the vhost-user socket, features and config
                          (default: queues served on the main thread)
  --aio auto|io_uring|threads
                          how the image is read and written: io_uring batches (io_uring, the
                          default), positional I/O on libuv's thread pool (threads), or auto:
                          io_uring, except that a buffered write goes to the thread pool while
                          another write is in flight in io_uring (Linux runs those one at a
                          time per file). auto and io_uring fall back to positional
                          I/O when the kernel refuses io_uring, with a warning
  --no-inline-writes      with --image through io_uring: by default a buffered write alone on
                          the file is one pwrite on the event loop (ext4 would hand it to an
                          io_uring worker thread); this sends every write through io_uring
  --direct                open the image with O_DIRECT, bypassing the host page cache
                          (QEMU cache.direct=on; needs io_uring)
  --write-through         every write is stable before it is acknowledged (O_DSYNC); the
                          device reports a writethrough cache (WCE 0)
${BACKEND_COMMON_USAGE}
`;

function parseBlk(v: OptionValues, common: BackendOptions): BlkOptions {
  const imageText = stringOption(v, 'image');
  const blkFile = stringOption(v, 'blk-file');
  if (imageText !== undefined && blkFile !== undefined) {
    throw new CliError(CliFault.CONFLICT, '--image and --blk-file are the same option; give one', COMMAND);
  }
  const image = imageText ?? blkFile ?? null;
  const memoryText = stringOption(v, 'memory') ?? null;
  const nbd = parseNbdOptions(v);
  if (image !== null && memoryText !== null) throw new CliError(CliFault.CONFLICT, '--image and --memory exclude each other', COMMAND);
  if (nbd !== null && (image !== null || memoryText !== null)) throw new CliError(CliFault.CONFLICT, '--nbd excludes --image and --memory', COMMAND);
  if (image === null && memoryText === null && nbd === null) throw new CliError(CliFault.MISSING_IMAGE, 'give --image FILE, --memory SIZE or --nbd URI', COMMAND);
  if (image === '') throw new CliError(CliFault.BAD_VALUE, '--image is empty', COMMAND);
  let memoryBytes: number | null = null;
  if (memoryText !== null) {
    memoryBytes = sizeOption(memoryText, '--memory', COMMAND);
    // 5.2.4: capacity is counted in 512-byte sectors.
    if (memoryBytes % 512 !== 0) throw new CliError(CliFault.BAD_SIZE, `--memory: ${memoryBytes} is not a multiple of 512`, COMMAND);
    if (memoryBytes > bufferConstants.MAX_LENGTH) {
      throw new CliError(CliFault.BAD_SIZE, `--memory: ${memoryBytes} is above the largest RAM disk Node can hold (${bufferConstants.MAX_LENGTH})`, COMMAND);
    }
  }
  const numQueues = numQueuesOption(v, COMMAND, BLK_DEFAULTS.numQueues);
  // A virtio-blk request has a header and a status descriptor at least: seg_max = N - 2 >= 0.
  const queueSize = queueSizeOption(v, COMMAND, BLK_DEFAULTS.queueSize, 2);
  const serial = stringOption(v, 'serial') ?? null;
  if (serial !== null && Buffer.byteLength(serial) > MAX_SERIAL_BYTES) {
    throw new CliError(CliFault.BAD_VALUE, `--serial is ${Buffer.byteLength(serial)} bytes; at most ${MAX_SERIAL_BYTES}`, COMMAND);
  }
  const pollText = stringOption(v, 'poll-us');
  const pollUs = pollText === undefined ? null : parseIntInRange(pollText, '--poll-us', 0, MAX_POLL_US_CLI, COMMAND);
  const waitText = stringOption(v, 'wait-us');
  const waitUs = waitText === undefined ? null : parseIntInRange(waitText, '--wait-us', 0, MAX_POLL_US_CLI, COMMAND);
  const threadsText = stringOption(v, 'threads');
  // A ring is served by one thread: more threads than queues would idle.
  const threads = threadsText === undefined ? 0 : parseIntInRange(threadsText, '--threads', 1, numQueues, COMMAND);
  const aioText = stringOption(v, 'aio');
  if (aioText !== undefined && aioText !== BlkAio.AUTO && aioText !== BlkAio.IO_URING && aioText !== BlkAio.THREADS) {
    throw new CliError(CliFault.BAD_VALUE, `--aio is ${BlkAio.AUTO}, ${BlkAio.IO_URING} or ${BlkAio.THREADS}, not ${aioText}`, COMMAND);
  }
  const direct = v['direct'] === true;
  const writeThrough = v['write-through'] === true;
  // With --memory: --write-through still sets the cache mode the driver sees (WCE 0); --aio and
  // --direct have no file to act on (runBlk warns).
  if (direct && aioText === BlkAio.THREADS) throw new CliError(CliFault.CONFLICT, '--direct needs --aio auto or io_uring (aligned bounce buffers)', COMMAND);
  return {
    ...common,
    image,
    memoryBytes,
    readOnly: v['read-only'] === true,
    numQueues,
    queueSize,
    serial,
    pollUs,
    threads,
    ...(nbd !== null ? { nbd } : {}),
    // Present only when given, so the defaults read as before.
    ...(aioText !== undefined ? { aio: aioText } : {}),
    ...(waitUs !== null ? { waitUs } : {}),
    ...(v['no-inline-writes'] === true ? { inlineWrites: false as const } : {}),
    ...(direct ? { direct } : {}),
    ...(writeThrough ? { writeThrough } : {}),
  };
}

/** `--nbd URI` (checked here: a bad URI is a usage error) and `--nbd-connections N`. */
function parseNbdOptions(v: OptionValues): BlkOptions['nbd'] {
  const uri = stringOption(v, 'nbd');
  const connText = stringOption(v, 'nbd-connections');
  if (uri === undefined) {
    if (connText !== undefined) throw new CliError(CliFault.BAD_VALUE, '--nbd-connections needs --nbd', COMMAND);
    parseNbdTlsOptions(v, undefined);
    return null;
  }
  try {
    parseNbdUri(uri);
  } catch (e) {
    throw new CliError(CliFault.BAD_VALUE, `--nbd: ${(e as Error).message.replace(/^nbd: /, '')}`, COMMAND);
  }
  const connections = connText === undefined ? 1 : parseIntInRange(connText, '--nbd-connections', 1, 16, COMMAND);
  const tls = parseNbdTlsOptions(v, uri);
  return tls === null ? { uri, connections } : { uri, connections, tls };
}

const NBD_TLS_OPTIONS = {
  'nbd-tls-ca': 'caFile',
  'nbd-tls-cert': 'certFile',
  'nbd-tls-key': 'keyFile',
  'nbd-tls-hostname': 'hostname',
  'nbd-tls-psk': 'pskFile',
  'nbd-tls-username': 'pskIdentity',
} as const;

/** `--nbd-tls-*`: checked for combination here, the files are read when the command runs. */
function parseNbdTlsOptions(v: OptionValues, uri: string | undefined): NbdTlsFiles | null {
  const files: { -readonly [K in keyof NbdTlsFiles]: string } = {};
  let first: string | null = null;
  for (const [opt, key] of Object.entries(NBD_TLS_OPTIONS)) {
    const value = stringOption(v, opt);
    if (value === undefined) continue;
    if (value === '') throw new CliError(CliFault.BAD_VALUE, `--${opt} needs a value`, COMMAND);
    files[key] = value;
    first ??= `--${opt}`;
  }
  if (first === null) return null;
  if (uri === undefined) throw new CliError(CliFault.BAD_VALUE, `${first} needs --nbd`, COMMAND);
  if (!uri.startsWith('nbds:') && !uri.startsWith('nbds+')) throw new CliError(CliFault.CONFLICT, `${first} needs an nbds:// or nbds+unix:// URI (TLS)`, COMMAND);
  const x509 = files.caFile !== undefined || files.certFile !== undefined || files.keyFile !== undefined;
  if (files.pskFile !== undefined && x509) throw new CliError(CliFault.CONFLICT, '--nbd-tls-psk excludes --nbd-tls-ca, --nbd-tls-cert and --nbd-tls-key', COMMAND);
  if ((files.certFile === undefined) !== (files.keyFile === undefined)) throw new CliError(CliFault.BAD_VALUE, '--nbd-tls-cert and --nbd-tls-key go together', COMMAND);
  if (files.pskIdentity !== undefined && files.pskFile === undefined) throw new CliError(CliFault.BAD_VALUE, '--nbd-tls-username needs --nbd-tls-psk', COMMAND);
  return files;
}

/** `virtio-ts blk`: its options, usage, parsing and run. */
export const BLK_CLI: DeviceCli<BlkOptions> = {
  options: {
    image: { type: 'string' },
    'blk-file': { type: 'string' },
    memory: { type: 'string' },
    'read-only': { type: 'boolean' },
    'num-queues': { type: 'string' },
    'queue-size': { type: 'string' },
    serial: { type: 'string' },
    'poll-us': { type: 'string' },
    'wait-us': { type: 'string' },
    'no-inline-writes': { type: 'boolean' },
    threads: { type: 'string' },
    nbd: { type: 'string' },
    'nbd-connections': { type: 'string' },
    'nbd-tls-ca': { type: 'string' },
    'nbd-tls-cert': { type: 'string' },
    'nbd-tls-key': { type: 'string' },
    'nbd-tls-hostname': { type: 'string' },
    'nbd-tls-psk': { type: 'string' },
    'nbd-tls-username': { type: 'string' },
    aio: { type: 'string' },
    direct: { type: 'boolean' },
    'write-through': { type: 'boolean' },
  },
  usage: BLK_USAGE,
  parse: parseBlk,
  async run(options, io) {
    const { runBlk } = await import('./blk-command.js');
    return runBlk(options, io);
  },
};
