/**
 * `virtio-ts scsi`: its options, usage and checks. Serving is in scsi-command.ts, loaded only when
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
  queueSizeOption,
  sizeOption,
  type BackendOptions,
  type OptionValues,
} from '../../cli/options.js';
import type { DeviceCli } from '../device-type.js';

/** One `--lun` option: an image file or a RAM disk, with its flags. */
export interface ScsiLunOption {
  /** `file=PATH`: a raw image; null for a RAM disk. */
  readonly file: string | null;
  /** `memory=SIZE`: a RAM disk of this many bytes (a multiple of 512); null for a file. */
  readonly memoryBytes: number | null;
  /** `,readonly`: writes refused. */
  readonly readOnly: boolean;
  /** `,serial=TEXT`: the unit serial number; null for the default. */
  readonly serial: string | null;
}

export interface ScsiOptions extends BackendOptions {
  /** LUN 0, 1, ... in order. */
  readonly luns: readonly ScsiLunOption[];
  /** `--num-queues`: request queues (default 1). */
  readonly numQueues: number;
  /** `--queue-size`: the largest ring, a power of 2 (default 128). */
  readonly queueSize: number;
}

export const SCSI_DEFAULTS = { numQueues: 1, queueSize: 128 } as const;
/** LUN ids 0..255. */
export const MAX_LUN_OPTIONS = 256;

const COMMAND = 'scsi';

const SCSI_USAGE = `Usage: virtio-ts scsi (--socket-path PATH | --fd N) --lun SPEC [--lun SPEC ...] [options]

Serves a virtio-scsi host (one target, one disk per --lun: LUN 0, 1, ...) to one vhost-user
front-end (QEMU vhost-user-scsi-pci) at a time; after a disconnect it waits for the next. QEMU
owns the configuration space of vhost-user-scsi and hands every queue (control, event, requests)
to the back-end. Ends cleanly on SIGTERM or SIGINT, removing its socket.

${BACKEND_SOCKET_USAGE}
  --lun SPEC              a logical unit: file=PATH (a raw image) or memory=SIZE (a RAM disk,
                          K, M, G suffixes, a multiple of 512), then ,readonly and ,serial=TEXT
                          (printable ASCII, at most 32 bytes) as wanted; repeat for more LUNs
  --num-queues N          request queues, 1..${MAX_NUM_QUEUES} (default ${SCSI_DEFAULTS.numQueues}); QEMU's num_queues must not exceed it
  --queue-size N          the largest ring, a power of 2 from 4 to ${MAX_QUEUE_SIZE} (default ${SCSI_DEFAULTS.queueSize})
${BACKEND_COMMON_USAGE}
`;

/** Parses one `--lun` value. */
export function parseLunSpec(text: string): ScsiLunOption {
  let file: string | null = null;
  let memoryBytes: number | null = null;
  let readOnly = false;
  let serial: string | null = null;
  for (const part of text.split(',')) {
    const eq = part.indexOf('=');
    const key = eq < 0 ? part : part.slice(0, eq);
    const value = eq < 0 ? null : part.slice(eq + 1);
    if (key === 'readonly' && value === null) readOnly = true;
    else if (key === 'file' && value) file = value;
    else if (key === 'memory' && value) {
      memoryBytes = sizeOption(value, '--lun memory', COMMAND);
      if (memoryBytes < 512 || memoryBytes % 512 !== 0 || memoryBytes > bufferConstants.MAX_LENGTH) {
        throw new CliError(CliFault.BAD_SIZE, `--lun memory=${value}: a multiple of 512 from 512 to ${bufferConstants.MAX_LENGTH}`, COMMAND);
      }
    } else if (key === 'serial' && value !== null) {
      if (!/^[\x20-\x7e]{1,32}$/.test(value)) throw new CliError(CliFault.BAD_VALUE, '--lun serial: printable ASCII, 1 to 32 bytes', COMMAND);
      serial = value;
    } else throw new CliError(CliFault.BAD_VALUE, `--lun: "${part}" is not file=PATH, memory=SIZE, readonly or serial=TEXT`, COMMAND);
  }
  if ((file === null) === (memoryBytes === null)) throw new CliError(CliFault.BAD_VALUE, `--lun ${text}: give exactly one of file=PATH and memory=SIZE`, COMMAND);
  return { file, memoryBytes, readOnly, serial };
}

function parseScsi(v: OptionValues, common: BackendOptions): ScsiOptions {
  const raw = v['lun'];
  const texts = (Array.isArray(raw) ? raw : raw === undefined ? [] : [raw]).filter((x): x is string => typeof x === 'string');
  if (texts.length === 0) throw new CliError(CliFault.MISSING_IMAGE, 'give at least one --lun file=PATH or --lun memory=SIZE', COMMAND);
  if (texts.length > MAX_LUN_OPTIONS) throw new CliError(CliFault.BAD_VALUE, `at most ${MAX_LUN_OPTIONS} --lun`, COMMAND);
  const luns = texts.map(parseLunSpec);
  const numQueues = numQueuesOption(v, COMMAND, SCSI_DEFAULTS.numQueues);
  const queueSize = queueSizeOption(v, COMMAND, SCSI_DEFAULTS.queueSize, 4);
  return { ...common, luns, numQueues, queueSize };
}

/** The `virtio-ts scsi` sub-command: its options, usage, parsing and run. */
export const SCSI_CLI: DeviceCli<ScsiOptions> = {
  options: {
    lun: { type: 'string', multiple: true },
    'num-queues': { type: 'string' },
    'queue-size': { type: 'string' },
  },
  usage: SCSI_USAGE,
  parse: parseScsi,
  async run(options, io) {
    const { runScsi } = await import('./scsi-command.js');
    return runScsi(options, io);
  },
};
