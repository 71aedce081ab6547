/**
 * A generic register file, as many simple I2C chips are: the first byte of a write selects a
 * register (NACK when there is no such register), further bytes go to it and the next ones;
 * a read returns registers from the selected one on. The index rolls over after the last.
 */
import { ErrorCode, VirtioError } from '../../errors.js';
import type { I2cTarget } from './i2c-target.js';

/** Options of RegisterFileTarget. */
export interface RegisterFileOptions {
  /** Number of 8-bit registers, 1..256. */
  readonly count: number;
  /** Initial values (default all zero). */
  readonly values?: Uint8Array;
  /** Called after registers [index, index + length) were written by the driver (rolled over: twice). */
  readonly onWrite?: (index: number, length: number) => void;
}

export class RegisterFileTarget implements I2cTarget {
  /** The registers (the host reads and changes them directly). */
  readonly registers: Uint8Array;
  /** The selected register. */
  index = 0;
  private readonly onWrite: ((index: number, length: number) => void) | undefined;

  constructor(opts: RegisterFileOptions) {
    const { count } = opts;
    if (!Number.isInteger(count) || count < 1 || count > 256) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `register count ${count}: 1..256`);
    this.registers = new Uint8Array(count);
    if (opts.values) {
      if (opts.values.length > count) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `${opts.values.length} register values for ${count} registers`);
      this.registers.set(opts.values);
    }
    this.onWrite = opts.onWrite;
  }

  write(data: Uint8Array, length: number): boolean {
    if (length === 0) return true; // Quick command: present
    const regs = this.registers;
    const first = data[0]!;
    if (first >= regs.length) return false; // no such register: NACK the register byte
    let i = first;
    for (let k = 1; k < length; k++) {
      regs[i] = data[k]!;
      i = i + 1 === regs.length ? 0 : i + 1;
    }
    this.index = i;
    if (length > 1 && this.onWrite) {
      const n = Math.min(length - 1, regs.length);
      if (first + n <= regs.length) this.onWrite(first, n);
      else {
        this.onWrite(first, regs.length - first);
        this.onWrite(0, first + n - regs.length);
      }
    }
    return true;
  }

  read(dst: Uint8Array, length: number): boolean {
    const regs = this.registers;
    let i = this.index;
    for (let k = 0; k < length; k++) {
      dst[k] = regs[i]!;
      i = i + 1 === regs.length ? 0 : i + 1;
    }
    this.index = i;
    return true;
  }

  stop(): void {}
}
