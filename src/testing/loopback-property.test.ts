/**
 * Property test of the whole in-process stack: VirtioDriver + driver queue + InProcessTransport
 * + DeviceCore + device queue + EchoDevice, split and packed, with and without INDIRECT_DESC,
 * EVENT_IDX and IN_ORDER. fast-check drives random driver operations (add chains of random
 * shapes, kick or not, take some used buffers, arm or disarm used-buffer notifications, add and
 * kick again from inside the interrupt handler) and checks:
 *
 * - every buffer comes back exactly once, with its length and data intact (and in order with
 *   IN_ORDER, device/content/24);
 * - no available buffer notification is lost: after every kick the device has served every
 *   buffer made available (driver/split-ring/20, 22 and device/split-ring/18, 19 together);
 * - at every point where the device asks the core to notify, a used-buffer notification is
 *   sent exactly when the ring's suppression state requires one, read independently from guest
 *   memory: split flags (device/split-ring/8, 9, 10), split used_event (device/split-ring/7, 11,
 *   12), packed driver event suppression flags and off/wrap (2.8.10);
 * - no used-buffer notification is lost end to end: when the driver armed notifications
 *   (enableInterrupts returned false) and a used buffer became pending, an interrupt arrived.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { DeviceContext, VirtioDevice } from '../device/types.js';
import type { DriverContext } from '../driver/types.js';
import type { DeviceQueue, DriverQueue, QueueConfig, Segment } from '../queue/types.js';
import { F } from '../spec/features.js';
import { PackedEvent, SplitLayout } from '../spec/ring.js';
import { EchoDevice } from './echo-device.js';
import { createLoopback } from './loopback.js';

/** What the observer found at one notification point. */
interface Check {
  required: boolean;
  /** A notification sent although not required is tolerated here (spurious ones are legal). */
  spuriousOk: boolean;
  sent: boolean;
  what: string;
}

/**
 * Wraps the echo device: its DeviceContext's notifyUsed is observed. Before passing it on, the
 * ring's suppression state is read from guest memory and the spec's answer computed; the
 * interrupt counter then tells whether the core sent one.
 */
class ObservedEcho implements VirtioDevice {
  readonly inner: EchoDevice;
  readonly checks: Check[] = [];
  irqCount = 0;
  /** Counter that moves when the core sends a used-buffer notification (default: handler calls). */
  sentCounter: () => number = () => this.irqCount;
  qcfg: QueueConfig | null = null;
  /** Split: used idx at the previous check. Packed: circle position at the previous check. */
  private last = 0;

  constructor(queueSize: number) {
    this.inner = new EchoDevice({ queues: [queueSize] });
  }
  get deviceId(): number {
    return this.inner.deviceId;
  }
  get offeredFeatures(): bigint {
    return this.inner.offeredFeatures;
  }
  get queueMaxSizes(): readonly number[] {
    return this.inner.queueMaxSizes;
  }
  get configSize(): number {
    return this.inner.configSize;
  }
  readConfig(o: number, d: Uint8Array, f: bigint, le: boolean): void {
    this.inner.readConfig(o, d, f, le);
  }
  writeConfig(o: number, s: Uint8Array, f: bigint, le: boolean): void {
    this.inner.writeConfig(o, s, f, le);
  }
  onQueueNotify(i: number): void {
    this.inner.onQueueNotify(i);
  }
  reset(): void {
    this.inner.reset();
  }
  resetQueue(i: number): void {
    this.inner.resetQueue(i);
  }

  activate(ctx: DeviceContext): void {
    this.last = 0;
    const observed: DeviceContext = {
      get memory() {
        return ctx.memory;
      },
      features: ctx.features,
      littleEndian: ctx.littleEndian,
      queue: (i: number): DeviceQueue | null => ctx.queue(i),
      notifyConfigChange: (): void => ctx.notifyConfigChange(),
      needsReset: (r: string): void => ctx.needsReset(r),
      notifyUsed: (i: number): void => {
        const q = ctx.queue(i);
        // Before the test knows the ring (activation, nothing made available yet) there is
        // nothing to check.
        const required = q && this.qcfg ? this.required(ctx, q, this.qcfg) : null;
        const before = this.sentCounter();
        ctx.notifyUsed(i);
        // 'sync' delivery: the handler runs inside and counts first, so a count that moved means
        // this check sent one (nested checks only run inside a sent one). 'microtask': the
        // transport's own count of what the core sent.
        if (required) this.checks.push({ ...required, sent: this.sentCounter() !== before });
      },
    };
    this.inner.activate(observed);
  }

  private required(ctx: DeviceContext, q: DeviceQueue, c: QueueConfig): { required: boolean; spuriousOk: boolean; what: string } {
    const m = ctx.memory;
    const eventIdx = (ctx.features & F.EVENT_IDX) !== 0n;
    if (!q.packed) {
      const now = m.readU16(c.deviceAddr + SplitLayout.USED_IDX);
      const old = this.last;
      this.last = now;
      if (eventIdx) {
        // device/split-ring/10: flags ignored; 11/12: notify iff the entry at used_event was written.
        const ev = m.readU16(c.driverAddr + SplitLayout.usedEventOffset(c.size));
        return { required: ((now - ev - 1) & 0xffff) < ((now - old) & 0xffff), spuriousOk: false, what: `split used_event ${ev} old ${old} new ${now}` };
      }
      // device/split-ring/7: used_event ignored; 8/9: flags decide.
      const flags = m.readU16(c.driverAddr + SplitLayout.AVAIL_FLAGS);
      return { required: (flags & 1) === 0 && now !== old, spuriousOk: false, what: `split flags ${flags} old ${old} new ${now}` };
    }
    const size = c.size;
    const st = q.state();
    const circle = 2 * size;
    // Positions on a circle of 2 * size: the wrap counter starts at 1 and flips every pass.
    const now = st.usedWrap ? st.nextUsed : st.nextUsed + size;
    const old = this.last;
    this.last = now;
    const moved = (now - old + circle) % circle;
    const flags = m.readU16(c.driverAddr + PackedEvent.FLAGS) & 3;
    if (flags === PackedEvent.DISABLE) return { required: false, spuriousOk: false, what: 'packed DISABLE' };
    if (flags === PackedEvent.DESC_SPECIFIC && eventIdx) {
      const d = m.readU16(c.driverAddr + PackedEvent.DESC);
      const off = d & 0x7fff;
      const wrap = (d & 0x8000) !== 0;
      const ev = wrap ? off : off + size;
      // The queue notifies whenever a whole ring's worth of descriptors went by since its last
      // check (packedNeedEvent): spurious when the event lies in the other lap, which the
      // spec allows (the driver handles spurious notifications).
      return { required: (ev - old + circle) % circle < moved, spuriousOk: moved >= size, what: `packed event ${off}/${wrap} old ${old} new ${now}` };
    }
    return { required: moved > 0, spuriousOk: false, what: `packed ENABLE old ${old} new ${now}` };
  }
}

type Cmd =
  | { t: 'add'; out: number[]; inn: number[]; indirect: boolean }
  | { t: 'kick' }
  | { t: 'take'; n: number }
  | { t: 'arm' }
  | { t: 'disarm' }
  | { t: 'reentrant'; on: boolean };

const lens = fc.array(fc.integer({ min: 1, max: 96 }), { maxLength: 3 });
const cmd: fc.Arbitrary<Cmd> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ t: fc.constant('add' as const), out: lens, inn: lens, indirect: fc.boolean() }) },
  { weight: 3, arbitrary: fc.constant({ t: 'kick' as const }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('take' as const), n: fc.integer({ min: 1, max: 20 }) }) },
  { weight: 2, arbitrary: fc.constant({ t: 'arm' as const }) },
  { weight: 1, arbitrary: fc.constant({ t: 'disarm' as const }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('reentrant' as const), on: fc.boolean() }) },
);

interface Variant {
  packed: boolean;
  indirect: boolean;
  eventIdx: boolean;
  inOrder: boolean;
  queueSize: number;
  /** Interrupt delivery: inside the device's call, or coalesced in a microtask (the default). */
  delivery: 'sync' | 'microtask';
}

interface Rec {
  token: number;
  out: Segment[];
  inn: Segment[];
  data: Uint8Array;
  inLen: number;
}

async function runCase(v: Variant, cmds: Cmd[], seedBytes: number): Promise<void> {
  const dev = new ObservedEcho(v.queueSize);
  const lb = await createLoopback(dev, {
    packed: v.packed,
    indirect: v.indirect,
    eventIdx: v.eventIdx,
    inOrder: v.inOrder,
    queueSize: v.queueSize,
    memorySize: 1 << 20,
    interrupts: v.delivery,
  });
  const flush = (): Promise<void> => new Promise<void>((r) => setImmediate(r));
  if (v.delivery === 'microtask') dev.sentCounter = () => lb.transport.interruptCounts.used;
  try {
    const ctx: DriverContext = lb.context;
    const want = (v.packed ? F.RING_PACKED : 0n) | (v.indirect ? F.INDIRECT_DESC : 0n) | (v.eventIdx ? F.EVENT_IDX : 0n) | (v.inOrder ? F.IN_ORDER : 0n);
    assert.equal(ctx.features & (F.RING_PACKED | F.INDIRECT_DESC | F.EVENT_IDX | F.IN_ORDER), want, 'variant negotiated');
    dev.qcfg = lb.core.queueConfig(0);
    const q: DriverQueue<number> = ctx.queue(0);
    const inflight = new Map<number, Rec>();
    const order: number[] = [];
    let nextToken = 0;
    let published = 0;
    let added = 0;
    let taken = 0;
    let reentrant = false;
    let depth = 0;
    let armed = true;
    let irqAtArm = 0;
    let fill = seedBytes & 0xff;

    const addChain = (out: number[], inn: number[], indirect: boolean): void => {
      // A chain needs 1..queueSize descriptors (an indirect table is capped at the queue size too).
      if (out.length + inn.length === 0 || out.length + inn.length > v.queueSize) return;
      const o: Segment[] = out.map((len) => ({ addr: ctx.dma.alloc(len, 1), len }));
      const i: Segment[] = inn.map((len) => ({ addr: ctx.dma.alloc(len, 1), len }));
      const outLen = out.reduce((a, b) => a + b, 0);
      const data = new Uint8Array(outLen);
      for (let k = 0; k < outLen; k++) data[k] = fill = (fill * 33 + 7) & 0xff;
      let at = 0;
      for (const s of o) {
        ctx.memory.write(s.addr, data, at, s.len);
        at += s.len;
      }
      for (const s of i) ctx.memory.fill(s.addr, s.len, 0xee);
      const token = nextToken;
      if (!q.add(o, i, token, indirect && v.indirect)) {
        for (const s of [...o, ...i]) ctx.dma.free(s.addr);
        return;
      }
      nextToken++;
      added++;
      inflight.set(token, { token, out: o, inn: i, data, inLen: inn.reduce((a, b) => a + b, 0) });
      order.push(token);
    };

    const kick = (): void => {
      ctx.kick(0);
      published = added;
    };

    lb.driver.onUsed(0, () => {
      dev.irqCount++;
      // Re-entrance: the driver adds and kicks from its interrupt handler while the device is
      // between its pop loop and its re-enable (avail notifications disabled there).
      if (reentrant && depth < 2) {
        depth++;
        addChain([8], [8], false);
        kick();
        depth--;
      }
    });

    const take = (n: number): void => {
      for (let k = 0; k < n; k++) {
        const tok = q.takeUsed();
        if (tok === undefined) return;
        const rec = inflight.get(tok);
        assert.ok(rec, `token ${tok} came back twice or was never added`);
        inflight.delete(tok);
        if (v.inOrder) assert.equal(tok, order.shift(), 'device/content/24: used in the order made available');
        else order.splice(order.indexOf(tok), 1);
        const written = Math.min(rec.data.length, rec.inLen);
        assert.equal(q.lastUsedLen, written, `token ${tok} length`);
        let at = 0;
        for (const s of rec.inn) {
          const len = Math.min(s.len, written - at);
          if (len <= 0) break;
          assert.deepEqual(ctx.memory.slice(s.addr, len), rec.data.subarray(at, at + len), `token ${tok} data`);
          at += len;
        }
        for (const s of [...rec.out, ...rec.inn]) ctx.dma.free(s.addr);
        taken++;
        armed = false;
      }
    };

    const invariants = (where: string): void => {
      // No available buffer notification lost: everything published was served.
      assert.equal(dev.inner.served, published, `${where}: device served ${dev.inner.served} of ${published} published`);
      // Every notification point: sent exactly when required.
      for (const c of dev.checks) {
        if (c.required) assert.ok(c.sent, `${where}: ${c.what}: required notification not sent`);
        else if (!c.spuriousOk) assert.ok(!c.sent, `${where}: ${c.what}: notification sent though suppressed`);
      }
      dev.checks.length = 0;
      // No used-buffer notification lost end to end.
      if (armed && dev.inner.served > taken) assert.notEqual(dev.irqCount, irqAtArm, `${where}: armed, used pending, no interrupt`);
    };

    for (const [n, c] of cmds.entries()) {
      switch (c.t) {
        case 'add':
          addChain(c.out, c.inn, c.indirect);
          break;
        case 'kick':
          kick();
          break;
        case 'take':
          take(c.n);
          break;
        case 'arm': {
          const pending = q.enableInterrupts();
          assert.equal(pending, dev.inner.served > taken, 'enableInterrupts reports pending used buffers');
          armed = !pending;
          irqAtArm = dev.irqCount;
          break;
        }
        case 'disarm':
          q.disableInterrupts();
          armed = false;
          break;
        case 'reentrant':
          reentrant = c.on;
          break;
      }
      // Let pending interrupts (microtask delivery) reach the handler before checking.
      if (v.delivery === 'microtask') await flush();
      invariants(`step ${n} ${c.t}`);
    }
    // Drain: every buffer comes back exactly once.
    reentrant = false;
    kick();
    if (v.delivery === 'microtask') await flush();
    for (let pass = 0; pass < 4 && inflight.size > 0; pass++) take(v.queueSize * 4);
    invariants('drain');
    assert.equal(inflight.size, 0, 'every buffer came back');
    assert.equal(taken, added);
  } finally {
    await lb.close();
  }
}

const variant: fc.Arbitrary<Variant> = fc.record({
  packed: fc.boolean(),
  indirect: fc.boolean(),
  eventIdx: fc.boolean(),
  inOrder: fc.boolean(),
  queueSize: fc.constantFrom(2, 4, 8, 16),
  delivery: fc.constantFrom('sync' as const, 'microtask' as const),
});

describe('loopback property: DeviceCore + echo device + VirtioDriver', { timeout: 300_000 }, () => {
  for (const packed of [false, true]) {
    it(`${packed ? 'packed' : 'split'}: device/split-ring/7, device/split-ring/8, device/split-ring/9, device/split-ring/10, device/split-ring/11, device/split-ring/12, driver/split-ring/20, driver/split-ring/22, device/content/24: buffers once and intact, notifications exactly as suppression requires, none lost`, async () => {
      await fc.assert(
        fc.asyncProperty(
          variant.map((x) => ({ ...x, packed })),
          fc.array(cmd, { minLength: 1, maxLength: 120 }),
          fc.integer({ min: 0, max: 255 }),
          (v, cmds, seed) => runCase(v, cmds, seed),
        ),
        { numRuns: 300 },
      );
    });
  }

  it('a long run per variant wraps the rings many times', async () => {
    const cmds: Cmd[] = [];
    for (let i = 0; i < 3000; i++) {
      cmds.push({ t: 'add', out: [1 + (i % 50)], inn: [1 + ((i * 7) % 60), 3], indirect: i % 3 === 0 });
      if (i % 3 === 2) cmds.push({ t: 'kick' });
      if (i % 5 === 4) cmds.push({ t: 'take', n: 4 });
      if (i % 11 === 0) cmds.push({ t: 'arm' });
      if (i % 13 === 0) cmds.push({ t: 'reentrant', on: i % 2 === 0 });
    }
    for (const packed of [false, true])
      for (const eventIdx of [false, true])
        for (const inOrder of [false, true]) await runCase({ packed, indirect: true, eventIdx, inOrder, queueSize: 8, delivery: 'sync' }, cmds, 1);
  });
});
