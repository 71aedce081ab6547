/**
 * Builds the argument bytes of one FUSE request in a chosen byte order (FsDriver's helper):
 * fixed-width fields, NUL-terminated names, raw bytes; grows as needed.
 */
const enc = new TextEncoder();

export class FsRequestBuilder {
  private buf: Uint8Array;
  private v: DataView;
  private at = 0;

  constructor(
    private readonly le: boolean,
    size = 64,
  ) {
    this.buf = new Uint8Array(Math.max(8, size));
    this.v = new DataView(this.buf.buffer);
  }

  private room(n: number): void {
    if (this.at + n <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.at + n));
    next.set(this.buf.subarray(0, this.at));
    this.buf = next;
    this.v = new DataView(next.buffer);
  }

  u32(x: number): this {
    this.room(4);
    this.v.setUint32(this.at, x >>> 0, this.le);
    this.at += 4;
    return this;
  }

  u64(x: number | bigint): this {
    this.room(8);
    this.v.setBigUint64(this.at, BigInt(x), this.le);
    this.at += 8;
    return this;
  }

  /** A name and its NUL. */
  name(s: string): this {
    return this.bytes(enc.encode(s)).bytes(new Uint8Array(1));
  }

  bytes(b: Uint8Array): this {
    this.room(b.length);
    this.buf.set(b, this.at);
    this.at += b.length;
    return this;
  }

  done(): Uint8Array {
    return this.buf.subarray(0, this.at);
  }
}
