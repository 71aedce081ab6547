/**
 * What the balloon device does with guest pages the driver gave up (inflated pages, 5.5.6;
 * reported free pages, 5.5.6.7): a PageReleaser gets each range and may drop its contents,
 * which the spec allows (device/balloon/3, device/balloon/20). Where guest memory is mmapped
 * from the front-end's memfds (a vhost-user back-end), `madvisePageReleaser` frees the host
 * pages (MADV_REMOVE: they read back zero on both sides); for guest memory that is a JS buffer
 * (in process, v86) there is nothing to give back to the host: `zeroFillPageReleaser` only
 * shows the guest what a released page looks like, and the default releases nothing.
 */
import type { GuestMemory } from '../../memory/guest-memory.js';
import { MemoryAdvice, adviseMemory } from '../../platform/memory-advice.js';

/** Releases guest range [addr, addr + len); returns the bytes released (0 when none). */
export type PageReleaser = (memory: GuestMemory, addr: number, len: number) => number;

/** For mmapped guest memory (vhost-user): MADV_REMOVE over the whole host pages of the range. */
export const madvisePageReleaser: PageReleaser = (memory, addr, len) => {
  const r = memory.locate(addr, len);
  if (r < 0) return 0;
  return adviseMemory(memory.bytesOf(r), addr - memory.baseOf(r), len, MemoryAdvice.REMOVE);
};

/** For guest memory in a JS buffer: the range is filled with zero (nothing is freed). */
export const zeroFillPageReleaser: PageReleaser = (memory, addr, len) => {
  if (!memory.isMapped(addr, len)) return 0;
  memory.fill(addr, len, 0);
  return len;
};
