/**
 * `virtio-ts i2c`: its options, usage and checks. Serving is in i2c-command.ts, loaded only when
 * the command runs.
 */
import { BACKEND_COMMON_USAGE, BACKEND_SOCKET_USAGE, CliError, CliFault, queueSizeOption, type BackendOptions, type OptionValues } from '../../cli/options.js';
import type { DeviceCli } from '../device-type.js';

/** One `--target`: a simulated chip at an address. */
export type I2cTargetOption =
  | {
      /** The target's I2C address (7-bit, or 10-bit with `tenBit`). */
      readonly address: number;
      /** A 10-bit address (any address 0x80..0x3ff), encoded as 5.16.6.1 says. */
      readonly tenBit: boolean;
      /** A 24Cxx-style EEPROM. */
      readonly kind: 'eeprom';
      /** Bytes of the EEPROM: a power of 2 from 128 to 65536. */
      readonly size: number;
      /** Host file backing the contents (`file=PATH`); null: kept in memory only. */
      readonly file: string | null;
      /** Write page in bytes (`page=N`: a write wraps within its page); null: the chip's default by size. */
      readonly pageSize: number | null;
    }
  | {
      /** The target's I2C address (7-bit, or 10-bit with `tenBit`). */
      readonly address: number;
      /** A 10-bit address. */
      readonly tenBit: boolean;
      /** A register file: a register pointer byte, then reads and writes from it. */
      readonly kind: 'regs';
      /** Registers (bytes) in the file. */
      readonly count: number;
    };

/** Options of `virtio-ts i2c`, as parsed from the command line. */
export interface I2cOptions extends BackendOptions {
  /** The simulated chips on the bus, one per `--target`. */
  readonly targets: readonly I2cTargetOption[];
  /** Maximum size of the request queue (default 128). */
  readonly queueSize: number;
}

export const I2C_DEFAULTS = { queueSize: 128 } as const;

const COMMAND = 'i2c';

const I2C_USAGE = `Usage: virtio-ts i2c (--socket-path PATH | --fd N) --target SPEC [--target SPEC ...] [options]

Serves a virtio I2C adapter (5.16) with simulated targets on its bus to one vhost-user
front-end (QEMU vhost-user-i2c-pci) at a time; after a disconnect it waits for the next, the
targets keeping their contents. Ends cleanly on SIGTERM or SIGINT, removing its socket.

${BACKEND_SOCKET_USAGE}
  --target ADDR=eeprom:SIZE[,file=PATH][,page=N]
                          an at24-style EEPROM of SIZE bytes (a power of 2, 128..65536; one
                          address byte up to 256, two above), its contents in PATH (created
                          erased if missing, written through), page size N
  --target ADDR=regs:N    a register file of N (1..256) 8-bit registers, first byte selects
                          ADDR is hex (0x50) or decimal: 0x00..0x77 a 7-bit address, 0x80..0x3ff
                          a 10-bit one; repeat --target for more targets
  --queue-size N          the largest ring, a power of 2 from 4 to 32768 (default ${I2C_DEFAULTS.queueSize})
${BACKEND_COMMON_USAGE}
vhost-user.json (QEMU 7.2 and later) defines no back-end type for I2C, so --print-capabilities
reports that and exits 1.
`;

/** ADDR of a --target: 0x00..0x77 (7-bit), 0x80..0x3ff (10-bit). */
export function parseI2cAddress(text: string): {
  /** The target address (0x00..0x77, or 0x80..0x3ff when `tenBit`). */
  address: number;
  /** Whether it is a 10-bit address (0x80..0x3ff); false for a 7-bit one. */
  tenBit: boolean;
} {
  const m = /^(?:0x([0-9a-fA-F]{1,3})|(\d{1,4}))$/.exec(text);
  if (!m) throw new CliError(CliFault.BAD_VALUE, `--target: address "${text}" is not hex (0x50) or decimal`, COMMAND);
  const address = m[1] !== undefined ? parseInt(m[1], 16) : Number(m[2]);
  if (address <= 0x77) return { address, tenBit: false };
  if (address >= 0x80 && address <= 0x3ff) return { address, tenBit: true };
  throw new CliError(CliFault.BAD_VALUE, `--target: address 0x${address.toString(16)} is reserved or out of range (0x00..0x77 7-bit, 0x80..0x3ff 10-bit)`, COMMAND);
}

/** One `--target` value. */
export function parseI2cTargetSpec(text: string): I2cTargetOption {
  const eq = text.indexOf('=');
  if (eq < 0) throw new CliError(CliFault.BAD_VALUE, `--target ${text}: ADDR=eeprom:SIZE or ADDR=regs:N`, COMMAND);
  const { address, tenBit } = parseI2cAddress(text.slice(0, eq));
  const [head, ...rest] = text.slice(eq + 1).split(',');
  const colon = head!.indexOf(':');
  const kind = colon < 0 ? head : head!.slice(0, colon);
  const arg = colon < 0 ? '' : head!.slice(colon + 1);
  const num = (t: string, what: string): number => {
    if (!/^\d{1,6}$/.test(t)) throw new CliError(CliFault.BAD_NUMBER, `--target ${what}: "${t}" is not a whole number`, COMMAND);
    return Number(t);
  };
  if (kind === 'eeprom') {
    const size = num(arg, 'eeprom size');
    if (size < 128 || size > 65536 || (size & (size - 1)) !== 0) throw new CliError(CliFault.BAD_SIZE, `--target eeprom:${size}: a power of 2 from 128 to 65536`, COMMAND);
    let file: string | null = null;
    let pageSize: number | null = null;
    for (const part of rest) {
      if (part.startsWith('file=') && part.length > 5) file = part.slice(5);
      else if (part.startsWith('page=')) {
        pageSize = num(part.slice(5), 'page');
        if (pageSize < 1 || pageSize > size || (pageSize & (pageSize - 1)) !== 0) throw new CliError(CliFault.BAD_SIZE, `--target page=${pageSize}: a power of 2 up to the size`, COMMAND);
      } else throw new CliError(CliFault.BAD_VALUE, `--target eeprom: "${part}" is not file=PATH or page=N`, COMMAND);
    }
    return { address, tenBit, kind: 'eeprom', size, file, pageSize };
  }
  if (kind === 'regs') {
    const count = num(arg, 'regs count');
    if (count < 1 || count > 256) throw new CliError(CliFault.BAD_NUMBER, `--target regs:${count}: 1..256 registers`, COMMAND);
    if (rest.length > 0) throw new CliError(CliFault.BAD_VALUE, `--target regs: no options (got "${rest.join(',')}")`, COMMAND);
    return { address, tenBit, kind: 'regs', count };
  }
  throw new CliError(CliFault.BAD_VALUE, `--target ${text}: the kind is eeprom or regs`, COMMAND);
}

function parseI2c(v: OptionValues, common: BackendOptions): I2cOptions {
  const raw = v['target'];
  const texts = (Array.isArray(raw) ? raw : raw === undefined ? [] : [raw]).filter((x): x is string => typeof x === 'string');
  if (texts.length === 0) throw new CliError(CliFault.BAD_VALUE, 'give at least one --target ADDR=eeprom:SIZE or ADDR=regs:N', COMMAND);
  const targets = texts.map(parseI2cTargetSpec);
  const seen = new Set<string>();
  for (const t of targets) {
    const key = `${t.tenBit ? 10 : 7}:${t.address}`;
    if (seen.has(key)) throw new CliError(CliFault.CONFLICT, `two --target at 0x${t.address.toString(16)}`, COMMAND);
    seen.add(key);
  }
  const queueSize = queueSizeOption(v, COMMAND, I2C_DEFAULTS.queueSize, 4);
  return { ...common, targets, queueSize };
}

/** The `virtio-ts i2c` sub-command: its options, usage, parsing and run. */
export const I2C_CLI: DeviceCli<I2cOptions> = {
  options: {
    target: { type: 'string', multiple: true },
    'queue-size': { type: 'string' },
  },
  usage: I2C_USAGE,
  parse: parseI2c,
  async run(options, io) {
    const { runI2c } = await import('./i2c-command.js');
    return runI2c(options, io);
  },
};
