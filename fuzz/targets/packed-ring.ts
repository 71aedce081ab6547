/**
 * Packed ring contents in guest memory (2.8): descriptors with their AVAIL / USED wrap bits,
 * ids, NEXT / WRITE / INDIRECT flags, indirect tables and the driver event suppression
 * structure from the input, served by the DeviceCore's packed queue and a blk device.
 */
import { ByteReader, ByteWriter } from '../engine/byte-reader.js';
import type { FuzzTarget } from '../engine/target.js';
import { reusableBlkRig } from '../harness/blk-rig.js';
import { AVAIL, DATA, DESC, GUEST_BASE } from '../harness/core-rig.js';
import { runRingSteps } from '../harness/ring-steps.js';
import { F } from '../../src/spec/features.js';
import { descriptorAddress } from './split-ring.js';

const QSIZE = 8;
const rigs = reusableBlkRig(QSIZE);
const AVAIL_BIT = 1 << 7;

async function run(data: Uint8Array): Promise<void> {
  const r = new ByteReader(data);
  const feat = r.u8();
  const extra = ((feat & 1) !== 0 ? F.EVENT_IDX : 0n) | ((feat & 2) !== 0 ? F.INDIRECT_DESC : 0n) | ((feat & 4) !== 0 ? F.IN_ORDER : 0n);
  const rig = rigs.get();
  rig.start(true, extra);
  const m = rig.memory;
  const nDesc = 1 + r.below(QSIZE + 8); // beyond the ring: indirect tables
  const writeDesc = (i: number): void => {
    const sel = r.u8();
    const at = DESC + 16 * (i % (QSIZE + 8));
    m.writeAddr(at, descriptorAddress(r, sel) % 2 ** 53);
    m.writeU32(at + 8, (sel & 0x40) !== 0 ? r.u32() : r.u16() & 0x1fff);
    m.writeU16(at + 12, (sel & 0x20) !== 0 ? r.u16() : r.below(QSIZE));
    // NEXT, WRITE, INDIRECT from sel; AVAIL set and USED clear (available in wrap 1) unless told.
    const flags = (sel & 0x07) | ((sel & 0x10) !== 0 ? r.u16() & 0x8080 : AVAIL_BIT);
    m.writeU16(at + 14, flags);
  };
  for (let i = 0; i < nDesc; i++) writeDesc(i);
  m.writeU16(AVAIL, r.u16()); // driver event off_wrap
  m.writeU16(AVAIL + 2, r.below(4)); // driver event flags (2 = DESC, 3 reserved)
  let extraWrites = nDesc;
  await runRingSteps(rig, r, (by) => {
    // The driver makes more descriptors available (new contents from the input).
    for (let i = 0; i < by; i++) writeDesc(extraWrites++);
  });
  rig.checkEnd();
}

/** A blk read (header / data / status chained) and a single-descriptor chain. */
function seeds(): Uint8Array[] {
  const hdr = DATA - GUEST_BASE;
  const make = (feat: number): Uint8Array => {
    const w = new ByteWriter().u8(feat).u8(3);
    const desc = (off: number, len: number, flags: number, id: number): void => void w.u8(flags | 0x20).u16(off).u16(len).u16(id);
    desc(hdr, 16, 1, 0);
    desc(hdr + 0x100, 512, 3, 0);
    desc(hdr + 0x1100, 1, 2, 0);
    desc(hdr + 16, 16, 0, 1);
    w.u16(0).u8(0); // event off_wrap, flags
    w.u8(0); // notify
    return w.finish();
  };
  return [make(0), make(1), make(2), make(4)];
}

export const target: FuzzTarget = { name: 'packed-ring', maxLen: 1024, seeds, run, outcome: () => rigs.last!.fingerprint() };
