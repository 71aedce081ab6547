/**
 * Test support for the blk device tests: a raw driver that sends hand-built chains, request
 * builders and a device + test pair set-up. Not part of the public API.
 */
import assert from 'node:assert/strict';
import type { DriverContext } from '../../driver/types.js';
import type { BlkBackend } from './backend.js';
import { BlkDevice, type BlkDeviceOptions } from './blk-device.js';
import { MemoryBackend } from './memory-backend.js';
import { createTestPair, type TestPairOptions } from './test-pair.js';

export const SECTORS = 256;

export function pattern(len: number, seed: number): Uint8Array {
  const b = new Uint8Array(len);
  for (let i = 0; i < len; i++) b[i] = (i * 7 + seed * 13 + (i >> 8)) & 0xff;
  return b;
}

export function header(type: number, sector: number, le = true): Uint8Array {
  const b = new Uint8Array(16);
  const v = new DataView(b.buffer);
  v.setUint32(0, type, le);
  if (le) {
    v.setUint32(8, sector % 2 ** 32, true);
    v.setUint32(12, Math.floor(sector / 2 ** 32), true);
  } else v.setBigUint64(8, BigInt(sector), false);
  return b;
}

export function segment(sector: number, num: number, flags = 0): Uint8Array {
  const b = new Uint8Array(16);
  const v = new DataView(b.buffer);
  v.setBigUint64(0, BigInt(sector), true);
  v.setUint32(8, num, true);
  v.setUint32(12, flags, true);
  return b;
}

/** Sends hand-built chains: readable buffers as given, writable ones of given lengths. */
export class RawDriver {
  private token = 1;
  private readonly waiting = new Map<number, (len: number) => void>();
  constructor(
    private readonly ctx: DriverContext,
    private readonly qi = 0,
  ) {
    ctx.onUsed(qi, () => {
      const q = ctx.queue(qi);
      do {
        for (let t = q.takeUsed(); t !== undefined; t = q.takeUsed()) this.waiting.get(t)?.(q.lastUsedLen);
      } while (q.enableInterrupts());
    });
  }

  async send(outs: readonly Uint8Array[], inLens: readonly number[]): Promise<{ usedLen: number; ins: Uint8Array[] }> {
    const { ctx } = this;
    const outSegs = outs.map((b) => {
      const addr = ctx.dma.alloc(Math.max(b.length, 1));
      ctx.memory.write(addr, b);
      return { addr, len: b.length };
    });
    const inSegs = inLens.map((len) => {
      const addr = ctx.dma.alloc(Math.max(len, 1));
      ctx.memory.fill(addr, Math.max(len, 1), 0xee);
      return { addr, len };
    });
    const t = this.token++;
    const done = new Promise<number>((resolve) => this.waiting.set(t, resolve));
    assert.ok(ctx.queue(this.qi).add(outSegs, inSegs, t));
    ctx.kick(this.qi);
    const usedLen = await done;
    const ins = inSegs.map((s) => {
      const b = new Uint8Array(s.len);
      ctx.memory.read(s.addr, b);
      return b;
    });
    for (const s of [...outSegs, ...inSegs]) ctx.dma.free(s.addr);
    return { usedLen, ins };
  }

  /** A request with its status as the last writable byte; returns the status. */
  async status(outs: readonly Uint8Array[], inLens: readonly number[]): Promise<number> {
    const r = await this.send(outs, inLens);
    const last = r.ins[r.ins.length - 1]!;
    return last[last.length - 1]!;
  }
}

export function setup(opts: BlkDeviceOptions = {}, pairOpts: TestPairOptions = {}, backend: BlkBackend = new MemoryBackend(SECTORS * 512)) {
  const device = new BlkDevice(backend, opts);
  const pair = createTestPair(device, pairOpts);
  return { device, pair, backend };
}

export async function until(cond: () => boolean): Promise<void> {
  // Bounded: macrotask turns let promise chains and microtask notifications settle.
  for (let i = 0; i < 1000 && !cond(); i++) await new Promise<void>((r) => setImmediate(r));
  assert.ok(cond(), 'condition not reached');
}
