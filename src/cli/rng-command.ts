import { ErrorCode, VirtioError } from '../errors.js';
import type { RngOptions } from './args.js';
import type { CliIo } from './main.js';

export function runRng(_options: RngOptions, _io: CliIo): Promise<number> {
  return Promise.reject(new VirtioError(ErrorCode.PLATFORM, 'rng-command: not available yet'));
}
