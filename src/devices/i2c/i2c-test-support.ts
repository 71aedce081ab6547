/**
 * Test support for virtio-i2c: a raw driver that sends hand-built requests (any header, any
 * buffer layout) and returns what the device did with them.
 */
import assert from 'node:assert/strict';
import type { DriverContext } from '../../driver/types.js';
import type { Segment } from '../../queue/types.js';
import { I2C_OUT_HDR_SIZE, encodeI2cAddress } from '../../spec/i2c.js';

/** One raw request: header fields (or raw header bytes), write data, read length, status room. */
export interface RawI2cRequest {
  /** `addr` as sent (use encodeI2cAddress), or a 7-bit address through `address`. */
  readonly addr?: number;
  readonly address?: number;
  readonly flags?: number;
  /** Readable bytes after the header (a write request's buffer). */
  readonly write?: Uint8Array;
  /** Writable bytes before the status (a read request's buffer). */
  readonly read?: number;
  /** Writable status bytes (default 1). */
  readonly statusBytes?: number;
  /** Replace the header by these readable bytes (short or long headers). */
  readonly rawHeader?: Uint8Array;
  /** An extra writable segment at an unmapped address. */
  readonly unmapped?: boolean;
}

export interface RawI2cReply {
  readonly usedLen: number;
  /** The status byte (last writable byte), or -1 without one. */
  readonly status: number;
  /** The read buffer afterwards. */
  readonly data: Uint8Array;
  /** The readable bytes (header, write data) afterwards. */
  readonly readable: Uint8Array;
}

const UNMAPPED = 0x7000_0000_0000;

/** Builds and sends raw requests on queue 0 and waits for each. */
export class RawI2c {
  private token = 1;
  private readonly waiting = new Map<number, (len: number) => void>();

  constructor(private readonly ctx: DriverContext) {
    ctx.onUsed(0, () => {
      const q = ctx.queue(0);
      do {
        for (let t = q.takeUsed(); t !== undefined; t = q.takeUsed()) this.waiting.get(t)?.(q.lastUsedLen);
      } while (q.enableInterrupts());
    });
  }

  header(r: RawI2cRequest): Uint8Array {
    if (r.rawHeader) return r.rawHeader;
    const h = new DataView(new ArrayBuffer(I2C_OUT_HDR_SIZE));
    const le = this.ctx.littleEndian;
    h.setUint16(0, r.addr ?? encodeI2cAddress(r.address ?? 0), le);
    h.setUint32(4, r.flags ?? 0, le);
    return new Uint8Array(h.buffer);
  }

  /** Sends every request in one kick (in ring order) and resolves with the replies in order. */
  async send(reqs: readonly RawI2cRequest[]): Promise<RawI2cReply[]> {
    const { ctx } = this;
    const parts: { t: number; readAddr: number; readLen: number; statusAddr: number; statusLen: number; rAddr: number; rLen: number }[] = [];
    const dones: Promise<number>[] = [];
    for (const r of reqs) {
      const hdr = this.header(r);
      const w = r.write ?? new Uint8Array(0);
      const rLen = hdr.length + w.length;
      const rAddr = ctx.dma.alloc(Math.max(1, rLen));
      ctx.memory.write(rAddr, hdr);
      if (w.length > 0) ctx.memory.write(rAddr + hdr.length, w);
      const readLen = r.read ?? 0;
      const readAddr = ctx.dma.alloc(Math.max(1, readLen));
      ctx.memory.fill(readAddr, Math.max(1, readLen), 0xee);
      const statusLen = r.statusBytes ?? 1;
      const statusAddr = ctx.dma.alloc(Math.max(1, statusLen));
      ctx.memory.fill(statusAddr, Math.max(1, statusLen), 0xee);
      const out: Segment[] = rLen > 0 ? [{ addr: rAddr, len: hdr.length }] : [];
      if (w.length > 0) out.push({ addr: rAddr + hdr.length, len: w.length });
      const inn: Segment[] = [];
      if (readLen > 0) inn.push({ addr: readAddr, len: readLen });
      if (r.unmapped) inn.push({ addr: UNMAPPED, len: 4 });
      if (statusLen > 0) inn.push({ addr: statusAddr, len: statusLen });
      const t = this.token++;
      dones.push(new Promise<number>((res) => this.waiting.set(t, res)));
      assert.ok(ctx.queue(0).add(out, inn, t), 'room in the ring');
      parts.push({ t, readAddr, readLen, statusAddr, statusLen, rAddr, rLen });
    }
    ctx.kick(0);
    const lens = await Promise.all(dones);
    return parts.map((p, i) => {
      const data = new Uint8Array(p.readLen);
      ctx.memory.read(p.readAddr, data);
      const readable = new Uint8Array(p.rLen);
      ctx.memory.read(p.rAddr, readable);
      const status = p.statusLen > 0 ? ctx.memory.readU8(p.statusAddr + p.statusLen - 1) : -1;
      for (const a of [p.rAddr, p.readAddr, p.statusAddr]) ctx.dma.free(a);
      this.waiting.delete(p.t);
      return { usedLen: lens[i]!, status, data, readable };
    });
  }

  async one(r: RawI2cRequest): Promise<RawI2cReply> {
    return (await this.send([r]))[0]!;
  }
}
