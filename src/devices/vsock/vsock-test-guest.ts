/**
 * A hand-driven guest for vsock device tests: sends raw packets (any header, any length) on tx
 * and collects what the device puts in rx buffers, over a loopback DriverContext.
 */
import { RequestQueue } from '../../driver/request-queue.js';
import type { DriverContext } from '../../driver/types.js';
import { VSOCK_HOST_CID, VSOCK_RXQ, VSOCK_TXQ, VsockHdr, VsockType } from '../../spec/vsock.js';
import { VsockHeader } from './vsock-header.js';

export interface RawPacket {
  readonly srcCid: number;
  readonly dstCid: number;
  readonly srcPort: number;
  readonly dstPort: number;
  readonly len: number;
  readonly type: number;
  readonly op: number;
  readonly flags: number;
  readonly bufAlloc: number;
  readonly fwdCnt: number;
  readonly payload: Uint8Array;
  /** The used length the device reported. */
  readonly used: number;
}

export type HeaderFields = Partial<Omit<RawPacket, 'payload' | 'used'>>;

export class RawVsockGuest {
  readonly tx: RequestQueue;
  readonly rx: RequestQueue;
  readonly packets: RawPacket[] = [];
  private waiters: (() => void)[] = [];
  private readonly hdr = new VsockHeader();

  constructor(
    readonly ctx: DriverContext,
    readonly cid: number,
    rxBuffers = 8,
    private readonly rxSize = 4096,
  ) {
    this.tx = new RequestQueue(ctx, VSOCK_TXQ);
    this.rx = new RequestQueue(ctx, VSOCK_RXQ);
    this.postRx(rxBuffers);
  }

  /** Makes `n` more rx buffers available (each reposted when used). */
  postRx(n: number): void {
    for (let i = 0; i < n; i++) this.post(this.ctx.dma.alloc(VsockHdr.SIZE + this.rxSize, 16));
  }

  /**
   * Sends one packet: the header (defaults: from this guest's CID to the host, stream, buf_alloc
   * 64 KiB) then `payload`; `len` defaults to the payload's length. Resolves with the used length.
   */
  send(fields: HeaderFields, payload: Uint8Array = new Uint8Array(0), raw?: Uint8Array): Promise<number> {
    const h = this.hdr;
    h.set(fields.srcCid ?? this.cid, fields.srcPort ?? 0, fields.dstCid ?? VSOCK_HOST_CID, fields.dstPort ?? 0, fields.op ?? 0, fields.len ?? payload.length, fields.flags ?? 0, fields.bufAlloc ?? 65536, fields.fwdCnt ?? 0);
    h.type = fields.type ?? VsockType.STREAM;
    const bytes = raw ?? Buffer.concat([h.encode(this.ctx.littleEndian), payload]);
    const addr = this.ctx.dma.alloc(Math.max(1, bytes.length), 16);
    this.ctx.memory.write(addr, bytes);
    return this.tx.submit([{ addr, len: bytes.length }]).finally(() => this.ctx.dma.free(addr));
  }

  /** The next packet from the device (waits for it). */
  async next(): Promise<RawPacket> {
    while (this.packets.length === 0) await new Promise<void>((r) => this.waiters.push(r));
    return this.packets.shift()!;
  }

  private post(addr: number): void {
    const len = VsockHdr.SIZE + this.rxSize;
    this.rx.submit([], [{ addr, len }]).then(
      (used) => {
        const b = new Uint8Array(Math.min(used, len));
        this.ctx.memory.read(addr, b);
        const h = new VsockHeader();
        h.bytes.set(b.subarray(0, VsockHdr.SIZE));
        h.decode(this.ctx.littleEndian);
        this.packets.push({
          srcCid: h.srcCid,
          dstCid: h.dstCid,
          srcPort: h.srcPort,
          dstPort: h.dstPort,
          len: h.len,
          type: h.type,
          op: h.op,
          flags: h.flags,
          bufAlloc: h.bufAlloc,
          fwdCnt: h.fwdCnt,
          payload: b.slice(VsockHdr.SIZE),
          used,
        });
        const w = this.waiters;
        this.waiters = [];
        for (const f of w) f();
        this.post(addr);
      },
      () => undefined,
    );
  }
}
