/** Test helpers for the balloon tests: hand-built chains and buffers over a loopback. */
import assert from 'node:assert/strict';
import type { DriverContext } from '../../driver/types.js';
import type { DriverQueue, Segment } from '../../queue/types.js';
import type { Loopback } from '../../testing/loopback.js';

/** Hand-built chains on one queue: each call adds one and resolves with its used length. */
export function rawQueue(ctx: DriverContext, index: number): (outs: readonly Segment[], ins?: readonly Segment[]) => Promise<number> {
  let token = 1;
  const waiting = new Map<number, (len: number) => void>();
  ctx.onUsed(index, () => {
    const q = ctx.queue(index);
    do {
      for (let t = q.takeUsed(); t !== undefined; t = q.takeUsed()) waiting.get(t)?.(q.lastUsedLen);
    } while (q.enableInterrupts());
  });
  return (outs, ins = []) => {
    const t = token++;
    const done = new Promise<number>((r) => waiting.set(t, r));
    assert.ok(ctx.queue(index).add(outs, ins, t));
    ctx.kick(index);
    return done;
  };
}

/** Writes `values` as 32-bit words (little-endian unless told) at a fresh buffer. */
export function wordsAt(lb: Pick<Loopback, 'dma' | 'memory'>, values: readonly number[], littleEndian = true): Segment {
  const len = values.length * 4;
  const addr = lb.dma.alloc(Math.max(len, 1));
  const b = new Uint8Array(len);
  values.forEach((v, i) => new DataView(b.buffer).setUint32(i * 4, v, littleEndian));
  lb.memory.write(addr, b);
  return { addr, len };
}

/** Resolves once `cond()` holds, polling every few ms; rejects after `ms`. */
export async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new assert.AssertionError({ message: `timed out waiting for ${what}` });
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** One buffer the driver added: its segments and the 32-bit words of its 4-byte output segments. */
export interface Added {
  readonly outs: Segment[];
  readonly ins: Segment[];
  readonly words: number[];
}

/** A context whose queue `index` records every buffer the driver adds (and the 32-bit words it reads). */
export function spyContext(ctx: DriverContext, index: number, seen: Added[]): DriverContext {
  const spyQueue = (q: DriverQueue<number>): DriverQueue<number> =>
    new Proxy(q, {
      get(target, prop) {
        if (prop === 'add') {
          return (outs: readonly Segment[], ins: readonly Segment[], token: number) => {
            const words = outs
              .filter((s) => s.len === 4)
              .map((s) => {
                const b = ctx.memory.slice(s.addr, 4);
                return new DataView(b.buffer, b.byteOffset, 4).getUint32(0, ctx.littleEndian);
              });
            seen.push({ outs: [...outs], ins: [...ins], words });
            return target.add(outs, ins, token);
          };
        }
        const v: unknown = Reflect.get(target, prop);
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
  return new Proxy(ctx, {
    get(target, prop) {
      if (prop === 'queue') return (i: number) => (i === index ? spyQueue(target.queue(i)) : target.queue(i));
      const v: unknown = Reflect.get(target, prop);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}
