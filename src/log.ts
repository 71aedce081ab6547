/**
 * A small levelled logger writing one line per event to stderr (stdout stays free for
 * `--print-capabilities` and demo output). Verbosity: 0 errors, 1 warnings, 2 info, 3 debug.
 */
export interface Logger {
  error(msg: string): void;
  warn(msg: string): void;
  info(msg: string): void;
  debug(msg: string): void;
  readonly level: number;
}

export const LogLevel = { ERROR: 0, WARN: 1, INFO: 2, DEBUG: 3 } as const;

export function createLogger(level: number, name = 'virtio-ts', out: (line: string) => void = (l) => process.stderr.write(l)): Logger {
  const emit = (lvl: string, msg: string): void => out(`${new Date().toISOString()} ${name} ${lvl} ${msg}\n`);
  return {
    level,
    error: (m) => emit('ERROR', m),
    warn: (m) => level >= LogLevel.WARN && emit('WARN', m),
    info: (m) => level >= LogLevel.INFO && emit('INFO', m),
    debug: (m) => level >= LogLevel.DEBUG && emit('DEBUG', m),
  } as Logger;
}

export const silentLogger: Logger = { level: -1, error() {}, warn() {}, info() {}, debug() {} };
