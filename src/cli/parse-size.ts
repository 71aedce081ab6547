import { ErrorCode, VirtioError } from '../errors.js';

const UNITS: Record<string, number> = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };

/** Parses "256M", "1G", "4096", "512K" (binary units, optional "iB"/"B") into bytes. */
export function parseSize(text: string, what = 'size'): number {
  const m = /^\s*(\d+)\s*([kKmMgGtT]?)(?:i?[bB])?\s*$/.exec(text);
  if (!m) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `${what}: "${text}" is not a size (examples: 256M, 1G, 1048576)`);
  const n = Number(m[1]) * UNITS[m[2]!.toUpperCase()]!;
  if (!Number.isSafeInteger(n) || n <= 0) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `${what}: "${text}" is out of range`);
  return n;
}
