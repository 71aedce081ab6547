/**
 * VirtioDriver: the driver side of 3.1.1 and 2.5.1 over a DriverTransport. A recording
 * transport wraps the in-process one so the order of the driver's operations can be checked,
 * and lets a test play a device that misbehaves (refuses features, changes config mid-read,
 * does not reset).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ErrorCode, VirtioError } from '../errors.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import { F, bit } from '../spec/features.js';
import { Status } from '../spec/status.js';
import { EchoDevice, type EchoDeviceOptions } from '../testing/echo-device.js';
import { type InProcessConnection, connectInProcess } from '../transport/in-process/in-process-transport.js';
import type { DriverInterruptHandler, DriverQueueAddresses, DriverTransport } from './types.js';
import { VirtioDriver, type VirtioDriverOptions } from './virtio-driver.js';

const S = Status;
const ALL_UP = S.ACKNOWLEDGE | S.DRIVER | S.FEATURES_OK | S.DRIVER_OK;

type Op =
  | { op: 'status'; v: number }
  | { op: 'features'; v: bigint }
  | { op: 'setup'; q: number; size: number }
  | { op: 'notify'; q: number; data: number | undefined }
  | { op: 'resetQueue'; q: number }
  | { op: 'readConfig' }
  | { op: 'writeConfig' };

/** Delegates to an in-process transport, records every driver operation, lets tests override. */
class RecordingTransport implements DriverTransport {
  readonly ops: Op[] = [];
  offeredOverride: bigint | null = null;
  /** Called before each config read (a test plays a device changing its config). */
  beforeRead: ((n: number) => void) | null = null;
  /** When false, the status does not read 0 after a reset. */
  resets = true;
  /** When set, DRIVER_OK does not stick. */
  dropDriverOk = false;
  private reads = 0;

  constructor(readonly conn: InProcessConnection) {}

  get memory(): GuestMemory {
    return this.conn.transport.memory;
  }
  get deviceId(): number {
    return this.conn.transport.deviceId;
  }
  get legacy(): boolean {
    return this.conn.transport.legacy;
  }
  get littleEndian(): boolean {
    return this.conn.transport.littleEndian;
  }
  getStatus(): number {
    const s = this.conn.transport.getStatus();
    return this.resets ? s : s | S.ACKNOWLEDGE;
  }
  setStatus(v: number): void {
    this.ops.push({ op: 'status', v });
    if (this.dropDriverOk) v &= ~S.DRIVER_OK;
    this.conn.transport.setStatus(v);
  }
  getDeviceFeatures(): bigint {
    return this.offeredOverride ?? this.conn.transport.getDeviceFeatures();
  }
  setDriverFeatures(v: bigint): void {
    this.ops.push({ op: 'features', v });
    this.conn.transport.setDriverFeatures(v);
  }
  configGeneration(): number {
    return this.conn.transport.configGeneration();
  }
  readConfig(offset: number, dst: Uint8Array): void {
    this.ops.push({ op: 'readConfig' });
    this.beforeRead?.(this.reads++);
    this.conn.transport.readConfig(offset, dst);
  }
  writeConfig(offset: number, src: Uint8Array): void {
    this.ops.push({ op: 'writeConfig' });
    this.conn.transport.writeConfig(offset, src);
  }
  numQueues(): number {
    return this.conn.transport.numQueues();
  }
  queueMaxSize(i: number): number {
    return this.conn.transport.queueMaxSize(i);
  }
  setupQueue(q: number, a: DriverQueueAddresses): void {
    this.ops.push({ op: 'setup', q, size: a.size });
    this.conn.transport.setupQueue(q, a);
  }
  resetQueue(q: number): void {
    this.ops.push({ op: 'resetQueue', q });
    this.conn.transport.resetQueue(q);
  }
  notify(q: number, data?: number): void {
    this.ops.push({ op: 'notify', q, data });
    this.conn.transport.notify(q, data);
  }
  setInterruptHandler(h: DriverInterruptHandler): void {
    this.conn.transport.setInterruptHandler(h);
  }
}

function setup(
  echo: EchoDeviceOptions = {},
  legacy = false,
): { dev: EchoDevice; conn: InProcessConnection; t: RecordingTransport; opts: (o?: Partial<VirtioDriverOptions>) => VirtioDriverOptions } {
  const dev = new EchoDevice(echo);
  const conn = connectInProcess(dev, { memorySize: 4 << 20, legacy, interrupts: 'sync' });
  const t = new RecordingTransport(conn);
  return { dev, conn, t, opts: (o = {}) => ({ wantedFeatures: ~0n & ~F.RING_PACKED, dma: conn.dma, queueSizes: [16], ...o }) };
}

const code = (c: string) => (e: unknown) => e instanceof VirtioError && e.code === c;

function statusWrites(t: RecordingTransport): number[] {
  return t.ops.filter((o): o is { op: 'status'; v: number } => o.op === 'status').map((o) => o.v);
}

/** One echo round trip through queue 0; returns the bytes that came back. */
function echoOnce(d: VirtioDriver, payload: number[]): number[] {
  const ctx = d.context;
  const out = ctx.dma.alloc(payload.length);
  const inn = ctx.dma.alloc(payload.length);
  ctx.memory.write(out, Uint8Array.from(payload));
  const q = ctx.queue(0);
  assert.ok(q.add([{ addr: out, len: payload.length }], [{ addr: inn, len: payload.length }], 1));
  ctx.kick(0);
  assert.equal(q.takeUsed(), 1);
  const back = [...ctx.memory.slice(inn, q.lastUsedLen)];
  ctx.dma.free(out);
  ctx.dma.free(inn);
  return back;
}

describe('VirtioDriver: initialization (3.1.1)', () => {
  it('driver/content/17, driver/content/1, driver/content/18, driver/content/22: reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK, queues, DRIVER_OK, and no notification before DRIVER_OK', () => {
    const { t, opts } = setup();
    const d = VirtioDriver.initSync(t, opts());
    const shape = t.ops.map((o) => (o.op === 'status' ? `s${o.v}` : o.op));
    assert.deepEqual(shape, ['s0', `s${S.ACKNOWLEDGE}`, `s${S.ACKNOWLEDGE | S.DRIVER}`, 'features', `s${S.ACKNOWLEDGE | S.DRIVER | S.FEATURES_OK}`, 'setup', 'setup', `s${ALL_UP}`]);
    assert.equal(t.getStatus(), ALL_UP);
    assert.ok(d.running);
    assert.deepEqual(echoOnce(d, [1, 2, 3]), [1, 2, 3]);
  });

  it('driver/content/2: every status write keeps the bits already set', () => {
    const { t, opts } = setup();
    VirtioDriver.initSync(t, opts());
    const w = statusWrites(t);
    for (let i = 1; i < w.length; i++) if (w[i] !== 0) assert.equal(w[i]! & w[i - 1]!, w[i - 1], `write ${i} clears a bit`);
  });

  it('driver/content/10: the driver waits for status to read 0 after reset, and gives up when it does not', () => {
    const { t, opts } = setup();
    t.resets = false;
    assert.throws(() => VirtioDriver.initSync(t, opts()), code(ErrorCode.STATUS_INVALID));
    assert.deepEqual(statusWrites(t), [0], 'nothing after the reset that did not complete');
  });

  it('driver/content/5, driver/content/7, driver/content/9: only offered bits it knows are accepted; unknown offered bits do not fail it', () => {
    const { t, opts } = setup();
    const unknown = F.SR_IOV | F.NOTIF_CONFIG_DATA | F.UNUSED | F.NOTIFY_ON_EMPTY | bit(44) | bit(49) | bit(130);
    t.offeredOverride = t.conn.transport.getDeviceFeatures() | unknown;
    // The core refuses unknown bits, so an accepted one would fail the init: it must succeed.
    const d = VirtioDriver.initSync(t, opts({ wantedFeatures: bit(140) - 1n }));
    const accepted = t.ops.find((o): o is { op: 'features'; v: bigint } => o.op === 'features')!.v;
    assert.equal(accepted & unknown, 0n);
    assert.equal(accepted & ~t.conn.core.deviceFeatures(), 0n, 'nothing outside the offer');
    assert.equal(d.features, accepted);
  });

  it('driver/content/5: a feature the caller wants but the device does not offer is not accepted', () => {
    const { t, opts } = setup({ deviceFeatures: 0b1n, transportFeatures: F.VERSION_1 | F.EVENT_IDX });
    const d = VirtioDriver.initSync(t, opts({ wantedFeatures: 0b111n | F.EVENT_IDX | F.INDIRECT_DESC | F.RING_PACKED }));
    assert.equal(d.features, 0b1n | F.EVENT_IDX | F.VERSION_1);
  });

  it('driver/content/6, driver/content/8: a required feature the device does not offer: FAILED before negotiating', () => {
    const { t, opts, dev } = setup({ deviceFeatures: 0b01n });
    assert.throws(() => VirtioDriver.initSync(t, opts({ requiredFeatures: 0b10n })), code(ErrorCode.FEATURES_REJECTED));
    assert.equal(t.getStatus(), S.ACKNOWLEDGE | S.DRIVER | S.FAILED);
    assert.equal(t.ops.filter((o) => o.op === 'features' || o.op === 'setup').length, 0);
    assert.equal(dev.activations, 0);
    const d = VirtioDriver.initSync(t, opts({ requiredFeatures: 0b01n | F.VERSION_1 }));
    assert.equal(d.features & 0b01n, 0b01n);
  });

  it('driver/content/31: VERSION_1 is accepted when offered even if the caller did not ask for it', () => {
    const { t, opts } = setup();
    const d = VirtioDriver.initSync(t, opts({ wantedFeatures: 0b1n }));
    assert.equal(d.features, 0b1n | F.VERSION_1);
  });

  it('driver/content/32, driver/content/20, driver/content/21: no VERSION_1 on a modern interface: FAILED, initialization stops', () => {
    const { t, opts } = setup();
    t.offeredOverride = t.conn.transport.getDeviceFeatures() & ~F.VERSION_1;
    assert.throws(() => VirtioDriver.initSync(t, opts()), code(ErrorCode.FEATURES_REJECTED));
    assert.equal(t.getStatus() & S.FAILED, S.FAILED);
    assert.equal(t.ops.filter((o) => o.op === 'setup' || o.op === 'notify').length, 0);
    assert.ok(statusWrites(t).every((v) => (v & (S.FEATURES_OK | S.DRIVER_OK)) === 0));
  });

  it('driver/content/19, driver/content/20, driver/content/21: FEATURES_OK that does not stick: FAILED, no queue, no DRIVER_OK', () => {
    const { t, opts, dev } = setup({ refuse: bit(1) });
    assert.throws(() => VirtioDriver.initSync(t, opts()), code(ErrorCode.FEATURES_REJECTED));
    assert.equal(t.getStatus(), S.ACKNOWLEDGE | S.DRIVER | S.FAILED);
    assert.equal(t.ops.filter((o) => o.op === 'setup').length, 0);
    assert.ok(statusWrites(t).every((v) => (v & S.DRIVER_OK) === 0));
    assert.equal(dev.activations, 0);
  });

  it('driver/content/3: after FAILED the driver resets before initializing again', () => {
    const { t, opts } = setup({ refuse: bit(1) });
    assert.throws(() => VirtioDriver.initSync(t, opts()));
    t.ops.length = 0;
    const d = VirtioDriver.initSync(t, opts({ wantedFeatures: ~bit(1) & ~F.RING_PACKED }));
    assert.equal(statusWrites(t)[0], 0, 'the first write is a reset');
    assert.equal(t.getStatus(), ALL_UP);
    assert.equal(d.features & bit(1), 0n);
  });

  it('driver/content/20: a device that does not take DRIVER_OK leaves the driver failed with its rings freed', () => {
    const { t, opts, conn } = setup();
    t.dropDriverOk = true;
    const probe = conn.dma.alloc(16);
    conn.dma.free(probe);
    assert.throws(() => VirtioDriver.initSync(t, opts()), code(ErrorCode.DEVICE_NEEDS_RESET));
    assert.equal(t.getStatus() & S.FAILED, S.FAILED);
    assert.equal(conn.dma.alloc(16), probe, 'ring allocations were returned');
  });

  it('2.6: queue sizes are capped at the maximum and split sizes are powers of two', () => {
    const { t, opts } = setup({ queues: [64, 12] });
    const d = VirtioDriver.initSync(t, opts({ queueSizes: [100, 1000] }));
    const sizes = t.ops.filter((o): o is { op: 'setup'; q: number; size: number } => o.op === 'setup').map((o) => o.size);
    assert.deepEqual(sizes, [64, 8]);
    assert.equal(d.numQueues, 2);
  });

  it('6.3 legacy: no FEATURES_OK, no VERSION_1, legacy ring', () => {
    const { t, opts } = setup({}, true);
    const d = VirtioDriver.initSync(t, opts());
    assert.equal(d.features & F.VERSION_1, 0n);
    assert.ok(statusWrites(t).every((v) => (v & S.FEATURES_OK) === 0));
    assert.equal(t.getStatus(), S.ACKNOWLEDGE | S.DRIVER | S.DRIVER_OK);
    assert.deepEqual(echoOnce(d, [9, 8, 7, 6]), [9, 8, 7, 6]);
  });

  it('init resolves asynchronously too', async () => {
    const { t, opts } = setup();
    const d = await VirtioDriver.init(t, opts());
    assert.ok(d.running);
  });
});

describe('VirtioDriver: configuration space (2.5.1)', () => {
  it('driver/content/11: a read is retried while the generation changes, and the value is consistent', () => {
    const { t, opts, dev, conn } = setup();
    const d = VirtioDriver.initSync(t, opts());
    dev.setConfigSilently(5);
    // The device changes its config during the first two reads: a torn value must not escape.
    t.beforeRead = (n): void => {
      if (n < 2) {
        dev.setConfigSilently(100 + n);
        conn.core.configChanged();
      }
    };
    t.ops.length = 0;
    const b = d.context.readConfig(0, 16);
    const dv = new DataView(b.buffer);
    assert.equal(t.ops.filter((o) => o.op === 'readConfig').length, 3);
    assert.equal(dv.getUint32(0, true), 101);
    assert.equal(dv.getUint32(8, true), 101);
    assert.equal(dv.getUint32(12, true), 101);
  });

  it('driver/content/11: a generation that never settles gives a TIMEOUT after the bounded retries', () => {
    const { t, opts, conn } = setup();
    const d = VirtioDriver.initSync(t, opts({ configRetries: 5 }));
    t.beforeRead = (): void => conn.core.configChanged();
    t.ops.length = 0;
    assert.throws(() => d.readConfig(0, 4), code(ErrorCode.TIMEOUT));
    assert.equal(t.ops.filter((o) => o.op === 'readConfig').length, 5);
  });

  it('a configuration change notification reaches onConfigChange; DEVICE_NEEDS_RESET reaches onNeedsReset (driver/content/4)', () => {
    const { t, opts, dev, conn } = setup();
    const d = VirtioDriver.initSync(t, opts());
    let changes = 0;
    let needs = 0;
    d.onConfigChange(() => changes++);
    d.onNeedsReset(() => needs++);
    dev.bumpConfig();
    assert.equal(changes, 1);
    assert.equal(needs, 0);
    assert.equal(d.needsReset, false);
    conn.core.setNeedsReset('test');
    assert.equal(needs, 1);
    assert.equal(changes, 2);
    assert.equal(d.needsReset, true);
  });

  it('writeConfig reaches the device', () => {
    const { t, opts } = setup();
    const d = VirtioDriver.initSync(t, opts());
    d.context.writeConfig(4, Uint8Array.of(1, 2, 3, 4));
    assert.deepEqual([...d.readConfig(4, 4)], [1, 2, 3, 4]);
  });
});

describe('VirtioDriver: notifications, queue reset, device reset', () => {
  it('2.9: with NOTIFICATION_DATA the notification carries the queue index and next position', () => {
    const { t, opts } = setup();
    const d = VirtioDriver.initSync(t, opts({ wantedFeatures: F.NOTIFICATION_DATA | F.VERSION_1 }));
    t.ops.length = 0;
    echoOnce(d, [1]);
    const n = t.ops.filter((o): o is { op: 'notify'; q: number; data: number | undefined } => o.op === 'notify');
    assert.equal(n.length, 1);
    assert.equal(n[0]!.data, 1 << 16, 'vq 0, next avail index 1');
    const { t: t2, opts: o2 } = setup();
    const d2 = VirtioDriver.initSync(t2, o2({ wantedFeatures: F.VERSION_1 }));
    t2.ops.length = 0;
    echoOnce(d2, [1]);
    assert.deepEqual(t2.ops.filter((o) => o.op === 'notify'), [{ op: 'notify', q: 0, data: undefined }]);
  });

  it('used-buffer notifications reach onUsed of their queue only', () => {
    const { t, opts } = setup();
    const d = VirtioDriver.initSync(t, opts());
    const calls: number[] = [];
    d.onUsed(0, () => calls.push(0));
    d.onUsed(1, () => calls.push(1));
    echoOnce(d, [4]);
    assert.deepEqual(calls, [0]);
    assert.throws(() => d.onUsed(7, () => {}), code(ErrorCode.INVALID_ARGUMENT));
    assert.throws(() => d.queue(7), code(ErrorCode.INVALID_ARGUMENT));
  });

  it('driver/content/16: resetQueue resets the queue on the device and configures fresh resources', () => {
    const { t, opts, dev } = setup();
    const d = VirtioDriver.initSync(t, opts({ wantedFeatures: F.VERSION_1 | F.RING_RESET }));
    echoOnce(d, [1, 2]);
    const old = d.queue(0);
    t.ops.length = 0;
    const fresh = d.resetQueue(0);
    assert.notEqual(fresh, old);
    assert.deepEqual(
      t.ops.map((o) => o.op),
      ['resetQueue', 'setup'],
    );
    assert.deepEqual(dev.queueResets, [0]);
    assert.deepEqual(echoOnce(d, [5, 6, 7]), [5, 6, 7]);
    const { t: t2, opts: o2 } = setup();
    const d2 = VirtioDriver.initSync(t2, o2({ wantedFeatures: F.VERSION_1 }));
    assert.throws(() => d2.resetQueue(0), code(ErrorCode.FEATURES_REJECTED), 'without RING_RESET');
  });

  it('driver/content/24: reset makes the queues dead before their memory is released', () => {
    const { t, opts, conn } = setup();
    const d = VirtioDriver.initSync(t, opts());
    const order: string[] = [];
    const realFree = conn.dma.free.bind(conn.dma);
    conn.dma.free = (a: number): void => {
      order.push(`free:${t.getStatus()}`);
      realFree(a);
    };
    d.reset();
    assert.ok(order.length > 0);
    assert.ok(order.every((s) => s === 'free:0'), 'every free after the device read status 0');
    assert.equal(d.running, false);
    assert.equal(t.getStatus(), 0);
    // A kick on a reset driver does nothing.
    t.ops.length = 0;
    d.kick(0);
    assert.deepEqual(t.ops, []);
  });

  it('stop events: queue reset names its queue, DEVICE_NEEDS_RESET and reset stop all, once each; listeners can be removed', () => {
    const { t, opts, dev } = setup();
    const d = VirtioDriver.initSync(t, opts({ wantedFeatures: F.VERSION_1 | F.RING_RESET }));
    const seen: string[] = [];
    const off = d.context.onStop?.((e) => seen.push(`${e.reason}:${e.queueIndex}`));
    const other: string[] = [];
    const offOther = d.onStop((e) => other.push(e.reason));
    assert.equal(d.context.deviceId, dev.deviceId);
    d.resetQueue(1);
    offOther();
    dev.context!.needsReset('test');
    assert.ok(d.needsReset);
    d.reset();
    d.reset(); // already reset: no second event
    assert.deepEqual(seen, ['queue-reset:1', 'needs-reset:-1', 'device-reset:-1']);
    assert.deepEqual(other, ['queue-reset']);
    off?.();
  });
});
