/**
 * Test support for virtio-fs devices: a driver that hand-builds FUSE request chains on any queue
 * (Raw) and the request encoder it uses.
 */
import assert from 'node:assert/strict';
import type { DriverContext } from '../../driver/types.js';
import type { Segment } from '../../queue/types.js';
import { FuseOpcode } from '../../spec/fs.js';

/** Hand-built chains on any queue; resolves with the used length. */
export class Raw {
  private token = 1;
  private readonly waiting = new Map<number, (len: number) => void>();
  constructor(private readonly ctx: DriverContext) {
    for (let qi = 0; qi < ctx.numQueues; qi++) {
      ctx.onUsed(qi, () => {
        const q = ctx.queue(qi);
        do {
          for (let t = q.takeUsed(); t !== undefined; t = q.takeUsed()) this.waiting.get(t)?.(q.lastUsedLen);
        } while (q.enableInterrupts());
      });
    }
  }
  /** FUSE_INIT (7.31) on request queue 1. */
  async init(): Promise<void> {
    const a = Buffer.alloc(16);
    a.writeUInt32LE(7, 0);
    a.writeUInt32LE(31, 4);
    assert.equal(await this.add(1, fuseRequest(FuseOpcode.INIT, 0, a), [16 + 64]), 16 + 64);
  }

  /**
   * Adds a chain of several out buffers and in buffers of the given lengths; the in buffers'
   * addresses come back. `skew`: each buffer (outs, then ins) placed that many bytes past a
   * multiple of 4, with 4 bytes of its own allocation free on either side (a test's guard bytes),
   * for copies between differently aligned guest and device buffers.
   */
  addMany(qi: number, outs: readonly Uint8Array[], ins: readonly number[], opts: { kick?: boolean; skew?: readonly number[] } = {}): { done: Promise<number>; inAddrs: number[] } {
    const { ctx } = this;
    const place = (len: number, i: number): number => {
      const skew = opts.skew?.[i];
      return skew === undefined ? ctx.dma.alloc(len) : ctx.dma.alloc(len + skew + 8, 8) + 4 + skew;
    };
    const outSeg: Segment[] = outs.map((b, i) => {
      const addr = place(b.length, i);
      ctx.memory.write(addr, b);
      return { addr, len: b.length };
    });
    const insSeg: Segment[] = ins.map((len, i) => ({ addr: place(len, outs.length + i), len }));
    const t = this.token++;
    const done = new Promise<number>((r) => this.waiting.set(t, r));
    assert.ok(ctx.queue(qi).add(outSeg, insSeg, t));
    if (opts.kick !== false) ctx.kick(qi);
    return { done, inAddrs: insSeg.map((x) => x.addr) };
  }

  /** Adds a chain; `kick` false leaves the device unaware until someone kicks the queue. */
  add(qi: number, out: Uint8Array, ins: readonly number[], opts: { kick?: boolean; bogusIn?: boolean } = {}): Promise<number> {
    const { ctx } = this;
    const a = ctx.dma.alloc(Math.max(1, out.length));
    ctx.memory.write(a, out);
    const insSeg: Segment[] = ins.map((len) => ({ addr: ctx.dma.alloc(len), len }));
    if (opts.bogusIn) insSeg.push({ addr: 0x7000_0000_0000, len: 64 });
    const t = this.token++;
    const done = new Promise<number>((r) => this.waiting.set(t, r));
    assert.ok(ctx.queue(qi).add([{ addr: a, len: out.length }], insSeg, t));
    if (opts.kick !== false) ctx.kick(qi);
    return done;
  }
}

/** A FUSE request (unique 7, little-endian) with `args` after the 40-byte header. */
export function fuseRequest(opcode: number, nodeid: number, args: Uint8Array): Uint8Array {
  const b = Buffer.alloc(40 + args.length);
  b.writeUInt32LE(b.length, 0);
  b.writeUInt32LE(opcode, 4);
  b.writeBigUInt64LE(7n, 8);
  b.writeBigUInt64LE(BigInt(nodeid), 16);
  b.set(args, 40);
  return b;
}
