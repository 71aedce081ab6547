/**
 * Keeps the console's held buffers alive across a guest memory rebind.
 *
 * Why: a console device holds driver buffers for a long time (receive buffers until host data
 * arrives, transmit buffers until the host reader takes the bytes). An embedder whose guest RAM
 * moves (v86: its wasm memory grows while the guest runs) rebinds the memory and has the core
 * rebuild its queues (`DeviceCore.setMemory`): new DeviceQueue objects with the old ones' state.
 * The QueueServer takes a new queue object for a restarted queue, stops the old one and drops
 * its requests in flight, so every buffer the device held was lost: the driver still thinks
 * the device has them, the device forgot them, and the ring went on from the copied position
 * (the v86 modern two-port failure of docs/devices/console.md: the guest waited forever for data
 * the device had "delivered" through a queue object whose views were detached).
 *
 * How: the QueueServer is given this context, whose `queue(i)` returns one stable
 * `RebindTolerantQueue` per index while the core's queue object only changed by such a rebind
 * (the new object's state equals the old one's: nothing used it since it was built from that
 * state). Each queue operation goes to the core's current object, so held chains complete into
 * the live ring. A change of any other kind (queue reset, a vhost-user ring restarted at another
 * position, the queue gone) gives a new wrapper (or null), and the server stops the old one as
 * before. Chains keep guest addresses and read memory through GuestMemory, which the embedder
 * rebinds in place, so a held chain stays valid.
 *
 * The kit could do this itself (DeviceCore.setMemory rebinding the views of its queue objects
 * in place instead of replacing them); until then the console works around it here.
 */
import type { DeviceContext } from '../../device/types.js';
import type { GuestMemory } from '../../memory/guest-memory.js';
import type { DescriptorChain } from '../../queue/chain.js';
import type { QueueError } from '../../errors.js';
import type { DeviceQueue, QueueState } from '../../queue/types.js';
import type { QueueStats } from '../../device/queue-stats.js';

function sameState(a: DeviceQueue, b: DeviceQueue): boolean {
  if (a.size !== b.size || a.packed !== b.packed || a.index !== b.index) return false;
  let sa: QueueState;
  let sb: QueueState;
  try {
    sa = a.state();
    sb = b.state();
  } catch {
    return false;
  }
  return sa.nextAvail === sb.nextAvail && sa.nextUsed === sb.nextUsed && sa.availWrap === sb.availWrap && sa.usedWrap === sb.usedWrap;
}

/** A DeviceQueue that follows the core's current queue object through memory rebinds. */
export class RebindTolerantQueue implements DeviceQueue {
  /** How many times the core's object was swapped under this wrapper (for tests and logs). */
  rebinds = 0;

  constructor(
    private readonly ctx: DeviceContext,
    readonly index: number,
    private real: DeviceQueue,
  ) {}

  /** The current object; false when the core's queue changed in a way that is no rebind. */
  follow(next: DeviceQueue): boolean {
    if (next === this.real) return true;
    if (!sameState(this.real, next)) return false;
    this.real = next;
    this.rebinds++;
    return true;
  }

  /** The core's queue now (a rebind followed), or the last one when the core has none. */
  private get q(): DeviceQueue {
    const now = this.ctx.queue(this.index);
    if (now !== null && now !== this.real) this.follow(now);
    return this.real;
  }

  get size(): number {
    return this.real.size;
  }
  get packed(): boolean {
    return this.real.packed;
  }
  get eventIdx(): boolean {
    return this.real.eventIdx === true;
  }
  get broken(): QueueError | null {
    return this.q.broken;
  }
  pop(chain: DescriptorChain): boolean {
    return this.q.pop(chain);
  }
  push(chain: DescriptorChain, written: number): void {
    this.q.push(chain, written);
  }
  pushId(id: number, ringDescs: number, written: number): void {
    this.q.pushId(id, ringDescs, written);
  }
  pushDeferred(chain: DescriptorChain, written: number): void {
    this.q.pushDeferred(chain, written);
  }
  publish(): void {
    this.q.publish();
  }
  pushInOrderBatch(lastId: number, count: number, written: number): void {
    this.q.pushInOrderBatch(lastId, count, written);
  }
  undoPop(count: number): void {
    this.q.undoPop(count);
  }
  createChain(minSegments?: number): DescriptorChain {
    return this.q.createChain(minSegments);
  }
  disableNotification(): void {
    this.q.disableNotification();
  }
  enableNotification(): boolean {
    return this.q.enableNotification();
  }
  needsNotification(): boolean {
    return this.q.needsNotification();
  }
  hasAvailable(): boolean {
    return this.q.hasAvailable();
  }
  availableCount(): number {
    return this.q.availableCount?.() ?? -1;
  }
  state(): QueueState {
    return this.q.state();
  }
  setState(s: QueueState): void {
    this.q.setState(s);
  }
  get memory(): GuestMemory {
    return this.q.memory;
  }
}

/** The context the console's QueueServer sees: `ctx` with rebind-tolerant queues. */
export class RebindTolerantContext implements DeviceContext {
  private readonly wrappers: (RebindTolerantQueue | null)[] = [];

  constructor(private readonly ctx: DeviceContext) {}

  get memory(): GuestMemory {
    return this.ctx.memory;
  }
  get features(): bigint {
    return this.ctx.features;
  }
  get littleEndian(): boolean {
    return this.ctx.littleEndian;
  }
  /** The transport's queue counters pass through (the queue server counts into them). */
  get stats(): QueueStats | undefined {
    return this.ctx.stats;
  }

  queue(index: number): DeviceQueue | null {
    const real = this.ctx.queue(index);
    const w = this.wrappers[index] ?? null;
    if (real === null) {
      if (w !== null) this.wrappers[index] = null;
      return null;
    }
    if (w !== null && w.follow(real)) return w;
    const fresh = new RebindTolerantQueue(this.ctx, index, real);
    while (this.wrappers.length <= index) this.wrappers.push(null);
    this.wrappers[index] = fresh;
    return fresh;
  }

  /** Rebinds followed so far on every queue. */
  get rebinds(): number {
    let n = 0;
    for (const w of this.wrappers) n += w?.rebinds ?? 0;
    return n;
  }

  notifyUsed(index: number): void {
    this.ctx.notifyUsed(index);
  }
  notifyConfigChange(): void {
    this.ctx.notifyConfigChange();
  }
  needsReset(reason: string, cause?: unknown): void {
    this.ctx.needsReset(reason, cause);
  }
}
