import { ErrorCode, VirtioError } from '../errors.js';
import type { Segment } from '../queue/types.js';

/**
 * Checks the caller's segments for one buffer, readable (`out`) then writable (`inn`), for both
 * ring layouts: at least one segment, each a non-negative safe-integer address with a u32
 * length, the whole at most 2^32 - 1 bytes (driver/split-ring/4; 2.8.4 for packed lists).
 * Returns the bytes of the writable part; throws INVALID_ARGUMENT. No allocation.
 */
export function checkBufferSegments(out: readonly Segment[], inn: readonly Segment[]): number {
  const nOut = out.length;
  const n = nOut + inn.length;
  if (n === 0) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, 'a buffer needs at least one segment');
  let total = 0;
  let writable = 0;
  for (let i = 0; i < n; i++) {
    const s = i < nOut ? out[i]! : inn[i - nOut]!;
    if (!Number.isSafeInteger(s.addr) || s.addr < 0 || !Number.isInteger(s.len) || s.len < 0 || s.len > 0xffffffff) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `bad segment 0x${Number(s.addr).toString(16)}+${s.len}`);
    }
    total += s.len;
    if (i >= nOut) writable += s.len;
  }
  if (total > 0xffffffff) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `buffer of ${total} bytes exceeds 2^32 - 1`);
  return writable;
}
