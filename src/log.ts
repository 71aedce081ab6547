/**
 * A small levelled logger writing one line per event to stderr (stdout stays free for
 * `--print-capabilities` and demo output). Verbosity: 0 errors, 1 warnings, 2 info, 3 debug.
 */
export interface Logger {
  /** Logs a failure (always written, whatever the level). */
  error(msg: string): void;
  /** Logs something wrong that the process survives (level WARN and above). */
  warn(msg: string): void;
  /** Logs a lifecycle event: a connection, a ring start, shutdown (level INFO and above). */
  info(msg: string): void;
  /** Logs detail for debugging: every vhost-user message with `-v` (level DEBUG). */
  debug(msg: string): void;
  /** The verbosity this logger writes at (a LogLevel value; -1 writes nothing). */
  readonly level: number;
}

/** Logger verbosity levels: each level writes its own messages and those of the levels below it. */
export const LogLevel = { ERROR: 0, WARN: 1, INFO: 2, DEBUG: 3 } as const;

/**
 * A Logger writing `<ISO time> <name> <LEVEL> <message>` lines to `out` (stderr by default) for
 * messages at `level` or below (a LogLevel value).
 */
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

/** A Logger that writes nothing. */
export const silentLogger: Logger = { level: -1, error() {}, warn() {}, info() {}, debug() {} };
