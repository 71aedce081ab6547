/**
 * The blk request parser (5.2.6) behind a well-formed split ring: request type (defined ones
 * mostly, any u32 sometimes), sector, the header split over descriptors, data and discard /
 * write-zeroes segments from the input, the status byte in its own descriptor or at the end of
 * a data one, or missing. Checks after each batch: every buffer comes back, used.len never
 * exceeds the writable bytes of its chain, the status byte is OK, IOERR or UNSUPP.
 */
import { ByteReader, ByteWriter } from '../engine/byte-reader.js';
import { check, type FuzzTarget } from '../engine/target.js';
import { BLK_SECTORS, reusableBlkRig } from '../harness/blk-rig.js';
import { AVAIL, DATA, DESC, USED } from '../harness/core-rig.js';
import { BlkReqType, BlkStatus } from '../../src/spec/blk.js';
import { F } from '../../src/spec/features.js';

const QSIZE = 16;
const rigs = reusableBlkRig(QSIZE);
const TYPES = [
  BlkReqType.IN,
  BlkReqType.OUT,
  BlkReqType.FLUSH,
  BlkReqType.GET_ID,
  BlkReqType.GET_LIFETIME,
  BlkReqType.DISCARD,
  BlkReqType.WRITE_ZEROES,
  BlkReqType.SECURE_ERASE,
  BlkReqType.ZONE_REPORT,
  BlkReqType.ZONE_APPEND,
  BlkReqType.SCSI_CMD,
];
/** Bytes of data area per request slot. */
const SLOT = 0x2000;
const VALID_STATUS = new Set<number>([BlkStatus.OK, BlkStatus.IOERR, BlkStatus.UNSUPP]);

interface Pending {
  head: number;
  writable: number;
  statusAddr: number;
}

async function run(data: Uint8Array): Promise<void> {
  const r = new ByteReader(data);
  const rig = rigs.get();
  rig.start(false, ((1n << 64n) - 1n) & ~F.RING_PACKED);
  const m = rig.memory;
  let availIdx = 0;
  let usedSeen = 0;
  for (let round = 0; round < 3 && !r.done; round++) {
    const pending = new Map<number, Pending>();
    let nextDesc = 0;
    const requests = 1 + r.below(4);
    for (let q = 0; q < requests && nextDesc < QSIZE - 5; q++) {
      const base = DATA + q * SLOT;
      const type = r.below(8) === 0 ? r.u32() : r.pick(TYPES);
      const sector = r.bool() ? r.below(BLK_SECTORS + 4) : r.u64();
      // Header: type, ioprio (reserved), sector; then out payload.
      const hdr = new ByteWriter().u32(type).u32(r.u8()).u64(sector).finish();
      const payloadKind = r.below(4);
      const payload =
        payloadKind === 0 ? new Uint8Array(0) : payloadKind === 1 ? new Uint8Array(512 * (1 + r.below(3))).fill(0x5a) : r.bytes(16 * (1 + r.below(4)));
      const out = new Uint8Array(hdr.length + payload.length);
      out.set(hdr);
      out.set(payload, hdr.length);
      m.write(base, out);
      const descs: { addr: number; len: number; write: boolean }[] = [];
      // Readable part, cut in one or two descriptors.
      const cut = r.bool() ? 1 + r.below(out.length - 1) : out.length;
      descs.push({ addr: base, len: cut, write: false });
      if (cut < out.length) descs.push({ addr: base + cut, len: out.length - cut, write: false });
      // Writable part: data descriptors then the status byte, or the status at the end of data.
      const inBase = base + 0x1000;
      const dataLen = r.pick([0, 0, 1, 8, 20, 512, 513, 1024, 1536]);
      const statusOwn = r.below(4) !== 0;
      let writable = 0;
      if (dataLen > 0) {
        descs.push({ addr: inBase, len: dataLen + (statusOwn ? 0 : 1), write: true });
        writable += dataLen + (statusOwn ? 0 : 1);
      }
      if (statusOwn) {
        descs.push({ addr: inBase + 0x800, len: 1, write: true });
        writable += 1;
      }
      const statusAddr = statusOwn ? inBase + 0x800 : dataLen > 0 ? inBase + dataLen : -1;
      if (statusAddr >= 0) m.writeU8(statusAddr, 0xee);
      const head = nextDesc;
      descs.forEach((d, i) => {
        const at = DESC + 16 * nextDesc;
        m.writeAddr(at, d.addr);
        m.writeU32(at + 8, d.len);
        m.writeU16(at + 12, (i < descs.length - 1 ? 1 : 0) | (d.write ? 2 : 0));
        m.writeU16(at + 14, nextDesc + 1);
        nextDesc++;
      });
      pending.set(head, { head, writable, statusAddr });
      m.writeU16(AVAIL + 4 + 2 * (availIdx % QSIZE), head);
      availIdx = (availIdx + 1) & 0xffff;
    }
    m.writeU16(AVAIL + 2, availIdx);
    rig.core.notifyQueue(0);
    await rig.settle();
    if (rig.needsReset) break;
    const usedIdx = m.readU16(USED + 2);
    check(((usedIdx - usedSeen) & 0xffff) === pending.size, 'chain-not-completed', `${pending.size} requests made available, ${(usedIdx - usedSeen) & 0xffff} used`);
    for (; usedSeen !== usedIdx; usedSeen = (usedSeen + 1) & 0xffff) {
      const at = USED + 4 + 8 * (usedSeen % QSIZE);
      const id = m.readU32(at);
      const len = m.readU32(at + 4);
      const p = pending.get(id);
      check(p !== undefined, 'protocol', `used id ${id} was not made available`);
      pending.delete(id);
      check(len <= p.writable, 'protocol', `used.len ${len} > ${p.writable} writable bytes (2.7.8.2)`);
      if (p.statusAddr >= 0 && len > 0) {
        const st = m.readU8(p.statusAddr);
        check(VALID_STATUS.has(st), 'protocol', `status byte ${st}`);
      }
    }
  }
  rig.checkEnd();
}

function seeds(): Uint8Array[] {
  const out: Uint8Array[] = [];
  // One request of each defined type, data in its own descriptor and status after it.
  for (let t = 0; t < TYPES.length; t++) {
    out.push(new ByteWriter().u8(0).u8(1).u8(t).u8(1).u8(2).u8(0).u8(1).u8(0).u8(0).u8(5).u8(1).finish());
  }
  return out;
}

export const target: FuzzTarget = { name: 'blk-requests', maxLen: 512, seeds, run, outcome: () => rigs.last!.fingerprint() };
