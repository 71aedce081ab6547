/**
 * The transmit direct path (tx-direct.ts) against the general one: the same random transmit
 * chains, malformed ones among them (runts, oversize frames, bad checksum and GSO headers, a
 * buffer outside guest memory, writable and indirect descriptors, chains longer than a direct
 * batch takes), made available in batches, give the same frames at the switch's other port, the
 * same device statistics, per-queue STATS counters, queue counters and used ring, whether the
 * device serves them directly or every chain goes through a pop. The direct run must have
 * served chains both ways.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DeviceContext, VirtioDevice } from '../../device/types.js';
import { QUEUE_COUNTERS } from '../../device/queue-stats.js';
import type { DirectBatch } from '../../queue/direct-batch.js';
import type { DeviceQueue, Segment } from '../../queue/types.js';
import { NetF, NetGsoType, NetHdr, NetHdrFlag } from '../../spec/net.js';
import { Status } from '../../spec/status.js';
import { createLoopback } from '../../testing/loopback.js';
import { xorshift32 } from '../../testing/xorshift.js';
import { buildIpFrame } from './ip-frames.js';
import { NetDevice } from './net-device.js';
import { NetTxCounter } from './net-stats.js';
import type { NetPacket } from './packet.js';
import { NetSwitch } from './switch.js';

const QUEUE = 64;
const PEER = Uint8Array.of(2, 0, 0, 0, 0, 2);
const SRC = Uint8Array.of(2, 0, 0, 0, 0, 1);

/** The NetDevice with its queues seen through proxies: popDirect hidden (`direct` false) or counted. */
class QueueWatch implements VirtioDevice {
  directChains = 0;
  pops = 0;
  constructor(
    readonly inner: NetDevice,
    private readonly direct: boolean,
  ) {}
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
  readConfig(offset: number, dst: Uint8Array, features: bigint, le: boolean): void {
    this.inner.readConfig(offset, dst, features, le);
  }
  writeConfig(): void {}
  validateFeatures(f: bigint): string | null {
    return this.inner.validateFeatures(f);
  }
  activate(ctx: DeviceContext): void {
    const proxies = new Map<DeviceQueue, DeviceQueue>();
    const proxy = (q: DeviceQueue): DeviceQueue => {
      let p = proxies.get(q);
      if (p === undefined) {
        p = new Proxy(q, {
          get: (t, prop) => {
            if (prop === 'popDirect') return this.direct ? (b: DirectBatch, max: number) => this.countDirect(t.popDirect!(b, max)) : undefined;
            if (prop === 'pushDirect' && !this.direct) return undefined;
            if (prop === 'pop') return (c: Parameters<DeviceQueue['pop']>[0]) => this.countPop(t.pop(c));
            const v: unknown = Reflect.get(t, prop, t);
            return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v;
          },
        });
        proxies.set(q, p);
      }
      return p;
    };
    this.inner.activate({
      get memory() {
        return ctx.memory;
      },
      get features() {
        return ctx.features;
      },
      get littleEndian() {
        return ctx.littleEndian;
      },
      get stats() {
        return ctx.stats;
      },
      queue: (i) => {
        const q = ctx.queue(i);
        return q === null ? null : proxy(q);
      },
      notifyUsed: (i) => ctx.notifyUsed(i),
      notifyConfigChange: () => ctx.notifyConfigChange(),
      needsReset: (reason, cause) => ctx.needsReset(reason, cause),
    });
  }
  onQueueNotify(i: number): void {
    this.inner.onQueueNotify(i);
  }
  reset(): void {
    this.inner.reset();
  }
  private countDirect(n: number): number {
    this.directChains += n;
    return n;
  }
  private countPop(got: boolean): boolean {
    if (got) this.pops++;
    return got;
  }
}

interface Outcome {
  frames: string[];
  used: [number, number][];
  stats: unknown;
  tx: bigint[];
  queue: number[];
  directChains: number;
  pops: number;
}

async function run(seed: number, direct: boolean, indirect: boolean): Promise<Outcome> {
  const device = new NetDevice({ queueSize: QUEUE });
  const sw = new NetSwitch();
  device.attachTo(sw);
  const frames: string[] = [];
  sw.attach({ name: 'peer', deliver: (p: NetPacket) => void frames.push(Buffer.from(p.bytes()).toString('hex')) });
  const watch = new QueueWatch(device, direct);
  const lb = await createLoopback(watch, { queueSize: QUEUE, eventIdx: false, indirect, interrupts: 'sync', refuseFeatures: NetF.HASH_REPORT | NetF.RSS });
  const ctx = lb.context;
  ctx.onUsed(1, () => {});
  const hl = 12;
  assert.equal(ctx.features & NetF.HASH_REPORT, 0n, 'the loopback driver takes no HASH_REPORT (12-byte header)');
  const next = xorshift32(seed);
  const r = (n: number): number => next() % n;
  const write = (b: Uint8Array): Segment => {
    const addr = ctx.dma.alloc(Math.max(1, b.length), 4);
    ctx.memory.write(addr, b);
    return { addr, len: b.length };
  };
  /** A header and frame as the driver sends them, some broken. */
  const chain = (): { out: Segment[]; inn: Segment[]; ind: boolean } => {
    const kind = r(16);
    const len = kind === 0 ? r(14) : kind === 1 ? 1515 + r(100) : 14 + r(200);
    const frame = len >= 42 && r(2) === 0 ? buildIpFrame({ dst: PEER, src: SRC, udp: r(2) === 0, payload: len - 42 }) : Uint8Array.from({ length: len }, () => r(256));
    const hdr = new Uint8Array(hl);
    if (kind === 2) hdr[NetHdr.FLAGS] = NetHdrFlag.NEEDS_CSUM;
    if (kind === 3) {
      hdr[NetHdr.FLAGS] = NetHdrFlag.NEEDS_CSUM;
      hdr[NetHdr.CSUM_START] = 34;
      hdr[NetHdr.CSUM_OFFSET] = 6;
    }
    if (kind === 4) hdr[NetHdr.GSO_TYPE] = r(2) === 0 ? NetGsoType.TCPV4 : r(256);
    const whole = new Uint8Array(hl + frame.length);
    whole.set(hdr);
    whole.set(frame, hl);
    // Split in 1 to 6 buffers (a direct batch takes up to 4), some of length 0.
    const parts = 1 + r(kind === 5 ? 6 : 2);
    const out: Segment[] = [];
    let at = 0;
    for (let i = 0; i < parts; i++) {
      const end = i === parts - 1 ? whole.length : Math.min(whole.length, at + r(whole.length - at + 1));
      if (end > at || r(8) === 0) out.push(write(whole.subarray(at, end)));
      at = end;
    }
    if (out.length === 0) out.push(write(whole));
    if (kind === 6) out[0] = { addr: 0x7fff_0000_0000, len: out[0]!.len }; // outside guest memory
    const inn = kind === 7 ? [{ addr: ctx.dma.alloc(16), len: 16 }] : [];
    return { out, inn, ind: indirect && kind === 8 };
  };
  const q = ctx.queue(1);
  const used: [number, number][] = [];
  let token = 0;
  for (let round = 0; round < 40; round++) {
    const k = 1 + r(24);
    for (let i = 0; i < k; i++) {
      const c = chain();
      assert.ok(q.add(c.out, c.inn, token++, c.ind), 'room in the ring');
    }
    ctx.kick(1);
    for (let t = q.takeUsed(); t !== undefined; t = q.takeUsed()) used.push([t as number, q.lastUsedLen]);
  }
  assert.equal(lb.core.status & Status.DEVICE_NEEDS_RESET, 0);
  const tx = Object.values(NetTxCounter).map((slot) => device.counters.get(1, slot));
  const queue = QUEUE_COUNTERS.map((name) => lb.core.stats.value(1, name));
  const out: Outcome = { frames, used, stats: { ...device.stats }, tx, queue, directChains: watch.directChains, pops: watch.pops };
  await lb.close();
  return out;
}

describe('virtio-net transmit direct path', () => {
  for (const indirect of [false, true]) {
    it(`random chains, malformed ones among them${indirect ? ', indirect tables' : ''}: the same frames, counters and used ring as the general path`, { timeout: 60_000 }, async () => {
      for (const seed of [1, 0x5eed, 0xbad5eed]) {
        const general = await run(seed, false, indirect);
        const fast = await run(seed, true, indirect);
        assert.equal(general.directChains, 0);
        assert.ok(fast.directChains > 0 && fast.pops > 0, `served both ways (${fast.directChains} direct, ${fast.pops} popped)`);
        assert.equal(fast.directChains + fast.pops, general.pops);
        assert.deepEqual(fast.used, general.used);
        assert.deepEqual(fast.frames, general.frames);
        assert.deepEqual(fast.stats, general.stats);
        assert.deepEqual(fast.tx, general.tx);
        assert.deepEqual(fast.queue, general.queue);
        const s = general.stats as NetDevice['stats'];
        assert.ok(s.txFrames > 0 && s.txErrors > 0, `both outcomes seen (${s.txFrames} sent, ${s.txErrors} malformed)`);
        assert.equal(general.used.length, general.pops);
      }
    });
  }

  it('a frame the switch delivers is read whole from the direct batch (partial frames completed from its segments)', async () => {
    const r = await run(7, true, false);
    assert.ok(r.directChains > 0);
    assert.ok(r.frames.length > 0 && r.frames.some((f) => f.length > 2 * 64));
  });
});


