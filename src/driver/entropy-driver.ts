/**
 * 5.4 Entropy Device, driver side: device-writable buffers only (driver/entropy/1), and the
 * used length says how many bytes are random (driver/entropy/2).
 */
import { ErrorCode, VirtioError } from '../errors.js';
import { ENTROPY_REQUESTQ } from '../spec/entropy.js';
import type { DriverContext } from './types.js';

export interface EntropyDriverOptions {
  /** Bytes asked per buffer. Default 4096. */
  chunk?: number;
}

interface Waiter {
  addr: number;
  len: number;
  resolve: (b: Uint8Array) => void;
  reject: (e: unknown) => void;
}

export class EntropyDriver {
  private readonly ctx: DriverContext;
  private readonly chunk: number;
  private readonly pending = new Map<number, Waiter>();
  private readonly queued: Waiter[] = [];
  private nextToken = 1;

  constructor(ctx: DriverContext, opts: EntropyDriverOptions = {}) {
    this.ctx = ctx;
    this.chunk = opts.chunk ?? 4096;
    if (!Number.isInteger(this.chunk) || this.chunk < 1) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `bad chunk ${this.chunk}`);
    ctx.onUsed(ENTROPY_REQUESTQ, () => this.onUsed());
  }

  /** Resolves with exactly `n` random bytes (as many buffers as it takes). */
  async read(n: number): Promise<Uint8Array> {
    if (!Number.isSafeInteger(n) || n < 0) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `bad length ${n}`);
    const out = new Uint8Array(n);
    let got = 0;
    // Bounded: a device places at least one byte per buffer (device/entropy/1); one that
    // returns nothing twice in a row for every buffer is reported.
    let empty = 0;
    while (got < n) {
      const want = Math.min(this.chunk, n - got);
      const parts = await Promise.all(Array.from({ length: Math.min(8, Math.ceil((n - got) / this.chunk)) }, () => this.request(want)));
      let progress = false;
      for (const p of parts) {
        const take = Math.min(p.length, n - got);
        out.set(p.subarray(0, take), got);
        got += take;
        if (take > 0) progress = true;
      }
      empty = progress ? 0 : empty + 1;
      if (empty >= 2) throw new VirtioError(ErrorCode.REQUEST_FAILED, 'entropy device returned no bytes (device/entropy/1)');
    }
    return out;
  }

  /** One buffer of `len` device-writable bytes; resolves with the bytes the device wrote. */
  private request(len: number): Promise<Uint8Array> {
    const addr = this.ctx.dma.alloc(len, 16);
    return new Promise((resolve, reject) => {
      const w: Waiter = { addr, len, resolve, reject };
      if (this.queued.length > 0 || !this.add(w)) this.queued.push(w);
    });
  }

  private add(w: Waiter): boolean {
    const token = this.nextToken++;
    const q = this.ctx.queue(ENTROPY_REQUESTQ);
    if (!q.add([], [{ addr: w.addr, len: w.len }], token)) return false;
    this.pending.set(token, w);
    this.ctx.kick(ENTROPY_REQUESTQ);
    return true;
  }

  private onUsed(): void {
    const q = this.ctx.queue(ENTROPY_REQUESTQ);
    for (let pass = 0; ; pass++) {
      const token = q.takeUsed();
      if (token === undefined) {
        // Publishes used_event (EVENT_IDX); true when more arrived meanwhile.
        if (pass > q.size || !q.enableInterrupts()) break;
        continue;
      }
      const w = this.pending.get(token);
      if (!w) continue;
      this.pending.delete(token);
      // driver/entropy/2: only the bytes the device says it wrote are random.
      const n = Math.min(q.lastUsedLen, w.len);
      const b = new Uint8Array(n);
      try {
        if (n > 0) this.ctx.memory.read(w.addr, b);
        w.resolve(b);
      } catch (e) {
        w.reject(e);
      } finally {
        this.ctx.dma.free(w.addr);
      }
    }
    while (this.queued.length > 0 && this.add(this.queued[0]!)) this.queued.shift();
  }
}
