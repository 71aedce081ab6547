/** A valid split ring holding one blk read (header / 512-byte data / status) for seeds. */
import { ByteWriter } from '../engine/byte-reader.js';
import { AVAIL, DATA, DESC, GUEST_BASE } from './core-rig.js';

export interface RingImage {
  readonly writes: { readonly offset: number; readonly bytes: Uint8Array }[];
}

export function splitBlkReadImage(type = 0): RingImage {
  const d = new ByteWriter();
  const desc = (addr: number, len: number, flags: number, next: number): void => void d.u64(addr).u32(len).u16(flags).u16(next);
  desc(DATA, 16, 1, 1);
  desc(DATA + 0x100, 512, 3, 2);
  desc(DATA + 0x1100, 1, 2, 0);
  const avail = new ByteWriter().u16(0).u16(1).u16(0).finish();
  const hdr = new ByteWriter().u32(type).u32(0).u64(1).finish();
  return {
    writes: [
      { offset: DESC - GUEST_BASE, bytes: d.finish() },
      { offset: AVAIL - GUEST_BASE, bytes: avail },
      { offset: DATA - GUEST_BASE, bytes: hdr },
    ],
  };
}
