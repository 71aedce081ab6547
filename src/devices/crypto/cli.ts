/**
 * `virtio-ts crypto`: its options, usage and checks. Serving is in crypto-command.ts, loaded only
 * when the command runs.
 */
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

/** Parsed options of `virtio-ts crypto`. */
export interface CryptoOptions extends BackendOptions {
  /** `--num-queues`: data queues; QEMU's `queues=` must not exceed it. */
  readonly numQueues: number;
  /** `--queue-size`: the largest ring, a power of 2. */
  readonly queueSize: number;
  /** `--max-sessions`: sessions open at once at most. */
  readonly maxSessions: number;
  /** `--max-size`: max_size in bytes, 64..2^30. */
  readonly maxSize: number;
}

/** QEMU's virtio-crypto rings have 1024 entries. */
export const CRYPTO_DEFAULTS = { numQueues: 1, queueSize: 1024, maxSessions: 256, maxSize: 1 << 20 } as const;
const MAX_SESSIONS = 1 << 20;

const COMMAND = 'crypto';

const CRYPTO_USAGE = `Usage: virtio-ts crypto (--socket-path PATH | --fd N) [options]

Serves the data queues of a virtio crypto device (cipher AES-ECB/CBC/CTR/XTS, hashes, HMAC,
AES-GCM and ChaCha20-Poly1305, RSA, on node:crypto) to one vhost-user front-end (QEMU
virtio-crypto-pci with -object cryptodev-vhost-user) at a time; after a disconnect it waits for the
next. QEMU keeps the control queue and forwards session creation and closing as
CREATE_CRYPTO_SESSION / CLOSE_CRYPTO_SESSION (protocol feature CRYPTO_SESSION). Ends cleanly on
SIGTERM or SIGINT, removing its socket.

${BACKEND_SOCKET_USAGE}
  --num-queues N          data queues, 1..${MAX_NUM_QUEUES} (default ${CRYPTO_DEFAULTS.numQueues}); QEMU's queues= must not exceed it
  --queue-size N          the largest ring, a power of 2 from 2 to ${MAX_QUEUE_SIZE} (default ${CRYPTO_DEFAULTS.queueSize})
  --max-sessions N        sessions open at once, 1..${MAX_SESSIONS} (default ${CRYPTO_DEFAULTS.maxSessions})
  --max-size SIZE         variable-length bytes of one request (K, M suffixes; default 1M)
${BACKEND_COMMON_USAGE}
`;

function parseCrypto(v: OptionValues, common: BackendOptions): CryptoOptions {
  const numQueues = numQueuesOption(v, COMMAND, CRYPTO_DEFAULTS.numQueues);
  const queueSize = queueSizeOption(v, COMMAND, CRYPTO_DEFAULTS.queueSize);
  const sessions = stringOption(v, 'max-sessions');
  const maxSessions = sessions === undefined ? CRYPTO_DEFAULTS.maxSessions : parseIntInRange(sessions, '--max-sessions', 1, MAX_SESSIONS, COMMAND);
  const size = stringOption(v, 'max-size');
  const maxSize = size === undefined ? CRYPTO_DEFAULTS.maxSize : sizeOption(size, '--max-size', COMMAND);
  if (maxSize < 64 || maxSize > 1 << 30) throw new CliError(CliFault.BAD_SIZE, `--max-size: ${maxSize} is out of range 64..${1 << 30}`, COMMAND);
  return { ...common, numQueues, queueSize, maxSessions, maxSize };
}

/** The `virtio-ts crypto` sub-command: its options, usage, parsing and run. */
export const CRYPTO_CLI: DeviceCli<CryptoOptions> = {
  options: {
    'num-queues': { type: 'string' },
    'queue-size': { type: 'string' },
    'max-sessions': { type: 'string' },
    'max-size': { type: 'string' },
  },
  usage: CRYPTO_USAGE,
  parse: parseCrypto,
  async run(options, io) {
    const { runCrypto } = await import('./crypto-command.js');
    return runCrypto(options, io);
  },
};
