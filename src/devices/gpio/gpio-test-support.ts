/** Test support for virtio-gpio: raw requestq messages and eventq buffers, built by hand. */
import assert from 'node:assert/strict';
import type { DriverContext } from '../../driver/types.js';
import type { Segment } from '../../queue/types.js';
import { GpioQueue } from '../../spec/gpio.js';

export interface RawGpioReply {
  readonly usedLen: number;
  /** The writable bytes afterwards (status, value...). */
  readonly response: Uint8Array;
}

/** Sends raw chains on either queue and resolves each when used. */
export class RawGpio {
  private token = 1;
  private readonly waiting = new Map<number, (len: number) => void>();

  constructor(private readonly ctx: DriverContext) {
    for (const qi of [GpioQueue.REQUESTQ, GpioQueue.EVENTQ]) {
      if (qi >= ctx.numQueues) continue;
      ctx.onUsed(qi, () => {
        const q = ctx.queue(qi);
        do {
          for (let t = q.takeUsed(); t !== undefined; t = q.takeUsed()) this.waiting.get(t)?.(q.lastUsedLen);
        } while (q.enableInterrupts());
      });
    }
  }

  /** A virtio_gpio_request (or any readable bytes) and a response of `respLen` writable bytes. */
  request(type: number, gpio: number, value: number, respLen = 2): Promise<RawGpioReply> {
    const b = new DataView(new ArrayBuffer(8));
    b.setUint16(0, type, this.ctx.littleEndian);
    b.setUint16(2, gpio, this.ctx.littleEndian);
    b.setUint32(4, value, this.ctx.littleEndian);
    return this.send(GpioQueue.REQUESTQ, new Uint8Array(b.buffer), respLen);
  }

  /** An eventq pair for `gpio`. */
  event(gpio: number, respLen = 1): Promise<RawGpioReply> {
    const b = new DataView(new ArrayBuffer(2));
    b.setUint16(0, gpio, this.ctx.littleEndian);
    return this.send(GpioQueue.EVENTQ, new Uint8Array(b.buffer), respLen);
  }

  /** Any readable bytes and `respLen` writable ones (filled with 0xee first) on queue `qi`. */
  send(qi: number, readable: Uint8Array, respLen: number): Promise<RawGpioReply> {
    const { ctx } = this;
    const rAddr = ctx.dma.alloc(Math.max(1, readable.length));
    ctx.memory.write(rAddr, readable);
    const wAddr = ctx.dma.alloc(Math.max(1, respLen));
    ctx.memory.fill(wAddr, Math.max(1, respLen), 0xee);
    const out: Segment[] = readable.length > 0 ? [{ addr: rAddr, len: readable.length }] : [];
    const inn: Segment[] = respLen > 0 ? [{ addr: wAddr, len: respLen }] : [];
    const t = this.token++;
    const done = new Promise<number>((r) => this.waiting.set(t, r));
    assert.ok(ctx.queue(qi).add(out, inn, t), 'room in the ring');
    ctx.kick(qi);
    return done.then((usedLen) => {
      const response = new Uint8Array(respLen);
      ctx.memory.read(wAddr, response);
      ctx.dma.free(rAddr);
      ctx.dma.free(wAddr);
      this.waiting.delete(t);
      return { usedLen, response };
    });
  }
}

/** Resolves after pending microtasks and one macrotask turn (the pair delivers notifications as microtasks). */
export function settle(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}
