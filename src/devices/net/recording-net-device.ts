/**
 * A test device that watches a driver: it wraps a NetDevice and records what the driver does
 * through the transport (configuration reads and writes, features accepted, queue notifications,
 * every chain the device pops: the readable bytes and the writable room), and can alter what
 * the driver sees (configuration bytes, the receive header of a frame before it is used, the
 * features offered). Driver-side rules (driver/net/*) are proven by observing the driver here,
 * not by a device refusing it. Tests only: not exported from the package.
 */
import type { DeviceContext, VirtioDevice } from '../../device/types.js';
import { ChainCursor, type DescriptorChain } from '../../queue/chain.js';
import type { DeviceQueue } from '../../queue/types.js';
import type { NetDevice } from './net-device.js';

/** One chain the device popped: its queue, the driver-written bytes and the device-writable room. */
export interface RecordedChain {
  readonly queue: number;
  readonly readable: Uint8Array;
  readonly writableBytes: number;
}

/** What happened, in order. */
export type RecordedEvent =
  | { kind: 'notify'; queue: number }
  | { kind: 'pop'; chain: RecordedChain }
  | { kind: 'config-read'; offset: number; length: number }
  | { kind: 'config-write'; offset: number; bytes: Uint8Array }
  | { kind: 'config-change' };

export class RecordingNetDevice implements VirtioDevice {
  readonly events: RecordedEvent[] = [];
  /** The features the driver accepted (at activation). */
  negotiated = 0n;
  /** Bits added to and removed from what the inner device offers. */
  offerAdd = 0n;
  offerRemove = 0n;
  /** Rewrites configuration bytes the driver reads (offset of dst[0] in the config space). */
  configPatch: ((offset: number, dst: Uint8Array) => void) | null = null;
  /** Rewrites the transmit header (in guest memory) of each chain before the device reads it. */
  txHeaderPatch: ((hdr: Uint8Array) => void) | null = null;
  /** Rewrites the receive header (hdr bytes in guest memory) of each frame before it is used. */
  rxHeaderPatch: ((hdr: Uint8Array) => void) | null = null;
  /** Queues the device is told do not exist (as if the driver had not enabled them). */
  readonly hiddenQueues = new Set<number>();
  private ctx: DeviceContext | null = null;
  private readonly proxies = new WeakMap<DeviceQueue, DeviceQueue>();
  private readonly reader = new ChainCursor(false);
  private readonly hdrCursor = new ChainCursor(true);

  constructor(readonly inner: NetDevice) {}

  get deviceId(): number {
    return this.inner.deviceId;
  }
  get offeredFeatures(): bigint {
    return (this.inner.offeredFeatures | this.offerAdd) & ~this.offerRemove;
  }
  get queueMaxSizes(): readonly number[] {
    return this.inner.queueMaxSizes;
  }
  get configSize(): number {
    return this.inner.configSize;
  }

  /** Chains popped from `queue`, in order. */
  chains(queue: number): RecordedChain[] {
    const out: RecordedChain[] = [];
    for (const e of this.events) if (e.kind === 'pop' && e.chain.queue === queue) out.push(e.chain);
    return out;
  }
  get configWrites(): { offset: number; bytes: Uint8Array }[] {
    return this.events.flatMap((e) => (e.kind === 'config-write' ? [{ offset: e.offset, bytes: e.bytes }] : []));
  }

  /** Sends a configuration change notification to the driver (the inner device changed nothing). */
  notifyConfigChange(): void {
    this.events.push({ kind: 'config-change' });
    this.ctx?.notifyConfigChange();
  }

  readConfig(offset: number, dst: Uint8Array, features: bigint, littleEndian: boolean): void {
    this.events.push({ kind: 'config-read', offset, length: dst.length });
    this.inner.readConfig(offset, dst, features, littleEndian);
    this.configPatch?.(offset, dst);
  }
  writeConfig(offset: number, src: Uint8Array): void {
    this.events.push({ kind: 'config-write', offset, bytes: Uint8Array.from(src) });
    this.inner.writeConfig();
  }
  validateFeatures(accepted: bigint): string | null {
    return this.inner.validateFeatures(accepted);
  }
  activate(ctx: DeviceContext): void {
    this.ctx = ctx;
    this.negotiated = ctx.features;
    const queue = (i: number): DeviceQueue | null => {
      const q = this.hiddenQueues.has(i) ? null : ctx.queue(i);
      return q === null ? null : this.proxy(q);
    };
    const wrapped: DeviceContext = {
      get memory() {
        return ctx.memory;
      },
      get features() {
        return ctx.features;
      },
      get littleEndian() {
        return ctx.littleEndian;
      },
      queue,
      notifyUsed: (i) => ctx.notifyUsed(i),
      notifyConfigChange: () => ctx.notifyConfigChange(),
      needsReset: (reason, cause) => ctx.needsReset(reason, cause),
    };
    this.inner.activate(wrapped);
  }
  onQueueNotify(index: number): void {
    this.events.push({ kind: 'notify', queue: index });
    this.inner.onQueueNotify(index);
  }
  reset(): void {
    this.ctx = null;
    this.inner.reset();
  }
  resetQueue(index: number): void {
    this.inner.resetQueue(index);
  }

  /** The same queue, recording each pop and patching receive headers before they are used. */
  private proxy(q: DeviceQueue): DeviceQueue {
    const known = this.proxies.get(q);
    if (known !== undefined) return known;
    const data = q.index < this.inner.queueMaxSizes.length - 1;
    const receive = data && (q.index & 1) === 0;
    const transmit = data && (q.index & 1) === 1;
    const p = new Proxy(q, {
      get: (target, prop) => {
        // Every chain goes through `pop`, where it is recorded: no direct batches (direct-batch.ts).
        if (prop === 'popDirect' || prop === 'pushDirect') return undefined;
        if (prop === 'pop') {
          return (c: DescriptorChain): boolean => {
            if (!target.pop(c)) return false;
            const readable = new Uint8Array(c.readableBytes);
            this.reader.reset(c).read(readable, 0, readable.length);
            this.events.push({ kind: 'pop', chain: { queue: target.index, readable, writableBytes: c.writableBytes } });
            const patch = this.txHeaderPatch;
            if (transmit && patch !== null) this.reader.reset(c).spans(Math.min(c.readableBytes, 20), (bytes, off, n) => patch(bytes.subarray(off, off + n)));
            return true;
          };
        }
        if ((prop === 'pushDeferred' || prop === 'push') && receive) {
          return (c: DescriptorChain, written: number): void => {
            const patch = this.rxHeaderPatch;
            if (patch !== null && written > 0) this.hdrCursor.reset(c).spans(Math.min(written, 20), (bytes, off, n) => patch(bytes.subarray(off, off + n)));
            if (prop === 'push') target.push(c, written);
            else target.pushDeferred(c, written);
          };
        }
        const v: unknown = Reflect.get(target, prop, target);
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    this.proxies.set(q, p);
    return p;
  }
}
