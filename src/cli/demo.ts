import { ErrorCode, VirtioError } from '../errors.js';
import type { DemoOptions } from './args.js';
import type { CliIo } from './main.js';

export function runDemo(_options: DemoOptions, _io: CliIo): Promise<number> {
  return Promise.reject(new VirtioError(ErrorCode.PLATFORM, 'demo: not available yet'));
}
