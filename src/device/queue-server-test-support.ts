/**
 * The QueueServer tests' rig: a driver queue and a device queue on one GuestMemory, with a
 * hand-made DeviceContext that counts what the server asks of the transport (notifications,
 * DEVICE_NEEDS_RESET) and a queue wrapper counting ring calls.
 */
import assert from 'node:assert/strict';
import { createDriverQueue } from '../driver/create-queue.js';
import { GuestMemory } from '../memory/guest-memory.js';
import type { DescriptorChain } from '../queue/chain.js';
import { createDeviceQueue } from '../queue/create-queue.js';
import { packedRingLayout } from '../queue/packed-layout.js';
import { splitRingLayout } from '../queue/split-layout.js';
import type { DeviceQueue, DriverQueue, QueueConfig, QueueState } from '../queue/types.js';
import { F } from '../spec/features.js';
import { QueueServer, type QueueRequest, type QueueServerOptions, type RequestHandler } from './queue-server.js';
import type { DeviceContext } from './types.js';

export const DATA = 0x40000;

/** Delegates to a device queue and counts the calls the server makes. */
export class CountingQueue implements DeviceQueue {
  pushes = 0;
  deferred = 0;
  publishes = 0;
  pops = 0;
  constructor(readonly inner: DeviceQueue) {}
  get size(): number {
    return this.inner.size;
  }
  get index(): number {
    return this.inner.index;
  }
  get packed(): boolean {
    return this.inner.packed;
  }
  get eventIdx(): boolean {
    return this.inner.eventIdx === true;
  }
  get broken() {
    return this.inner.broken;
  }
  get memory() {
    return this.inner.memory;
  }
  pop(c: DescriptorChain): boolean {
    const got = this.inner.pop(c);
    if (got) this.pops++;
    return got;
  }
  push(c: DescriptorChain, w: number): void {
    this.pushes++;
    this.inner.push(c, w);
  }
  pushId(id: number, d: number, w: number): void {
    this.inner.pushId(id, d, w);
  }
  pushDeferred(c: DescriptorChain, w: number): void {
    this.deferred++;
    this.inner.pushDeferred(c, w);
  }
  publish(): void {
    this.publishes++;
    this.inner.publish();
  }
  /** IN_ORDER batches pushed: [last id, count, written]. */
  readonly batches: [number, number, number][] = [];
  get inOrderBatching(): boolean {
    return this.inner.inOrderBatching === true;
  }
  pushInOrderBatch(id: number, n: number, w: number): void {
    this.batches.push([id, n, w]);
    this.inner.pushInOrderBatch(id, n, w);
  }
  undoPop(n: number): void {
    this.inner.undoPop(n);
  }
  createChain(min?: number): DescriptorChain {
    return this.inner.createChain(min);
  }
  disableNotification(): void {
    this.inner.disableNotification();
  }
  enableNotification(): boolean {
    return this.inner.enableNotification();
  }
  needsNotification(): boolean {
    return this.inner.needsNotification();
  }
  hasAvailable(): boolean {
    return this.inner.hasAvailable();
  }
  availableCount(): number {
    return this.inner.availableCount?.() ?? -1;
  }
  state(): QueueState {
    return this.inner.state();
  }
  setState(s: QueueState): void {
    this.inner.setState(s);
  }
}

export class Rig {
  readonly mem = GuestMemory.allocate(1 << 20);
  drv!: DriverQueue<number>;
  dq: CountingQueue | null = null;
  cfg!: QueueConfig;
  notifications = 0;
  /** `notifyUsedNow` calls (a context whose driver runs alongside: `transport.notifyNow`). */
  nowNotifications = 0;
  readonly resets: string[] = [];
  readonly events: string[] = [];
  readonly ctx: DeviceContext;
  readonly server: QueueServer;
  private next = 0;

  constructor(
    readonly packed: boolean,
    handler: RequestHandler<QueueRequest>,
    opts: Partial<QueueServerOptions<QueueRequest>> = {},
    readonly size = 16,
    /** Ring features beyond VERSION_1 (and RING_PACKED), and whether the context has `notifyUsedNow`. */
    readonly transport: { readonly features?: bigint; readonly notifyNow?: boolean } = {},
  ) {
    this.enable(0x1000);
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const rig = this;
    this.ctx = {
      memory: this.mem,
      features: this.cfg.features,
      littleEndian: true,
      queue: (i) => (i === 0 ? rig.dq : null),
      notifyUsed: () => void rig.notifications++,
      notifyUsedNow: transport.notifyNow === true ? () => void rig.nowNotifications++ : undefined,
      notifyConfigChange: () => undefined,
      needsReset: (r) => void rig.resets.push(r),
    };
    this.server = new QueueServer({
      name: 'test',
      numQueues: 1,
      handler: () => handler,
      queueStarted: (i, q) => void rig.events.push(`started ${i} ${q === rig.dq ? 'current' : 'other'}`),
      queueStopped: (i) => void rig.events.push(`stopped ${i}`),
      ...opts,
    });
  }

  /** A (new) ring at `base`: the driver's and the device's queue objects. */
  enable(base: number): void {
    const l = this.packed ? packedRingLayout(this.size, base) : splitRingLayout(this.size, base);
    this.cfg = { size: this.size, descAddr: l.descAddr, driverAddr: l.driverAddr, deviceAddr: l.deviceAddr, features: F.VERSION_1 | (this.packed ? F.RING_PACKED : 0n) | (this.transport.features ?? 0n), index: 0 };
    this.drv = createDriverQueue<number>(this.mem, this.cfg);
    this.dq = new CountingQueue(createDeviceQueue(this.mem, this.cfg));
  }

  /** Offers `n` buffers (16 readable bytes, 32 writable); returns their tokens. */
  offer(n: number): number[] {
    const tokens: number[] = [];
    for (let i = 0; i < n; i++) {
      tokens.push(this.next);
      assert.ok(this.addOne());
    }
    this.drv.kick();
    return tokens;
  }

  /** Offers one buffer if the ring has room for it (a driver refilling as buffers come back). */
  tryOffer(): boolean {
    if (!this.addOne()) return false;
    this.drv.kick();
    return true;
  }

  private addOne(): boolean {
    const at = DATA + (this.next % this.size) * 0x100;
    if (!this.drv.add([{ addr: at, len: 16 }], [{ addr: at + 0x80, len: 32 }], this.next)) return false;
    this.next++;
    return true;
  }

  used(): [number, number][] {
    const out: [number, number][] = [];
    for (let t = this.drv.takeUsed(); t !== undefined; t = this.drv.takeUsed()) out.push([t, this.drv.lastUsedLen]);
    return out;
  }

  /** Bytes of the ring area the device writes (used ring / descriptor ring). */
  ringBytes(): Uint8Array {
    const b = new Uint8Array(0x1000);
    this.mem.read(this.cfg.descAddr, b);
    return b;
  }
}

/** Lets every pending microtask and promise callback run. */
export const settle = (): Promise<void> => new Promise((r) => setImmediate(r));
