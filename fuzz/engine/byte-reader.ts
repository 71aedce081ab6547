/**
 * Structured values drawn from the fuzzer's flat byte input (as libFuzzer's FuzzedDataProvider
 * does): a mutation of the bytes becomes a change of one field, an inserted or removed step,
 * so the coverage feedback steers structure, not only raw bytes. Past the end every read is 0.
 */
export class ByteReader {
  private pos = 0;

  constructor(private readonly data: Uint8Array) {}

  get remaining(): number {
    return this.data.length - this.pos;
  }

  get done(): boolean {
    return this.pos >= this.data.length;
  }

  u8(): number {
    return this.pos < this.data.length ? this.data[this.pos++]! : 0;
  }

  u16(): number {
    return this.u8() | (this.u8() << 8);
  }

  u32(): number {
    return (this.u16() | (this.u16() << 16)) >>> 0;
  }

  /** A 64-bit value as a number (exact up to 2^53, the rest folded in) for addresses. */
  u64(): number {
    const lo = this.u32();
    const hi = this.u32();
    return hi * 0x1_0000_0000 + lo;
  }

  bool(): boolean {
    return (this.u8() & 1) === 1;
  }

  /** An integer in [0, n). */
  below(n: number): number {
    if (n <= 1) return 0;
    return n <= 256 ? this.u8() % n : n <= 65536 ? this.u16() % n : this.u32() % n;
  }

  pick<T>(choices: readonly T[]): T {
    return choices[this.below(choices.length)]!;
  }

  /** Up to `n` bytes (fewer at the end of the input). */
  bytes(n: number): Uint8Array {
    const end = Math.min(this.data.length, this.pos + n);
    const out = this.data.slice(this.pos, end);
    this.pos = end;
    return out;
  }
}

/** Writes what a ByteReader reads back: the seed builders of the targets use it. */
export class ByteWriter {
  private readonly out: number[] = [];

  u8(v: number): this {
    this.out.push(v & 0xff);
    return this;
  }

  u16(v: number): this {
    return this.u8(v).u8(v >>> 8);
  }

  u32(v: number): this {
    return this.u16(v & 0xffff).u16(v >>> 16);
  }

  u64(v: number): this {
    return this.u32(v % 0x1_0000_0000).u32(Math.floor(v / 0x1_0000_0000));
  }

  bytes(b: ArrayLike<number>): this {
    for (let i = 0; i < b.length; i++) this.out.push(b[i]! & 0xff);
    return this;
  }

  finish(): Uint8Array {
    return Uint8Array.from(this.out);
  }
}
