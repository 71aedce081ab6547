/**
 * The shared-memory channel between a driver thread and a device running in a worker_thread.
 * Everything crosses through one SharedArrayBuffer; Atomics.wait / Atomics.notify are the
 * notifications in both directions, as an eventfd pair would be between processes:
 *
 * - register accesses (status, features, config, queue set-up) are synchronous calls: the
 *   driver writes a request, bumps REQ and WAKE, and blocks in Atomics.wait on RESP (bounded),
 *   like a trapped MMIO access;
 * - available buffer notifications bump a per-queue kick counter and WAKE (no reply);
 * - used buffer and configuration change notifications bump per-queue / config counters and
 *   IRQ; the driver side waits on IRQ with Atomics.waitAsync.
 *
 * Counters only grow, and every waiter compares against the value it last saw, so a
 * notification raised between a check and a wait is never lost.
 */
import { ErrorCode, VirtioError } from '../../errors.js';

/** Int32 slots of the control block. */
export const Ctl = {
  /** Bumped by the driver side for every request or kick; the device worker waits on it. */
  WAKE: 0,
  REQ: 1,
  RESP: 2,
  /** Bumped by the device side for every interrupt; the driver side waits on it. */
  IRQ: 3,
  STOP: 4,
  OP: 5,
  /** 0: ok; 1: the call threw (payload holds `code\nmessage`). */
  STATUS: 6,
  CONFIG_IRQ: 7,
  LEN: 8,
  /** Set by the worker once it has left its loop. */
  STOPPED: 9,
} as const;

export const Op = {
  GET_STATUS: 1,
  SET_STATUS: 2,
  GET_FEATURES: 3,
  SET_FEATURES: 4,
  GENERATION: 5,
  READ_CONFIG: 6,
  WRITE_CONFIG: 7,
  QUEUE_MAX: 8,
  SETUP_QUEUE: 9,
  RESET_QUEUE: 10,
  /** The error behind DEVICE_NEEDS_RESET: results[0] 1 when there is one, text in the payload. */
  DEVICE_ERROR: 11,
} as const;

const CTL_WORDS = 64;
const ARGS = 8;
const RESULTS = 4;
/** Largest config access in one call (device config spaces are far smaller). */
export const PAYLOAD_BYTES = 4096;

/** Typed views of the channel buffer; built the same way on both sides. */
export class WorkerChannel {
  /** Control words: the request, its state and the wake-up counters (Atomics). */
  readonly ctl: Int32Array;
  /** The request's numeric arguments. */
  readonly args: Float64Array;
  /** The reply's numeric results. */
  readonly results: Float64Array;
  /** Bytes of a config read or write. */
  readonly payload: Uint8Array;
  /** Per queue: available buffer notifications sent (driver to device). */
  readonly kicks: Int32Array;
  /** Per queue: the NOTIFICATION_DATA value of the last kick. */
  readonly notifyData: Uint32Array;
  /** Per queue: used buffer notifications sent (device to driver). */
  readonly irqUsed: Int32Array;

  constructor(
    /** The shared buffer every view is over. */
    readonly buffer: SharedArrayBuffer,
    /** Queues the channel can carry. */
    readonly maxQueues: number,
  ) {
    let off = 0;
    this.ctl = new Int32Array(buffer, off, CTL_WORDS);
    off += CTL_WORDS * 4;
    this.args = new Float64Array(buffer, off, ARGS);
    off += ARGS * 8;
    this.results = new Float64Array(buffer, off, RESULTS);
    off += RESULTS * 8;
    this.payload = new Uint8Array(buffer, off, PAYLOAD_BYTES);
    off += PAYLOAD_BYTES;
    this.kicks = new Int32Array(buffer, off, maxQueues);
    off += maxQueues * 4;
    this.notifyData = new Uint32Array(buffer, off, maxQueues);
    off += maxQueues * 4;
    this.irqUsed = new Int32Array(buffer, off, maxQueues);
  }

  static bytesFor(maxQueues: number): number {
    return CTL_WORDS * 4 + ARGS * 8 + RESULTS * 8 + PAYLOAD_BYTES + maxQueues * 12;
  }

  static create(maxQueues: number): WorkerChannel {
    return new WorkerChannel(new SharedArrayBuffer(WorkerChannel.bytesFor(maxQueues)), maxQueues);
  }

  /** Wakes the device worker (after a request or a kick). */
  wakeDevice(): void {
    Atomics.add(this.ctl, Ctl.WAKE, 1);
    Atomics.notify(this.ctl, Ctl.WAKE);
  }

  /** Wakes the driver side (after an interrupt). */
  wakeDriver(): void {
    Atomics.add(this.ctl, Ctl.IRQ, 1);
    Atomics.notify(this.ctl, Ctl.IRQ);
  }
}

/** A 128-bit feature set as four u32 words in `args[at..at+3]`. */
export function putFeatures(a: Float64Array, at: number, f: bigint): void {
  for (let i = 0; i < 4; i++) a[at + i] = Number((f >> BigInt(32 * i)) & 0xffff_ffffn);
}

export function getFeatures(a: Float64Array, at: number): bigint {
  let f = 0n;
  for (let i = 3; i >= 0; i--) f = (f << 32n) | BigInt((a[at + i] ?? 0) >>> 0);
  return f;
}

const KNOWN_CODES = new Set<string>(Object.values(ErrorCode));

/** Writes a thrown value as `code\nmessage` into the payload; returns its length. */
export function encodeError(payload: Uint8Array, e: unknown): number {
  const code = e instanceof VirtioError ? e.code : ErrorCode.INVALID_ARGUMENT;
  const msg = e instanceof Error ? e.message : String(e);
  const r = new TextEncoder().encodeInto(`${code}\n${msg}`, payload);
  return r.written;
}

/**
 * The core's DEVICE_NEEDS_RESET error (reason and the device's own message) as text in the
 * payload; returns its length. The error object cannot cross threads, its messages can.
 */
export function encodeDeviceError(payload: Uint8Array, e: VirtioError): number {
  const cause = e.cause === undefined ? '' : e.cause instanceof Error ? e.cause.message : String(e.cause);
  return new TextEncoder().encodeInto(`${e.message}\n${cause}`, payload).written;
}

/** The driver side of `encodeDeviceError`: the device's message becomes the cause. */
export function decodeDeviceError(payload: Uint8Array, len: number): VirtioError {
  const text = new TextDecoder().decode(payload.slice(0, Math.min(len, payload.length)));
  const nl = text.indexOf('\n');
  const reason = nl >= 0 ? text.slice(0, nl) : text;
  const cause = nl >= 0 ? text.slice(nl + 1) : '';
  return new VirtioError(ErrorCode.DEVICE_NEEDS_RESET, `device worker: ${reason}`, cause === '' ? undefined : { cause: new VirtioError(ErrorCode.DEVICE_ERROR, cause) });
}

export function decodeError(payload: Uint8Array, len: number): VirtioError {
  const text = new TextDecoder().decode(payload.slice(0, Math.min(len, payload.length)));
  const nl = text.indexOf('\n');
  const code = nl > 0 ? text.slice(0, nl) : '';
  const msg = nl > 0 ? text.slice(nl + 1) : text;
  return new VirtioError(KNOWN_CODES.has(code) ? (code as ErrorCode) : ErrorCode.INVALID_ARGUMENT, `device worker: ${msg}`);
}

type WaitAsyncResult = { async: false; value: 'not-equal' | 'timed-out' } | { async: true; value: Promise<'ok' | 'timed-out'> };
type WaitAsyncFn = (a: Int32Array, index: number, value: number, timeoutMs?: number) => WaitAsyncResult;

/** Atomics.waitAsync (Node 16+; not in the ES2022 lib the project compiles against). */
export function waitAsync(a: Int32Array, index: number, value: number, timeoutMs?: number): WaitAsyncResult {
  const fn = (Atomics as unknown as { waitAsync?: WaitAsyncFn }).waitAsync;
  if (!fn) throw new VirtioError(ErrorCode.PLATFORM, 'Atomics.waitAsync is not available');
  return fn.call(Atomics, a, index, value, timeoutMs);
}
