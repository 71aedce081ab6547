/**
 * Split ring contents in guest memory (2.7): descriptor table, available ring, indices and
 * event fields from the input, served by the DeviceCore's queue and the QueueServer of a blk
 * device on the memory backend. Addresses are mostly inside guest memory (an offset into it),
 * sometimes raw 64-bit values; lengths, flags and next fields are the input's.
 */
import { ByteReader, ByteWriter } from '../engine/byte-reader.js';
import type { FuzzTarget } from '../engine/target.js';
import { reusableBlkRig } from '../harness/blk-rig.js';
import { AVAIL, DATA, DESC, GUEST_BASE } from '../harness/core-rig.js';
import { runRingSteps } from '../harness/ring-steps.js';
import { F } from '../../src/spec/features.js';

const QSIZE = 8;
const rigs = reusableBlkRig(QSIZE);

export function descriptorAddress(r: ByteReader, sel: number): number {
  return (sel & 0x80) !== 0 ? r.u64() : GUEST_BASE + r.u16();
}

async function run(data: Uint8Array): Promise<void> {
  const r = new ByteReader(data);
  const feat = r.u8();
  const extra = ((feat & 1) !== 0 ? F.EVENT_IDX : 0n) | ((feat & 2) !== 0 ? F.INDIRECT_DESC : 0n);
  const rig = rigs.get();
  rig.start(false, extra);
  const m = rig.memory;
  const nDesc = 1 + r.below(QSIZE + 8); // entries beyond the table land in indirect tables
  for (let i = 0; i < nDesc; i++) {
    const sel = r.u8();
    const at = DESC + 16 * i;
    m.writeAddr(at, descriptorAddress(r, sel) % 2 ** 53);
    m.writeU32(at + 8, (sel & 0x40) !== 0 ? r.u32() : r.u16() & 0x1fff);
    m.writeU16(at + 12, sel & 0x07); // NEXT, WRITE, INDIRECT
    m.writeU16(at + 14, (sel & 0x20) !== 0 ? r.u16() : r.below(QSIZE + 1));
  }
  let idx = 0;
  const heads = 1 + r.below(QSIZE * 2);
  for (let i = 0; i < heads; i++) m.writeU16(AVAIL + 4 + 2 * (i % QSIZE), r.below(QSIZE + 2));
  idx = (feat & 4) !== 0 ? r.u16() : heads;
  m.writeU16(AVAIL, r.u8() & 1);
  m.writeU16(AVAIL + 4 + 2 * QSIZE, r.u16()); // used_event
  m.writeU16(AVAIL + 2, idx);
  await runRingSteps(rig, r, (by) => {
    idx = (idx + by) & 0xffff;
    m.writeU16(AVAIL + 2, idx);
  });
  rig.checkEnd();
}

/** A blk read and a write, each header / data / status over three descriptors. */
function seeds(): Uint8Array[] {
  const w = new ByteWriter().u8(0).u8(5); // no features; 6 descriptors
  const hdr = DATA - GUEST_BASE;
  const buf = hdr + 0x100;
  const st = hdr + 0x1100;
  const desc = (off: number, len: number, flags: number, next: number): void => void w.u8(flags | 0x20).u16(off).u16(len).u16(next);
  desc(hdr, 16, 1, 1);
  desc(buf, 512, 3, 2);
  desc(st, 1, 2, 0);
  desc(hdr + 16, 16, 1, 4);
  desc(buf + 512, 512, 1, 5);
  desc(st + 1, 1, 2, 0);
  w.u8(1).u8(0).u8(3); // 2 heads: 0, 3
  w.u8(0).u16(0); // avail flags, used_event
  w.u8(0); // notify
  const withIndirect = new ByteWriter().u8(2).bytes(w.finish().subarray(1)).finish();
  return [w.finish(), withIndirect, new ByteWriter().u8(1).finish()];
}

export const target: FuzzTarget = { name: 'split-ring', maxLen: 1024, seeds, run, outcome: () => rigs.last!.fingerprint() };
