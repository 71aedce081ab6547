/** Test helpers for the virtio-rtc tests: a settable time source, manual timers, raw requests. */
import type { DriverContext } from '../../driver/types.js';
import { ErrorCode, VirtioError } from '../../errors.js';
import type { Segment } from '../../queue/types.js';
import { rawQueue } from '../balloon/balloon-test-helpers.js';
import type { RtcTimers } from './rtc-alarms.js';
import type { RtcTimeSource } from './rtc-clocks.js';

/** A clock the test moves by hand. */
export class FakeTime implements RtcTimeSource {
  sec = 1_700_000_000;
  ns = 0;
  mono = 5_000_000_000;
  reads = 0;
  fail = false;
  realtime(out: Float64Array): void {
    if (this.fail) throw new VirtioError(ErrorCode.BACKEND_IO, 'time source failed');
    this.reads++;
    out[0] = this.sec;
    out[1] = this.ns;
  }
  monotonicNs(): number {
    if (this.fail) throw new VirtioError(ErrorCode.BACKEND_IO, 'time source failed');
    this.reads++;
    return this.mono;
  }
  /** Moves both clocks by `seconds` (may be fractional). */
  advance(seconds: number): void {
    const total = this.sec * 1e9 + this.ns + Math.round(seconds * 1e9);
    this.sec = Math.floor(total / 1e9);
    this.ns = total - this.sec * 1e9;
    this.mono += Math.round(seconds * 1e9);
  }
  /** POSIX time in ns as a bigint. */
  get utcNs(): bigint {
    return BigInt(this.sec) * 1_000_000_000n + BigInt(this.ns);
  }
}

/** Timers that fire only when the test says so. */
export class ManualTimers implements RtcTimers {
  readonly pending = new Set<{ fn: () => void; ms: number }>();
  set(fn: () => void, ms: number): unknown {
    const t = { fn, ms };
    this.pending.add(t);
    return t;
  }
  clear(h: unknown): void {
    this.pending.delete(h as { fn: () => void; ms: number });
  }
  /** Runs every pending timer once. */
  fireAll(): void {
    const due = [...this.pending];
    this.pending.clear();
    for (const t of due) t.fn();
  }
  get delays(): number[] {
    return [...this.pending].map((t) => t.ms);
  }
}

export interface RawRtcAnswer {
  readonly usedLen: number;
  /** Status byte (-1 when nothing was written). */
  readonly status: number;
  readonly bytes: Uint8Array;
}

/** Sends hand-built requests on the requestq: `request` bytes as given, `respLength` writable. */
export function rawRtc(ctx: DriverContext): (request: Uint8Array, respLength: number) => Promise<RawRtcAnswer> {
  const send = rawQueue(ctx, 0);
  return async (request, respLength) => {
    const outs: Segment[] = [];
    if (request.length > 0) {
      const addr = ctx.dma.alloc(request.length);
      ctx.memory.write(addr, request);
      outs.push({ addr, len: request.length });
    }
    const respAddr = ctx.dma.alloc(Math.max(respLength, 1));
    ctx.memory.fill(respAddr, Math.max(respLength, 1), 0xee);
    const usedLen = await send(outs, respLength > 0 ? [{ addr: respAddr, len: respLength }] : []);
    const bytes = ctx.memory.slice(respAddr, Math.max(respLength, 1)).slice(0, respLength);
    for (const s of outs) ctx.dma.free(s.addr);
    ctx.dma.free(respAddr);
    return { usedLen, status: usedLen > 0 ? bytes[0]! : -1, bytes };
  };
}

/** A request of `size` bytes: msg_type, then `fields` as [offset, width, value] little-endian. */
export function rtcRequest(type: number, size: number, fields: readonly [number, 1 | 2 | 8, number | bigint][] = [], le = true): Uint8Array {
  const b = new Uint8Array(size);
  const v = new DataView(b.buffer);
  v.setUint16(0, type, le);
  for (const [off, width, value] of fields) {
    if (width === 1) v.setUint8(off, Number(value));
    else if (width === 2) v.setUint16(off, Number(value), le);
    else v.setBigUint64(off, BigInt(value), le);
  }
  return b;
}
