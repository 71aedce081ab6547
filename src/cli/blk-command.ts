import { ErrorCode, VirtioError } from '../errors.js';
import type { BlkOptions } from './args.js';
import type { CliIo } from './main.js';

export function runBlk(_options: BlkOptions, _io: CliIo): Promise<number> {
  return Promise.reject(new VirtioError(ErrorCode.PLATFORM, 'blk-command: not available yet'));
}
