/**
 * An at24-style serial EEPROM (24c01 .. 24c512): a write sets the address pointer (one address
 * byte up to 256 bytes of memory, two above) and writes the bytes after it into the current
 * page, the address rolling over within the page as the parts do; a read returns bytes from the
 * pointer, which rolls over at the end of the memory. Writes are visible at once (no write
 * cycle time: the part never NACKs while busy).
 */
import { ErrorCode, VirtioError } from '../../errors.js';
import type { I2cTarget } from './i2c-target.js';

/** Options of an {@link EepromTarget}: size, write page and initial contents of the emulated EEPROM. */
export interface EepromOptions {
  /** Memory size in bytes: a power of two from 128 to 65536. */
  readonly size: number;
  /** Page size for writes (default 8 up to 256 bytes, 32 up to 4 KiB, 64 up to 32 KiB, else 128). */
  readonly pageSize?: number;
  /** Initial contents (copied; default all 0xff, an erased part). */
  readonly contents?: Uint8Array;
  /** Called after bytes [offset, offset + length) changed (persistence, observers). */
  readonly onWrite?: (offset: number, length: number) => void;
}

export class EepromTarget implements I2cTarget {
  /** The memory (the host reads and changes it directly). */
  readonly memory: Uint8Array;
  /** Write page in bytes (a power of two): a write wraps within its page, as a real part does. */
  readonly pageSize: number;
  /** Address bytes a write starts with: 1 up to 256 bytes, else 2. */
  readonly addressBytes: number;
  /** The internal address counter. */
  pointer = 0;
  private readonly onWrite: ((offset: number, length: number) => void) | undefined;

  constructor(opts: EepromOptions) {
    const { size } = opts;
    if (!Number.isInteger(size) || size < 128 || size > 65536 || (size & (size - 1)) !== 0) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `EEPROM size ${size}: a power of two from 128 to 65536`);
    }
    const page = opts.pageSize ?? (size <= 256 ? 8 : size <= 4096 ? 32 : size <= 32768 ? 64 : 128);
    if (!Number.isInteger(page) || page < 1 || page > size || (page & (page - 1)) !== 0) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `EEPROM page size ${page}: a power of two up to the size`);
    }
    this.pageSize = page;
    this.addressBytes = size <= 256 ? 1 : 2;
    this.memory = new Uint8Array(size).fill(0xff);
    if (opts.contents) {
      if (opts.contents.length > size) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `EEPROM contents (${opts.contents.length} bytes) larger than ${size}`);
      this.memory.set(opts.contents);
    }
    this.onWrite = opts.onWrite;
  }

  write(data: Uint8Array, length: number): boolean {
    if (length === 0) return true; // Quick command: present
    const mask = this.memory.length - 1;
    if (length < this.addressBytes) {
      // Half of a two-byte address: the part latches the high byte.
      this.pointer = ((data[0]! << 8) | (this.pointer & 0xff)) & mask;
      return true;
    }
    this.pointer = (this.addressBytes === 1 ? data[0]! : (data[0]! << 8) | data[1]!) & mask;
    const n = length - this.addressBytes;
    if (n === 0) return true;
    const pageStart = this.pointer & ~(this.pageSize - 1);
    let within = this.pointer - pageStart;
    // More than a page: only the last pageSize bytes stay (they overwrite the first ones).
    for (let i = 0; i < n; i++) {
      this.memory[pageStart + within] = data[this.addressBytes + i]!;
      within = (within + 1) & (this.pageSize - 1);
    }
    this.pointer = pageStart + within;
    this.onWrite?.(pageStart, this.pageSize);
    return true;
  }

  read(dst: Uint8Array, length: number): boolean {
    const mem = this.memory;
    const mask = mem.length - 1;
    let p = this.pointer;
    for (let i = 0; i < length; i++) {
      dst[i] = mem[p]!;
      p = (p + 1) & mask; // sequential reads roll over at the end of the memory
    }
    this.pointer = p;
    return true;
  }

  stop(): void {}
}
