/**
 * Zeroes what an input wrote into a buffer kept between inputs (a memfd's bytes, a RAM disk),
 * page by page: each 4 KiB page is compared with zeroes (memcmp) and only the pages found written
 * are filled, as 8-byte elements (V8 fills shared typed arrays element by element, see
 * guarded-memory.ts). Built once per buffer: nothing is allocated per clear.
 */
import { Buffer } from 'node:buffer';

const PAGE = 4096;
const ZERO_PAGE = Buffer.alloc(PAGE);

export class PageZeroer {
  private readonly pages: Buffer[] = [];
  private readonly words: Float64Array[] = [];

  /** `bytes` must start 8-aligned in its buffer and be whole pages long. */
  constructor(readonly bytes: Uint8Array) {
    if (bytes.length % PAGE !== 0 || bytes.byteOffset % 8 !== 0) throw new RangeError(`${bytes.length} bytes at ${bytes.byteOffset}: not whole 8-aligned ${PAGE}-byte pages`);
    for (let off = 0; off < bytes.length; off += PAGE) {
      this.pages.push(Buffer.from(bytes.buffer, bytes.byteOffset + off, PAGE));
      this.words.push(new Float64Array(bytes.buffer, bytes.byteOffset + off, PAGE / 8));
    }
  }

  /** Zeroes every page holding a non-zero byte; returns how many were. */
  clear(): number {
    let written = 0;
    for (let p = 0; p < this.pages.length; p++) {
      if (ZERO_PAGE.equals(this.pages[p]!)) continue;
      this.words[p]!.fill(0);
      written++;
    }
    return written;
  }
}
