/**
 * The bytes of one driver request: a fixed part (header and op_flf, zero-filled so padding and
 * reserved fields are zero) with fields in the guest's byte order, then appended op_vlf parts.
 */
const U32 = 0x1_0000_0000;

export class CryptoRequestBytes {
  private readonly fixed: Uint8Array;
  private readonly view: DataView;
  private readonly parts: Uint8Array[] = [];
  private length: number;

  constructor(
    private readonly le: boolean,
    fixedSize: number,
  ) {
    this.fixed = new Uint8Array(fixedSize);
    this.view = new DataView(this.fixed.buffer);
    this.length = fixedSize;
  }

  u32(at: number, v: number): void {
    this.view.setUint32(at, v >>> 0, this.le);
  }

  /** A le64/be64 of a safe integer. */
  u64(at: number, v: number): void {
    this.view.setUint32(at + (this.le ? 0 : 4), v % U32, this.le);
    this.view.setUint32(at + (this.le ? 4 : 0), Math.floor(v / U32), this.le);
  }

  append(b: Uint8Array): void {
    if (b.length === 0) return;
    this.parts.push(b);
    this.length += b.length;
  }

  bytes(): Uint8Array {
    const out = new Uint8Array(this.length);
    out.set(this.fixed, 0);
    let at = this.fixed.length;
    for (const p of this.parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }
}
