/**
 * A request/response helper over one driver queue, for the minimal peer drivers (virtio-fs,
 * virtio-net): a request is device-readable bytes followed by a device-writable area; it resolves
 * with the bytes the device wrote (the used length). Buffers come from the DriverContext's DMA
 * allocator and are freed on completion. Requests beyond the ring's room wait in order.
 */
import { ErrorCode, VirtioError } from '../../errors.js';
import type { DriverContext } from '../../driver/types.js';
import type { Segment } from '../../queue/types.js';

export interface Completion {
  /** The device-writable area, `usedLen` bytes of it as written (copied out of guest memory). */
  readonly data: Uint8Array;
  readonly usedLen: number;
}

interface Waiter {
  out: Uint8Array;
  inLen: number;
  addr: number;
  resolve(c: Completion): void;
  reject(e: unknown): void;
}

export class RequestQueue {
  private readonly pending = new Map<number, Waiter>();
  private readonly queued: Waiter[] = [];
  private nextToken = 1;

  constructor(
    private readonly ctx: DriverContext,
    readonly index: number,
  ) {
    ctx.onUsed(index, () => this.onUsed());
  }

  /** Requests not yet answered. */
  get inFlight(): number {
    return this.pending.size + this.queued.length;
  }

  /** Sends `out` (device-readable) with `inLen` device-writable bytes (0: none). */
  submit(out: Uint8Array, inLen: number): Promise<Completion> {
    if (out.length === 0 && inLen === 0) return Promise.reject(new VirtioError(ErrorCode.INVALID_ARGUMENT, 'empty request'));
    const addr = this.ctx.dma.alloc(out.length + inLen, 16);
    if (out.length > 0) this.ctx.memory.write(addr, out);
    return new Promise((resolve, reject) => {
      const w: Waiter = { out, inLen, addr, resolve, reject };
      if (this.queued.length > 0 || !this.add(w)) this.queued.push(w);
    });
  }

  private add(w: Waiter): boolean {
    const q = this.ctx.queue(this.index);
    const outs: Segment[] = w.out.length > 0 ? [{ addr: w.addr, len: w.out.length }] : [];
    const ins: Segment[] = w.inLen > 0 ? [{ addr: w.addr + w.out.length, len: w.inLen }] : [];
    const token = this.nextToken++;
    if (!q.add(outs, ins, token)) return false;
    this.pending.set(token, w);
    this.ctx.kick(this.index);
    return true;
  }

  /** Handles used buffers (also callable by a poller). */
  onUsed(): void {
    const q = this.ctx.queue(this.index);
    for (let pass = 0; ; pass++) {
      const token = q.takeUsed();
      if (token === undefined) {
        if (pass > q.size || !q.enableInterrupts()) break;
        continue;
      }
      const w = this.pending.get(token);
      if (!w) continue;
      this.pending.delete(token);
      const n = Math.min(q.lastUsedLen, w.inLen);
      try {
        const b = new Uint8Array(n);
        if (n > 0) this.ctx.memory.read(w.addr + w.out.length, b);
        w.resolve({ data: b, usedLen: q.lastUsedLen });
      } catch (e) {
        w.reject(e);
      } finally {
        this.ctx.dma.free(w.addr);
      }
    }
    while (this.queued.length > 0 && this.add(this.queued[0]!)) this.queued.shift();
  }
}
