/**
 * 5.10.6 struct virtio_vsock_hdr on a reusable 44-byte buffer, shared by the device and the
 * driver so both read the same offsets. Little-endian on a modern interface; a legacy
 * big-endian guest's native order otherwise (the transports' `littleEndian`).
 */
import { VsockHdr, VsockType } from '../../spec/vsock.js';

/** The fields of one header (one object per user, reused; never one per packet). */
export class VsockHeader {
  srcCid = 0;
  dstCid = 0;
  srcPort = 0;
  dstPort = 0;
  len = 0;
  type: number = VsockType.STREAM;
  op = 0;
  flags = 0;
  bufAlloc = 0;
  fwdCnt = 0;
  readonly bytes = new Uint8Array(VsockHdr.SIZE);
  private readonly view = new DataView(this.bytes.buffer);

  /**
   * Decodes `bytes`. A CID whose reserved upper 32 bits are not zero (5.10.6) decodes as -1,
   * which matches no CID.
   */
  decode(le: boolean): this {
    const v = this.view;
    this.srcCid = readCid(v, VsockHdr.SRC_CID, le);
    this.dstCid = readCid(v, VsockHdr.DST_CID, le);
    this.srcPort = v.getUint32(VsockHdr.SRC_PORT, le);
    this.dstPort = v.getUint32(VsockHdr.DST_PORT, le);
    this.len = v.getUint32(VsockHdr.LEN, le);
    this.type = v.getUint16(VsockHdr.TYPE, le);
    this.op = v.getUint16(VsockHdr.OP, le);
    this.flags = v.getUint32(VsockHdr.FLAGS, le);
    this.bufAlloc = v.getUint32(VsockHdr.BUF_ALLOC, le);
    this.fwdCnt = v.getUint32(VsockHdr.FWD_CNT, le);
    return this;
  }

  /** Encodes the fields into `bytes`. */
  encode(le: boolean): Uint8Array {
    const v = this.view;
    writeCid(v, VsockHdr.SRC_CID, this.srcCid, le);
    writeCid(v, VsockHdr.DST_CID, this.dstCid, le);
    v.setUint32(VsockHdr.SRC_PORT, this.srcPort >>> 0, le);
    v.setUint32(VsockHdr.DST_PORT, this.dstPort >>> 0, le);
    v.setUint32(VsockHdr.LEN, this.len >>> 0, le);
    v.setUint16(VsockHdr.TYPE, this.type & 0xffff, le);
    v.setUint16(VsockHdr.OP, this.op & 0xffff, le);
    v.setUint32(VsockHdr.FLAGS, this.flags >>> 0, le);
    v.setUint32(VsockHdr.BUF_ALLOC, this.bufAlloc >>> 0, le);
    v.setUint32(VsockHdr.FWD_CNT, this.fwdCnt >>> 0, le);
    return this.bytes;
  }

  /** Sets every field at once (then `encode`); `type` is STREAM unless given. */
  set(srcCid: number, srcPort: number, dstCid: number, dstPort: number, op: number, len: number, flags: number, bufAlloc: number, fwdCnt: number, type: number = VsockType.STREAM): this {
    this.srcCid = srcCid;
    this.srcPort = srcPort;
    this.dstCid = dstCid;
    this.dstPort = dstPort;
    this.op = op;
    this.len = len;
    this.flags = flags;
    this.bufAlloc = bufAlloc;
    this.fwdCnt = fwdCnt;
    this.type = type;
    return this;
  }
}

function readCid(v: DataView, off: number, le: boolean): number {
  const lo = v.getUint32(le ? off : off + 4, le);
  const hi = v.getUint32(le ? off + 4 : off, le);
  return hi === 0 ? lo : -1;
}

function writeCid(v: DataView, off: number, cid: number, le: boolean): void {
  v.setUint32(le ? off : off + 4, cid >>> 0, le);
  v.setUint32(le ? off + 4 : off, 0, le);
}

/**
 * 5.10.6.3 credit: bytes the sender may still send, `buf_alloc - (tx_cnt - fwd_cnt)` in u32
 * arithmetic; 0 when the peer's numbers claim more in flight than its buffer (a lying peer).
 */
export function peerCredit(peerBufAlloc: number, txCnt: number, peerFwdCnt: number): number {
  const inFlight = (txCnt - peerFwdCnt) >>> 0;
  return inFlight >= peerBufAlloc ? 0 : peerBufAlloc - inFlight;
}

/**
 * When a receiver tells its sender about freed space (CREDIT_UPDATE) without being asked: once
 * half the buffer was freed since the last announcement, or when the sender's view of free space
 * fell under a quarter and some was freed (so a sender waiting for credit always hears of it).
 */
export function shouldAnnounceCredit(bufAlloc: number, rxCnt: number, fwdCnt: number, announcedFwdCnt: number): boolean {
  const freed = (fwdCnt - announcedFwdCnt) >>> 0;
  if (freed === 0) return false;
  if (freed >= bufAlloc / 2) return true;
  const senderView = bufAlloc - ((rxCnt - announcedFwdCnt) >>> 0);
  return senderView < bufAlloc / 4;
}
